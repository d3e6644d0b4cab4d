//! AVX2 implementation (`"i2s/avx2"`): needs AVX2, FMA and F16C (every x86 CPU since
//! Haswell / Excavator has all three), checked at run time.
//!
//! Ternary dot: `vpmaddubsw(codes, q)` then `vpmaddwd(.., 1)` (see [`super::ternary`] for
//! why this is exact). Activation quantisation does the reference's exact f32 steps 8
//! lanes at a time (`vroundps` rounds half to even like `round_ties_even`). The dense head
//! converts f16 with `vcvtph2ps` and accumulates with FMA; the Q8_0 head does an exact
//! integer dot per block of 32 (`vpmaddubsw` on `|w|` and `sign(x, w)`) and one FMA.

use super::ternary::DotStep;
use crate::act_quant::{act_scale, quantize_value};
use crate::op::{TernaryOps, check_dense, check_ternary};
use crate::packed::{OutRows, PackedTernary};
use crate::q8::{Q8_BLOCK, Q8Activations, Q8Matrix, check_q8};
use crate::tile::ternary_rows;
use half::f16;
use std::arch::x86_64::*;

/// The AVX2 ops.
#[derive(Debug)]
pub struct Avx2 {
    _private: (),
}

static AVX2: Avx2 = Avx2 { _private: () };

impl Avx2 {
    /// The AVX2 ops if this CPU has AVX2, FMA and F16C.
    pub(crate) fn get() -> Option<&'static Avx2> {
        (is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        .then_some(&AVX2)
    }
}

pub(crate) struct MaddStep;

impl DotStep for MaddStep {
    type Acc = __m256i;

    #[inline(always)]
    unsafe fn zero() -> __m256i {
        unsafe { _mm256_setzero_si256() }
    }

    #[inline(always)]
    unsafe fn reduce(acc: __m256i) -> __m256i {
        acc
    }

    #[inline(always)]
    unsafe fn step(acc: __m256i, c: &[__m256i; 4], q: *const i8) -> __m256i {
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

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn ternary_avx2(w: &PackedTernary, q: &[i8], scales: &[f32], out: &mut OutRows<'_>) {
    unsafe { ternary_rows::<MaddStep>(w, q, scales, out) }
}

/// Reference-identical quantisation, 8 lanes at a time.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_row_avx2(x: &[f32], q: &mut [i8]) -> f32 {
    assert_eq!(x.len(), q.len(), "quantize_row: x and q lengths differ");
    let n = x.len();
    let main = n / 32 * 32;
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

/// Loads 8 weights as f32.
trait Load8 {
    unsafe fn load8(p: *const Self) -> __m256;
    fn to_f32(self) -> f32;
}

impl Load8 for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> __m256 {
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
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

#[inline(always)]
unsafe fn hsum_ps(v: __m256) -> f32 {
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
    unsafe {
        let cols = wr.len();
        let w = wr.as_ptr();
        let mut a0 = [_mm256_setzero_ps(); NT];
        let mut a1 = [_mm256_setzero_ps(); NT];
        let mut c = 0;
        while c + 16 <= cols {
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
unsafe fn dense_rows<T: Load8 + Copy>(w: &[T], cols: usize, x: &[f32], out: &mut OutRows<'_>) {
    check_dense(w, cols, x, out);
    let rows = out.rows();
    let n = out.n();
    // Rows outside, token tiles inside: a row (a few KiB) stays in L1 for every tile, so the
    // matrix is streamed from memory once per call whatever the batch.
    for r in rows.clone() {
        let wr = &w[r * cols..(r + 1) * cols];
        for_token_tiles!(n, |t, NT| {
            let xp: [*const f32; NT] = std::array::from_fn(|k| x[(t + k) * cols..].as_ptr());
            // SAFETY: lengths checked above (w: [stride][cols], x: [n][cols]).
            let acc = unsafe { dense_tile::<T, NT>(wr, &xp) };
            for (k, a) in acc.into_iter().enumerate() {
                out.token(t + k)[r - rows.start] = a;
            }
        });
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16_rows_avx2(w: &[f16], cols: usize, x: &[f32], out: &mut OutRows<'_>) {
    unsafe { dense_rows(w, cols, x, out) }
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f32_rows_avx2(w: &[f32], cols: usize, x: &[f32], out: &mut OutRows<'_>) {
    unsafe { dense_rows(w, cols, x, out) }
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

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q8_rows_avx2(w: &Q8Matrix, x: &Q8Activations, out: &mut OutRows<'_>) {
    check_q8(w, x, out);
    let (cols, nb) = (w.cols(), w.blocks_per_row());
    let rows = out.rows();
    let n = out.n();
    // Rows outside, token tiles inside (see `dense_rows`).
    for r in rows.clone() {
        let wq = &w.quants()[r * cols..(r + 1) * cols];
        let wd = &w.scales()[r * nb..(r + 1) * nb];
        for_token_tiles!(n, |t, NT| {
            let xq: [*const i8; NT] =
                std::array::from_fn(|k| x.quants()[(t + k) * cols..].as_ptr());
            let xd: [*const f32; NT] = std::array::from_fn(|k| x.scales()[(t + k) * nb..].as_ptr());
            // SAFETY: shapes checked above (x: [n][cols] quants, [n][nb] scales).
            let acc = unsafe { q8_tile::<NT>(wq, wd, &xq, &xd) };
            for (k, a) in acc.into_iter().enumerate() {
                out.token(t + k)[r - rows.start] = a;
            }
        });
    }
}

impl TernaryOps for Avx2 {
    fn id(&self) -> &'static str {
        "i2s/avx2"
    }

    fn isa(&self) -> &'static str {
        "avx2"
    }

    fn quantize_row(&self, x: &[f32], q: &mut [i8]) -> f32 {
        // SAFETY: `Avx2` exists only when `get` saw AVX2, FMA and F16C.
        unsafe { quantize_row_avx2(x, q) }
    }

    fn ternary_rows(&self, w: &PackedTernary, q: &[i8], scales: &[f32], out: &mut OutRows<'_>) {
        check_ternary(w, q, scales.len(), out);
        // SAFETY: features checked in `get`; lengths checked above.
        unsafe { ternary_avx2(w, q, scales, out) }
    }

    fn f16_rows(&self, w: &[f16], cols: usize, x: &[f32], out: &mut OutRows<'_>) {
        // SAFETY: features checked in `get`; lengths checked inside.
        unsafe { f16_rows_avx2(w, cols, x, out) }
    }

    fn f32_rows(&self, w: &[f32], cols: usize, x: &[f32], out: &mut OutRows<'_>) {
        // SAFETY: features checked in `get`; lengths checked inside.
        unsafe { f32_rows_avx2(w, cols, x, out) }
    }

    fn q8_rows(&self, w: &Q8Matrix, x: &Q8Activations, out: &mut OutRows<'_>) {
        // SAFETY: features checked in `get`; shapes checked inside.
        unsafe { q8_rows_avx2(w, x, out) }
    }
}
