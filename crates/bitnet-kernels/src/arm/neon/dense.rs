//! NEON dense matmuls (the output head): f16 converted with `half` (hardware `fcvtl` where
//! available) and bf16 widened by a shift into a stack buffer, then NEON FMA; f32 straight
//! into the FMA; Q8_0 with an exact `vmull_s8` dot per block of 32; Q6_K and Q4_K with exact
//! integer dots per block of 256 and the scalar reference's float steps (equal to it bit for
//! bit).

use super::Neon;
use crate::kquant::{KBlock, Q8K_SUM, QK_K};
use crate::ops::{DenseMatmul, DenseOps, KQuantMatmul, KernelId, Q4KMatmul, Q6KMatmul, Q8Matmul};
use crate::packed::OutRows;
use crate::q6k::Q6K_SUB;
use crate::{q4k, q6k};
use bitnet_formats::{BlockQ4K, BlockQ6K};
use half::{bf16, f16};
use std::arch::aarch64::*;

/// Id of the f16 matmul.
pub(crate) const F16_ID: KernelId = "f16/neon";
/// Id of the bf16 matmul.
pub(crate) const BF16_ID: KernelId = "bf16/neon";
/// Id of the f32 matmul.
pub(crate) const F32_ID: KernelId = "f32/neon";
/// Id of the Q8_0 matmul.
pub(crate) const Q8_ID: KernelId = "q8_0/neon";
/// Id of the Q6_K matmul.
pub(crate) const Q6K_ID: KernelId = "q6_k/neon";
/// Id of the Q4_K matmul.
pub(crate) const Q4K_ID: KernelId = "q4_k/neon";

/// `sum a[i] * b[i]` with four FMA chains.
#[target_feature(enable = "neon")]
unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    // SAFETY: NEON is this fn's target feature (always present on aarch64); every load reads
    // 4 floats at `i + 4k + 3 < i + 16 <= n`, inside both slices.
    unsafe {
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut i = 0;
        while i + 16 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                *a = vfmaq_f32(
                    *a,
                    vld1q_f32(pa.add(i + 4 * k)),
                    vld1q_f32(pb.add(i + 4 * k)),
                );
            }
            i += 16;
        }
        let mut s = vaddvq_f32(vaddq_f32(
            vaddq_f32(acc[0], acc[1]),
            vaddq_f32(acc[2], acc[3]),
        ));
        while i < n {
            s += a[i] * b[i];
            i += 1;
        }
        s
    }
}

/// Dense rows: `chunk` converts up to 256 weights of a row into f32.
fn dense_rows<T>(m: &DenseMatmul<'_, T>, out: &mut OutRows<'_>, chunk: impl Fn(&[T], &mut [f32])) {
    debug_assert!(m.fits(out), "output view does not fit the operands");
    const CHUNK: usize = 256;
    let mut buf = [0.0f32; CHUNK];
    let rows = out.rows();
    for r in rows.clone() {
        for t in 0..m.n() {
            out.token(t)[r - rows.start] = 0.0;
        }
        for (ci, wc) in m.w_row(r).chunks(CHUNK).enumerate() {
            let b = &mut buf[..wc.len()];
            chunk(wc, b);
            for t in 0..m.n() {
                let xt = &m.x_row(t)[ci * CHUNK..][..wc.len()];
                // SAFETY: NEON is mandatory on aarch64.
                out.token(t)[r - rows.start] += unsafe { dot_f32(b, xt) };
            }
        }
    }
}

