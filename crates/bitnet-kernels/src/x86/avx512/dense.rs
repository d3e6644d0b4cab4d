//! The AVX-512 VNNI backend's dense matmuls. The f16 and f32 heads have 512-bit kernels:
//! a 2B4T model's f16 head is 657 MB of the 1.18 GB a token streams, so the head decides
//! half of decode speed. `vcvtph2ps` widens 16 weights per instruction, two FMA chains per
//! token cover the FMA latency, and a software prefetch runs ahead of the stream (one row
//! of a few KiB is too short for the hardware prefetcher to ramp up on its own). GEMV takes
//! two rows at once from the two halves of its range: two streams in flight per thread
//! (`f16_head` bench, full 2B4T head, one thread, two rounds: 11.2-12.0 GB/s with one,
//! 14.5-14.6 with two; the STREAM-style read gave 12.7-13.6 on one thread minutes before).
//! The AVX2 head still reads one stream per thread (not measured with two). Q8_0 runs the
//! AVX2 code, called by name, and so does Q6_K.

use super::Avx512Vnni;
use crate::ops::{DenseMatmul, DenseOps, KernelId, Q6KMatmul, Q8Matmul};
use crate::packed::OutRows;
use crate::x86::avx2;
use half::f16;
use std::arch::x86_64::*;

/// Id of [`f16_rows`].
pub(crate) const F16_ID: KernelId = "f16/avx512vnni";
/// Id of [`f32_rows`].
pub(crate) const F32_ID: KernelId = "f32/avx512vnni";

/// Prefetch distance in weight bytes (measured with the ternary kernel's, see there).
const PREFETCH: usize = 4096;

/// Loads 16 weights as f32.
trait Load16: Copy {
    unsafe fn load16(p: *const Self) -> __m512;
    fn to_f32(self) -> f32;
}

impl Load16 for f32 {
    #[inline(always)]
    unsafe fn load16(p: *const f32) -> __m512 {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Load16 for f16 {
    #[inline(always)]
    unsafe fn load16(p: *const f16) -> __m512 {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

/// `NR` dense rows times `NT` tokens: 32 columns per step, two FMA chains per row and token.
/// All rows have the same length (`DenseMatmul` checked it).
#[inline(always)]
unsafe fn dense_tile<T: Load16, const NR: usize, const NT: usize>(
    w: [&[T]; NR],
    x: &[*const f32; NT],
) -> [[f32; NT]; NR] {
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
    unsafe {
        let cols = w[0].len();
        let mut a0 = [[_mm512_setzero_ps(); NT]; NR];
        let mut a1 = [[_mm512_setzero_ps(); NT]; NR];
        let mut c = 0;
        while c + 32 <= cols {
            for r in 0..NR {
                let wp = w[r].as_ptr();
                // One prefetch per 64-byte line ahead: f16 steps cover one line, f32 two.
                let ahead = (wp.add(c) as *const u8).add(PREFETCH);
                _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
                if size_of::<T>() == 4 {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.add(64) as *const i8);
                }
                let w0 = T::load16(wp.add(c));
                let w1 = T::load16(wp.add(c + 16));
                for t in 0..NT {
                    a0[r][t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x[t].add(c)), a0[r][t]);
                    a1[r][t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x[t].add(c + 16)), a1[r][t]);
                }
            }
            c += 32;
        }
        let mut out = [[0.0f32; NT]; NR];
        for r in 0..NR {
            for t in 0..NT {
                let mut s = _mm512_reduce_add_ps(_mm512_add_ps(a0[r][t], a1[r][t]));
                for (k, wk) in w[r][c..].iter().enumerate() {
                    s += wk.to_f32() * *x[t].add(c + k);
                }
                out[r][t] = s;
            }
        }
        out
    }
}

#[inline(always)]
unsafe fn dense_rows<T: Load16>(m: &DenseMatmul<'_, T>, out: &mut OutRows<'_>) {
    debug_assert!(m.fits(out), "output view does not fit the operands");
    let rows = out.rows();
    if m.n() == 1 {
        // GEMV: two rows at once, one from each half of the range, so the thread reads two
        // streams from memory (see `tile::two_stream_row`).
        let (span, x) = (rows.len(), [m.x_row(0).as_ptr()]);
        let half = span / 2;
        for i in 0..half {
            let (a, b) = (rows.start + i, rows.start + half + i);
            // SAFETY: the x row holds `cols` values, as does every weight row.
            let [[ya], [yb]] = unsafe { dense_tile::<T, 2, 1>([m.w_row(a), m.w_row(b)], &x) };
            let y = out.token(0);
            y[i] = ya;
            y[half + i] = yb;
        }
        if span % 2 == 1 {
            // SAFETY: as above.
            let [[y]] = unsafe { dense_tile::<T, 1, 1>([m.w_row(rows.end - 1)], &x) };
            out.token(0)[span - 1] = y;
        }
        return;
    }
    for r in rows.clone() {
        let wr = m.w_row(r);
        let mut t = 0;
        // Tiles of 4 tokens (8 accumulators), then the 1-3 left.
        while t < m.n() {
            macro_rules! tile {
                ($nt:literal) => {{
                    let xp: [*const f32; $nt] = std::array::from_fn(|k| m.x_row(t + k).as_ptr());
                    // SAFETY: every x row holds `cols = wr.len()` values (`DenseMatmul::new`).
                    let [acc] = unsafe { dense_tile::<T, 1, $nt>([wr], &xp) };
                    for (k, a) in acc.into_iter().enumerate() {
                        out.token(t + k)[r - rows.start] = a;
                    }
                    $nt
                }};
            }
            t += match m.n() - t {
                1 => tile!(1),
                2 => tile!(2),
                3 => tile!(3),
                _ => tile!(4),
            };
        }
    }
}

/// f16 weights.
///
/// # Safety
/// The CPU must have AVX-512F and F16C.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
unsafe fn f16_rows(m: &DenseMatmul<'_, f16>, out: &mut OutRows<'_>) -> KernelId {
    // SAFETY: the features are enabled on this function.
    unsafe { dense_rows(m, out) };
    F16_ID
}

/// f32 weights.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
unsafe fn f32_rows(m: &DenseMatmul<'_, f32>, out: &mut OutRows<'_>) -> KernelId {
    // SAFETY: the features are enabled on this function.
    unsafe { dense_rows(m, out) };
    F32_ID
}

impl DenseOps for Avx512Vnni {
    fn f16_rows(&self, m: &DenseMatmul<'_, f16>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: `Avx512Vnni::get` checked AVX-512F, AVX2, FMA and F16C.
        unsafe { f16_rows(m, out) }
    }

    fn f32_rows(&self, m: &DenseMatmul<'_, f32>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: as above.
        unsafe { f32_rows(m, out) }
    }

    fn q8_rows(&self, m: &Q8Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: as above.
        unsafe { avx2::dense::q8_rows(m, out) }
    }

    fn q6k_rows(&self, m: &Q6KMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: as above.
        unsafe { avx2::dense::q6k_rows(m, out) }
    }
}
