//! The ternary-matmul op family: [`TernaryLinearWeights`] (a ternary matrix packed once for
//! the kernels that will run it, owned) and [`TernaryLinearRef`] (packed weights and their
//! kernels, borrowed, e.g. from a loaded engine model), plus the backend-independent call
//! into those kernels, with and without int8 activation quantisation.

use crate::error::BurnError;
use bitnet_kernels::{Kernels, PackedTernary, TernaryWeights};
use std::sync::Arc;

/// Checks the invariants [`Kernels::pack`] asserts, so that bad weights give an error
/// naming the problem instead of a panic inside the kernels.
pub(crate) fn validate(w: &TernaryWeights) -> Result<(), BurnError> {
    let expected = w.rows.checked_mul(w.cols);
    if expected != Some(w.values.len()) {
        return Err(BurnError::WeightLength {
            rows: w.rows,
            cols: w.cols,
            got: w.values.len(),
        });
    }
    if let Some((index, &value)) = w
        .values
        .iter()
        .enumerate()
        .find(|&(_, v)| !(-1..=1).contains(v))
    {
        return Err(BurnError::NotTernary {
            value,
            index,
            row: index / w.cols,
            col: index % w.cols,
        });
    }
    if !w.scale.is_finite() {
        return Err(BurnError::NonFiniteScale(w.scale));
    }
    Ok(())
}

/// Checks that `shape` is `[n, cols]` and returns `(n, n * rows)`, the input row count and
/// the output length, without letting a shape overflow the output allocation.
pub(crate) fn check_input(
    op: &'static str,
    shape: &[usize],
    rows: usize,
    cols: usize,
) -> Result<(usize, usize), BurnError> {
    let &[n, got] = shape else {
        return Err(BurnError::InputRank {
            op,
            shape: shape.to_vec(),
        });
    };
    if got != cols {
        return Err(BurnError::InputFeatures {
            op,
            expected: cols,
            got,
            shape: shape.to_vec(),
        });
    }
    let len = n
        .checked_mul(rows)
        .ok_or(BurnError::OutputTooLarge { op, n, rows })?;
    Ok((n, len))
}

/// A ternary weight matrix `[out_features][in_features]` packed for one [`Kernels`]
/// instance, which it keeps alive.
///
/// The packed layout belongs to the ops that packed it, so the weights carry their
/// [`Kernels`] (shared through an [`Arc`], so one thread pool serves every layer) instead of
/// taking one per call: a weight can never meet kernels it was not packed for.
#[derive(Debug, Clone)]
pub struct TernaryLinearWeights {
    kernels: Arc<Kernels>,
    packed: PackedTernary,
}

impl TernaryLinearWeights {
    /// Validates `w` and packs it once (at load time) for `kernels`.
    ///
    /// # Errors
    /// [`BurnError::WeightLength`], [`BurnError::NotTernary`] or
    /// [`BurnError::NonFiniteScale`] when `w` breaks its invariants.
    pub fn new(kernels: Arc<Kernels>, w: &TernaryWeights) -> Result<Self, BurnError> {
        validate(w)?;
        let packed = kernels.pack(w);
        Ok(Self { kernels, packed })
    }

    /// Output features (weight rows).
    pub fn rows(&self) -> usize {
        self.packed.rows()
    }

    /// Input features (weight columns).
    pub fn cols(&self) -> usize {
        self.packed.cols()
    }

    /// Per-tensor weight scale.
    pub fn scale(&self) -> f32 {
        self.packed.scale()
    }

    /// The kernels these weights were packed for.
    pub fn kernels(&self) -> &Arc<Kernels> {
        &self.kernels
    }

    /// The packed weights.
    pub fn packed(&self) -> &PackedTernary {
        &self.packed
    }

    /// The weights as a [`TernaryLinearRef`], the form the ops take.
    pub fn linear_ref(&self) -> TernaryLinearRef<'_> {
        TernaryLinearRef {
            kernels: &self.kernels,
            packed: &self.packed,
        }
    }
}

impl<'a> From<&'a TernaryLinearWeights> for TernaryLinearRef<'a> {
    fn from(w: &'a TernaryLinearWeights) -> Self {
        w.linear_ref()
    }
}

/// Packed ternary weights and the [`Kernels`] that stream them, borrowed: what
/// [`crate::BitNetBackend::ternary_linear`] runs.
///
/// Borrowing lets a Burn model run on weights someone else owns without a copy, such as an
/// engine [`Model`](bitnet_engine::Model)'s, which are packed for (and run on) that model's
/// kernels and thread pool. The constructor checks that the kernels stream the weights'
/// packed layout, so a mismatch is an error here rather than a panic inside a kernel.
#[derive(Debug, Clone, Copy)]
pub struct TernaryLinearRef<'a> {
    kernels: &'a Kernels,
    packed: &'a PackedTernary,
}

impl<'a> TernaryLinearRef<'a> {
    /// Pairs `packed` with the `kernels` that will run it.
    ///
    /// # Errors
    /// [`BurnError::LayoutMismatch`] when `kernels` do not stream `packed`'s layout.
    pub fn new(kernels: &'a Kernels, packed: &'a PackedTernary) -> Result<Self, BurnError> {
        // The kernels' layout, read off an empty matrix packed by them (no allocation).
        let empty = TernaryWeights {
            rows: 0,
            cols: 0,
            values: Vec::new(),
            scale: 1.0,
        };
        let expected = kernels.pack(&empty).layout_id();
        if packed.layout_id() != expected {
            return Err(BurnError::LayoutMismatch {
                layout: packed.layout_id(),
                kernels: kernels.backend().id(),
                expected,
            });
        }
        Ok(Self { kernels, packed })
    }

    /// Output features (weight rows).
    pub fn rows(&self) -> usize {
        self.packed.rows()
    }

    /// Input features (weight columns).
    pub fn cols(&self) -> usize {
        self.packed.cols()
    }

    /// The kernels that run these weights.
    pub fn kernels(&self) -> &'a Kernels {
        self.kernels
    }

    /// The packed weights.
    pub fn packed(&self) -> &'a PackedTernary {
        self.packed
    }

    /// `y[t][r] = sum_c W[r][c] * x[t][c]` for `x: [n][cols]`, `y: [n][rows]`, straight on
    /// the kernels; with `quantize_activations` each row of `x` is first quantised to int8
    /// (W1.58A8, as BitNet b1.58 runs), otherwise it is used in f32.
    ///
    /// The lengths are checked by the callers in this crate ([`check_input`]).
    pub(crate) fn run(&self, x: &[f32], n: usize, quantize_activations: bool, y: &mut [f32]) {
        debug_assert_eq!(x.len(), n * self.cols());
        debug_assert_eq!(y.len(), n * self.rows());
        if n == 0 {
            return;
        }
        if quantize_activations {
            let mut q = vec![0i8; x.len()];
            let mut scales = vec![0f32; n];
            self.kernels.quantize_rows(x, n, &mut q, &mut scales);
            self.kernels.ternary_matmul(self.packed, &q, &scales, n, y);
        } else {
            self.kernels.ternary_matmul_f32(self.packed, x, n, y);
        }
    }
}
