//! Q6_K: ggml's 6-bit K-quant, the output head bitnet.cpp and ik_llama.cpp recommend
//! (`--token-embedding-type q6_k`), run as it is stored.
//!
//! Why: a 2B4T token streams 0.52 GB of ternary weights and then the head; F16 makes the head
//! 0.66 GB, Q8_0 0.35 GB, Q6_K 0.27 GB (0.82 bytes per weight). Until this module a Q6_K head
//! was decoded and re-quantised to Q8_0 at load, streaming 30 % more than the file holds.
//!
//! Weights stay in ggml's 210-byte `block_q6_K` ([`BlockQ6K`]): 256 values in sixteen
//! sub-blocks of 16, value = `d * scale[j] * (q - 32)` with `q` in `0..64`. The layout already
//! suits SIMD (32 low nibbles and their high bits load as one vector each), so the file's
//! bytes are used as they are. `--head-type q6_k` quantises an F16/F32 head with ggml's own
//! `quantize_row_q6_K_ref` ([`quantize_row_q6_k`]), written again here so that the blocks
//! are the bytes `llama-quantize` writes (checked against bitnet.cpp's in the tests).
//!
//! Activations are quantised per 256 values as ggml's Q8_K does ([`crate::Q8KActivations`]):
//! `d = max / -127` of the largest-magnitude value, quants rounded half to even, plus the sum
//! of each 16 quants. A super-block's dot product is then exact in integers,
//! `isum = sum_j scale[j] * (sum_k q[k] * x[k] - 32 * bsum[j])`, and costs one float step:
//! `y[t][r] = sum_sb isum * (dw[r][sb] * dx[t][sb])`, summed over super-blocks in order. Every
//! backend computes exactly that, so SIMD equals scalar bit for bit.

use crate::FormatError;
use crate::backend::{Backend, OpKind};
use crate::kquant::{KBlock, KQuantMatrix, QK_K, nearest_int, quantize_row_fn};
use crate::ops::{KQuantMatmul, KernelId};
use crate::packed::OutRows;
use bitnet_formats::{BlockQ6K, DenseBlocks};
use half::f16;

/// Values per Q6_K sub-block (one 8-bit scale each).
pub const Q6K_SUB: usize = 16;

/// ggml's `GROUP_MAX_EPS`: a sub-block whose largest magnitude is below it quantises to 0.
const GROUP_MAX_EPS: f32 = 1e-15;

/// A dense `[rows][cols]` matrix in Q6_K blocks (see the module doc).
pub type Q6KMatrix = KQuantMatrix<BlockQ6K>;

impl KBlock for BlockQ6K {
    const FORMAT: DenseBlocks = DenseBlocks::Q6K;
    const OP: OpKind = OpKind::Q6K;

    fn dot(&self, xq: &[i8], xs: &[i16], dx: f32) -> f32 {
        finish(self, block_isum(self, xq, xs), dx)
    }

    fn rows(backend: &dyn Backend, m: &KQuantMatmul<'_, Self>, out: &mut OutRows<'_>) -> KernelId {
        backend.q6k_rows(m, out)
    }
}

/// A Q6_K block's float step, the same in every backend: `isum * (d * dx)`.
#[inline(always)]
pub(crate) fn finish(b: &BlockQ6K, isum: i32, dx: f32) -> f32 {
    isum as f32 * (f16::from_le_bytes(b.d).to_f32() * dx)
}

impl KQuantMatrix<BlockQ6K> {
    /// Quantises a `[rows][cols]` matrix whose row `r` `fill_row(r, buf)` writes as f32 into
    /// `buf` (`cols` values) with ggml's `quantize_row_q6_K_ref` ([`quantize_row_q6_k`]), on
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
        Self::quantize_rows(rows, cols, threads, fill_row, quantize_row_q6_k)
    }
}

