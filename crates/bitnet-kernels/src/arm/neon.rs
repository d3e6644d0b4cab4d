//! NEON implementation (`"i2s/neon"`), baseline aarch64 (NEON is mandatory there).
//!
//! Ternary dot: each 32-byte block is read as two 16-byte halves; `vshrq_n_u8` + mask give
//! the codes directly (byte shifts, no neighbour bits), `code - 1` wraps to the signed
//! value in `{-1, 0, 1}`, and `vmull_s8`/`vmlal_high_s8` multiply with the int8
//! activations into i16 lanes. One block adds at most 16 products of magnitude <= 128 per
//! lane (2048, no i16 overflow) before `vpadalq_s16` widens to i32: exact, so equal to the
//! scalar reference. Signed values mean no `sum q` correction is needed.
//!
//! The `sdot` (dotprod) instruction would be faster but is optional on ARMv8.2 and its
//! intrinsics are not all stable on the MSRV; this baseline path runs on every aarch64 CPU.
//! The dense head uses `half`'s slice conversion (hardware `fcvtl` where available) into a
//! stack buffer, then NEON FMA; the Q8_0 head an exact `vmull_s8` dot per block of 32.

use crate::op::{TernaryOps, check_dense, check_ternary};
use crate::packed::{BLOCK, BLOCK_BYTES, OutRows, PackedTernary};
use crate::q8::{Q8Activations, Q8Matrix, check_q8};
use crate::tile::{TileDot, ternary_rows};
use half::f16;
use std::arch::aarch64::*;

/// The NEON ops.
#[derive(Debug)]
pub struct Neon {
    _private: (),
}

static NEON: Neon = Neon { _private: () };

impl Neon {
    /// The NEON ops (always available on aarch64).
    pub(crate) fn get() -> &'static Neon {
        &NEON
    }
}

struct NeonDot;

#[inline(always)]
unsafe fn block_dot(acc: int32x4_t, row: *const u8, q: *const i8) -> int32x4_t {
    unsafe {
        let mask = vdupq_n_u8(3);
        let one = vdupq_n_u8(1);
        let mut p = vdupq_n_s16(0);
        for h in 0..2 {
            let w = vld1q_u8(row.add(16 * h));
            let codes = [
                vshrq_n_u8::<6>(w),
                vandq_u8(vshrq_n_u8::<4>(w), mask),
                vandq_u8(vshrq_n_u8::<2>(w), mask),
                vandq_u8(w, mask),
            ];
            for (j, c) in codes.into_iter().enumerate() {
                let v = vreinterpretq_s8_u8(vsubq_u8(c, one));
                let qv = vld1q_s8(q.add(32 * j + 16 * h));
                p = vmlal_s8(p, vget_low_s8(v), vget_low_s8(qv));
                p = vmlal_high_s8(p, v, qv);
            }
        }
        vpadalq_s16(acc, p)
    }
}

impl TileDot for NeonDot {
    const CODES_OFFSET: bool = false;

    #[inline(always)]
    unsafe fn dot<const NT: usize>(
        row: *const u8,
        full: usize,
        q: &[*const i8; NT],
        tails: &[*const i8; NT],
        has_tail: bool,
    ) -> [i32; NT] {
        unsafe {
            let mut acc = [vdupq_n_s32(0); NT];
            for b in 0..full {
                let wb = row.add(b * BLOCK_BYTES);
                for t in 0..NT {
                    acc[t] = block_dot(acc[t], wb, q[t].add(b * BLOCK));
                }
            }
            if has_tail {
                let wb = row.add(full * BLOCK_BYTES);
                for t in 0..NT {
                    acc[t] = block_dot(acc[t], wb, tails[t]);
                }
            }
            let mut out = [0i32; NT];
            for t in 0..NT {
                out[t] = vaddvq_s32(acc[t]);
            }
            out
        }
    }
}

#[target_feature(enable = "neon")]
unsafe fn ternary_neon(w: &PackedTernary, q: &[i8], scales: &[f32], out: &mut OutRows<'_>) {
    unsafe { ternary_rows::<NeonDot>(w, q, scales, out) }
}

/// `sum a[i] * b[i]` with four FMA chains.
#[target_feature(enable = "neon")]
unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
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
fn dense_rows<T>(
    w: &[T],
    cols: usize,
    x: &[f32],
    out: &mut OutRows<'_>,
    chunk: impl Fn(&[T], &mut [f32]),
) {
    check_dense(w, cols, x, out);
    const CHUNK: usize = 256;
    let mut buf = [0.0f32; CHUNK];
    let rows = out.rows();
    for r in rows.clone() {
        for t in 0..out.n() {
            out.token(t)[r - rows.start] = 0.0;
        }
        for (ci, wc) in w[r * cols..(r + 1) * cols].chunks(CHUNK).enumerate() {
            let b = &mut buf[..wc.len()];
            chunk(wc, b);
            for t in 0..out.n() {
                let xt = &x[t * cols + ci * CHUNK..][..wc.len()];
                // SAFETY: NEON is mandatory on aarch64.
                out.token(t)[r - rows.start] += unsafe { dot_f32(b, xt) };
            }
        }
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

fn q8_rows_neon(w: &Q8Matrix, x: &Q8Activations, out: &mut OutRows<'_>) {
    check_q8(w, x, out);
    let (cols, nb) = (w.cols(), w.blocks_per_row());
    let rows = out.rows();
    for r in rows.clone() {
        let wq = &w.quants()[r * cols..(r + 1) * cols];
        let wd = &w.scales()[r * nb..(r + 1) * nb];
        for t in 0..out.n() {
            let xq = &x.quants()[t * cols..(t + 1) * cols];
            let xd = &x.scales()[t * nb..(t + 1) * nb];
            // SAFETY: NEON is mandatory on aarch64; the slices hold whole blocks (checked).
            out.token(t)[r - rows.start] = unsafe { q8_row_dot(wq, wd, xq, xd) };
        }
    }
}

impl TernaryOps for Neon {
    fn id(&self) -> &'static str {
        "i2s/neon"
    }

    fn isa(&self) -> &'static str {
        "neon"
    }

    fn ternary_rows(&self, w: &PackedTernary, q: &[i8], scales: &[f32], out: &mut OutRows<'_>) {
        check_ternary(w, q, scales.len(), out);
        // SAFETY: NEON is mandatory on aarch64; lengths checked above.
        unsafe { ternary_neon(w, q, scales, out) }
    }

    fn f16_rows(&self, w: &[f16], cols: usize, x: &[f32], out: &mut OutRows<'_>) {
        use half::slice::HalfFloatSliceExt;
        dense_rows(w, cols, x, out, |src, dst| src.convert_to_f32_slice(dst));
    }

    fn f32_rows(&self, w: &[f32], cols: usize, x: &[f32], out: &mut OutRows<'_>) {
        dense_rows(w, cols, x, out, |src, dst| dst.copy_from_slice(src));
    }

    fn q8_rows(&self, w: &Q8Matrix, x: &Q8Activations, out: &mut OutRows<'_>) {
        q8_rows_neon(w, x, out);
    }
}
