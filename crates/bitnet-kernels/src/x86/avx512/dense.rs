//! The AVX-512 VNNI backend's dense matmuls: the AVX2 code, called by name. The head is
//! memory-bound, so wider vectors or VNNI would not move it.

use super::Avx512Vnni;
use crate::ops::{DenseMatmul, DenseOps, KernelId, Q8Matmul};
use crate::packed::OutRows;
use crate::x86::avx2;
use half::f16;

impl DenseOps for Avx512Vnni {
    fn f16_rows(&self, m: &DenseMatmul<'_, f16>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: `Avx512Vnni::get` checked AVX2, FMA and F16C.
        unsafe { avx2::dense::f16_rows(m, out) }
    }

    fn f32_rows(&self, m: &DenseMatmul<'_, f32>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: as above.
        unsafe { avx2::dense::f32_rows(m, out) }
    }

    fn q8_rows(&self, m: &Q8Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: as above.
        unsafe { avx2::dense::q8_rows(m, out) }
    }
}
