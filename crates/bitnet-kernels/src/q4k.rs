//! Q4_K: ggml's 4-bit K-quant (`llama-quantize --token-embedding-type q4_k`, the head of
//! ggml's `Q4_K_M`-style files), run as it is stored.
//!
//! Why: a 2B4T head is 0.66 GB in F16, 0.27 GB in Q6_K and 0.18 GB in Q4_K (0.5625 bytes per
//! weight), so a Q4_K head makes each decoded token stream a sixth less than a Q6_K one.
//! Until this module a Q4_K head was decoded and re-quantised to Q8_0 at load: twice the
//! bytes, and not ggml's numbers.
//!
//! Weights stay in ggml's 144-byte `block_q4_K` ([`BlockQ4K`]): 256 values in eight
//! sub-blocks of 32, value = `d * sc[j] * q - dmin * m[j]` with `q` in `0..16` and 6-bit
//! `sc`, `m` packed in 12 bytes. Byte `32g + l` of the quants holds value `64g + l` in its
//! low nibble and `64g + 32 + l` in its high one, so 32 bytes unpack into two sub-blocks.
//! `--head-type q4_k` quantises an F16/F32 head with ggml's `quantize_row_q4_K_ref`
//! ([`quantize_row_q4_k`]), written again here so the blocks are the bytes `llama-quantize`
//! writes (checked against bitnet.cpp's in the engine's tests).
//!
//! With Q8_K activations (see [`crate::kquant`]) a super-block's dot product is two exact
//! integer sums, `isum = sum_j sc[j] * sum_k q[k] * x[k]` and
//! `msum = sum_j m[j] * (bsum[2j] + bsum[2j + 1])` (the activations' sums of 16), and one
//! fixed float step, `isum * (d * dx) - msum * (dmin * dx)`. Every backend
//! computes exactly that, so SIMD equals scalar bit for bit.

use crate::FormatError;
use crate::backend::{Backend, OpKind};
use crate::kquant::{KBlock, KQuantMatrix, QK_K, nearest_int, quantize_row_fn};
use crate::ops::{KQuantMatmul, KernelId};
use crate::packed::OutRows;
use bitnet_formats::{BlockQ4K, DenseBlocks};
use half::f16;

/// Values per Q4_K sub-block (one 6-bit scale and one 6-bit min each).
pub const Q4K_SUB: usize = 32;

/// A dense `[rows][cols]` matrix in Q4_K blocks (see the module doc).
pub type Q4KMatrix = KQuantMatrix<BlockQ4K>;

impl KBlock for BlockQ4K {
    const FORMAT: DenseBlocks = DenseBlocks::Q4K;
    const OP: OpKind = OpKind::Q4K;

    fn dot(&self, xq: &[i8], xs: &[i16], dx: f32) -> f32 {
        let (isum, msum) = block_isums(self, xq, xs);
        finish(self, isum, msum, dx)
    }

    fn rows(backend: &dyn Backend, m: &KQuantMatmul<'_, Self>, out: &mut OutRows<'_>) -> KernelId {
        backend.q4k_rows(m, out)
    }
}

/// A Q4_K block's float step, the same in every backend: `isum * (d * dx) - msum * (dmin *
/// dx)`.
#[inline(always)]
pub(crate) fn finish(b: &BlockQ4K, isum: i32, msum: i32, dx: f32) -> f32 {
    let d = f16::from_le_bytes(b.d).to_f32();
    let dmin = f16::from_le_bytes(b.dmin).to_f32();
    isum as f32 * (d * dx) - msum as f32 * (dmin * dx)
}

