//! [`DenseOps`]: dense weights (the output head) times f32 activations, and their checked
//! operands.

use super::KernelId;
use crate::error::{ShapeError, check_len, product};
use crate::kquant::{KBlock, KQuantMatrix, Q8KActivations};
use crate::packed::OutRows;
use crate::q8::{Q8Activations, Q8Matrix};
use bitnet_formats::{BlockQ4K, BlockQ6K};
use half::{bf16, f16};

/// Dense matmuls on a row range of the output: the output head, the other large weight
/// stream of every decoded token (see [`crate::q8`] for why it comes in Q8_0 too).
///
/// The float paths may sum in any order (tests bound them against f64; bf16 follows f32's
/// order exactly); the Q8_0 path's per-block integer dot products are exact.
pub trait DenseOps {
    /// `y[t][r] = sum_c f32(w[r][c]) * x[t][c]` for f16 weights. Returns the id of the code
    /// that ran.
    fn f16_rows(&self, m: &DenseMatmul<'_, f16>, out: &mut OutRows<'_>) -> KernelId;

    /// `y[t][r] = sum_c f32(w[r][c]) * x[t][c]` for bf16 weights (a bf16 checkpoint's head
    /// kept as it is). Widening bf16 is exact, and every backend sums in the order of its own
    /// [`Self::f32_rows`]: the result equals `f32_rows` on the widened weights bit for bit.
    /// Returns the id of the code that ran.
    fn bf16_rows(&self, m: &DenseMatmul<'_, bf16>, out: &mut OutRows<'_>) -> KernelId;

    /// `y[t][r] = sum_c w[r][c] * x[t][c]` for f32 weights. Returns the id of the code that
    /// ran.
    fn f32_rows(&self, m: &DenseMatmul<'_, f32>, out: &mut OutRows<'_>) -> KernelId;

    /// `y[t][r] = sum_b isum(w[r][b], x[t][b]) * dw[r][b] * dx[t][b]` (Q8_0, see
    /// [`crate::q8`]), each block's integer dot exact. Returns the id of the code that ran.
    fn q8_rows(&self, m: &Q8Matmul<'_>, out: &mut OutRows<'_>) -> KernelId;

    /// `y[t][r] = sum_sb isum(w[r][sb], x[t][sb]) * (dw[r][sb] * dx[t][sb])` (Q6_K weights,
    /// Q8_K activations, see [`crate::q6k`]), each super-block's integer dot exact and the
    /// super-blocks summed in order: every backend equals the scalar one bit for bit.
    /// Returns the id of the code that ran.
    fn q6k_rows(&self, m: &Q6KMatmul<'_>, out: &mut OutRows<'_>) -> KernelId;

    /// `y[t][r] = sum_sb (isum * (dw * dx) - msum * (dmin * dx))` (Q4_K weights, Q8_K
    /// activations, see [`crate::q4k`]), each super-block's integer sums exact and the
    /// super-blocks summed in order: every backend equals the scalar one bit for bit.
    /// Returns the id of the code that ran.
    fn q4k_rows(&self, m: &Q4KMatmul<'_>, out: &mut OutRows<'_>) -> KernelId;
}

/// Operands of a dense matmul, checked against each other once: weights `w: [rows][cols]`
/// row-major, activations `x: [n][cols]`.
#[derive(Debug, Clone, Copy)]
pub struct DenseMatmul<'a, T> {
    w: &'a [T],
    rows: usize,
    cols: usize,
    x: &'a [f32],
    n: usize,
}

impl<'a, T> DenseMatmul<'a, T> {
    /// Checks `w: [rows][cols]` and `x: [n][cols]`.
    ///
    /// # Errors
    /// [`ShapeError`] naming the operand whose length does not fit.
    pub fn new(
        w: &'a [T],
        rows: usize,
        cols: usize,
        x: &'a [f32],
        n: usize,
    ) -> Result<Self, ShapeError> {
        const OP: &str = "dense_matmul";
        let ew = product(OP, "weights", "rows * cols", rows, cols, w.len())?;
        check_len(OP, "weights", "rows * cols", ew, w.len())?;
        let ex = product(OP, "activations", "n * cols", n, cols, x.len())?;
        check_len(OP, "activations", "n * cols", ex, x.len())?;
        Ok(Self {
            w,
            rows,
            cols,
            x,
            n,
        })
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Tokens.
    pub fn n(&self) -> usize {
        self.n
    }

    /// All weights, `[rows][cols]`.
    pub fn w(&self) -> &'a [T] {
        self.w
    }

