//! AVX2 dense matmuls (the output head): f16 (`vcvtph2ps`), bf16 (widened by a shift) and f32
//! weights with FMA, and
//! Q8_0 with an exact integer dot per block of 32 (`vpmaddubsw` on `|w|` and `sign(x, w)`)
//! and one FMA; Q6_K and Q4_K with exact integer dots per super-block of 256 (see
//! [`kquant_rows_with`]).
//! Rows outside, token tiles inside: a row (a few KiB) stays in L1 for every
//! tile, so the matrix is streamed from memory once per call whatever the batch.

use super::Avx2;
use crate::kquant::{KBlock, Q8K_SUM, QK_K};
use crate::ops::{DenseMatmul, DenseOps, KQuantMatmul, KernelId, Q4KMatmul, Q6KMatmul, Q8Matmul};
use crate::packed::OutRows;
use crate::q8::Q8_BLOCK;
use crate::tile::gemv_two_streams;
use crate::{q4k, q6k};
use bitnet_formats::{BlockQ4K, BlockQ6K};
use half::{bf16, f16};
use std::arch::x86_64::*;

/// Id of [`f16_rows`].
pub(crate) const F16_ID: KernelId = "f16/avx2";
/// Id of [`bf16_rows`].
pub(crate) const BF16_ID: KernelId = "bf16/avx2";
/// Id of [`f32_rows`].
pub(crate) const F32_ID: KernelId = "f32/avx2";
/// Id of [`q8_rows`].
pub(crate) const Q8_ID: KernelId = "q8_0/avx2";
/// Id of [`q6k_rows`].
pub(crate) const Q6K_ID: KernelId = "q6_k/avx2";
/// Id of [`q4k_rows`].
pub(crate) const Q4K_ID: KernelId = "q4_k/avx2";

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
pub(crate) use for_token_tiles;

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

impl Load8 for bf16 {
    /// A bf16 is the high half of an f32: zero-extend to 32 bits, shift left 16 (exact).
    #[inline(always)]
    unsafe fn load8(p: *const bf16) -> __m256 {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe {
            let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h))
        }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
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

/// bf16 weights: [`f32_rows`] with each load widened, so equal to it bit for bit.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn bf16_rows(m: &DenseMatmul<'_, bf16>, out: &mut OutRows<'_>) -> KernelId {
    // SAFETY: the features are enabled on this function.
    unsafe { dense_rows(m, out) };
    BF16_ID
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

/// `pshufb` masks over a block's 16 scales: mask `4h + k` gives the scales of the 32 values
/// `128h + 32k..` (sub-blocks `8h + 2k` for the low 16 bytes, `8h + 2k + 1` for the high).
const SCALE_PAIRS: [[u8; 16]; 8] = {
    let mut m = [[0u8; 16]; 8];
    let mut i = 0;
    while i < 8 {
        let mut b = 0;
        while b < 16 {
            m[i][b] = (2 * i + b / 8) as u8;
            b += 1;
        }
        i += 1;
    }
    m
};

/// `sum_j scale[j] * bsum[j]` over a block's 16 sub-blocks: what the `- 32` of every quant
/// takes off the block's dot product (`scales` the block's 16 `i8` scales, `bsums` 16 sums).
///
/// # Safety
/// AVX2; `bsums` starts 16 `i16`s.
#[inline(always)]
pub(crate) unsafe fn scaled_bsums(scales: __m128i, bsums: *const i16) -> i32 {
    // SAFETY: only forwards this unsafe fn's own contract; no further obligation.
    unsafe {
        let bsums = _mm256_loadu_si256(bsums as *const __m256i);
        hsum_epi32(_mm256_madd_epi16(bsums, _mm256_cvtepi8_epi16(scales)))
    }
}

/// Sum of the eight i32 lanes.
#[inline(always)]
unsafe fn hsum_epi32(v: __m256i) -> i32 {
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for); no further obligation.
    unsafe {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0x4E>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0xB1>(s));
        _mm_cvtsi128_si32(s)
    }
}

/// One K-quant block's contributions to `NT` tokens' row sums (what the block format's
/// [`KBlock::dot`] computes, bit for bit), in some ISA: the row loop ([`kquant_rows_with`])
/// is shared by the formats and ISAs, the unpacking is per format and ISA (AVX2 here, AVX-512
/// in `avx512::dense`).
pub(crate) trait KBlockDot {
    /// The block format.
    type Block: KBlock;