/// The eight sub-blocks' 6-bit scales (bytes 0..8) and mins (bytes 8..16), unpacked from a
/// block's 12 bytes with ggml's word operations (what `get_scale_min_k4` gives for each
/// sub-block), so SIMD code can load them as one vector.
#[inline(always)]
pub(crate) fn scales_mins(q: &[u8; 12]) -> [u8; 16] {
    const K1: u32 = 0x3f3f_3f3f;
    const K2: u32 = 0x0f0f_0f0f;
    const K3: u32 = 0x0303_0303;
    let w = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (u0, u1, u2) = (w(0), w(1), w(2));
    let words = [
        u0 & K1,
        (u2 & K2) | (((u0 >> 6) & K3) << 4),
        u1 & K1,
        ((u2 >> 4) & K2) | (((u1 >> 6) & K3) << 4),
    ];
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// The exact integer sums of one Q4_K block and 256 Q8_K activations `x` with their sums of
/// 16 `bsums`: `(sum_j sc[j] * sum_k q[k] * x[k], sum_j m[j] * (bsums[2j] + bsums[2j + 1]))`.
/// The scalar reference every SIMD kernel equals.
pub(crate) fn block_isums(b: &BlockQ4K, x: &[i8], bsums: &[i16]) -> (i32, i32) {
    let sm = scales_mins(&b.scales);
    let mut isum = 0i32;
    for (g, (qs, x)) in b.qs.chunks_exact(32).zip(x.chunks_exact(64)).enumerate() {
        let (mut lo, mut hi) = (0i32, 0i32);
        for l in 0..32 {
            lo += i32::from(qs[l] & 0xF) * i32::from(x[l]);
            hi += i32::from(qs[l] >> 4) * i32::from(x[32 + l]);
        }
        isum += i32::from(sm[2 * g]) * lo + i32::from(sm[2 * g + 1]) * hi;
    }
    let msum = (0..8)
        .map(|j| i32::from(sm[8 + j]) * (i32::from(bsums[2 * j]) + i32::from(bsums[2 * j + 1])))
        .sum();
    (isum, msum)
}

impl KQuantMatrix<BlockQ4K> {
    /// Quantises a `[rows][cols]` matrix whose row `r` `fill_row(r, buf)` writes as f32 into
    /// `buf` (`cols` values) with ggml's `quantize_row_q4_K_ref` ([`quantize_row_q4_k`]), on
    /// a rayon pool of up to `threads` threads (load-time work; the result does not depend
    /// on the thread count).
    ///
    /// # Errors
    /// [`FormatError::Shape`] if `cols` is not a positive multiple of 256,
    /// [`FormatError::Overflow`] if `rows * cols` overflows.
    pub fn quantize<F>(
        rows: usize,
        cols: usize,
        threads: usize,
        fill_row: F,
    ) -> Result<Self, FormatError>
    where
        F: Fn(usize, &mut [f32]) + Sync,
    {
        Self::quantize_rows(rows, cols, threads, fill_row, quantize_row_q4_k)
    }
}

/// ggml's `make_qkx2_quants(32, 15, x, weights, L, &the_min, Laux, -1, 0.1, 20, false)`: a
/// sub-block's scale and (negated) min after a search over 21 candidate inverse scales, each
/// refined by weighted least squares; `l` gets the quants (`0..16`) of the best. Returns
/// `(scale, -min)`. The multiply-adds are fused where clang contracts them (within one C
/// expression, on a CPU with FMA: what bitnet.cpp's `llama-quantize` was built with), so the
/// results are its.
#[inline(always)]
fn make_qkx2_quants(x: &[f32], weights: &[f32], l: &mut [u8]) -> (f32, f32) {
    const NMAX: i32 = 15;
    const RMIN: f32 = -1.0;
    const RDELTA: f32 = 0.1;
    const NSTEP: i32 = 20;
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for (&v, &w) in x.iter().zip(weights).skip(1) {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
        sum_w += w;
        sum_x = w.mul_add(v, sum_x);
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let quant = |iscale: f32, v: f32, min: f32| nearest_int(iscale * (v - min)).clamp(0, NMAX);
    let mut iscale = NMAX as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_mad = 0.0f32;
    for ((o, &v), &w) in l.iter_mut().zip(x).zip(weights) {
        *o = quant(iscale, v, min) as u8;
        let diff = scale.mul_add(f32::from(*o), min) - v;
        best_mad = w.mul_add(diff * diff, best_mad);
    }
    let mut laux = [0u8; 32];
    let laux = &mut laux[..x.len()];
    for is in 0..=NSTEP {
        // `min` is the best solution's so far, as in ggml.
        iscale = (RDELTA.mul_add(is as f32, RMIN) + NMAX as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for ((a, &v), &w) in laux.iter_mut().zip(x).zip(weights) {
            let q = quant(iscale, v, min);
            *a = q as u8;
            let q = q as f32;
            sum_l = w.mul_add(q, sum_l);
            sum_l2 = (w * q).mul_add(q, sum_l2);
            sum_xl = (w * q).mul_add(v, sum_xl);
        }
        let d = sum_w.mul_add(sum_l2, -(sum_l * sum_l));
        if d > 0.0 {
            let mut this_scale = sum_w.mul_add(sum_xl, -(sum_x * sum_l)) / d;
            let mut this_min = sum_l2.mul_add(sum_x, -(sum_l * sum_xl)) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut mad = 0.0f32;
            for ((&a, &v), &w) in laux.iter().zip(x).zip(weights) {
                let diff = this_scale.mul_add(f32::from(a), this_min) - v;
                mad = w.mul_add(diff * diff, mad);
            }
            if mad < best_mad {
                l.copy_from_slice(laux);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

quantize_row_fn!(
    /// One row of f32 (a multiple of 256 values) to Q4_K with ggml's `quantize_row_q4_K_ref`
    /// (no importance matrix: what `llama-quantize --token-embedding-type q4_k` does).
    quantize_row_q4_k,
    BlockQ4K
);

#[inline(always)]
fn quantize_blocks(x: &[f32], out: &mut [BlockQ4K]) {
    const SUBS: usize = QK_K / Q4K_SUB;
    for (x, y) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let mut l = [0u8; QK_K];
        let (mut scales, mut mins) = ([0.0f32; SUBS], [0.0f32; SUBS]);
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        for j in 0..SUBS {
            let span = j * Q4K_SUB..(j + 1) * Q4K_SUB;
            let xs = &x[span.clone()];
            let sum_x2 = xs.iter().fold(0.0f32, |s, &v| v.mul_add(v, s));
            let av_x = (sum_x2 / Q4K_SUB as f32).sqrt();
            let weights: [f32; Q4K_SUB] = std::array::from_fn(|i| av_x + xs[i].abs());
            (scales[j], mins[j]) = make_qkx2_quants(xs, &weights, &mut l[span]);
            max_scale = max_scale.max(scales[j]);
            max_min = max_min.max(mins[j]);
        }
        let inv_scale = if max_scale > 0.0 {
            63.0 / max_scale
        } else {
            0.0
        };
        let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
        *y = <BlockQ4K as bytemuck::Zeroable>::zeroed();
        for j in 0..SUBS {
            let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
            let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
            if j < 4 {
                y.scales[j] = ls;
                y.scales[j + 4] = lm;
            } else {
                y.scales[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
                y.scales[j - 4] |= (ls >> 4) << 6;
                y.scales[j] |= (lm >> 4) << 6;
            }
        }
        let d = f16::from_f32(max_scale / 63.0);
        let dmin = f16::from_f32(max_min / 63.0);
        y.d = d.to_le_bytes();
        y.dmin = dmin.to_le_bytes();
        let sm = scales_mins(&y.scales);
        for j in 0..SUBS {
            let dj = d.to_f32() * f32::from(sm[j]);
            if dj == 0.0 {
                continue;
            }
            let dm = dmin.to_f32() * f32::from(sm[8 + j]);
            for ii in 0..Q4K_SUB {
                let q = nearest_int((x[Q4K_SUB * j + ii] + dm) / dj).clamp(0, 15);
                l[Q4K_SUB * j + ii] = q as u8;
            }
        }
        for (g, qs) in y.qs.chunks_exact_mut(32).enumerate() {
            for (i, q) in qs.iter_mut().enumerate() {
                *q = l[64 * g + i] | (l[64 * g + 32 + i] << 4);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitnet_formats::decode_q4_k;

    fn xorshift(seed: u32) -> impl FnMut() -> u32 {
        let mut s = seed;
        move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        }
    }

    #[test]
    fn scales_mins_unpack_as_get_scale_min_k4() {
        let mut next = xorshift(0x9e37_79b9);
        for _ in 0..64 {
            let q: [u8; 12] = std::array::from_fn(|_| next() as u8);
            let sm = scales_mins(&q);
            for j in 0..8 {
                let (sc, m) = if j < 4 {
                    (q[j] & 63, q[j + 4] & 63)
                } else {
                    (
                        (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
                        (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
                    )
                };
                assert_eq!((sm[j], sm[8 + j]), (sc, m), "sub-block {j} of {q:?}");
            }
        }
    }

    #[test]
    fn block_isums_are_the_dot_of_the_decoded_block() {
        // Random bytes as a block, d = dmin = 1: decode_q4_k gives sc * q - m exactly.
        let mut next = xorshift(0x1234_5678);
        for _ in 0..16 {
            let mut b = <BlockQ4K as bytemuck::Zeroable>::zeroed();
            b.qs.iter_mut().for_each(|v| *v = next() as u8);
            b.scales.iter_mut().for_each(|v| *v = next() as u8);
            b.d = f16::ONE.to_le_bytes();
            b.dmin = f16::ONE.to_le_bytes();
            let x: Vec<i8> = (0..QK_K).map(|_| (next() % 255) as i8).collect();
            let bsums: Vec<i16> = x
                .chunks_exact(16)
                .map(|c| c.iter().map(|&v| i16::from(v)).sum())
                .collect();
            let mut w = [0.0f32; QK_K];
            decode_q4_k(&b, &mut w);
            let want: i64 = w
                .iter()
                .zip(&x)
                .map(|(&w, &x)| w as i64 * i64::from(x))
                .sum();
            let (isum, msum) = block_isums(&b, &x, &bsums);
            assert_eq!(i64::from(isum) - i64::from(msum), want);
        }
    }
}