/// Widens bf16 values into f32 (`dst.len() == src.len()`): a bf16 is the high half of an
/// f32, so `vshll_n_u16::<16>` is exact; then the f32 path's sums in its order, which makes
/// the bf16 matmul equal the f32 one on the widened weights bit for bit.
fn widen_bf16(src: &[bf16], dst: &mut [f32]) {
    debug_assert_eq!(src.len(), dst.len());
    let n = src.len().min(dst.len());
    let mut i = 0;
    // SAFETY: NEON is mandatory on aarch64; each step reads 4 values at `i..i + 4 <= n` of
    // `src` (bf16 is a `u16` in memory) and writes 4 to `dst`, both `n` long at least.
    unsafe {
        while i + 4 <= n {
            let h = vld1_u16(src.as_ptr().add(i) as *const u16);
            vst1q_f32(
                dst.as_mut_ptr().add(i),
                vreinterpretq_f32_u32(vshll_n_u16::<16>(h)),
            );
            i += 4;
        }
    }
    for (d, s) in dst[i..n].iter_mut().zip(&src[i..n]) {
        *d = s.to_f32();
    }
}

/// One Q8_0 row times one quantised activation row: per block of 32, two 16-byte halves
/// multiplied with `vmull_s8`/`vmlal_high_s8` (two products of |q| <= 127 per i16 lane, at
/// most 32258: no overflow), widened with `vpaddlq_s16`, then one FMA with `dw * dx`.
///
/// # Safety
/// `wq` and `xq` hold `wd.len() * 32` values, `xd` at least `wd.len()` scales.
#[inline]
unsafe fn q8_row_dot(wq: &[i8], wd: &[f16], xq: &[i8], xd: &[f32]) -> f32 {
    // SAFETY: block `b < wd.len()` reads `wq` and `xq` at `32b..32b + 32`, inside the
    // `wd.len() * 32` values the caller guarantees; NEON is always present on aarch64.
    unsafe {
        let mut acc = vdupq_n_f32(0.0);
        for (b, (d, &dx)) in wd.iter().zip(xd).enumerate() {
            let (pw, px) = (wq.as_ptr().add(b * 32), xq.as_ptr().add(b * 32));
            let (w0, w1) = (vld1q_s8(pw), vld1q_s8(pw.add(16)));
            let (x0, x1) = (vld1q_s8(px), vld1q_s8(px.add(16)));
            let p0 = vmlal_high_s8(vmull_s8(vget_low_s8(w0), vget_low_s8(x0)), w0, x0);
            let p1 = vmlal_high_s8(vmull_s8(vget_low_s8(w1), vget_low_s8(x1)), w1, x1);
            let i = vaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1));
            acc = vfmaq_n_f32(acc, vcvtq_f32_s32(i), d.to_f32() * dx);
        }
        vaddvq_f32(acc)
    }
}

fn q8_rows(m: &Q8Matmul<'_>, out: &mut OutRows<'_>) {
    debug_assert!(m.fits(out), "output view does not fit the operands");
    let (w, x) = (m.w(), m.x());
    let (cols, nb) = (w.cols(), w.blocks_per_row());
    let rows = out.rows();
    for r in rows.clone() {
        let wq = &w.quants()[r * cols..(r + 1) * cols];
        let wd = &w.scales()[r * nb..(r + 1) * nb];
        for t in 0..m.n() {
            let xq = &x.quants()[t * cols..(t + 1) * cols];
            let xd = &x.scales()[t * nb..(t + 1) * nb];
            // SAFETY: NEON is mandatory on aarch64; the slices hold whole blocks (sliced
            // above from `Q8Matmul`'s checked shapes).
            out.token(t)[r - rows.start] = unsafe { q8_row_dot(wq, wd, xq, xd) };
        }
    }
}