    /// The contributions of block `b` with the activations at `xq[t]` (256 quants), their
    /// 16-value sums at `xs[t]` and their scale `xd[t]`.
    ///
    /// # Safety
    /// The ISA's CPU features; each `xq[t]` starts 256 quants and each `xs[t]` 16 sums.
    unsafe fn dots<const NT: usize>(
        b: &Self::Block,
        xq: &[*const i8; NT],
        xs: &[*const i16; NT],
        xd: [f32; NT],
    ) -> [f32; NT];
}

/// The AVX2 Q6_K block dot ([`q6k_block`]).
pub(crate) struct Avx2Q6K;

impl KBlockDot for Avx2Q6K {
    type Block = BlockQ6K;

    #[inline(always)]
    unsafe fn dots<const NT: usize>(
        b: &BlockQ6K,
        xq: &[*const i8; NT],
        xs: &[*const i16; NT],
        xd: [f32; NT],
    ) -> [f32; NT] {
        // SAFETY: only forwards this unsafe fn's own contract; no further obligation.
        let isum = unsafe { q6k_block::<NT>(b, xq, xs) };
        std::array::from_fn(|t| q6k::finish(b, isum[t], xd[t]))
    }
}

/// A Q4_K block's eight mins (bytes 8..16 of `q4k::scales_mins`), each twice: the weights
/// of the activations' 16 sums of 16 (two per sub-block of 32) in [`scaled_bsums`] (a min is
/// at most 63, so it reads the same as `i8`).
///
/// # Safety
/// AVX2.
#[inline(always)]
unsafe fn q4k_min_pairs(sm: &[u8; 16]) -> __m128i {
    // SAFETY: only forwards this unsafe fn's own contract; `sm` is 16 bytes.
    unsafe {
        _mm_shuffle_epi8(
            _mm_loadu_si128(sm.as_ptr() as *const __m128i),
            _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15),
        )
    }
}

/// The AVX2 Q4_K block dot: per 32 quant bytes (64 values, two sub-blocks) the low and high
/// nibbles masked out, `vpmaddubsw` with the activations (unsigned `0..16` times
/// `-127..=127`), `vpmaddwd` with the sub-block's scale broadcast; the mins once per block
/// through the activations' 16-value sums, each min taken twice (`vpmaddwd`).
pub(crate) struct Avx2Q4K;

impl KBlockDot for Avx2Q4K {
    type Block = BlockQ4K;

    #[inline(always)]
    unsafe fn dots<const NT: usize>(
        b: &BlockQ4K,
        xq: &[*const i8; NT],
        xs: &[*const i16; NT],
        xd: [f32; NT],
    ) -> [f32; NT] {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled
        // for; each `xq[t]` starts 256 quants and each `xs[t]` 16 sums); no further obligation.
        unsafe {
            let m4 = _mm256_set1_epi8(0x0F);
            let sm = q4k::scales_mins(&b.scales);
            let mut acc = [_mm256_setzero_si256(); NT];
            for g in 0..4 {
                let q = _mm256_loadu_si256(b.qs.as_ptr().add(32 * g) as *const __m256i);
                let lo = _mm256_and_si256(q, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
                let s_lo = _mm256_set1_epi16(i16::from(sm[2 * g]));
                let s_hi = _mm256_set1_epi16(i16::from(sm[2 * g + 1]));
                for t in 0..NT {
                    let x_lo = _mm256_loadu_si256(xq[t].add(64 * g) as *const __m256i);
                    let x_hi = _mm256_loadu_si256(xq[t].add(64 * g + 32) as *const __m256i);
                    let p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x_lo), s_lo);
                    let p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x_hi), s_hi);
                    acc[t] = _mm256_add_epi32(acc[t], _mm256_add_epi32(p_lo, p_hi));
                }
            }
            let mins = q4k_min_pairs(&sm);
            // A loop, not `array::from_fn`: the intrinsics inline only into code compiled
            // with their features, which a closure is not.
            let mut part = [0.0f32; NT];
            for (t, p) in part.iter_mut().enumerate() {
                let msum = scaled_bsums(mins, xs[t]);
                *p = q4k::finish(b, hsum_epi32(acc[t]), msum, xd[t]);
            }
            part
        }
    }
}

