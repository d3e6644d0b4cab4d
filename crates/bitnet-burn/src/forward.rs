//! A whole BitNet b1.58 forward pass on Burn tensors, over a loaded engine
//! [`Model`]'s weights: [`BurnModel`] (any [`BitNetBackend`]) and [`model_logits`] (on
//! `NdArray<f32>`, for the CLI).
//!
//! It computes what the engine's `Model::forward_all` computes, the logits of every position
//! of a token sequence, as one causal pass over the whole sequence with no KV cache:
//!
//! ```text
//! x = embedding[tokens]                                   [T, hidden]
//! per layer:  h = rms(x) * attn_norm
//!             q, k, v = ternary(h); NEOX RoPE on q, k
//!             a = softmax(q . k^T / sqrt(head_dim) + causal mask) . v   (GQA)
//!             x += ternary_o(rms(a) * attn_sub_norm)
//!             h = rms(x) * ffn_norm
//!             x += ternary_down(rms(act(ternary_gate(h)) * ternary_up(h)) * ffn_sub_norm)
//! logits = dense_head(rms(x) * output_norm)               [T, vocab]
//! ```
//!
//! Design decisions:
//! - **Borrow, don't copy.** Every linear runs on the engine's packed weights and kernels
//!   through [`TernaryLinearRef`] / [`DenseLinearRef`]; only the norm vectors (a few KB per
//!   layer) become Burn tensors. The embedding lookup gathers the `T` rows the sequence needs
//!   with the engine's `DenseMatrix::row_into` instead of turning the table into a Burn
//!   tensor: for the 2B4T shape that table is 1.3 GB in f32, for `T` rows of lookups.
//! - **Everything else is Burn ops**, written to do the engine's arithmetic in the engine's
//!   order where that is cheap: RMSNorm sums squares in f64 (`cast` to F64 for the mean),
//!   multiplies by `1 / sqrt(mean + eps)` and then by the weight; the RoPE table is
//!   `pos * 1 / theta^(2i / rope_dim)`; softmax is `exp(s - max) * (1 / sum)`. So the pass
//!   differs from the engine only in summation order (attention matmuls, the head's GEMM
//!   against the engine's per-token GEMV) and Burn's cos/sin going through f64: the tests
//!   hold it to 1e-4 of the engine without activation quantisation and to the same argmax
//!   at every position with it.
//! - **One full pass, no cache**: attention is a `[heads, T, T]` masked matmul, so memory
//!   grows with `T^2`; this is a cross-check and a Burn host for the kernels, not the
//!   decode path (the binaries generate with the engine).

use bitnet_engine::Model;
use bitnet_engine::config::Activation;
use bitnet_engine::weights::DenseStorage;
use burn::backend::NdArray;
use burn::tensor::activation::relu;
use burn::tensor::{Bool, FloatDType, Int, Tensor, TensorData};

use crate::dense::{DenseLinearRef, DenseWeights};
use crate::error::BurnError;
use crate::ternary::TernaryLinearRef;
use crate::{BitNetBackend, dense_linear, ternary_linear};

/// The ternary linears of one block, in forward order, with its norms as Burn tensors
/// (`[1, len]`, broadcast over the rows).
struct Block<'m, B: BitNetBackend> {
    attn_norm: Tensor<B, 2>,
    wq: TernaryLinearRef<'m>,
    wk: TernaryLinearRef<'m>,
    wv: TernaryLinearRef<'m>,
    attn_sub_norm: Tensor<B, 2>,
    wo: TernaryLinearRef<'m>,
    ffn_norm: Tensor<B, 2>,
    w_gate: TernaryLinearRef<'m>,
    w_up: TernaryLinearRef<'m>,
    ffn_sub_norm: Tensor<B, 2>,
    w_down: TernaryLinearRef<'m>,
}

/// A BitNet b1.58 model on Burn tensors, borrowing an engine [`Model`]'s weights and
/// kernels (see the module doc). Activation quantisation follows
/// [`Model::activation_quantization`], the head is the model's (tied or not, stored or
/// Q8_0).
pub struct BurnModel<'m, B: BitNetBackend> {
    model: &'m Model,
    device: B::Device,
    blocks: Vec<Block<'m, B>>,
    output_norm: Tensor<B, 2>,
    head: DenseLinearRef<'m>,
}

