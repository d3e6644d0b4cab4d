//! The `*_reference` ops: each op family from stock Burn ops on any backend, the yardstick
//! for [`crate::BitNetBackend`]'s fused ops.
//!
//! [`ternary_linear_reference`] dequantises the weight to a dense float matrix
//! `W = values * scale` and multiplies with Burn's own `matmul`, so the check is independent
//! of the kernels' packing, integer accumulation and threading. Activation quantisation is
//! spelled out with Burn ops exactly as bitnet-kernels' `act_quant` module defines it:
//! `s = 127 / max(max|x|, 1e-5)` per row (Burn's `clamp_min` is `max`),
//! `q = clamp(round(x * s), -128, 127)` where Burn's `round` rounds half to even like the
//! kernels, and `y = (q . W^T) / s`.
//!
//! [`dense_linear_reference`] widens the head to f32 and multiplies likewise; for Q8_0 it
//! first rounds the input through ggml's per-block Q8_0 quantisation (as the kernels do)
//! with Burn ops.

use crate::dense::DenseWeights;
use crate::error::BurnError;
use crate::ternary::{check_input, validate};
use bitnet_kernels::TernaryWeights;
use bitnet_kernels::act_quant::ACT_EPS;
use bitnet_kernels::kquant::QK_K;
use bitnet_kernels::q8::Q8_BLOCK;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

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
    const OP: &str = "ternary_linear_reference";
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

/// `x: [n, cols] -> [n, rows]`, `y = x . W^T` with the dense head `W` widened to f32, from
/// stock Burn ops. For Q8_0 weights `x` is first rounded through Q8_0 per block of 32
/// (`d = max|x| / 127`, `q = round(x / d)` half away from zero, `x = q * d`), for Q6_K and
/// Q4_K through ggml's Q8_K per block of 256, as the kernels quantise it.
///
/// Where it differs from the kernels: in float rounding only (summation order; Q8_0 sums
/// `x * w` of the rounded values instead of integer block dots times `d_x * d_w`, and
/// `floor(|v| + 0.5)` can round a value just below one half up).
///
/// # Errors
/// [`BurnError::DenseLength`] for inconsistent weights, or an input that is not
/// `[n, w.cols()]`.
pub fn dense_linear_reference<B: Backend>(
    x: Tensor<B, 2>,
    w: DenseWeights<'_>,
) -> Result<Tensor<B, 2>, BurnError> {
    const OP: &str = "dense_linear_reference";
    w.validate()?;
    let (rows, cols) = (w.rows(), w.cols());
    check_input(OP, &x.dims(), rows, cols)?;
    let mut dense = vec![0f32; rows * cols];
    for (r, row) in dense.chunks_exact_mut(cols.max(1)).enumerate().take(rows) {
        w.row_into(r, row);
    }
    let device = x.device();
    let w_t = Tensor::<B, 2>::from_data(TensorData::new(dense, [rows, cols]), &device).transpose();
    let x = match w {
        DenseWeights::Q8_0(_) => q8_0_round_trip(x),
        DenseWeights::Q6K(_) | DenseWeights::Q4K(_) => q8_k_round_trip(x),
        _ => x,
    };
    Ok(x.matmul(w_t))
}

/// `x: [n, cols]` (cols a multiple of 256) rounded through ggml's Q8_K blocks and back to
/// f32, as the kernels quantise a K-quant head's input: `iscale = -127 / m` with `m` the block's
/// value of largest magnitude, `q = min(127, round(iscale * x))` (half to even),
/// `x = q * (1 / iscale)`; an all-zero block stays zero.
fn q8_k_round_trip<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let [n, cols] = x.dims();
    let blocks = x.reshape([n, cols / QK_K, QK_K]);
    let at = blocks.clone().abs().argmax(2);
    let m = blocks.clone().gather(2, at);
    let zero = m.clone().equal_elem(0.0);
    let iscale = Tensor::<B, 3>::full(m.dims(), -127.0, &m.device())
        .div(m)
        .mask_fill(zero.clone(), 0.0);
    let q = blocks.mul(iscale.clone()).round().clamp_max(127.0);
    let d = iscale.recip().mask_fill(zero, 0.0);
    q.mul(d).reshape([n, cols])
}

/// `x: [n, cols]` (cols a multiple of 32) rounded through Q8_0 blocks and back to f32.
fn q8_0_round_trip<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let [n, cols] = x.dims();
    let blocks = x.reshape([n, cols / Q8_BLOCK, Q8_BLOCK]);
    let d = blocks.clone().abs().max_dim(2).div_scalar(127.0);
    // 1 / d, or 0 for an all-zero block.
    let id = d.clone().recip().mask_fill(d.clone().equal_elem(0.0), 0.0);
    let v = blocks.mul(id);
    let q = v
        .clone()
        .sign()
        .mul(v.abs().add_scalar(0.5).floor())
        .clamp(-127.0, 127.0);
    q.mul(d).reshape([n, cols])
}