/// The exact integer dots of one Q6_K block with `NT` tokens' 256 Q8_K activations (what
/// `crate::q6k::block_isum` computes): the 6-bit quants unpacked 32 at a time (low nibbles
/// of `ql`, two bits of `qh` shifted into bits 4-5), `vpmaddubsw` with the activations
/// (unsigned `0..64` times `-127..=127`: pairs stay below 2^15), `vpmaddwd` with the
/// sub-block scales, and the `- 32` offset applied once per block through the activations'
/// 16-value sums ([`scaled_bsums`]).
#[inline(always)]
unsafe fn q6k_block<const NT: usize>(
    b: &BlockQ6K,
    xq: &[*const i8; NT],
    xs: &[*const i16; NT],
) -> [i32; NT] {
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled
    // for; each `xq[t]` starts 256 quants and each `xs[t]` 16 sums); no further obligation.
    unsafe {
        let m4 = _mm256_set1_epi8(0x0F);
        let m2 = _mm256_set1_epi8(0x30);
        let scales = _mm_loadu_si128(b.scales.as_ptr() as *const __m128i);
        let mut acc = [_mm256_setzero_si256(); NT];
        for h in 0..2 {
            let ql0 = _mm256_loadu_si256(b.ql.as_ptr().add(64 * h) as *const __m256i);
            let ql1 = _mm256_loadu_si256(b.ql.as_ptr().add(64 * h + 32) as *const __m256i);
            let qh = _mm256_loadu_si256(b.qh.as_ptr().add(32 * h) as *const __m256i);
            // 16-bit shifts move bits across the bytes of a pair; the masks keep only each
            // byte's own.
            let q = [
                _mm256_or_si256(
                    _mm256_and_si256(ql0, m4),
                    _mm256_and_si256(_mm256_slli_epi16::<4>(qh), m2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(ql1, m4),
                    _mm256_and_si256(_mm256_slli_epi16::<2>(qh), m2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4),
                    _mm256_and_si256(qh, m2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
                    _mm256_and_si256(_mm256_srli_epi16::<2>(qh), m2),
                ),
            ];
            for (k, &qk) in q.iter().enumerate() {
                let mask = _mm_loadu_si128(SCALE_PAIRS[4 * h + k].as_ptr() as *const __m128i);
                let sv = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, mask));
                for t in 0..NT {
                    let x = _mm256_loadu_si256(xq[t].add(128 * h + 32 * k) as *const __m256i);
                    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(qk, x), sv);
                    acc[t] = _mm256_add_epi32(acc[t], p);
                }
            }
        }
        // A loop, not `array::from_fn`: see `Avx2Q4K`.
        let mut isum = [0i32; NT];
        for (t, s) in isum.iter_mut().enumerate() {
            *s = hsum_epi32(acc[t]) - 32 * scaled_bsums(scales, xs[t]);
        }
        isum
    }
}

/// `NR` K-quant rows times `NT` tokens, the rows' blocks taken in turn (with `NR = 2`, two
/// streams in flight, as the AVX-512 f16 head reads), each row's sum kept in block order.
#[inline(always)]
unsafe fn kquant_tile<D: KBlockDot, const NR: usize, const NT: usize>(
    rows: [&[D::Block]; NR],
    xq: &[*const i8; NT],
    xd: &[*const f32; NT],
    xs: &[*const i16; NT],
) -> [[f32; NT]; NR] {
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled
    // for; every row and every token has `rows[0].len()` blocks); no further obligation.
    unsafe {
        let nb = rows[0].len();
        let mut sum = [[0.0f32; NT]; NR];
        // `sb` indexes every row's blocks and every token's activations alike.
        #[allow(clippy::needless_range_loop)]
        for sb in 0..nb {
            let xq: [*const i8; NT] = std::array::from_fn(|t| xq[t].add(sb * QK_K));
            let xs: [*const i16; NT] = std::array::from_fn(|t| xs[t].add(sb * QK_K / Q8K_SUM));
            let xd: [f32; NT] = std::array::from_fn(|t| *xd[t].add(sb));
            for r in 0..NR {
                let b = &rows[r][sb];
                let ahead = (b as *const D::Block as *const u8).wrapping_add(PREFETCH);
                for line in 0..size_of::<D::Block>().div_ceil(64) {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * line) as *const i8);
                }
                let part = D::dots::<NT>(b, &xq, &xs, xd);
                for t in 0..NT {
                    sum[r][t] += part[t];
                }
            }
        }
        sum
    }
}