impl<'m, B: BitNetBackend> BurnModel<'m, B> {
    /// Wraps `model`'s weights for Burn on `device`: pairs each packed linear and the head
    /// with the model's kernels and uploads the norm vectors.
    ///
    /// # Errors
    /// [`BurnError::LayoutMismatch`] / [`BurnError::DenseLength`] if the model's weights are
    /// not what its kernels run (a loaded model's always are); [`BurnError::RescoredHead`]
    /// for a rescored head.
    pub fn new(model: &'m Model, device: &B::Device) -> Result<Self, BurnError> {
        let kernels = model.kernels();
        let weights = model.weights();
        if weights.rescore.is_some() {
            return Err(BurnError::RescoredHead);
        }
        let norm = |v: &[f32]| {
            Tensor::<B, 2>::from_data(TensorData::new(v.to_vec(), [1, v.len()]), device)
        };
        let mut blocks = Vec::with_capacity(weights.layers.len());
        for lw in &weights.layers {
            let lin = |p| TernaryLinearRef::new(kernels, p);
            blocks.push(Block {
                attn_norm: norm(&lw.attn_norm),
                wq: lin(&lw.wq)?,
                wk: lin(&lw.wk)?,
                wv: lin(&lw.wv)?,
                attn_sub_norm: norm(&lw.attn_sub_norm),
                wo: lin(&lw.wo)?,
                ffn_norm: norm(&lw.ffn_norm),
                w_gate: lin(&lw.w_gate)?,
                w_up: lin(&lw.w_up)?,
                ffn_sub_norm: norm(&lw.ffn_sub_norm),
                w_down: lin(&lw.w_down)?,
            });
        }
        let (rows, cols) = (weights.head.rows(), weights.head.cols());
        let head = match weights.head.storage() {
            DenseStorage::F32(data) => DenseWeights::F32 { rows, cols, data },
            DenseStorage::F16(data) => DenseWeights::F16 { rows, cols, data },
            DenseStorage::BF16(data) => DenseWeights::BF16 { rows, cols, data },
            DenseStorage::Q8_0(m) => DenseWeights::Q8_0(m),
            DenseStorage::Q6K(m) => DenseWeights::Q6K(m),
            DenseStorage::Q4K(m) => DenseWeights::Q4K(m),
        };
        Ok(Self {
            model,
            device: device.clone(),
            blocks,
            output_norm: norm(&weights.output_norm),
            head: DenseLinearRef::new(kernels, head)?,
        })
    }

    /// The logits of every position of `tokens`, `[T, vocab]`, from one causal pass.
    ///
    /// # Errors
    /// [`BurnError::EmptyInput`], [`BurnError::InvalidToken`] or
    /// [`BurnError::ContextOverflow`] for a sequence the model cannot take; errors of the
    /// fused ops otherwise (none for a loaded model's weights).
    pub fn logits(&self, tokens: &[u32]) -> Result<Tensor<B, 2>, BurnError> {
        let c = self.model.config();
        if tokens.is_empty() {
            return Err(BurnError::EmptyInput);
        }
        if tokens.len() > c.context_length {
            return Err(BurnError::ContextOverflow {
                tokens: tokens.len(),
                ctx: c.context_length,
            });
        }
        if let Some((position, &id)) = tokens
            .iter()
            .enumerate()
            .find(|&(_, &t)| t as usize >= c.vocab_size)
        {
            return Err(BurnError::InvalidToken {
                id,
                position,
                vocab: c.vocab_size,
            });
        }
        let rope = Rope::new(tokens.len(), c.rope_dim, c.rope_theta, &self.device);
        let mut x = self.embed(tokens);
        for block in &self.blocks {
            x = self.block(block, x, &rope)?;
        }
        let h = self.rms_norm(x, &self.output_norm);
        dense_linear(h, self.head)
    }

