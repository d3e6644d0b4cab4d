//! AVX2 ternary matmul: the shared x86 tile loop ([`crate::x86::ternary`]) with
//! `vpmaddubsw` + `vpmaddwd` as the dot step.

use super::Avx2;
use crate::ops::{KernelId, TernaryF32Matmul, TernaryMatmul, TernaryMatmulOps};
use crate::packed::{OutRows, PackedLayout};
use crate::tile::ternary_rows;
use crate::x86::ternary::DotStep;
use std::arch::x86_64::*;

/// Id of [`ternary_avx2`].
pub(crate) const ID: KernelId = "i2s/avx2";

pub(crate) struct MaddStep;

impl DotStep for MaddStep {
    type Acc = __m256i;

    #[inline(always)]
    unsafe fn zero() -> __m256i {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe { _mm256_setzero_si256() }
    }

    #[inline(always)]
    unsafe fn reduce(acc: __m256i) -> __m256i {
        acc
    }

    #[inline(always)]
    unsafe fn step(acc: __m256i, c: &[__m256i; 4], q: *const i8) -> __m256i {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe {
            let p0 = _mm256_maddubs_epi16(c[0], _mm256_loadu_si256(q as *const __m256i));
            let p1 = _mm256_maddubs_epi16(c[1], _mm256_loadu_si256(q.add(32) as *const __m256i));
            let p2 = _mm256_maddubs_epi16(c[2], _mm256_loadu_si256(q.add(64) as *const __m256i));
            let p3 = _mm256_maddubs_epi16(c[3], _mm256_loadu_si256(q.add(96) as *const __m256i));
            let s = _mm256_add_epi16(_mm256_add_epi16(p0, p1), _mm256_add_epi16(p2, p3));
            _mm256_add_epi32(acc, _mm256_madd_epi16(s, _mm256_set1_epi16(1)))
        }
    }
}

/// The AVX2 ternary matmul.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn ternary_avx2(m: &TernaryMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
    match m.w().layout() {
        // SAFETY: the features are enabled on this function.
        PackedLayout::I2s128 => unsafe { ternary_rows::<MaddStep>(m, out) },
        // The AVX-512 backend's layout (only reachable by calling this backend directly;
        // `Kernels` refuses mismatched layouts): the scalar code reads every layout.
        PackedLayout::I2s256 => return crate::scalar::ternary::ternary_rows(m, out),
    }
    ID
}

impl TernaryMatmulOps for Avx2 {
    fn layout(&self) -> PackedLayout {
        PackedLayout::I2s128
    }

    fn ternary_rows(&self, m: &TernaryMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: an `Avx2` exists only when `Avx2::get` saw AVX2, FMA and F16C; `m`'s
        // shapes were checked when it was built.
        unsafe { ternary_avx2(m, out) }
    }

    fn ternary_f32_rows(&self, m: &TernaryF32Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // No AVX2 version: this path only serves cross-checks (activation quantisation off).
        crate::scalar::ternary::ternary_f32_rows(m, out)
    }
}
