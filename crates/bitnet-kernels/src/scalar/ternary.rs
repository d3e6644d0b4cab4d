//! Scalar ternary matmuls: every code decoded with shifts and masks straight from the
//! packed layout, products accumulated one element at a time (exact i32 for int8
//! activations).

use super::Scalar;
use crate::act_quant::finish;
use crate::ops::{KernelId, TernaryF32Matmul, TernaryMatmul, TernaryMatmulOps};
use crate::packed::{BLOCK, OutRows, PackedLayout, code_position};

/// Id of [`ternary_rows`].
pub(crate) const ID: KernelId = "i2s/scalar";
/// Id of [`ternary_f32_rows`].
pub(crate) const F32_ID: KernelId = "i2s/scalar";

/// Calls `f(c, v)` with the value `v` of every column `c < cols` of a row in `layout`, in
/// storage order (padding columns are skipped).
#[inline(always)]
fn for_each_value(row: &[u8], layout: PackedLayout, cols: usize, mut f: impl FnMut(usize, i32)) {
    let (block_cols, lane) = (layout.block_cols(), layout.block_bytes());
    for (b, block) in row.chunks_exact(lane).enumerate() {
        for (k, &byte) in block.iter().enumerate() {
            for j in 0..4 {
                let c = b * block_cols + lane * j + k;
                if c < cols {
                    f(c, ((byte >> (6 - 2 * j)) & 3) as i32 - 1);
                }
            }
        }
    }
}

/// As [`for_each_value`], but visiting columns in `i2s128`'s storage order whatever
/// `layout` is (see [`ternary_f32_rows`]).
#[inline(always)]
fn for_each_value_i2s128_order(
    row: &[u8],
    layout: PackedLayout,
    cols: usize,
    mut f: impl FnMut(usize, i32),
) {
    for c0 in (0..cols).step_by(BLOCK) {
        for k in 0..BLOCK / 4 {
            for j in 0..4 {
                let c = c0 + BLOCK / 4 * j + k;
                if c < cols {
                    let (at, shift) = code_position(layout, c);
                    f(c, ((row[at] >> shift) & 3) as i32 - 1);
                }
            }
        }
    }
}

/// Exact dot product of packed row `row` in `layout` (codes `value + 1`) with `q`
/// (`q.len()` = cols).
pub(crate) fn dot_row(row: &[u8], layout: PackedLayout, q: &[i8]) -> i32 {
    let mut acc = 0i32;
    for_each_value(row, layout, q.len(), |c, v| acc += v * i32::from(q[c]));
    acc
}

/// The reference ternary matmul on int8 activations.
pub(crate) fn ternary_rows(m: &TernaryMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
    debug_assert!(m.fits(out), "output view does not fit the operands");
    // Every layout: the scalar code reads codes through the layout's block geometry.
    let w = m.w();
    let rows = out.rows();
    for (t, &s) in m.scales().iter().enumerate() {
        let qt = m.q_row(t);
        let y = out.token(t);
        for (yr, r) in y.iter_mut().zip(rows.clone()) {
            *yr = finish(dot_row(w.row(r), w.layout(), qt), s, w.scale());
        }
    }
    ID
}

/// The reference ternary matmul on f32 activations (no SIMD backend has its own: it only
/// serves cross-checks with activation quantisation off).
pub(crate) fn ternary_f32_rows(m: &TernaryF32Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
    debug_assert!(m.fits(out), "output view does not fit the operands");
    let w = m.w();
    let rows = out.rows();
    for t in 0..m.n() {
        let xt = m.x_row(t);
        let y = out.token(t);
        for (yr, r) in y.iter_mut().zip(rows.clone()) {
            let mut acc = 0.0f32;
            for_each_value_i2s128_order(w.row(r), w.layout(), w.cols(), |c, v| {
                if v != 0 {
                    acc += v as f32 * xt[c];
                }
            });
            *yr = acc * w.scale();
        }
    }
    F32_ID
}

impl TernaryMatmulOps for Scalar {
    fn layout(&self) -> PackedLayout {
        PackedLayout::I2s128
    }

    fn ternary_rows(&self, m: &TernaryMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        ternary_rows(m, out)
    }

    fn ternary_f32_rows(&self, m: &TernaryF32Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        ternary_f32_rows(m, out)
    }
}
