//! The AVX-512 VNNI backend's dense matmuls. The f16, bf16 and f32 heads have 512-bit kernels
//! (one generic row loop; bf16 widens by a shift, so it equals f32 on the widened weights):
//! a 2B4T model's f16 head is 657 MB of the 1.18 GB a token streams, so the head decides
//! half of decode speed. `vcvtph2ps` widens 16 weights per instruction, two FMA chains per
//! token cover the FMA latency, and a software prefetch runs ahead of the stream (one row
//! of a few KiB is too short for the hardware prefetcher to ramp up on its own). GEMV takes
//! two rows at once from the two halves of its range: two streams in flight per thread
//! (`f16_head` bench, full 2B4T head, one thread, two rounds: 11.2-12.0 GB/s with one,
//! 14.5-14.6 with two; the STREAM-style read gave 12.7-13.6 on one thread minutes before).
//! The AVX2 head still reads one stream per thread (not measured with two). Q8_0 has its
//! own 512-bit kernel ([`q8_rows`]: `vpdpbusd`, two blocks per step, two streams; the AVX2
//! one is compute-bound at about half the F16 kernel's bytes per second). Q6_K runs the AVX2
//! row loop with a 512-bit block dot ([`Avx512Q6K`]); Q4_K runs the AVX2 kernel (see
//! `q4k_rows` below for why).

use super::Avx512Vnni;
use crate::ops::{DenseMatmul, DenseOps, KernelId, Q4KMatmul, Q6KMatmul, Q8Matmul};
use crate::packed::OutRows;
use crate::q6k;
use crate::q8::Q8_BLOCK;
use crate::tile::gemv_two_streams;
use crate::x86::avx2;
use crate::x86::avx2::dense::for_token_tiles;
use bitnet_formats::BlockQ6K;
use half::{bf16, f16};
use std::arch::x86_64::*;

/// Id of [`f16_rows`].
pub(crate) const F16_ID: KernelId = "f16/avx512vnni";
/// Id of [`bf16_rows`].
pub(crate) const BF16_ID: KernelId = "bf16/avx512vnni";
/// Id of [`f32_rows`].
pub(crate) const F32_ID: KernelId = "f32/avx512vnni";
/// Id of [`q6k_rows`].
pub(crate) const Q6K_ID: KernelId = "q6_k/avx512vnni";
/// Id of [`q8_rows`].
pub(crate) const Q8_ID: KernelId = "q8_0/avx512vnni";

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

impl Load16 for bf16 {
    /// A bf16 is the high half of an f32: zero-extend to 32 bits, shift left 16 (exact).
    #[inline(always)]
    unsafe fn load16(p: *const bf16) -> __m512 {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe {
            let h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(h))
        }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
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
        let x = [m.x_row(0).as_ptr()];
        gemv_two_streams(
            out,
            |a, b| {
                // SAFETY: the x row holds `cols` values, as does every weight row.
                let [[ya], [yb]] = unsafe { dense_tile::<T, 2, 1>([m.w_row(a), m.w_row(b)], &x) };
                (ya, yb)
            },
            // SAFETY: as above.
            |r| unsafe { dense_tile::<T, 1, 1>([m.w_row(r)], &x) }[0][0],
        );
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

/// bf16 weights: [`f32_rows`] with each load widened, so equal to it bit for bit.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
unsafe fn bf16_rows(m: &DenseMatmul<'_, bf16>, out: &mut OutRows<'_>) -> KernelId {
    // SAFETY: the features are enabled on this function.
    unsafe { dense_rows(m, out) };
    BF16_ID
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

/// Per-lane indices for `vpermps`: entry `i` broadcasts products `2i` and `2i + 1` of 16 block
/// scales to the low and high 8 lanes (the two blocks of 32 one 512-bit vector holds).
const PAIR_INDEX: [[i32; 16]; 8] = {
    let mut m = [[0i32; 16]; 8];
    let mut i = 0;
    while i < 8 {
        let mut l = 0;
        while l < 16 {
            m[i][l] = (2 * i + l / 8) as i32;
            l += 1;
        }
        i += 1;
    }
    m
};

/// `NR` Q8_0 rows times `NT` tokens, two blocks of 32 per 512-bit step: `vpdpbusd` of `|w|`
/// with `x` negated where `w < 0` (exact: quants lie in -127..=127), then one FMA with the
/// two blocks' `dw * dx`, converted and multiplied 16 blocks at a time. An odd last block is
/// added on its own. All rows have `nb` blocks; the sum order differs from scalar only in
/// floats, as the op's contract allows.
#[inline(always)]
unsafe fn q8_tile<const NR: usize, const NT: usize>(
    wq: [*const i8; NR],
    wd: [*const f16; NR],
    nb: usize,
    xq: &[*const i8; NT],
    xd: &[*const f32; NT],
) -> [[f32; NT]; NR] {
    // SAFETY: only forwards this unsafe fn's own contract (AVX-512F/BW/VNNI; every row has
    // `nb` blocks of quants and scales, every token `nb` of each); no further obligation.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); NT]; NR];
        let mut tail = [[0.0f32; NT]; NR];
        let mut b = 0;
        while b + 2 <= nb {
            // Up to 16 blocks' scale products at once (masked loads past the end).
            let g = (nb - b).min(16) & !1;
            let k = (1u32 << g) - 1;
            let mut s = [[_mm512_setzero_ps(); NT]; NR];
            for r in 0..NR {
                let dw = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(
                    k as __mmask16,
                    wd[r].add(b) as *const _,
                ));
                for t in 0..NT {
                    s[r][t] =
                        _mm512_mul_ps(dw, _mm512_maskz_loadu_ps(k as __mmask16, xd[t].add(b)));
                }
            }
            for (i, pair) in PAIR_INDEX.iter().enumerate().take(g / 2) {
                let idx = _mm512_loadu_si512(pair.as_ptr() as *const _);
                let off = (b + 2 * i) * Q8_BLOCK;
                for r in 0..NR {
                    let wp = wq[r].add(off);
                    _mm_prefetch::<_MM_HINT_T0>(
                        (wp as *const u8).wrapping_add(PREFETCH) as *const i8
                    );
                    let w = _mm512_loadu_si512(wp as *const _);
                    let neg = _mm512_movepi8_mask(w);
                    let aw = _mm512_abs_epi8(w);
                    for t in 0..NT {
                        let x = _mm512_loadu_si512(xq[t].add(off) as *const _);
                        let sx = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
                        let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), aw, sx);
                        let sc = _mm512_permutexvar_ps(idx, s[r][t]);
                        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc[r][t]);
                    }
                }
            }
            b += g;
        }
        if b < nb {
            let off = b * Q8_BLOCK;
            for r in 0..NR {
                for t in 0..NT {
                    let isum: i32 = (0..Q8_BLOCK)
                        .map(|c| i32::from(*wq[r].add(off + c)) * i32::from(*xq[t].add(off + c)))
                        .sum();
                    tail[r][t] = isum as f32 * ((*wd[r].add(b)).to_f32() * *xd[t].add(b));
                }
            }
        }
        std::array::from_fn(|r| {
            std::array::from_fn(|t| _mm512_reduce_add_ps(acc[r][t]) + tail[r][t])
        })
    }
}