/// The exact integer dot of one Q6_K block and 256 Q8_K activations (what
/// `crate::q6k::block_isum` computes): 16 quants at a time unpacked from `ql`'s nibbles and
/// two bits of `qh` (values `0..64`, so they multiply as `i8`), `vmull_s8`/`vmlal_high_s8`
/// (two products of at most 63 * 127 per i16 lane), widened and scaled per sub-block in i32,
/// and the `- 32` offset applied once through the activations' 16-value sums.
///
/// # Safety
/// `x` starts 256 quants and `bsums` 16 sums.
#[inline]
unsafe fn q6k_block_isum(b: &BlockQ6K, x: *const i8, bsums: *const i16) -> i32 {
    // SAFETY: reads `x[0..256]` and `bsums[0..16]` (the caller's contract) and the block's
    // own arrays at in-bounds offsets; NEON is always present on aarch64.
    unsafe {
        let (m4, m3) = (vdupq_n_u8(0x0F), vdupq_n_u8(0x03));
        let mut acc = vdupq_n_s32(0);
        for h in 0..2 {
            let (ql, qh) = (b.ql.as_ptr().add(64 * h), b.qh.as_ptr().add(32 * h));
            for half in 0..2 {
                // Values `128h + 32k + 16 half ..+16` for k = 0..4 (sub-block 8h + 2k + half).
                let a = vld1q_u8(ql.add(16 * half));
                let c = vld1q_u8(ql.add(32 + 16 * half));
                let hb = vld1q_u8(qh.add(16 * half));
                let q = [
                    vorrq_u8(vandq_u8(a, m4), vshlq_n_u8::<4>(vandq_u8(hb, m3))),
                    vorrq_u8(
                        vandq_u8(c, m4),
                        vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<2>(hb), m3)),
                    ),
                    vorrq_u8(
                        vshrq_n_u8::<4>(a),
                        vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<4>(hb), m3)),
                    ),
                    vorrq_u8(vshrq_n_u8::<4>(c), vshlq_n_u8::<4>(vshrq_n_u8::<6>(hb))),
                ];
                for (k, &qk) in q.iter().enumerate() {
                    let xv = vld1q_s8(x.add(128 * h + 32 * k + 16 * half));
                    let qv = vreinterpretq_s8_u8(qk);
                    let p = vmlal_high_s8(vmull_s8(vget_low_s8(qv), vget_low_s8(xv)), qv, xv);
                    let sc = i32::from(b.scales[8 * h + 2 * k + half]);
                    acc = vmlaq_n_s32(acc, vpaddlq_s16(p), sc);
                }
            }
        }
        let offset: i32 = (0..Q6K_SUB)
            .map(|j| i32::from(b.scales[j]) * i32::from(*bsums.add(j)))
            .sum();
        vaddvq_s32(acc) - 32 * offset
    }
}

/// The exact integer sums of one Q4_K block and 256 Q8_K activations (what
/// `crate::q4k::block_isums` computes): 16 quant bytes at a time, their low and high nibbles
/// (values `0..16`, so they multiply as `i8`) against the two sub-blocks' activations with
/// `vmull_s8`/`vmlal_high_s8`, widened and scaled per sub-block in i32; the mins once through
/// the activations' 16-value sums.
///
/// # Safety
/// `x` starts 256 quants and `bsums` 16 sums.
#[inline]
unsafe fn q4k_block_isums(b: &BlockQ4K, x: *const i8, bsums: *const i16) -> (i32, i32) {
    // SAFETY: reads `x[0..256]` and `bsums[0..16]` (the caller's contract) and the block's
    // own arrays at in-bounds offsets; NEON is always present on aarch64.
    unsafe {
        let sm = q4k::scales_mins(&b.scales);
        let m4 = vdupq_n_u8(0x0F);
        let mut acc = vdupq_n_s32(0);
        for g in 0..4 {
            for half in 0..2 {
                let q = vld1q_u8(b.qs.as_ptr().add(32 * g + 16 * half));
                let nibbles = [vandq_u8(q, m4), vshrq_n_u8::<4>(q)];
                for (s, &qn) in nibbles.iter().enumerate() {
                    let xv = vld1q_s8(x.add(64 * g + 32 * s + 16 * half));
                    let qv = vreinterpretq_s8_u8(qn);
                    let p = vmlal_high_s8(vmull_s8(vget_low_s8(qv), vget_low_s8(xv)), qv, xv);
                    acc = vmlaq_n_s32(acc, vpaddlq_s16(p), i32::from(sm[2 * g + s]));
                }
            }
        }
        let msum: i32 = (0..8)
            .map(|j| {
                i32::from(sm[8 + j])
                    * (i32::from(*bsums.add(2 * j)) + i32::from(*bsums.add(2 * j + 1)))
            })
            .sum();
        (vaddvq_s32(acc), msum)
    }
}