    /// `x = embedding[tokens]`, `[T, hidden]`, gathered row by row in the table's stored type.
    fn embed(&self, tokens: &[u32]) -> Tensor<B, 2> {
        let d = self.model.config().hidden_size;
        let table = &self.model.weights().embedding;
        let mut x = vec![0f32; tokens.len() * d];
        for (row, &t) in x.chunks_exact_mut(d).zip(tokens) {
            table.row_into(t as usize, row);
        }
        Tensor::from_data(TensorData::new(x, [tokens.len(), d]), &self.device)
    }

    /// One transformer block over all rows.
    fn block(
        &self,
        b: &Block<'m, B>,
        x: Tensor<B, 2>,
        rope: &Rope<B>,
    ) -> Result<Tensor<B, 2>, BurnError> {
        let c = self.model.config();
        let aq = self.model.activation_quantization();

        let h = self.rms_norm(x.clone(), &b.attn_norm);
        let q = ternary_linear(h.clone(), b.wq, aq)?;
        let k = ternary_linear(h.clone(), b.wk, aq)?;
        let v = ternary_linear(h, b.wv, aq)?;
        let q = rope.apply(q, c.n_heads, c.head_dim);
        let k = rope.apply(k, c.n_kv_heads, c.head_dim);
        let a = self.attention(q, k, v);
        let a = self.rms_norm(a, &b.attn_sub_norm);
        let x = x + ternary_linear(a, b.wo, aq)?;

        let h = self.rms_norm(x.clone(), &b.ffn_norm);
        let gate = ternary_linear(h.clone(), b.w_gate, aq)?;
        let up = ternary_linear(h, b.w_up, aq)?;
        let inner = activation(c.activation, gate) * up;
        let inner = self.rms_norm(inner, &b.ffn_sub_norm);
        Ok(x + ternary_linear(inner, b.w_down, aq)?)
    }

    /// Causal grouped-query attention. `q: [T, heads, head_dim]`, `k: [T, kv_heads,
    /// head_dim]` (both rotated), `v: [T, kv_dim]`; returns `[T, q_dim]`.
    fn attention(&self, q: Tensor<B, 3>, k: Tensor<B, 3>, v: Tensor<B, 2>) -> Tensor<B, 2> {
        let c = self.model.config();
        let (heads, kv_heads, hd) = (c.n_heads, c.n_kv_heads, c.head_dim);
        let t = q.dims()[0];
        let group = heads / kv_heads;
        // [kv_heads, T, hd] -> [heads, T, hd]: query head h reads kv head h / group.
        let per_head = |x: Tensor<B, 3>| -> Tensor<B, 3> {
            x.swap_dims(0, 1)
                .unsqueeze_dim::<4>(1)
                .repeat_dim(1, group)
                .reshape([heads, t, hd])
        };
        let q = q.swap_dims(0, 1); // [heads, T, hd]
        let k = per_head(k);
        let v = per_head(v.reshape([t, kv_heads, hd]));
        let scale = 1.0 / (hd as f32).sqrt();
        let scores = q.matmul(k.swap_dims(1, 2)).mul_scalar(scale); // [heads, T, T]
        // True above the diagonal: key j > query i is in the future.
        let future = Tensor::<B, 2, Bool>::tril_mask([t, t], 0, &self.device)
            .unsqueeze_dim::<3>(0)
            .expand([heads, t, t]);
        let scores = scores.mask_fill(future, f32::NEG_INFINITY);
        let max = scores.clone().max_dim(2);
        let e = (scores - max).exp();
        let p = e.clone() * e.sum_dim(2).recip();
        p.matmul(v) // [heads, T, hd]
            .swap_dims(0, 1)
            .reshape([t, heads * hd])
    }

    /// `x / sqrt(mean(x^2) + eps) * weight` per row, the mean of squares in f64 as the
    /// engine (and transformers' float32 RMSNorm, in effect) computes it.
    fn rms_norm(&self, x: Tensor<B, 2>, weight: &Tensor<B, 2>) -> Tensor<B, 2> {
        let eps = self.model.config().rms_norm_eps;
        let wide = x.clone().cast(FloatDType::F64);
        let mean = (wide.clone() * wide).mean_dim(1).cast(FloatDType::F32);
        let inv = mean.add_scalar(eps).sqrt().recip();
        (x * inv) * weight.clone()
    }
}

