//! The dense-head op family: [`DenseWeights`] (a dense `[rows][cols]` matrix in the storage
//! an engine holds its output head in: f32, f16, bf16, Q8_0, Q6_K or Q4_K, borrowed) and
//! [`DenseLinearRef`]
//! (those weights and the [`Kernels`] that run them).
//!
//! The head is the one large non-ternary matrix of a BitNet model (the tied F16 embedding of
//! the 2B4T shape is 0.66 GB), so it is borrowed in its stored type and streamed by the
//! kernels' f16 / bf16 / q8_0 / K-quant matmuls, never widened to an f32 copy.

use crate::error::BurnError;
use bitnet_kernels::{
    KBlock, KQuantMatrix, Kernels, Q4KMatrix, Q6KMatrix, Q8Activations, Q8KActivations, Q8Matrix,
};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

/// A dense `[rows][cols]` matrix, borrowed in its storage type.
#[derive(Debug, Clone, Copy)]
pub enum DenseWeights<'a> {
    /// Row-major f32.
    F32 {
        /// Output features.
        rows: usize,
        /// Input features.
        cols: usize,
        /// `rows * cols` values.
        data: &'a [f32],
    },
    /// Row-major f16 (BitNet GGUFs store the embedding / tied head so).
    F16 {
        /// Output features.
        rows: usize,
        /// Input features.
        cols: usize,
        /// `rows * cols` values.
        data: &'a [f16],
    },
    /// Row-major bf16 (a bf16 checkpoint's head, kept as it is).
    BF16 {
        /// Output features.
        rows: usize,
        /// Input features.
        cols: usize,
        /// `rows * cols` values.
        data: &'a [bf16],
    },
    /// ggml-style Q8_0 blocks (the engine's `--head-type q8_0`); carries its own shape.
    Q8_0(&'a Q8Matrix),
    /// ggml's Q6_K blocks (a Q6_K-head file, or `--head-type q6_k`); carries its own shape.
    Q6K(&'a Q6KMatrix),
    /// ggml's Q4_K blocks (a Q4_K-head file, or `--head-type q4_k`); carries its own shape.
    Q4K(&'a Q4KMatrix),
}

impl DenseWeights<'_> {
    /// Output features.
    pub fn rows(&self) -> usize {
        match *self {
            Self::F32 { rows, .. } | Self::F16 { rows, .. } | Self::BF16 { rows, .. } => rows,
            Self::Q8_0(m) => m.rows(),
            Self::Q6K(m) => m.rows(),
            Self::Q4K(m) => m.rows(),
        }
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        match *self {
            Self::F32 { cols, .. } | Self::F16 { cols, .. } | Self::BF16 { cols, .. } => cols,
            Self::Q8_0(m) => m.cols(),
            Self::Q6K(m) => m.cols(),
            Self::Q4K(m) => m.cols(),
        }
    }

    /// The storage type's name (`F32`, `F16`, `BF16`, `Q8_0`, `Q6_K`, `Q4_K`), for errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::F32 { .. } => "F32",
            Self::F16 { .. } => "F16",
            Self::BF16 { .. } => "BF16",
            Self::Q8_0(_) => "Q8_0",
            Self::Q6K(_) => "Q6_K",
            Self::Q4K(_) => "Q4_K",
        }
    }

    /// Checks that the data holds `rows * cols` values (a [`Q8Matrix`] or K-quant matrix is
    /// consistent by construction), so that a wrong length is an error rather than a kernel panic.
    pub(crate) fn validate(&self) -> Result<(), BurnError> {
        let (rows, cols, got) = match *self {
            Self::F32 { rows, cols, data } => (rows, cols, data.len()),
            Self::F16 { rows, cols, data } => (rows, cols, data.len()),
            Self::BF16 { rows, cols, data } => (rows, cols, data.len()),
            Self::Q8_0(_) | Self::Q6K(_) | Self::Q4K(_) => return Ok(()),
        };
        if rows.checked_mul(cols) != Some(got) {
            return Err(BurnError::DenseLength {
                dtype: self.type_name(),
                rows,
                cols,
                got,
            });
        }
        Ok(())
    }

    /// Row `r` widened to f32 into `out` (`cols` values), as the kernels read it.
    pub(crate) fn row_into(&self, r: usize, out: &mut [f32]) {
        match *self {
            Self::F32 { cols, data, .. } => out.copy_from_slice(&data[r * cols..(r + 1) * cols]),
            Self::F16 { cols, data, .. } => {
                data[r * cols..(r + 1) * cols].convert_to_f32_slice(out)
            }
            Self::BF16 { cols, data, .. } => {
                data[r * cols..(r + 1) * cols].convert_to_f32_slice(out)
            }
            Self::Q8_0(m) => m.row_into(r, out),
            Self::Q6K(m) => m.row_into(r, out),
            Self::Q4K(m) => m.row_into(r, out),
        }
    }
}

/// [`DenseWeights`] and the [`Kernels`] that run them: what
/// [`crate::BitNetBackend::dense_linear`] takes.
#[derive(Debug, Clone, Copy)]
pub struct DenseLinearRef<'a> {
    kernels: &'a Kernels,
    weights: DenseWeights<'a>,
}

impl<'a> DenseLinearRef<'a> {
    /// Pairs `weights` with the `kernels` that will run them.
    ///
    /// # Errors
    /// [`BurnError::DenseLength`] when an f32 / f16 / bf16 matrix does not hold `rows * cols` values.
    pub fn new(kernels: &'a Kernels, weights: DenseWeights<'a>) -> Result<Self, BurnError> {
        weights.validate()?;
        Ok(Self { kernels, weights })
    }

    /// The weights.
    pub fn weights(&self) -> DenseWeights<'a> {
        self.weights
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.weights.rows()
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.weights.cols()
    }

    /// `y[t][r] = sum_c W[r][c] * x[t][c]` for `x: [n][cols]`, `y: [n][rows]` on the
    /// kernels' dense matmul for the storage type. A Q8_0 matrix quantises `x` per block of
    /// 32 first, a Q6_K or Q4_K one per block of 256 (into a buffer allocated here: this is
    /// not the engine's decode path).
    ///
    /// The lengths are checked by the callers in this crate.
    pub(crate) fn run(&self, x: &[f32], n: usize, y: &mut [f32]) {
        debug_assert_eq!(x.len(), n * self.cols());
        debug_assert_eq!(y.len(), n * self.rows());
        if n == 0 {
            return;
        }
        let k = self.kernels;
        match self.weights {
            DenseWeights::F32 { rows, cols, data } => k.f32_matmul(data, rows, cols, x, n, y),
            DenseWeights::F16 { rows, cols, data } => k.f16_matmul(data, rows, cols, x, n, y),
            DenseWeights::BF16 { rows, cols, data } => k.bf16_matmul(data, rows, cols, x, n, y),
            DenseWeights::Q8_0(m) => {
                let mut act = Q8Activations::new(n, m.cols());
                k.q8_matmul(m, x, n, &mut act, y);
            }
            DenseWeights::Q6K(m) => kquant(k, m, x, n, y),
            DenseWeights::Q4K(m) => kquant(k, m, x, n, y),
        }
    }
}

/// A K-quant matmul with its Q8_K activations allocated for the call.
fn kquant<B: KBlock>(k: &Kernels, m: &KQuantMatrix<B>, x: &[f32], n: usize, y: &mut [f32]) {
    let mut act = Q8KActivations::new(n, m.cols());
    k.kquant_matmul(m, x, n, &mut act, y);
}
