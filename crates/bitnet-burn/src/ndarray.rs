//! [`BitNetBackend`] for Burn's CPU backend [`NdArray<f32>`]: the input's f32 buffer goes
//! to bitnet-kernels as a slice, and the kernels' output becomes the result tensor, both
//! without copying in the common case.
//!
//! `ndarray` is a direct dependency only to build the output the way burn-ndarray's own ops
//! do (an owned `ArcArray`); its version must stay the one burn-ndarray uses.

use crate::BitNetBackend;
use crate::error::BurnError;
use crate::weights::{TernaryLinearWeights, check_input};
use ::ndarray::{ArrayD, IxDyn};
use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorMetadata, TensorPrimitive};

const OP: &str = "ternary_linear";

impl BitNetBackend for NdArray<f32> {
    fn ternary_linear(
        x: FloatTensor<Self>,
        w: &TernaryLinearWeights,
        quantize_activations: bool,
    ) -> Result<FloatTensor<Self>, BurnError> {
        let shape = x.shape().dims;
        let (n, out_len) = check_input(OP, &shape, w.rows(), w.cols())?;
        let mut y = vec![0f32; out_len];
        with_f32_slice(x, |xs| w.run(xs, n, quantize_activations, &mut y))?;
        // Wrap the Vec as an owned array, as burn-ndarray's own ops return theirs. (Going
        // through `TensorData` would give "borrowed" storage, which the next op copies.)
        let y = ArrayD::from_shape_vec(IxDyn(&[n, w.rows()]), y)
            .expect("y has n * rows elements by construction");
        Ok(NdArrayTensor::from(y.into_shared()))
    }
}

/// Calls `f` with `x`'s elements as one contiguous row-major f32 slice.
///
/// An f32 tensor in standard layout (the usual case: anything fresh from an op or
/// `from_data`) is read in place through its ndarray view. Strided views (e.g. a transpose)
/// are gathered into a row-major copy; other float dtypes (after `Tensor::cast`) are
/// converted to f32 through Burn's `TensorData`.
fn with_f32_slice<R>(x: NdArrayTensor, f: impl FnOnce(&[f32]) -> R) -> Result<R, BurnError> {
    if let NdArrayTensor::F32(storage) = &x {
        let view = storage.view();
        return Ok(match view.as_slice() {
            Some(xs) => f(xs),
            None => f(&view.iter().copied().collect::<Vec<f32>>()),
        });
    }
    let data = Tensor::<NdArray<f32>, 2>::from_primitive(TensorPrimitive::Float(x))
        .try_into_data()
        .map_err(|e| input_error(&e))?
        .convert::<f32>();
    let xs = data.as_slice::<f32>().map_err(|e| input_error(&e))?;
    Ok(f(xs))
}

fn input_error(e: &dyn std::fmt::Debug) -> BurnError {
    BurnError::InputData {
        op: OP,
        reason: format!("{e:?}"),
    }
}