/// Q8_0 weights on AVX-512 VNNI. A GEMV reads two rows at once, one from each half of the
/// range (two streams per thread); batches take tiles of up to 4 tokens per row.
///
/// # Safety
/// The CPU must have AVX-512F/BW/VL/VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q8_rows(m: &Q8Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
    debug_assert!(m.fits(out), "output view does not fit the operands");
    let (w, x) = (m.w(), m.x());
    let (cols, nb) = (w.cols(), w.blocks_per_row());
    let rows = out.rows();
    let wrow = |r: usize| {
        (
            w.quants()[r * cols..][..cols].as_ptr(),
            w.scales()[r * nb..][..nb].as_ptr(),
        )
    };
    let xrow = |t: usize| {
        (
            x.quants()[t * cols..][..cols].as_ptr(),
            x.scales()[t * nb..][..nb].as_ptr(),
        )
    };
    if m.n() == 1 {
        let (xq, xd) = xrow(0);
        gemv_two_streams(
            out,
            |a, b| {
                let ((qa, da), (qb, db)) = (wrow(a), wrow(b));
                // SAFETY: every pointer starts `nb` blocks of quants or scales (sliced above
                // from `Q8Matmul`'s checked shapes).
                let [[ya], [yb]] = unsafe { q8_tile::<2, 1>([qa, qb], [da, db], nb, &[xq], &[xd]) };
                (ya, yb)
            },
            |r| {
                let (q, d) = wrow(r);
                // SAFETY: as above.
                let [[y]] = unsafe { q8_tile::<1, 1>([q], [d], nb, &[xq], &[xd]) };
                y
            },
        );
        return Q8_ID;
    }
    for r in rows.clone() {
        let (q, d) = wrow(r);
        for_token_tiles!(m.n(), |t, NT| {
            let xs: [_; NT] = std::array::from_fn(|k| xrow(t + k));
            let xq: [*const i8; NT] = std::array::from_fn(|k| xs[k].0);
            let xd: [*const f32; NT] = std::array::from_fn(|k| xs[k].1);
            // SAFETY: as above, for each token of the tile.
            let [acc] = unsafe { q8_tile::<1, NT>([q], [d], nb, &xq, &xd) };
            for (k, a) in acc.into_iter().enumerate() {
                out.token(t + k)[r - rows.start] = a;
            }
        });
    }
    Q8_ID
}

/// `vpshufb` masks over a block's 16 scales (in both 128-bit lanes) whose bytes, widened to
/// i16, give each 128-bit lane of a 512-bit product (16 values: one sub-block) its scale:
/// mask `2h + hi` covers sub-blocks `8h + 4 hi ..+4`.
const SCALE_QUADS: [[u8; 32]; 4] = {
    let mut m = [[0u8; 32]; 4];
    let mut i = 0;
    while i < 4 {
        let mut b = 0;
        while b < 32 {
            m[i][b] = (4 * i + b / 8) as u8;
            b += 1;
        }
        i += 1;
    }
    m
};

