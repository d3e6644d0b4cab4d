//! [`BitNetBackend`] for Burn's CPU backend [`NdArray<f32>`]: the input's f32 buffer goes
//! to bitnet-kernels as a slice, and the kernels' output becomes the result tensor, both
//! without copying in the common case. Both op families (ternary matmul, dense head) share
//! the plumbing here; what each runs lives in `ternary.rs` / `dense.rs`.
//!
//! `ndarray` is a direct dependency only to build the output the way burn-ndarray's own ops
//! do (an owned `ArcArray`); its version must stay the one burn-ndarray uses.

use crate::BitNetBackend;
use crate::dense::DenseLinearRef;
use crate::error::BurnError;
use crate::ternary::{TernaryLinearRef, check_input};
use ::ndarray::{ArrayD, IxDyn};
use burn::backend::NdArray;
use burn::backend::ndarray::NdArrayTensor;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorMetadata, TensorPrimitive};

const TERNARY: &str = "ternary_linear";
const DENSE: &str = "dense_linear";

impl BitNetBackend for NdArray<f32> {
    fn ternary_linear(
        x: FloatTensor<Self>,
        w: TernaryLinearRef<'_>,
        quantize_activations: bool,
    ) -> Result<FloatTensor<Self>, BurnError> {
        let shape = x.shape().dims;
        let (n, out_len) = check_input(TERNARY, &shape, w.rows(), w.cols())?;
        let mut y = vec![0f32; out_len];
        with_f32_slice(TERNARY, x, |xs| w.run(xs, n, quantize_activations, &mut y))?;
        Ok(owned(y, n, w.rows()))
    }

    fn dense_linear(
        x: FloatTensor<Self>,
        w: DenseLinearRef<'_>,
    ) -> Result<FloatTensor<Self>, BurnError> {
        let shape = x.shape().dims;
        let (n, out_len) = check_input(DENSE, &shape, w.rows(), w.cols())?;
        let mut y = vec![0f32; out_len];
        with_f32_slice(DENSE, x, |xs| w.run(xs, n, &mut y))?;
        Ok(owned(y, n, w.rows()))
    }
}

/// Wraps `y: [n][rows]` as an owned array, as burn-ndarray's own ops return theirs. (Going
/// through `TensorData` would give "borrowed" storage, which the next op copies.)
fn owned(y: Vec<f32>, n: usize, rows: usize) -> NdArrayTensor {
    let y = ArrayD::from_shape_vec(IxDyn(&[n, rows]), y)
        .expect("y has n * rows elements by construction");
    NdArrayTensor::from(y.into_shared())
}

/// Calls `f` with `x`'s elements as one contiguous row-major f32 slice.
///
/// An f32 tensor in standard layout (the usual case: anything fresh from an op or
/// `from_data`) is read in place through its ndarray view. Strided views (e.g. a transpose)
/// are gathered into a row-major copy; other float dtypes (after `Tensor::cast`) are
/// converted to f32 through Burn's `TensorData`.
fn with_f32_slice<R>(
    op: &'static str,
    x: NdArrayTensor,
    f: impl FnOnce(&[f32]) -> R,
) -> Result<R, BurnError> {
    if let NdArrayTensor::F32(storage) = &x {
        let view = storage.view();
        return Ok(match view.as_slice() {
            Some(xs) => f(xs),
            None => f(&view.iter().copied().collect::<Vec<f32>>()),
        });
    }
    let input_error = |e: &dyn std::fmt::Debug| BurnError::InputData {
        op,
        reason: format!("{e:?}"),
    };
    let data = Tensor::<NdArray<f32>, 2>::from_primitive(TensorPrimitive::Float(x))
        .try_into_data()
        .map_err(|e| input_error(&e))?
        .convert::<f32>();
    let xs = data.as_slice::<f32>().map_err(|e| input_error(&e))?;
    Ok(f(xs))
}
