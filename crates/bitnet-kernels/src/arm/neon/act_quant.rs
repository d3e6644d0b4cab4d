//! The NEON backend's activation quantisation: no NEON version (quantisation is O(cols) per
//! token, negligible next to the matmuls), so the scalar reference runs, called by name.

use super::Neon;
use crate::ops::{ActQuantOps, KernelId};

impl ActQuantOps for Neon {
    fn quantize_rows(&self, x: &[f32], cols: usize, q: &mut [i8], scales: &mut [f32]) -> KernelId {
        crate::scalar::act_quant::quantize_rows(x, cols, q, scales)
    }
}
