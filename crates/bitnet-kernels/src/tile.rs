//! The row/token tiling shared by the SIMD ternary kernels, generic over the ISA's
//! dot-product micro-kernel.
//!
//! Columns beyond the last full block (128 or 256 columns) read a zero-padded stack copy of the
//! activation tail (the packed padding codes are 1 = weight 0, and the activation padding
//! is 0, so padding adds nothing in either code convention). For GEMM the rows are
//! processed in blocks of [`ROW_BLOCK`] whose packed bytes (a few KiB) stay in L1 while
//! tiles of up to 4 tokens pass over them, so weights are streamed from memory once per
//! [`TOKEN_CHUNK`] tokens rather than once per token. GEMV (one token) visits the rows in
//! the order of [`two_stream_row`]. Nothing here allocates: sums and
//! tails live on the stack.

use crate::act_quant::finish;
use crate::ops::TernaryMatmul;
use crate::packed::{BLOCK, OutRows};

/// Widest block a micro-kernel may take (the `i2s256` layout's), the size of the stack tails.
const MAX_BLOCK: usize = 2 * BLOCK;

/// Rows per cache block in GEMM.
const ROW_BLOCK: usize = 16;
/// Tokens whose sums and tails are kept on the stack at once.
const TOKEN_CHUNK: usize = 32;

/// The `j`-th row to visit of `span` rows in GEMV (one token): alternately from the first and
/// the second half of the range, so each thread reads two row streams from memory at once
/// instead of one. One stream per thread left about a fifth of the bandwidth unused: the
/// hardware prefetcher and the software prefetch of one stream keep too few cache lines in
/// flight (`cargo bench -p bitnet-kernels --bench ternary`, 2B4T shapes at n = 1, one thread,
/// alternating in one run, two rounds: 9.5-12.3 GB/s one stream, 11.0-14.6 two, the C
/// STREAM-style read 13-15; docs/performance.md).
/// Every row is still computed whole and once, so results do not depend on the order.
#[inline(always)]
pub(crate) fn two_stream_row(span: usize, j: usize) -> usize {
    let half = span / 2;
    if j < 2 * half {
        j / 2 + (j % 2) * half
    } else {
        j
    }
}

/// An ISA's micro-kernel: one packed row times up to [`TileDot::TILE`] activation rows.
pub(crate) trait TileDot {
    /// Tokens per micro-kernel tile (at most 8): as many as the ISA has registers for.
    const TILE: usize = 4;

    /// Columns per block of the packed layout the micro-kernel streams (at most
    /// [`MAX_BLOCK`]).
    const BLOCK: usize = BLOCK;

    /// True when the micro-kernel multiplies the unsigned codes `c = v + 1`, so the caller
    /// must subtract `sum q` (false when it multiplies the signed values).
    const CODES_OFFSET: bool;

    /// Integer dot products of packed row `row` (`full` whole blocks, then one more block
    /// against `tails[t]` if `has_tail`) with activation rows `q[t]`.
    ///
    /// # Safety
    /// Needs the ISA's CPU features; `row` must hold `full + has_tail` blocks, each `q[t]`
    /// `full * BLOCK` bytes, each `tails[t]` `BLOCK` bytes.
    unsafe fn dot<const NT: usize>(
        row: *const u8,
        full: usize,
        q: &[*const i8; NT],
        tails: &[*const i8; NT],
        has_tail: bool,
    ) -> [i32; NT];
}

