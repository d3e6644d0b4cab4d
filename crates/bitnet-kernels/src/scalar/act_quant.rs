//! Scalar activation quantisation: the reference itself.

use super::Scalar;
use crate::act_quant::quantize_row_reference;
use crate::ops::{ActQuantOps, KernelId};

/// Id of [`quantize_rows`].
pub(crate) const ID: KernelId = "act_i8/scalar";

/// [`quantize_row_reference`] on every row.
pub(crate) fn quantize_rows(x: &[f32], cols: usize, q: &mut [i8], scales: &mut [f32]) -> KernelId {
    crate::ops::act_quant::for_each_row(x, cols, q, scales, quantize_row_reference);
    ID
}

impl ActQuantOps for Scalar {
    fn quantize_rows(&self, x: &[f32], cols: usize, q: &mut [i8], scales: &mut [f32]) -> KernelId {
        quantize_rows(x, cols, q, scales)
    }
}
