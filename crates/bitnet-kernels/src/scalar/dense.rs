//! Scalar dense matmuls (the output head): f16, bf16, f32, Q8_0, Q6_K and Q4_K weights.

use super::Scalar;
use crate::kquant::{KBlock, Q8K_SUM, QK_K};
use crate::ops::{DenseMatmul, DenseOps, KQuantMatmul, KernelId, Q4KMatmul, Q6KMatmul, Q8Matmul};
use crate::packed::OutRows;
use crate::q8::Q8_BLOCK;
use half::{bf16, f16};

/// Id of [`f16_rows`].
pub(crate) const F16_ID: KernelId = "f16/scalar";
/// Id of [`bf16_rows`].
pub(crate) const BF16_ID: KernelId = "bf16/scalar";
/// Id of [`f32_rows`].
pub(crate) const F32_ID: KernelId = "f32/scalar";
/// Id of [`q8_rows`].
pub(crate) const Q8_ID: KernelId = "q8_0/scalar";
/// Id of the Q6_K [`kquant_rows`].
pub(crate) const Q6K_ID: KernelId = "q6_k/scalar";
/// Id of the Q4_K [`kquant_rows`].
pub(crate) const Q4K_ID: KernelId = "q4_k/scalar";

/// f16 weights: each row converted a chunk at a time (hardware conversion where `half`
/// detects it), the chunk then used for every token.
pub(crate) fn f16_rows(m: &DenseMatmul<'_, f16>, out: &mut OutRows<'_>) -> KernelId {
    use half::slice::HalfFloatSliceExt;
    debug_assert!(m.fits(out), "output view does not fit the operands");
    const CHUNK: usize = 256;
    let mut buf = [0.0f32; CHUNK];
    let rows = out.rows();
    for r in rows.clone() {
        for t in 0..m.n() {
            out.token(t)[r - rows.start] = 0.0;
        }
        for (ci, chunk) in m.w_row(r).chunks(CHUNK).enumerate() {
            let b = &mut buf[..chunk.len()];
            chunk.convert_to_f32_slice(b);
            for t in 0..m.n() {
                let xt = &m.x_row(t)[ci * CHUNK..ci * CHUNK + chunk.len()];
                let s: f32 = b.iter().zip(xt).map(|(a, b)| a * b).sum();
                out.token(t)[r - rows.start] += s;
            }
        }
    }
    F16_ID
}

/// f32 weights.
pub(crate) fn f32_rows(m: &DenseMatmul<'_, f32>, out: &mut OutRows<'_>) -> KernelId {
    widened_rows(m, out, |w| w);
    F32_ID
}

/// bf16 weights, widened (exactly) one at a time into [`f32_rows`]' sum.
pub(crate) fn bf16_rows(m: &DenseMatmul<'_, bf16>, out: &mut OutRows<'_>) -> KernelId {
    widened_rows(m, out, bf16::to_f32);
    BF16_ID
}

/// Weights of a type `widen` turns into f32: each row's products summed in column order.
fn widened_rows<T: Copy>(m: &DenseMatmul<'_, T>, out: &mut OutRows<'_>, widen: impl Fn(T) -> f32) {
    debug_assert!(m.fits(out), "output view does not fit the operands");
    let rows = out.rows();
    for t in 0..m.n() {
        let xt = m.x_row(t);
        let y = out.token(t);
        for (yr, r) in y.iter_mut().zip(rows.clone()) {
            *yr = m.w_row(r).iter().zip(xt).map(|(&a, b)| widen(a) * b).sum();
        }
    }
}

/// Q8_0 weights: per block an exact i32 dot, then `sum += isum * (dw * dx)`.
pub(crate) fn q8_rows(m: &Q8Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
    debug_assert!(m.fits(out), "output view does not fit the operands");
    let (w, x) = (m.w(), m.x());
    let (cols, nb) = (w.cols(), w.blocks_per_row());
    let rows = out.rows();
    for t in 0..m.n() {
        let xq = &x.quants()[t * cols..(t + 1) * cols];
        let xd = &x.scales()[t * nb..(t + 1) * nb];
        let y = out.token(t);
        for (yr, r) in y.iter_mut().zip(rows.clone()) {
            let wq = &w.quants()[r * cols..(r + 1) * cols];
            let wd = &w.scales()[r * nb..(r + 1) * nb];
            let mut sum = 0.0f32;
            for b in 0..nb {
                let span = b * Q8_BLOCK..(b + 1) * Q8_BLOCK;
                let isum: i32 = wq[span.clone()]
                    .iter()
                    .zip(&xq[span])
                    .map(|(&a, &b)| i32::from(a) * i32::from(b))
                    .sum();
                sum += isum as f32 * (wd[b].to_f32() * xd[b]);
            }
            *yr = sum;
        }
    }
    Q8_ID
}

/// K-quant weights: per super-block the format's reference dot ([`KBlock::dot`]: exact
/// integer sums, then the format's float step), summed in super-block order (the order every
/// backend keeps).
pub(crate) fn kquant_rows<B: KBlock>(m: &KQuantMatmul<'_, B>, out: &mut OutRows<'_>) {
    debug_assert!(m.fits(out), "output view does not fit the operands");
    let (w, x) = (m.w(), m.x());
    let (cols, nb) = (w.cols(), w.blocks_per_row());
    let (subs, sums) = (cols / Q8K_SUM, QK_K / Q8K_SUM);
    let rows = out.rows();
    for t in 0..m.n() {
        let xq = &x.quants()[t * cols..(t + 1) * cols];
        let xd = &x.scales()[t * nb..(t + 1) * nb];
        let xs = &x.bsums()[t * subs..(t + 1) * subs];
        let y = out.token(t);
        for (yr, r) in y.iter_mut().zip(rows.clone()) {
            let mut sum = 0.0f32;
            for (sb, b) in w.row(r).iter().enumerate() {
                let (q, s) = (&xq[sb * QK_K..][..QK_K], &xs[sb * sums..][..sums]);
                sum += b.dot(q, s, xd[sb]);
            }
            *yr = sum;
        }
    }
}

impl DenseOps for Scalar {
    fn f16_rows(&self, m: &DenseMatmul<'_, f16>, out: &mut OutRows<'_>) -> KernelId {
        f16_rows(m, out)
    }

    fn bf16_rows(&self, m: &DenseMatmul<'_, bf16>, out: &mut OutRows<'_>) -> KernelId {
        bf16_rows(m, out)
    }

    fn f32_rows(&self, m: &DenseMatmul<'_, f32>, out: &mut OutRows<'_>) -> KernelId {
        f32_rows(m, out)
    }

    fn q8_rows(&self, m: &Q8Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        q8_rows(m, out)
    }

    fn q6k_rows(&self, m: &Q6KMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        kquant_rows(m, out);
        Q6K_ID
    }

    fn q4k_rows(&self, m: &Q4KMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        kquant_rows(m, out);
        Q4K_ID
    }
}
