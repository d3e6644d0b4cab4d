//! Burn backend extension running bitnet-kernels' op families on Burn tensors, and a whole
//! BitNet b1.58 forward pass built on it.
//!
//! Laid out like Burn's `examples/custom-cubecl-kernel`, one file per concern:
//! - `lib.rs`: [`BitNetBackend`] extends [`Backend`] with one fused op per op family of the
//!   kernels: [`BitNetBackend::ternary_linear`] (a BitLinear layer: optional per-row int8
//!   activation quantisation, then a ternary matmul) and [`BitNetBackend::dense_linear`]
//!   (the output head in its stored type: f32, f16 or Q8_0).
//! - `ternary.rs` / `dense.rs`: each family's weights ([`TernaryLinearWeights`] owned,
//!   [`TernaryLinearRef`] / [`DenseLinearRef`] borrowed with the kernels that run them) and
//!   the call into [`bitnet_kernels::Kernels`], using only its public methods.
//! - `ndarray.rs`: the impl for the CPU backend [`NdArray<f32>`](burn::backend::NdArray),
//!   handing the tensor's f32 buffer to the kernels.
//! - `reference.rs`: [`ternary_linear_reference`] and [`dense_linear_reference`], the same
//!   ops from stock Burn ops on any backend, which the tests compare against.
//! - `forward.rs`: [`BurnModel`], the whole transformer on Burn tensors over a loaded
//!   engine model's weights, every linear through the ops above; [`model_logits`] is what
//!   `bitnet-cli logits --backend burn` runs. Tested equal to the engine's `forward_all`.
//!
//! The dependency points one way: this crate depends on bitnet-engine (to borrow a loaded
//! model), never the reverse, so Burn stays off the engine's decode path.
//!
//! Burn is pinned to 0.20.1 (`std` + `ndarray` only), the last release that builds with
//! Rust 1.89. `benches/burn_vs_kernels.rs` measures what the Burn path costs: for a
//! 2560x2560 layer on one thread the extension runs as fast as the bare kernels (it adds
//! only the output and int8 buffers' allocation), while Burn's own dense f32 matmul of the
//! dequantised weight is about 50x (batch 1) and 4-5x (batch 128) slower. So Burn can host
//! the ternary matmuls without losing speed; the binaries still generate with the engine,
//! whose decode loop allocates nothing per token.
//!
//! ```
//! use bitnet_burn::{TernaryLinearWeights, ternary_linear};
//! use bitnet_kernels::{Kernels, TernaryWeights};
//! use burn::backend::NdArray;
//! use burn::tensor::Tensor;
//! use std::sync::Arc;
//!
//! let w = TernaryWeights { rows: 2, cols: 3, values: vec![1, 0, -1, 1, 1, 1], scale: 0.5 };
//! let w = TernaryLinearWeights::new(Arc::new(Kernels::new(1)), &w)?;
//! let x = Tensor::<NdArray, 2>::from_data([[1.0, 2.0, 3.0]], &Default::default());
//! let y = ternary_linear(x, &w, false)?;
//! assert_eq!(y.into_data().to_vec::<f32>().unwrap(), vec![-1.0, 3.0]);
//! # Ok::<(), bitnet_burn::BurnError>(())
//! ```

#![forbid(unsafe_code)]

mod dense;
mod error;
pub mod forward;
mod ndarray;
mod reference;
mod ternary;

pub use dense::{DenseLinearRef, DenseWeights};
pub use error::BurnError;
pub use forward::{BurnModel, model_logits};
pub use reference::{dense_linear_reference, ternary_linear_reference};
pub use ternary::{TernaryLinearRef, TernaryLinearWeights};

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