    /// All activations, `[n][cols]`.
    pub fn x(&self) -> &'a [f32] {
        self.x
    }

    /// Weight row `r` (`cols` values).
    ///
    /// # Panics
    /// If `r >= rows`.
    #[inline]
    pub fn w_row(&self, r: usize) -> &'a [T] {
        &self.w[r * self.cols..(r + 1) * self.cols]
    }

    /// Activation row of token `t` (`cols` values).
    ///
    /// # Panics
    /// If `t >= n`.
    #[inline]
    pub fn x_row(&self, t: usize) -> &'a [f32] {
        &self.x[t * self.cols..(t + 1) * self.cols]
    }

    /// Whether `out` is the output these operands produce (`[n][rows]`).
    pub fn fits(&self, out: &OutRows<'_>) -> bool {
        out.n() == self.n && out.stride() == self.rows
    }
}

/// Operands of a Q8_0 matmul, checked against each other once: activations quantised for
/// the weights' column count.
#[derive(Debug, Clone, Copy)]
pub struct Q8Matmul<'a> {
    w: &'a Q8Matrix,
    x: &'a Q8Activations,
}

impl<'a> Q8Matmul<'a> {
    /// Checks that `x` holds rows of `w.cols()` values.
    ///
    /// # Errors
    /// [`ShapeError`] when the column counts differ.
    pub fn new(w: &'a Q8Matrix, x: &'a Q8Activations) -> Result<Self, ShapeError> {
        check_len(
            "q8_matmul",
            "activation columns",
            "weight columns",
            w.cols(),
            x.cols(),
        )?;
        Ok(Self { w, x })
    }

    /// The weights.
    pub fn w(&self) -> &'a Q8Matrix {
        self.w
    }

    /// The quantised activations (`n = x.n()` rows).
    pub fn x(&self) -> &'a Q8Activations {
        self.x
    }

    /// Tokens.
    pub fn n(&self) -> usize {
        self.x.n()
    }

    /// Whether `out` is the output these operands produce (`[n][w.rows()]`).
    pub fn fits(&self, out: &OutRows<'_>) -> bool {
        out.n() == self.n() && out.stride() == self.w.rows()
    }
}

/// Operands of a K-quant matmul (blocks of format `B`), checked against each other once:
/// activations quantised (Q8_K) for the weights' column count.
#[derive(Debug)]
pub struct KQuantMatmul<'a, B: KBlock> {
    w: &'a KQuantMatrix<B>,
    x: &'a Q8KActivations,
}

// Not derived: a derive would ask `B: Clone`, but only references are copied.
impl<B: KBlock> Clone for KQuantMatmul<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B: KBlock> Copy for KQuantMatmul<'_, B> {}

/// Operands of a Q6_K matmul.
pub type Q6KMatmul<'a> = KQuantMatmul<'a, BlockQ6K>;

/// Operands of a Q4_K matmul.
pub type Q4KMatmul<'a> = KQuantMatmul<'a, BlockQ4K>;

impl<'a, B: KBlock> KQuantMatmul<'a, B> {
    /// Checks that `x` holds rows of `w.cols()` values.
    ///
    /// # Errors
    /// [`ShapeError`] when the column counts differ.
    pub fn new(w: &'a KQuantMatrix<B>, x: &'a Q8KActivations) -> Result<Self, ShapeError> {
        check_len(
            "kquant_matmul",
            "activation columns",
            "weight columns",
            w.cols(),
            x.cols(),
        )?;
        Ok(Self { w, x })
    }

    /// The weights.
    pub fn w(&self) -> &'a KQuantMatrix<B> {
        self.w
    }

    /// The quantised activations (`n = x.n()` rows).
    pub fn x(&self) -> &'a Q8KActivations {
        self.x
    }

    /// Tokens.
    pub fn n(&self) -> usize {
        self.x.n()
    }

    /// Whether `out` is the output these operands produce (`[n][w.rows()]`).
    pub fn fits(&self, out: &OutRows<'_>) -> bool {
        out.n() == self.n() && out.stride() == self.w.rows()
    }
}
