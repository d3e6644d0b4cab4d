//! Synthetic models: random ternary weights with a real model's shapes, built in memory.
//!
//! `bitnet-cli bench --synthetic 2b4t` measures the kernels and the forward pass at the BitNet
//! b1.58 2B4T shapes without a 1.2 GB download. The weights are random, so the output is
//! meaningless text, but every byte is streamed exactly as for the real model: a ternary
//! matrix with about two thirds non-zero codes (as trained BitNet weights have) and an F16
//! embedding used as the tied head.

use std::sync::Arc;

use bitnet_kernels::{Kernels, TernaryWeights};
use bitnet_schema::{Linear, Norm};
use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::config::ModelConfig;
use crate::weights::{DenseMatrix, LayerWeights, ModelWeights};

/// Names accepted by [`preset`] (the schema's known models).
pub use bitnet_schema::presets::{PRESETS, preset};

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

/// Rows of the embedding generated from one random stream.
const EMBEDDING_ROWS_PER_STREAM: usize = 1024;

/// First random stream of the embedding (the linears use streams `1..`, far below).
const EMBEDDING_STREAM: u64 = 1 << 40;

/// Random weights for `cfg`, packed for `kernels`, reproducible from `seed`.
///
/// Every piece has its own stream of the seeded generator (linear `i` of block `l`: stream
/// `1 + 7 * l + i`; rows `1024 * c..` of the embedding: stream `2^40 + c`), so the weights
/// do not depend on how many threads build them: the embedding and the blocks are generated
/// and packed in parallel on `kernels.threads()` threads.
pub fn weights(cfg: &ModelConfig, seed: u64, kernels: &Kernels) -> ModelWeights {
    let (h, dims) = (cfg.hidden_size, cfg.dims());
    let stream = |s: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(s);
        rng
    };
    let (embedding, layers) = crate::weights::on_load_pool(kernels.threads(), || {
        let mut embedding = vec![f16::ZERO; cfg.vocab_size * h];
        embedding
            .par_chunks_mut(EMBEDDING_ROWS_PER_STREAM * h.max(1))
            .enumerate()
            .for_each(|(c, chunk)| {
                let mut rng = stream(EMBEDDING_STREAM + c as u64);
                for x in chunk {
                    *x = f16::from_f32(rng.random_range(-0.05f32..0.05));
                }
            });
        let Ok(layers) = crate::weights::par_map(cfg.n_layers, |l| {
            let linears = std::array::from_fn(|i| {
                let (rows, cols) = Linear::ALL[i].shape(&dims);
                let mut rng = stream(1 + (l * Linear::ALL.len() + i) as u64);
                kernels.pack(&random_ternary(&mut rng, rows, cols))
            });
            let norms = Norm::ALL.map(|n| vec![1.0; n.len(&dims)]);
            Ok::<_, std::convert::Infallible>(LayerWeights::from_parts(norms, linears))
        });
        (embedding, layers)
    });
    let embedding = Arc::new(DenseMatrix::from_f16(
        cfg.vocab_size,
        h,
        &embedding,
        kernels.threads(),
    ));
    ModelWeights {
        rescore: None,
        head: Arc::clone(&embedding),
        embedding,
        tied: true,
        output_norm: vec![1.0; h],
        layers,
    }
}