/// The whole ternary op for the rows of `out`, for tokens `0..m.n()`.
///
/// Memory safety rests on `m`'s checked shapes (`q: [n][cols]`, `scales: [n]`) and the
/// packed rows' length (`ceil(cols / D::BLOCK)` blocks, an invariant of `PackedTernary` in
/// the layout whose block `D` streams);
/// `out` is written through its checked accessors.
///
/// # Safety
/// Needs the CPU features `D` needs; must be inlined into a function enabling them.
#[inline(always)]
pub(crate) unsafe fn ternary_rows<D: TileDot>(m: &TernaryMatmul<'_>, out: &mut OutRows<'_>) {
    debug_assert!(m.fits(out), "output view does not fit the operands");
    let (w, q, scales) = (m.w(), m.q(), m.scales());
    let cols = w.cols();
    debug_assert_eq!(w.layout().block_cols(), D::BLOCK);
    const { assert!(D::BLOCK <= MAX_BLOCK) };
    let full = cols / D::BLOCK;
    let tail_len = cols % D::BLOCK;
    let has_tail = tail_len != 0;
    let rows = out.rows();
    let n = m.n();
    let w_scale = w.scale();
    let mut sums = [0i32; TOKEN_CHUNK];
    let mut tails = [[0i8; MAX_BLOCK]; TOKEN_CHUNK];
    for t0 in (0..n).step_by(TOKEN_CHUNK) {
        let nt_chunk = TOKEN_CHUNK.min(n - t0);
        for i in 0..nt_chunk {
            let qt = &q[(t0 + i) * cols..(t0 + i + 1) * cols];
            sums[i] = if D::CODES_OFFSET {
                qt.iter().map(|&v| i32::from(v)).sum()
            } else {
                0
            };
            tails[i][..tail_len].copy_from_slice(&qt[full * D::BLOCK..]);
        }
        let row_block = if n == 1 { usize::MAX } else { ROW_BLOCK };
        let mut r0 = rows.start;
        while r0 < rows.end {
            let r1 = rows.end.min(r0.saturating_add(row_block));
            let mut i = 0;
            while i < nt_chunk {
                let nt = D::TILE.min(nt_chunk - i);
                let t = t0 + i;
                macro_rules! tile {
                    ($nt:literal) => {{
                        let qp: [*const i8; $nt] =
                            std::array::from_fn(|k| q[(t + k) * cols..].as_ptr());
                        let tp: [*const i8; $nt] = std::array::from_fn(|k| tails[i + k].as_ptr());
                        for j in 0..r1 - r0 {
                            let r = r0
                                + if n == 1 {
                                    two_stream_row(r1 - r0, j)
                                } else {
                                    j
                                };
                            // SAFETY: the row has `full (+1 if tail)` blocks; `t + k < n` and
                            // `q: [n][cols]` (checked by `TernaryMatmul::new`), so every q row
                            // has `full * D::BLOCK` columns before the tail; tails are
                            // `MAX_BLOCK >= D::BLOCK` bytes.
                            let acc = unsafe {
                                D::dot::<$nt>(w.row(r).as_ptr(), full, &qp, &tp, has_tail)
                            };
                            for k in 0..$nt {
                                let y = out.token(t + k);
                                y[r - rows.start] =
                                    finish(acc[k] - sums[i + k], scales[t + k], w_scale);
                            }
                        }
                    }};
                }
                match nt {
                    8 => tile!(8),
                    7 => tile!(7),
                    6 => tile!(6),
                    5 => tile!(5),
                    4 => tile!(4),
                    3 => tile!(3),
                    2 => tile!(2),
                    _ => tile!(1),
                }
                i += nt;
            }
            r0 = r1;
        }
    }
}

/// A dense GEMV over `out`'s rows (one token) in the order of [`two_stream_row`], for kernels
/// that compute two rows in one pass: `pair(a, b)` returns rows `a` and `b` (one from each half
/// of the range), `one(r)` an odd last row. (The x86 dense heads use it; NEON's read one row at
/// a time.)
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn gemv_two_streams(
    out: &mut OutRows<'_>,
    mut pair: impl FnMut(usize, usize) -> (f32, f32),
    mut one: impl FnMut(usize) -> f32,
) {
    let rows = out.rows();
    let (span, half) = (rows.len(), rows.len() / 2);
    for i in 0..half {
        let (ya, yb) = pair(rows.start + i, rows.start + half + i);
        let y = out.token(0);
        y[i] = ya;
        y[half + i] = yb;
    }
    if span % 2 == 1 {
        out.token(0)[span - 1] = one(rows.end - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::two_stream_row;

    #[test]
    fn two_stream_order_visits_every_row_once_alternating_halves() {
        assert_eq!(
            (0..7).map(|j| two_stream_row(7, j)).collect::<Vec<_>>(),
            [0, 3, 1, 4, 2, 5, 6]
        );
        assert_eq!(
            (0..1).map(|j| two_stream_row(1, j)).collect::<Vec<_>>(),
            [0]
        );
        for span in 0..40 {
            let mut seen: Vec<usize> = (0..span).map(|j| two_stream_row(span, j)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..span).collect::<Vec<_>>(), "span {span}");
        }
    }
}
