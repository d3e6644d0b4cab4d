//! Synthetic models: random ternary weights with a real model's shapes, built in memory.
//!
//! `bitnet-cli bench --synthetic 2b4t` measures the kernels and the forward pass at the BitNet
//! b1.58 2B4T shapes without a 1.2 GB download. The weights are random, so the output is
//! meaningless text, but every byte is streamed exactly as for the real model: a ternary
//! matrix with about two thirds non-zero codes (as trained BitNet weights have) and an F16
//! embedding used as the tied head.

use std::sync::Arc;

use bitnet_kernels::{Kernels, TernaryWeights};
use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{Activation, ModelConfig};
use crate::weights::{DenseMatrix, LayerWeights, ModelWeights};

/// Names accepted by [`preset`].
pub const PRESETS: [&str; 4] = ["2b4t", "3b", "700m", "tiny"];

/// Shapes of a known BitNet model by name.
///
/// - `2b4t`: microsoft/bitnet-b1.58-2B-4T (hidden 2560, 30 layers, FFN 6912, 20 heads, 5 KV
///   heads, vocabulary 128256, context 4096).
/// - `3b`: 1bitLLM/bitnet_b1_58-3B (hidden 3200, 26 layers, FFN 8640, 32 heads).
/// - `700m`: 1bitLLM/bitnet_b1_58-large (hidden 1536, 24 layers, FFN 4096, 16 heads).
/// - `tiny`: the test fixture (hidden 256, 4 layers, FFN 512, 4 heads, 2 KV heads, vocab 512).
pub fn preset(name: &str) -> Option<ModelConfig> {
    let base = |hidden, layers, ffn, heads, kv, vocab, ctx, act| ModelConfig {
        architecture: "bitnet-b1.58".to_string(),
        vocab_size: vocab,
        hidden_size: hidden,
        n_layers: layers,
        n_heads: heads,
        n_kv_heads: kv,
        head_dim: hidden / heads,
        intermediate_size: ffn,
        context_length: ctx,
        rms_norm_eps: 1e-5,
        rope_theta: 500_000.0,
        rope_dim: hidden / heads,
        activation: act,
    };
    match name.to_ascii_lowercase().as_str() {
        "2b4t" | "2b" => Some(base(
            2560,
            30,
            6912,
            20,
            5,
            128_256,
            4096,
            Activation::Relu2,
        )),
        "3b" => Some(ModelConfig {
            architecture: "bitnet".to_string(),
            rope_theta: 10_000.0,
            ..base(3200, 26, 8640, 32, 32, 32_002, 2048, Activation::Silu)
        }),
        "700m" | "large" => Some(ModelConfig {
            architecture: "bitnet".to_string(),
            rope_theta: 10_000.0,
            ..base(1536, 24, 4096, 16, 16, 32_002, 2048, Activation::Silu)
        }),
        "tiny" => Some(ModelConfig {
            context_length: 256,
            ..base(256, 4, 512, 4, 2, 512, 256, Activation::Relu2)
        }),
        _ => None,
    }
}

fn random_ternary(rng: &mut ChaCha8Rng, rows: usize, cols: usize) -> TernaryWeights {
    let values = (0..rows * cols)
        .map(|_| match rng.random_range(0..6u8) {
            0 | 1 => 0,
            2 | 3 => 1,
            _ => -1,
        })
        .collect();
    TernaryWeights {
        rows,
        cols,
        values,
        scale: 1.0 / (cols as f32).sqrt(),
    }
}

/// Random weights for `cfg`, packed for `kernels`, reproducible from `seed`.
pub fn weights(cfg: &ModelConfig, seed: u64, kernels: &Kernels) -> ModelWeights {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (h, q, kv, i) = (
        cfg.hidden_size,
        cfg.q_dim(),
        cfg.kv_dim(),
        cfg.intermediate_size,
    );
    let embedding: Vec<f16> = (0..cfg.vocab_size * h)
        .map(|_| f16::from_f32(rng.random_range(-0.05f32..0.05)))
        .collect();
    let embedding = Arc::new(DenseMatrix::from_f16(cfg.vocab_size, h, embedding));
    let mut layers = Vec::with_capacity(cfg.n_layers);
    for _ in 0..cfg.n_layers {
        let mut lin = |rows, cols| kernels.pack(&random_ternary(&mut rng, rows, cols));
        layers.push(LayerWeights {
            attn_norm: vec![1.0; h],
            wq: lin(q, h),
            wk: lin(kv, h),
            wv: lin(kv, h),
            attn_sub_norm: vec![1.0; q],
            wo: lin(h, q),
            ffn_norm: vec![1.0; h],
            w_gate: lin(i, h),
            w_up: lin(i, h),
            ffn_sub_norm: vec![1.0; i],
            w_down: lin(h, i),
        });
    }
    ModelWeights {
        head: Arc::clone(&embedding),
        embedding,
        tied: true,
        output_norm: vec![1.0; h],
        layers,
    }
}
