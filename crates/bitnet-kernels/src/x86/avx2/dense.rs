//! AVX2 dense matmuls (the output head): f16 (`vcvtph2ps`) and f32 weights with FMA, and
//! Q8_0 with an exact integer dot per block of 32 (`vpmaddubsw` on `|w|` and `sign(x, w)`)
//! and one FMA. Rows outside, token tiles inside: a row (a few KiB) stays in L1 for every
//! tile, so the matrix is streamed from memory once per call whatever the batch.

use super::Avx2;
use crate::ops::{DenseMatmul, DenseOps, KernelId, Q8Matmul};
use crate::packed::OutRows;
use crate::q8::Q8_BLOCK;
use half::f16;
use std::arch::x86_64::*;

/// Id of [`f16_rows`].
pub(crate) const F16_ID: KernelId = "f16/avx2";
/// Id of [`f32_rows`].
pub(crate) const F32_ID: KernelId = "f32/avx2";
/// Id of [`q8_rows`].
pub(crate) const Q8_ID: KernelId = "q8_0/avx2";

/// Runs `$body` once per tile of tokens `t..t + NT` over `0..$n`: tiles of 4, then the 1-3
/// left, with `NT` a constant (array lengths and const generics take it).
macro_rules! for_token_tiles {
    ($n:expr, |$t:ident, $nt:ident| $body:block) => {{
        let n: usize = $n;
        let mut $t = 0usize;
        while $t < n {
            let step = (n - $t).min(4);
            match step {
                4 => {
                    const $nt: usize = 4;
                    $body
                }
                3 => {
                    const $nt: usize = 3;
                    $body
                }
                2 => {
                    const $nt: usize = 2;
                    $body
                }
                _ => {
                    const $nt: usize = 1;
                    $body
                }
            }
            $t += step;
        }
    }};
}

/// Software prefetch distance in weight bytes (as the AVX-512 kernels').
const PREFETCH: usize = 4096;

/// Loads 8 weights as f32.
pub(crate) trait Load8 {
    unsafe fn load8(p: *const Self) -> __m256;
    fn to_f32(self) -> f32;
}

impl Load8 for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> __m256 {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Load8 for f16 {
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> __m256 {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

#[inline(always)]
pub(crate) unsafe fn hsum_ps(v: __m256) -> f32 {
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

/// `NT` tokens times one dense row, two FMA chains per token.
#[inline(always)]
unsafe fn dense_tile<T: Load8 + Copy, const NT: usize>(
    wr: &[T],
    x: &[*const f32; NT],
) -> [f32; NT] {
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
    unsafe {
        let cols = wr.len();
        let w = wr.as_ptr();
        let mut a0 = [_mm256_setzero_ps(); NT];
        let mut a1 = [_mm256_setzero_ps(); NT];
        let mut c = 0;
        while c + 16 <= cols {
            // One prefetch per 32 bytes ahead: half the f16 lines twice, f32 lines once
            // each of their halves (a cheap instruction; the stream decides the speed).
            _mm_prefetch::<_MM_HINT_T0>((w.add(c) as *const i8).add(PREFETCH));
            let w0 = T::load8(w.add(c));
            let w1 = T::load8(w.add(c + 8));
            for t in 0..NT {
                a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x[t].add(c)), a0[t]);
                a1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x[t].add(c + 8)), a1[t]);
            }
            c += 16;
        }
        let mut out = [0.0f32; NT];
        for t in 0..NT {
            let mut s = hsum_ps(_mm256_add_ps(a0[t], a1[t]));
            for (k, wk) in wr[c..].iter().enumerate() {
                s += wk.to_f32() * *x[t].add(c + k);
            }
            out[t] = s;
        }
        out
    }
}

#[inline(always)]
unsafe fn dense_rows<T: Load8 + Copy>(m: &DenseMatmul<'_, T>, out: &mut OutRows<'_>) {
    debug_assert!(m.fits(out), "output view does not fit the operands");
    let rows = out.rows();
    for r in rows.clone() {
        let wr = m.w_row(r);
        for_token_tiles!(m.n(), |t, NT| {
            let xp: [*const f32; NT] = std::array::from_fn(|k| m.x_row(t + k).as_ptr());
            // SAFETY: every x row holds `cols = wr.len()` values (`DenseMatmul::new`).
            let acc = unsafe { dense_tile::<T, NT>(wr, &xp) };
            for (k, a) in acc.into_iter().enumerate() {
                out.token(t + k)[r - rows.start] = a;
            }
        });
    }
}

