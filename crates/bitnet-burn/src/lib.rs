//! Burn backend extension running bitnet-kernels' ternary ops on Burn tensors.
//!
//! Laid out like Burn's `examples/custom-cubecl-kernel`: [`BitNetBackend`] extends
//! [`Backend`] with one fused op, [`BitNetBackend::ternary_linear`] (a BitLinear layer:
//! optional per-row int8 activation quantisation, then a ternary matmul); `ndarray.rs`
//! implements it for the CPU backend [`NdArray<f32>`](burn::backend::NdArray) by handing
//! the tensor's f32 buffer to [`bitnet_kernels::Kernels`]; `reference.rs` holds
//! [`ternary_linear_reference`], the same layer from stock Burn ops on any backend, which
//! the tests compare against.
//!
//! Burn is pinned to 0.20.1 (`std` + `ndarray` only), the last release that builds with
//! Rust 1.89. The binaries call the kernels directly; this crate exists so that a Burn
//! model can use them. `benches/burn_vs_kernels.rs` measures what the Burn path costs: for
//! a 2560x2560 layer on one thread the extension runs as fast as the bare kernels (it adds
//! only the output and int8 buffers' allocation), while Burn's own dense f32 matmul of the
//! dequantised weight is about 50x (batch 1) and 4-5x (batch 128) slower. So Burn can host
//! the ternary matmuls without losing speed, but it buys the binaries nothing: they stay on
//! the kernels directly.
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

mod error;
mod ndarray;
mod reference;
mod weights;

pub use error::BurnError;
pub use reference::ternary_linear_reference;
pub use weights::TernaryLinearWeights;

use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

/// A Burn [`Backend`] that can run BitNet's ternary linear layer as one fused op.
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
        w: &TernaryLinearWeights,
        quantize_activations: bool,
    ) -> Result<FloatTensor<Self>, BurnError>;
}

/// [`BitNetBackend::ternary_linear`] on Burn's [`Tensor`] type.
///
/// # Errors
/// As [`BitNetBackend::ternary_linear`].
pub fn ternary_linear<B: BitNetBackend>(
    x: Tensor<B, 2>,
    w: &TernaryLinearWeights,
    quantize_activations: bool,
) -> Result<Tensor<B, 2>, BurnError> {
    let y = B::ternary_linear(x.into_primitive().tensor(), w, quantize_activations)?;
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