/// ggml's `make_qx_quants(16, 32, x, L, rmse_type = 1, NULL)`: the sub-block's scale after a
/// search over 19 candidate inverse scales, weighting each value by its square; `l` gets the
/// quants (`0..64`) of the best. The multiply-adds are fused where a C compiler contracts
/// them on a CPU with FMA (within one expression: clang's default, what bitnet.cpp's
/// `llama-quantize` was built with), so the scales come out as its.
#[inline(always)]
fn make_qx_quants(x: &[f32], l: &mut [i8]) -> f32 {
    const NMAX: i32 = 32;
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-NMAX, NMAX - 1);
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let q = quant(iscale, v) as f32;
            let w = v * v;
            sumlx = (w * v).mul_add(q, sumlx);
            suml2 = (w * q).mul_add(q, suml2);
        }
        (sumlx, suml2)
    };
    let fill = |iscale: f32, l: &mut [i8]| {
        for (o, &v) in l.iter_mut().zip(x) {
            *o = (quant(iscale, v) + NMAX) as i8;
        }
    };
    let iscale = -(NMAX as f32) / max;
    fill(iscale, l);
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -0.1f32.mul_add(is as f32, NMAX as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            fill(iscale, l);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

quantize_row_fn!(
    /// One row of f32 (a multiple of 256 values) to Q6_K with ggml's `quantize_row_q6_K_ref`
    /// (no importance matrix: what `llama-quantize --output-tensor-type q6_k` does).
    quantize_row_q6_k,
    BlockQ6K
);

#[inline(always)]
fn quantize_blocks(x: &[f32], out: &mut [BlockQ6K]) {
    for (x, y) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let mut l = [0i8; QK_K];
        let mut scales = [0.0f32; QK_K / Q6K_SUB];
        let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
        for (ib, s) in scales.iter_mut().enumerate() {
            let span = ib * Q6K_SUB..(ib + 1) * Q6K_SUB;
            *s = make_qx_quants(&x[span.clone()], &mut l[span]);
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = *s;
            }
        }
        *y = <BlockQ6K as bytemuck::Zeroable>::zeroed();
        if max_abs_scale < GROUP_MAX_EPS {
            continue;
        }
        let iscale = -128.0f32 / max_scale;
        let d = f16::from_f32(1.0 / iscale);
        y.d = d.to_le_bytes();
        for (o, &s) in y.scales.iter_mut().zip(&scales) {
            *o = nearest_int(iscale * s).min(127) as i8;
        }
        for j in 0..QK_K / Q6K_SUB {
            let d = d.to_f32() * f32::from(y.scales[j]);
            if d == 0.0 {
                continue;
            }
            for ii in 0..Q6K_SUB {
                let q = nearest_int(x[Q6K_SUB * j + ii] / d).clamp(-32, 31);
                l[Q6K_SUB * j + ii] = (q + 32) as i8;
            }
        }
        let l = l.map(|v| v as u8);
        for h in 0..2 {
            let (l, ql, qh) = (
                &l[128 * h..],
                &mut y.ql[64 * h..64 * h + 64],
                &mut y.qh[32 * h..32 * h + 32],
            );
            for i in 0..32 {
                ql[i] = (l[i] & 0xF) | ((l[i + 64] & 0xF) << 4);
                ql[i + 32] = (l[i + 32] & 0xF) | ((l[i + 96] & 0xF) << 4);
                qh[i] = (l[i] >> 4)
                    | ((l[i + 32] >> 4) << 2)
                    | ((l[i + 64] >> 4) << 4)
                    | ((l[i + 96] >> 4) << 6);
            }
        }
    }
}

/// The exact integer dot of one Q6_K block and 256 Q8_K activations:
/// `sum_j scale[j] * (sum_k q[k] * x[k] - 32 * bsum[j])`, `q` the unsigned 6-bit quants.
/// The scalar reference every SIMD kernel equals.
pub(crate) fn block_isum(b: &BlockQ6K, x: &[i8], bsums: &[i16]) -> i32 {
    let mut isum = 0i32;
    for h in 0..2 {
        let (ql, qh) = (&b.ql[64 * h..64 * h + 64], &b.qh[32 * h..32 * h + 32]);
        let x = &x[128 * h..128 * h + 128];
        // Four runs of 32 values: (low nibbles of ql[0..32], qh bits 0-1), (ql[32..64],
        // bits 2-3), (high nibbles of ql[0..32], bits 4-5), (high of ql[32..64], bits 6-7).
        for k in 0..4 {
            let mut dots = [0i32; 2];
            for l in 0..32 {
                let lo = ql[l + 32 * (k & 1)];
                let lo = if k < 2 { lo & 0xF } else { lo >> 4 };
                let q = lo | (((qh[l] >> (2 * k)) & 3) << 4);
                dots[l / 16] += i32::from(q) * i32::from(x[32 * k + l]);
            }
            for (s, dot) in dots.into_iter().enumerate() {
                let j = 8 * h + 2 * k + s;
                isum += i32::from(b.scales[j]) * (dot - 32 * i32::from(bsums[j]));
            }
        }
    }
    isum
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitnet_formats::decode_q6_k;

    #[test]
    fn block_isum_is_the_dot_of_the_decoded_block() {
        // Random bytes as a block, d = 1: decode_q6_k gives scale * (q - 32) exactly.
        let mut s = 0x1234_5678u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let mut b = <BlockQ6K as bytemuck::Zeroable>::zeroed();
        b.ql.iter_mut().for_each(|v| *v = next() as u8);
        b.qh.iter_mut().for_each(|v| *v = next() as u8);
        b.scales.iter_mut().for_each(|v| *v = next() as i8);
        b.d = f16::ONE.to_le_bytes();
        let x: Vec<i8> = (0..QK_K).map(|_| (next() % 255) as i8).collect();
        let bsums: Vec<i16> = x
            .chunks_exact(Q6K_SUB)
            .map(|c| c.iter().map(|&v| i16::from(v)).sum())
            .collect();
        let mut w = [0.0f32; QK_K];
        decode_q6_k(&b, &mut w);
        let want: i64 = w
            .iter()
            .zip(&x)
            .map(|(&w, &x)| w as i64 * i64::from(x))
            .sum();
        assert_eq!(i64::from(block_isum(&b, &x, &bsums)), want);
    }
}