/// A K-quant block format's NEON block dot.
trait NeonBlock: KBlock {
    /// This block's contribution to a row's dot with one token's activations (`x` 256
    /// quants, `bsums` their 16 sums, `dx` their scale): equal to [`KBlock::dot`].
    ///
    /// # Safety
    /// `x` starts 256 quants and `bsums` 16 sums.
    unsafe fn neon_dot(&self, x: *const i8, bsums: *const i16, dx: f32) -> f32;
}

impl NeonBlock for BlockQ6K {
    #[inline]
    unsafe fn neon_dot(&self, x: *const i8, bsums: *const i16, dx: f32) -> f32 {
        // SAFETY: the caller's contract is `q6k_block_isum`'s.
        q6k::finish(self, unsafe { q6k_block_isum(self, x, bsums) }, dx)
    }
}

impl NeonBlock for BlockQ4K {
    #[inline]
    unsafe fn neon_dot(&self, x: *const i8, bsums: *const i16, dx: f32) -> f32 {
        // SAFETY: the caller's contract is `q4k_block_isums`'.
        let (isum, msum) = unsafe { q4k_block_isums(self, x, bsums) };
        q4k::finish(self, isum, msum, dx)
    }
}

/// K-quant weights, Q8_K activations: the blocks' NEON dots summed in the scalar
/// reference's order.
fn kquant_rows<B: NeonBlock>(m: &KQuantMatmul<'_, B>, out: &mut OutRows<'_>) {
    debug_assert!(m.fits(out), "output view does not fit the operands");
    let (w, x) = (m.w(), m.x());
    let (cols, nb) = (w.cols(), w.blocks_per_row());
    let subs = cols / Q8K_SUM;
    let rows = out.rows();
    for r in rows.clone() {
        for t in 0..m.n() {
            let xq = &x.quants()[t * cols..(t + 1) * cols];
            let xd = &x.scales()[t * nb..(t + 1) * nb];
            let xs = &x.bsums()[t * subs..(t + 1) * subs];
            let mut sum = 0.0f32;
            for (sb, b) in w.row(r).iter().enumerate() {
                // SAFETY: block `sb < nb` starts 256 quants and 16 sums inside the slices
                // (sliced above from `KQuantMatmul`'s checked shapes).
                sum += unsafe {
                    b.neon_dot(
                        xq.as_ptr().add(sb * QK_K),
                        xs.as_ptr().add(sb * QK_K / Q8K_SUM),
                        xd[sb],
                    )
                };
            }
            out.token(t)[r - rows.start] = sum;
        }
    }
}

impl DenseOps for Neon {
    fn f16_rows(&self, m: &DenseMatmul<'_, f16>, out: &mut OutRows<'_>) -> KernelId {
        use half::slice::HalfFloatSliceExt;
        dense_rows(m, out, |src, dst| src.convert_to_f32_slice(dst));
        F16_ID
    }

    fn bf16_rows(&self, m: &DenseMatmul<'_, bf16>, out: &mut OutRows<'_>) -> KernelId {
        dense_rows(m, out, widen_bf16);
        BF16_ID
    }

    fn f32_rows(&self, m: &DenseMatmul<'_, f32>, out: &mut OutRows<'_>) -> KernelId {
        dense_rows(m, out, |src, dst| dst.copy_from_slice(src));
        F32_ID
    }

    fn q8_rows(&self, m: &Q8Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        q8_rows(m, out);
        Q8_ID
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