/// The FFN activation, spelled with Burn ops as the engine's `Activation::apply` is.
fn activation<B: BitNetBackend>(act: Activation, g: Tensor<B, 2>) -> Tensor<B, 2> {
    match act {
        Activation::Relu2 => {
            let r = relu(g);
            r.clone() * r
        }
        Activation::Silu => g.clone() / g.neg().exp().add_scalar(1.0),
        Activation::Gelu => {
            const C: f32 = 0.797_884_6; // sqrt(2/pi)
            let cube = g.clone() * g.clone() * g.clone();
            let inner = (g.clone() + cube.mul_scalar(0.044_715)).mul_scalar(C);
            g.mul_scalar(0.5) * inner.tanh().add_scalar(1.0)
        }
    }
}

/// NEOX ("rotate half") RoPE for positions `0..T`: dimension `i` of a head pairs with
/// `i + rope_dim / 2`; dimensions past `rope_dim` pass through.
struct Rope<B: BitNetBackend> {
    half: usize,
    /// `[T, 1, half]`, broadcast over heads.
    cos: Tensor<B, 3>,
    sin: Tensor<B, 3>,
}

impl<B: BitNetBackend> Rope<B> {
    /// `angle[p][i] = p * (1 / theta^(2i / rope_dim))`, as the engine's table.
    fn new(positions: usize, rope_dim: usize, theta: f32, device: &B::Device) -> Self {
        let half = rope_dim / 2;
        let exponents = Tensor::<B, 1, Int>::arange(0..half as i64, device)
            .float()
            .mul_scalar(2.0)
            .div_scalar(rope_dim as f32);
        let inv_freq = Tensor::<B, 1>::full([half], theta, device)
            .powf(exponents)
            .recip();
        let pos = Tensor::<B, 1, Int>::arange(0..positions as i64, device).float();
        let angle = pos.reshape([positions, 1]) * inv_freq.reshape([1, half]);
        let angle = angle.reshape([positions, 1, half]);
        Self {
            half,
            cos: angle.clone().cos(),
            sin: angle.sin(),
        }
    }

    /// `x: [T, heads * head_dim]` -> `[T, heads, head_dim]`, rotated.
    fn apply(&self, x: Tensor<B, 2>, heads: usize, head_dim: usize) -> Tensor<B, 3> {
        let t = x.dims()[0];
        let h = self.half;
        let x = x.reshape([t, heads, head_dim]);
        let x1 = x.clone().narrow(2, 0, h);
        let x2 = x.clone().narrow(2, h, h);
        let r1 = x1.clone() * self.cos.clone() - x2.clone() * self.sin.clone();
        let r2 = x2 * self.cos.clone() + x1 * self.sin.clone();
        if 2 * h == head_dim {
            return Tensor::cat(vec![r1, r2], 2);
        }
        let rest = x.narrow(2, 2 * h, head_dim - 2 * h);
        Tensor::cat(vec![r1, r2, rest], 2)
    }
}

/// The logits of every position of `tokens` (`[T][vocab]` row-major, as the engine's
/// `forward_all` returns them), computed by [`BurnModel`] on `NdArray<f32>`: what
/// `bitnet-cli logits --backend burn` writes.
///
/// # Errors
/// As [`BurnModel::new`] and [`BurnModel::logits`]; [`BurnError::OutputData`] if the result
/// cannot be read back (not expected on NdArray).
pub fn model_logits(model: &Model, tokens: &[u32]) -> Result<Vec<f32>, BurnError> {
    let device = Default::default();
    let logits = BurnModel::<NdArray<f32>>::new(model, &device)?.logits(tokens)?;
    let output_error = |e: &dyn std::fmt::Debug| BurnError::OutputData {
        op: "burn forward",
        reason: format!("{e:?}"),
    };
    logits
        .try_into_data()
        .map_err(|e| output_error(&e))?
        .to_vec::<f32>()
        .map_err(|e| output_error(&e))
}