/// The AVX-512 Q6_K block dot: a half block (128 values) in two 512-bit vectors. `ql`'s 64
/// bytes load whole; `qh`'s 32 are broadcast to both 256-bit halves and shifted by a per-lane
/// count (`vpsllvw`/`vpsrlvw`), so one vector holds runs 0 and 1 (low nibbles) and the other
/// runs 2 and 3 (high nibbles), each next to 64 contiguous activations. Then `vpmaddubsw`,
/// `vpmaddwd` with each sub-block's scale, and the `- 32` offset once per block, as AVX2 does.
struct Avx512Q6K;

impl avx2::dense::KBlockDot for Avx512Q6K {
    type Block = BlockQ6K;

    #[inline(always)]
    unsafe fn dots<const NT: usize>(
        b: &BlockQ6K,
        xq: &[*const i8; NT],
        xs: &[*const i16; NT],
        xd: [f32; NT],
    ) -> [f32; NT] {
        // SAFETY: only forwards this unsafe fn's own contract (AVX-512F/BW and AVX2; each
        // `xq[t]` starts 256 quants, each `xs[t]` 16 sums); no further obligation.
        unsafe {
            let m4 = _mm512_set1_epi8(0x0F);
            let m2 = _mm512_set1_epi8(0x30);
            // Per 16-bit lane: 4 in the low 256 bits (run 0), 2 in the high (run 1); 0 / 2
            // for the high nibbles' runs 2 and 3.
            let shl = _mm512_inserti64x4::<1>(_mm512_set1_epi16(4), _mm256_set1_epi16(2));
            let shr = _mm512_inserti64x4::<1>(_mm512_set1_epi16(0), _mm256_set1_epi16(2));
            let scales128 = _mm_loadu_si128(b.scales.as_ptr() as *const __m128i);
            let scales = _mm256_broadcastsi128_si256(scales128);
            let mut acc = [_mm512_setzero_si512(); NT];
            for h in 0..2 {
                let ql = _mm512_loadu_si512(b.ql.as_ptr().add(64 * h) as *const _);
                let qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                    b.qh.as_ptr().add(32 * h) as *const __m256i
                ));
                let q = [
                    _mm512_or_si512(
                        _mm512_and_si512(ql, m4),
                        _mm512_and_si512(_mm512_sllv_epi16(qh, shl), m2),
                    ),
                    _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4),
                        _mm512_and_si512(_mm512_srlv_epi16(qh, shr), m2),
                    ),
                ];
                for (hi, &qv) in q.iter().enumerate() {
                    let mask =
                        _mm256_loadu_si256(SCALE_QUADS[2 * h + hi].as_ptr() as *const __m256i);
                    let sv = _mm512_cvtepi8_epi16(_mm256_shuffle_epi8(scales, mask));
                    for t in 0..NT {
                        let x = _mm512_loadu_si512(xq[t].add(128 * h + 64 * hi) as *const _);
                        let p = _mm512_madd_epi16(_mm512_maddubs_epi16(qv, x), sv);
                        acc[t] = _mm512_add_epi32(acc[t], p);
                    }
                }
            }
            // A loop, not `array::from_fn`: the intrinsics inline only into code compiled
            // with their features, which a closure is not.
            let mut part = [0.0f32; NT];
            for (t, p) in part.iter_mut().enumerate() {
                let isum = _mm512_reduce_add_epi32(acc[t])
                    - 32 * avx2::dense::scaled_bsums(scales128, xs[t]);
                *p = q6k::finish(b, isum, xd[t]);
            }
            part
        }
    }
}

/// Q6_K weights, Q8_K activations: the AVX2 row loop with the 512-bit block dot.
///
/// # Safety
/// The CPU must have AVX-512F/BW, AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw")]
unsafe fn q6k_rows(m: &Q6KMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
    // SAFETY: the features are enabled on this function.
    unsafe { avx2::dense::kquant_rows_with::<Avx512Q6K>(m, out) };
    Q6K_ID
}

impl DenseOps for Avx512Vnni {
    fn f16_rows(&self, m: &DenseMatmul<'_, f16>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: `Avx512Vnni::get` checked AVX-512F, AVX2, FMA and F16C.
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
        // SAFETY: `Avx512Vnni::get` also checked AVX-512BW and VNNI.
        unsafe { q8_rows(m, out) }
    }

    fn q6k_rows(&self, m: &Q6KMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: as above (`Avx512Vnni::get` also checked AVX-512BW).
        unsafe { q6k_rows(m, out) }
    }

    fn q4k_rows(&self, m: &Q4KMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // The AVX2 kernel: a 512-bit block dot (a group's 32 bytes broadcast to both halves,
        // shifted per lane, one `vpmaddubsw`/`vpmaddwd` pair per 64 values) measured 10.1-10.5
        // GiB/s against AVX2's 11.9-12.5 on one thread (`q4k_head` bench, alternating): the
        // 512-bit multiplies share one port, so the extra shift only costs.
        // SAFETY: `Avx512Vnni::get` checked AVX2, FMA and F16C, all the AVX2 kernel needs.
        unsafe { avx2::dense::q4k_rows(m, out) }
    }
}
