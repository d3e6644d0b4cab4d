//! [`ternary_linear_reference`]: the same layer from stock Burn ops on any backend, the
//! yardstick for [`crate::BitNetBackend::ternary_linear`].
//!
//! The weight is dequantised to a dense float matrix `W = values * scale` and multiplied
//! with Burn's own `matmul`, so the check is independent of the kernels' packing, integer
//! accumulation and threading. Activation quantisation is spelled out with Burn ops exactly
//! as bitnet-kernels' `act_quant` module defines it: `s = 127 / max(max|x|, 1e-5)` per row
//! (Burn's `clamp_min` is `max`), `q = clamp(round(x * s), -128, 127)` where Burn's `round`
//! rounds half to even like the kernels, and `y = (q . W^T) / s`.

use crate::error::BurnError;
use crate::weights::{check_input, validate};
use bitnet_kernels::TernaryWeights;
use bitnet_kernels::act_quant::ACT_EPS;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

const OP: &str = "ternary_linear_reference";

/// `x: [n, in] -> [n, out]`, `y = x . W^T` with `W = values * scale` dense in f32, from
/// stock Burn ops. With `quantize_activations`, `x` is first quantised per row to int8 and
/// the product divided by the row scale, as the kernels do.
///
/// Where it differs from the kernels: only in float rounding. With activation quantisation
/// and `scale == 1.0` every product and partial sum is an integer below 2^24 (for
/// `in_features < 131072`), so the result is bit-identical; otherwise `q * scale` products
/// round, which the kernels avoid by applying the scale once at the end.
///
/// # Errors
/// Invalid `w` ([`BurnError::WeightLength`], [`BurnError::NotTernary`],
/// [`BurnError::NonFiniteScale`]) or an input that is not `[n, w.cols]`.
pub fn ternary_linear_reference<B: Backend>(
    x: Tensor<B, 2>,
    w: &TernaryWeights,
    quantize_activations: bool,
) -> Result<Tensor<B, 2>, BurnError> {
    validate(w)?;
    let [n, _] = x.dims();
    check_input(OP, &x.dims(), w.rows, w.cols)?;
    let device = x.device();
    let values: Vec<f32> = w.values.iter().map(|&v| f32::from(v)).collect();
    let w_t = Tensor::<B, 2>::from_data(TensorData::new(values, [w.rows, w.cols]), &device)
        .mul_scalar(w.scale)
        .transpose();
    if !quantize_activations {
        return Ok(x.matmul(w_t));
    }
    // s = 127 / max(max|x|, eps), as a true division (not 127 * recip) to round like the kernels.
    let amax = x.clone().abs().max_dim(1).clamp_min(ACT_EPS);
    let s = Tensor::<B, 2>::full([n, 1], 127.0, &device).div(amax);
    let q = x.mul(s.clone()).round().clamp(-128.0, 127.0);
    Ok(q.matmul(w_t).div(s))
}
