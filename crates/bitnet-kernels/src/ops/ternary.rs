//! [`TernaryMatmulOps`]: ternary weights times activations, and its checked operands.

use super::KernelId;
use crate::error::{ShapeError, check_len, product};
use crate::packed::{OutRows, PackedLayout, PackedTernary};

/// Ternary matmuls on a row range of the output (the BitLinear hot path).
///
/// Methods work on the rows of an [`OutRows`] view so that [`crate::Kernels`] can split
/// rows across its thread pool; they never allocate and never spawn.
///
/// Exactness contract: for the same packed weights and int8 activations every backend
/// returns bit-identical results to the scalar one. Integer dot products are exact (i32),
/// and the one float step is the shared [`crate::act_quant::finish`].
pub trait TernaryMatmulOps {
    /// The packed layout this backend streams ([`crate::Kernels::pack`] packs in it).
    fn layout(&self) -> PackedLayout;

    /// For every token `t < m.n()` and row `r` of `out`:
    /// `y[t][r] = finish(sum_c values[r][c] * q[t][c], scales[t], w.scale())`.
    /// Returns the id of the code that ran.
    fn ternary_rows(&self, m: &TernaryMatmul<'_>, out: &mut OutRows<'_>) -> KernelId;

    /// Without activation quantisation (cross-checks):
    /// `y[t][r] = (sum_c values[r][c] * x[t][c]) * w.scale()` in f32, any summation order.
    /// Returns the id of the code that ran.
    fn ternary_f32_rows(&self, m: &TernaryF32Matmul<'_>, out: &mut OutRows<'_>) -> KernelId;
}

/// Operands of a ternary matmul on int8 activations, checked against each other once:
/// `q: [n][w.cols()]`, `scales: [n]`.
#[derive(Debug, Clone, Copy)]
pub struct TernaryMatmul<'a> {
    w: &'a PackedTernary,
    q: &'a [i8],
    scales: &'a [f32],
}

impl<'a> TernaryMatmul<'a> {
    /// Checks `q: [n][w.cols()]` and `scales: [n]`.
    ///
    /// # Errors
    /// [`ShapeError`] naming the operand whose length does not fit.
    pub fn new(
        w: &'a PackedTernary,
        q: &'a [i8],
        scales: &'a [f32],
        n: usize,
    ) -> Result<Self, ShapeError> {
        const OP: &str = "ternary_matmul";
        check_len(OP, "scales", "n", n, scales.len())?;
        let expected = product(OP, "activations", "n * cols", n, w.cols(), q.len())?;
        check_len(OP, "activations", "n * cols", expected, q.len())?;
        Ok(Self { w, q, scales })
    }

    /// The packed weights.
    pub fn w(&self) -> &'a PackedTernary {
        self.w
    }

    /// Tokens (`n`).
    pub fn n(&self) -> usize {
        self.scales.len()
    }

    /// All activations, `[n][cols]`.
    pub fn q(&self) -> &'a [i8] {
        self.q
    }

    /// Activation row of token `t` (`cols` values).
    ///
    /// # Panics
    /// If `t >= n`.
    #[inline]
    pub fn q_row(&self, t: usize) -> &'a [i8] {
        let cols = self.w.cols();
        &self.q[t * cols..(t + 1) * cols]
    }

    /// Per-token activation scales, `[n]`.
    pub fn scales(&self) -> &'a [f32] {
        self.scales
    }

    /// Whether `out` is the output these operands produce (`[n][w.rows()]`).
    pub fn fits(&self, out: &OutRows<'_>) -> bool {
        out.n() == self.n() && out.stride() == self.w.rows()
    }
}

/// Operands of a ternary matmul on f32 activations, checked against each other once:
/// `x: [n][w.cols()]`.
#[derive(Debug, Clone, Copy)]
pub struct TernaryF32Matmul<'a> {
    w: &'a PackedTernary,
    x: &'a [f32],
    n: usize,
}

impl<'a> TernaryF32Matmul<'a> {
    /// Checks `x: [n][w.cols()]`.
    ///
    /// # Errors
    /// [`ShapeError`] when `x.len() != n * w.cols()`.
    pub fn new(w: &'a PackedTernary, x: &'a [f32], n: usize) -> Result<Self, ShapeError> {
        const OP: &str = "ternary_matmul_f32";
        let expected = product(OP, "activations", "n * cols", n, w.cols(), x.len())?;
        check_len(OP, "activations", "n * cols", expected, x.len())?;
        Ok(Self { w, x, n })
    }

    /// The packed weights.
    pub fn w(&self) -> &'a PackedTernary {
        self.w
    }

    /// Tokens (`n`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Activation row of token `t` (`cols` values).
    ///
    /// # Panics
    /// If `t >= n`.
    #[inline]
    pub fn x_row(&self, t: usize) -> &'a [f32] {
        let cols = self.w.cols();
        &self.x[t * cols..(t + 1) * cols]
    }

    /// Whether `out` is the output these operands produce (`[n][w.rows()]`).
    pub fn fits(&self, out: &OutRows<'_>) -> bool {
        out.n() == self.n && out.stride() == self.w.rows()
    }
}
