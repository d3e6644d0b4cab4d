//! NEON ternary matmul. Each 32-byte block is read as two 16-byte halves; `vshrq_n_u8` +
//! mask give the codes directly (byte shifts, no neighbour bits), `code - 1` wraps to the
//! signed value in `{-1, 0, 1}`, and `vmull_s8`/`vmlal_high_s8` multiply with the int8
//! activations into i16 lanes. One block adds at most 16 products of magnitude <= 128 per
//! lane (2048, no i16 overflow) before `vpadalq_s16` widens to i32: exact, so equal to the
//! scalar reference. Signed values mean no `sum q` correction is needed.

use super::Neon;
use crate::ops::{KernelId, TernaryF32Matmul, TernaryMatmul, TernaryMatmulOps};
use crate::packed::{BLOCK, BLOCK_BYTES, OutRows, PackedLayout};
use crate::tile::{TileDot, ternary_rows};
use std::arch::aarch64::*;

/// Id of [`ternary_neon`].
pub(crate) const ID: KernelId = "i2s/neon";

struct NeonDot;

#[inline(always)]
unsafe fn block_dot(acc: int32x4_t, row: *const u8, q: *const i8) -> int32x4_t {
    // SAFETY: only forwards this unsafe fn's own contract (`row` holds one packed block of
    // `BLOCK_BYTES`, `q` one block of `BLOCK` activations, from `TileDot::dot`'s caller).
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
        // SAFETY: only forwards this unsafe fn's own contract (`TileDot::dot`: `row` holds
        // `full + has_tail` blocks, each `q[t]` `full` blocks, each `tails[t]` one block).
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
unsafe fn ternary_neon(m: &TernaryMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
    match m.w().layout() {
        // SAFETY: the feature is enabled on this function.
        PackedLayout::I2s128 => unsafe { ternary_rows::<NeonDot>(m, out) },
        // The AVX-512 backend's layout (only reachable by calling this backend directly;
        // `Kernels` refuses mismatched layouts): the scalar code reads every layout.
        PackedLayout::I2s256 => return crate::scalar::ternary::ternary_rows(m, out),
    }
    ID
}

impl TernaryMatmulOps for Neon {
    fn layout(&self) -> PackedLayout {
        PackedLayout::I2s128
    }

    fn ternary_rows(&self, m: &TernaryMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: NEON is mandatory on aarch64; `m`'s shapes were checked when it was built.
        unsafe { ternary_neon(m, out) }
    }

    fn ternary_f32_rows(&self, m: &TernaryF32Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // No NEON version: this path only serves cross-checks (activation quantisation off).
        crate::scalar::ternary::ternary_f32_rows(m, out)
    }
}