/// Q6_K weights, Q8_K activations, on AVX2.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q6k_rows(m: &Q6KMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
    // SAFETY: the features are enabled on this function.
    unsafe { kquant_rows_with::<Avx2Q6K>(m, out) };
    Q6K_ID
}

/// Q4_K weights, Q8_K activations, on AVX2.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q4k_rows(m: &Q4KMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
    // SAFETY: the features are enabled on this function.
    unsafe { kquant_rows_with::<Avx2Q4K>(m, out) };
    Q4K_ID
}

/// K-quant weights, Q8_K activations, with `D`'s block dot: the scalar reference's sums in
/// the same order, so the results are equal bit for bit. A GEMV reads two rows at once, one from
/// each half of the range (two streams per thread).
///
/// # Safety
/// The CPU features `D` needs (at least AVX2); must be inlined into a function enabling them.
#[inline(always)]
pub(crate) unsafe fn kquant_rows_with<D: KBlockDot>(
    m: &KQuantMatmul<'_, D::Block>,
    out: &mut OutRows<'_>,
) {
    debug_assert!(m.fits(out), "output view does not fit the operands");
    let (w, x) = (m.w(), m.x());
    let (cols, nb) = (w.cols(), w.blocks_per_row());
    let subs = cols / Q8K_SUM;
    let rows = out.rows();
    let ptrs = |t: usize| {
        (
            x.quants()[t * cols..][..cols].as_ptr(),
            x.scales()[t * nb..][..nb].as_ptr(),
            x.bsums()[t * subs..][..subs].as_ptr(),
        )
    };
    if m.n() == 1 {
        let (q, d, s) = ptrs(0);
        gemv_two_streams(
            out,
            |a, b| {
                // SAFETY: the pointers start one token's `cols` quants, `nb` scales and
                // `cols / 16` sums (sliced above); every row has `nb` blocks.
                let [[ya], [yb]] =
                    unsafe { kquant_tile::<D, 2, 1>([w.row(a), w.row(b)], &[q], &[d], &[s]) };
                (ya, yb)
            },
            // SAFETY: as above.
            |r| unsafe { kquant_tile::<D, 1, 1>([w.row(r)], &[q], &[d], &[s]) }[0][0],
        );
        return;
    }
    for r in rows.clone() {
        for_token_tiles!(m.n(), |t, NT| {
            let p: [_; NT] = std::array::from_fn(|k| ptrs(t + k));
            let xq: [*const i8; NT] = std::array::from_fn(|k| p[k].0);
            let xd: [*const f32; NT] = std::array::from_fn(|k| p[k].1);
            let xs: [*const i16; NT] = std::array::from_fn(|k| p[k].2);
            // SAFETY: as above, for each token of the tile.
            let [acc] = unsafe { kquant_tile::<D, 1, NT>([w.row(r)], &xq, &xd, &xs) };
            for (k, a) in acc.into_iter().enumerate() {
                out.token(t + k)[r - rows.start] = a;
            }
        });
    }
}

impl DenseOps for Avx2 {
    fn f16_rows(&self, m: &DenseMatmul<'_, f16>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: an `Avx2` exists only when `Avx2::get` saw AVX2, FMA and F16C.
        unsafe { f16_rows(m, out) }
    }

    fn bf16_rows(&self, m: &DenseMatmul<'_, bf16>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: as above.
        unsafe { bf16_rows(m, out) }
    }

    fn f32_rows(&self, m: &DenseMatmul<'_, f32>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: as above.
        unsafe { f32_rows(m, out) }
    }

    fn q8_rows(&self, m: &Q8Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: as above.
        unsafe { q8_rows(m, out) }
    }

    fn q6k_rows(&self, m: &Q6KMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: as above.
        unsafe { q6k_rows(m, out) }
    }

    fn q4k_rows(&self, m: &Q4KMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: as above.
        unsafe { q4k_rows(m, out) }
    }
}
