//! The AVX-512 VNNI backend's activation quantisation: the AVX2 code, called by name
//! (quantisation is O(cols) per token, negligible next to the matmuls).

use super::Avx512Vnni;
use crate::ops::{ActQuantOps, KernelId};
use crate::x86::avx2;

impl ActQuantOps for Avx512Vnni {
    fn quantize_rows(&self, x: &[f32], cols: usize, q: &mut [i8], scales: &mut [f32]) -> KernelId {
        // SAFETY: `Avx512Vnni::get` checked AVX2, FMA and F16C.
        unsafe { avx2::act_quant::quantize_rows(x, cols, q, scales) }
    }
}