/// A Burn [`Backend`] that runs BitNet's op families as fused ops on bitnet-kernels.
///
/// One method per op family the kernels have: the ternary matmul of a BitLinear layer (with
/// or without int8 activation quantisation) and the dense output head (f32 / f16 / Q8_0, in
/// the type the weights are stored in). Weights are passed borrowed with the kernels that
/// stream them ([`TernaryLinearRef`], [`DenseLinearRef`]), so a Burn model can run on
/// weights packed and owned elsewhere (an engine model's) without copying them.
pub trait BitNetBackend: Backend {
    /// `x: [n, in_features] -> [n, out_features]`, `y = x . W^T` with the ternary `W`.
    ///
    /// With `quantize_activations` each row of `x` is quantised to int8 first
    /// (`s = 127 / max(max|x|, 1e-5)`, round half to even) and the integer dot products
    /// are divided by `s`, as BitNet b1.58 (W1.58A8) runs; without it `x` is used in f32.
    ///
    /// # Errors
    /// [`BurnError::InputRank`] / [`BurnError::InputFeatures`] when `x` is not
    /// `[n, w.cols()]`, [`BurnError::InputData`] when its data cannot be read as f32.
    fn ternary_linear(
        x: FloatTensor<Self>,
        w: TernaryLinearRef<'_>,
        quantize_activations: bool,
    ) -> Result<FloatTensor<Self>, BurnError>;

    /// `x: [n, in_features] -> [n, out_features]`, `y = x . W^T` with the dense `W` in its
    /// stored type (a Q8_0 matrix quantises `x` per block of 32 first, as ggml does).
    ///
    /// # Errors
    /// As [`BitNetBackend::ternary_linear`].
    fn dense_linear(
        x: FloatTensor<Self>,
        w: DenseLinearRef<'_>,
    ) -> Result<FloatTensor<Self>, BurnError>;
}

/// [`BitNetBackend::ternary_linear`] on Burn's [`Tensor`] type; `w` is a
/// [`TernaryLinearRef`] or a `&`[`TernaryLinearWeights`].
///
/// # Errors
/// As [`BitNetBackend::ternary_linear`].
pub fn ternary_linear<'w, B: BitNetBackend>(
    x: Tensor<B, 2>,
    w: impl Into<TernaryLinearRef<'w>>,
    quantize_activations: bool,
) -> Result<Tensor<B, 2>, BurnError> {
    let y = B::ternary_linear(x.into_primitive().tensor(), w.into(), quantize_activations)?;
    Ok(Tensor::from_primitive(TensorPrimitive::Float(y)))
}

/// [`BitNetBackend::dense_linear`] on Burn's [`Tensor`] type.
///
/// # Errors
/// As [`BitNetBackend::dense_linear`].
pub fn dense_linear<B: BitNetBackend>(
    x: Tensor<B, 2>,
    w: DenseLinearRef<'_>,
) -> Result<Tensor<B, 2>, BurnError> {
    let y = B::dense_linear(x.into_primitive().tensor(), w)?;
    Ok(Tensor::from_primitive(TensorPrimitive::Float(y)))
}

/// A BitNet b1.58 linear layer (no bias) for Burn models: ternary weights, int8
/// activations by default.
#[derive(Debug, Clone)]
pub struct BitLinear {
    weights: TernaryLinearWeights,
    quantize_activations: bool,
}

impl BitLinear {
    /// A W1.58A8 layer (activations quantised to int8, as BitNet b1.58 is trained).
    pub fn new(weights: TernaryLinearWeights) -> Self {
        Self {
            weights,
            quantize_activations: true,
        }
    }

    /// Turns activation quantisation on or off (off: f32 activations, W1.58A32).
    pub fn with_quantized_activations(mut self, on: bool) -> Self {
        self.quantize_activations = on;
        self
    }

    /// The layer's weights.
    pub fn weights(&self) -> &TernaryLinearWeights {
        &self.weights
    }

    /// `x: [n, in_features] -> [n, out_features]`.
    ///
    /// # Errors
    /// As [`BitNetBackend::ternary_linear`].
    pub fn forward<B: BitNetBackend>(&self, x: Tensor<B, 2>) -> Result<Tensor<B, 2>, BurnError> {
        ternary_linear(x, &self.weights, self.quantize_activations)
    }
}
