//! AVX2 activation quantisation: the reference's exact f32 steps (multiply,
//! round-half-to-even with `vroundps`, clamp), 8 lanes at a time, so the bits are identical.

use super::Avx2;
use crate::act_quant::{act_scale, quantize_value};
use crate::ops::{ActQuantOps, KernelId};
use std::arch::x86_64::*;

/// Id of [`quantize_rows`].
pub(crate) const ID: KernelId = "act_i8/avx2";

/// Reference-identical quantisation, 8 lanes at a time.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_row(x: &[f32], q: &mut [i8]) -> f32 {
    assert_eq!(x.len(), q.len(), "quantize_row: x and q lengths differ");
    let n = x.len();
    let main = n / 32 * 32;
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
    unsafe {
        let sign = _mm256_set1_ps(-0.0);
        let mut m = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            let a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x.as_ptr().add(i)));
            // max_ps returns its second operand when either is NaN: NaN is skipped like
            // `f32::max` does in the reference.
            m = _mm256_max_ps(a, m);
            i += 8;
        }
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), m);
        let mut amax = lanes.iter().fold(0.0f32, |a, &b| a.max(b));
        for &v in &x[i..] {
            amax = amax.max(v.abs());
        }
        let s = act_scale(amax);
        let sv = _mm256_set1_ps(s);
        let hi = _mm256_set1_ps(127.0);
        let lo = _mm256_set1_ps(-128.0);
        let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let conv = |p: *const f32| {
            let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(_mm256_loadu_ps(p), sv),
            );
            // NaN -> 0 (as `NaN as i8` in the reference), then clamp.
            let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r));
            _mm256_cvtps_epi32(_mm256_max_ps(_mm256_min_ps(r, hi), lo))
        };
        let mut i = 0;
        while i < main {
            let p = x.as_ptr().add(i);
            let a = conv(p);
            let b = conv(p.add(8));
            let c = conv(p.add(16));
            let d = conv(p.add(24));
            let abcd = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
            let v = _mm256_permutevar8x32_epi32(abcd, perm);
            _mm256_storeu_si256(q.as_mut_ptr().add(i) as *mut __m256i, v);
            i += 32;
        }
        for (qi, &xi) in q[main..].iter_mut().zip(&x[main..]) {
            *qi = quantize_value(xi, s);
        }
        s
    }
}

/// Every row of `x` (see [`ActQuantOps::quantize_rows`]).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
pub(crate) unsafe fn quantize_rows(
    x: &[f32],
    cols: usize,
    q: &mut [i8],
    scales: &mut [f32],
) -> KernelId {
    crate::ops::act_quant::for_each_row(x, cols, q, scales, |x, q| {
        // SAFETY: the caller guarantees the features.
        unsafe { quantize_row(x, q) }
    });
    ID
}

impl ActQuantOps for Avx2 {
    fn quantize_rows(&self, x: &[f32], cols: usize, q: &mut [i8], scales: &mut [f32]) -> KernelId {
        // SAFETY: an `Avx2` exists only when `Avx2::get` saw AVX2, FMA and F16C.
        unsafe { quantize_rows(x, cols, q, scales) }
    }
}