/// f16 weights.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16_rows(m: &DenseMatmul<'_, f16>, out: &mut OutRows<'_>) -> KernelId {
    // SAFETY: the features are enabled on this function.
    unsafe { dense_rows(m, out) };
    F16_ID
}

/// f32 weights.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f32_rows(m: &DenseMatmul<'_, f32>, out: &mut OutRows<'_>) -> KernelId {
    // SAFETY: the features are enabled on this function.
    unsafe { dense_rows(m, out) };
    F32_ID
}

/// `NT` tokens times one Q8_0 row: per block `|w| * sign(x, w)` with `vpmaddubsw` (exact:
/// quants lie in -127..=127, so pairs stay below 2^15), `vpmaddwd` to i32, then one FMA with
/// `dw * dx`. Two accumulators per token hide the FMA latency.
#[inline(always)]
unsafe fn q8_tile<const NT: usize>(
    wq: &[i8],
    wd: &[f16],
    xq: &[*const i8; NT],
    xd: &[*const f32; NT],
) -> [f32; NT] {
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
    unsafe {
        let nb = wd.len();
        debug_assert_eq!(wq.len(), nb * Q8_BLOCK);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_ps(); 2]; NT];
        let mut ws = [0.0f32; 8];
        let mut b = 0;
        while b < nb {
            let g = (nb - b).min(8);
            if g == 8 {
                let h = _mm_loadu_si128(wd.as_ptr().add(b) as *const __m128i);
                _mm256_storeu_ps(ws.as_mut_ptr(), _mm256_cvtph_ps(h));
            } else {
                for (k, w) in ws.iter_mut().enumerate().take(g) {
                    *w = wd[b + k].to_f32();
                }
            }
            for (k, &wsk) in ws.iter().enumerate().take(g) {
                let off = (b + k) * Q8_BLOCK;
                let w = _mm256_loadu_si256(wq.as_ptr().add(off) as *const __m256i);
                let aw = _mm256_abs_epi8(w);
                for t in 0..NT {
                    let x = _mm256_loadu_si256(xq[t].add(off) as *const __m256i);
                    let p =
                        _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w)), ones);
                    let sc = _mm256_set1_ps(wsk * *xd[t].add(b + k));
                    acc[t][k & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), sc, acc[t][k & 1]);
                }
            }
            b += g;
        }
        let mut out = [0.0f32; NT];
        for t in 0..NT {
            out[t] = hsum_ps(_mm256_add_ps(acc[t][0], acc[t][1]));
        }
        out
    }
}

/// Q8_0 weights.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q8_rows(m: &Q8Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
    debug_assert!(m.fits(out), "output view does not fit the operands");
    let (w, x) = (m.w(), m.x());
    let (cols, nb) = (w.cols(), w.blocks_per_row());
    let rows = out.rows();
    for r in rows.clone() {
        let wq = &w.quants()[r * cols..(r + 1) * cols];
        let wd = &w.scales()[r * nb..(r + 1) * nb];
        for_token_tiles!(m.n(), |t, NT| {
            let xq: [*const i8; NT] =
                std::array::from_fn(|k| x.quants()[(t + k) * cols..][..cols].as_ptr());
            let xd: [*const f32; NT] =
                std::array::from_fn(|k| x.scales()[(t + k) * nb..][..nb].as_ptr());
            // SAFETY: each pointer starts `cols` quants / `nb` scales (sliced above), as many
            // as the weight row has (`Q8Matmul::new` checked the column counts).
            let acc = unsafe { q8_tile::<NT>(wq, wd, &xq, &xd) };
            for (k, a) in acc.into_iter().enumerate() {
                out.token(t + k)[r - rows.start] = a;
            }
        });
    }
    Q8_ID
}

impl DenseOps for Avx2 {
    fn f16_rows(&self, m: &DenseMatmul<'_, f16>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: an `Avx2` exists only when `Avx2::get` saw AVX2, FMA and F16C.
        unsafe { f16_rows(m, out) }
    }

    fn f32_rows(&self, m: &DenseMatmul<'_, f32>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: as above.
        unsafe { f32_rows(m, out) }
    }

    fn q8_rows(&self, m: &Q8Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: as above.
        unsafe { q8_rows(m, out) }
    }
}
