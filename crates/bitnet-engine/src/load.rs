//! How a model is loaded: [`LoadOptions`], [`HeadType`], [`ModelSource`], and the load
//! paths (a GGUF file or its bytes, a Hugging Face checkpoint directory, synthetic weights)
//! that turn a source into the parts a [`crate::Model`] is assembled from.
//!
//! This module knows nothing of `Model`: each path returns a [`Loaded`] and `model.rs`
//! assembles it, so the dependency runs one way (model uses load). The kernels are made
//! first, so that a bad `--kernel` id is reported before any file is read, and the weights
//! are packed for exactly those kernels.

use std::path::Path;
use std::sync::Arc;

use bitnet_checkpoint::Checkpoint;
use bitnet_gguf::GgufFile;
use bitnet_kernels::Kernels;
use bitnet_tokenizer::Tokenizer;

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::weights::{self, ModelWeights};

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Worker threads for the kernels (0 = all available cores).
    pub threads: usize,
    /// Quantise activations to int8 (W1.58A8, the model as trained). `false` keeps them in
    /// f32: not the model as trained, but isolates everything but int8 rounding when
    /// cross-checking against a reference.
    pub activation_quantization: bool,
    /// Force a kernel implementation by id (e.g. `i2s/scalar`); `None` picks the fastest.
    pub kernel: Option<String>,
    /// Storage of the output head: as in the file (F16 in BitNet GGUFs), or Q8_0.
    pub head_type: HeadType,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            threads: 0,
            activation_quantization: true,
            kernel: None,
            head_type: HeadType::Stored,
        }
    }
}

/// How the output head is held in memory.
///
/// Decoding streams the whole head once per token; for the 2B4T shape its F16 form is 0.66 GB
/// of ~1.18 GB. `Q8_0` quantises it at load time (ggml's numerics, 1.0625 bytes per weight),
/// trading a small logit error for bandwidth; `Q6K` goes further (0.82 bytes per weight, the
/// blocks ggml's `llama-quantize` writes), `Q4K` further still (0.5625 bytes per weight, a
/// larger error: see docs/performance.md). A tied embedding stays in its stored type
/// (token lookups are exact); the head becomes a quantised copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HeadType {
    /// The type stored in the model (F16 in BitNet GGUFs; BF16, F32, Q8_0, Q6_K or Q4_K otherwise).
    #[default]
    Stored,
    /// ggml-style Q8_0: int8 blocks of 32 with an f16 scale each.
    Q8_0,
    /// ggml's Q6_K: 6-bit quants in blocks of 256 with an 8-bit scale per 16 values.
    Q6K,
    /// ggml's Q4_K: 4-bit quants in blocks of 256 with a 6-bit scale and min per 32 values.
    Q4K,
    /// Q4_K for every logit, then the 32 largest recomputed from the stored float head's rows
    /// (see `crate::rescore`): the stored head's greedy tokens at Q4_K's bytes per token.
    /// Needs a float (F16, BF16, F32) head in the model.
    Q4KRescored,
}

impl HeadType {
    /// The names [`HeadType::from_str`](std::str::FromStr) accepts, for help texts.
    pub const NAMES: [&'static str; 5] = ["stored", "q8_0", "q6_k", "q4_k", "q4_k_rescored"];

    /// The canonical name (`"stored"`, `"q8_0"`, `"q6_k"`, `"q4_k"`, `"q4_k_rescored"`).
    pub fn as_str(self) -> &'static str {
        match self {
            HeadType::Stored => "stored",
            HeadType::Q8_0 => "q8_0",
            HeadType::Q6K => "q6_k",
            HeadType::Q4K => "q4_k",
            HeadType::Q4KRescored => "q4_k_rescored",
        }
    }
}

impl std::fmt::Display for HeadType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for HeadType {
    type Err = String;

    /// `stored` (also `f16`, `file`), `q8_0` (also `q8`), `q6_k` (also `q6k`), `q4_k` (also
    /// `q4k`) or `q4_k_rescored` (also `q4k_rescored`), case-insensitive.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "stored" | "file" | "f16" => Ok(HeadType::Stored),
            "q8_0" | "q8" => Ok(HeadType::Q8_0),
            "q6_k" | "q6k" => Ok(HeadType::Q6K),
            "q4_k" | "q4k" => Ok(HeadType::Q4K),
            "q4_k_rescored" | "q4k_rescored" => Ok(HeadType::Q4KRescored),
            _ => Err(format!(
                "unknown head type '{s}' (expected one of: {})",
                HeadType::NAMES.join(", ")
            )),
        }
    }
}

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A GGUF file.
    Gguf,
    /// A Hugging Face checkpoint directory.
    HuggingFace,
    /// Random weights built in memory.
    Synthetic,
}

/// The parts of a loaded model, before [`crate::Model`] assembles them.
pub(crate) struct Loaded {
    pub(crate) config: ModelConfig,
    pub(crate) weights: ModelWeights,
    pub(crate) kernels: Kernels,
    pub(crate) tokenizer: Option<Tokenizer>,
    pub(crate) source: ModelSource,
}

/// A GGUF file or a Hugging Face checkpoint directory.
pub(crate) fn path(path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let kernels = make_kernels(opts)?;
    if path.is_dir() {
        let ckpt = Checkpoint::open(path)?;
        let config = ModelConfig::from_hf(ckpt.config())?;
        let mut weights = weights::load_checkpoint(&ckpt, &config, &kernels)?;
        apply_head_type(&mut weights, opts, &kernels)?;
        let tokenizer = if path.join("tokenizer.json").is_file() {
            Some(Tokenizer::from_hf_dir(path)?)
        } else {
            None
        };
        Ok(Loaded {
            config,
            weights,
            kernels,
            tokenizer,
            source: ModelSource::HuggingFace,
        })
    } else if path.is_file() {
        let file = Arc::new(GgufFile::open(path)?);
        gguf_with(file, opts, kernels)
    } else {
        Err(EngineError::NotAModel {
            path: path.to_path_buf(),
        })
    }
}

/// A parsed GGUF file.
pub(crate) fn gguf(file: Arc<GgufFile>, opts: &LoadOptions) -> Result<Loaded> {
    let kernels = make_kernels(opts)?;
    gguf_with(file, opts, kernels)
}

fn gguf_with(file: Arc<GgufFile>, opts: &LoadOptions, kernels: Kernels) -> Result<Loaded> {
    let config = ModelConfig::from_gguf(&file)?;
    let mut weights = weights::load_gguf(&file, &config, &kernels)?;
    apply_head_type(&mut weights, opts, &kernels)?;
    let tokenizer = crate::tokenizer::from_gguf(&file)?;
    Ok(Loaded {
        config,
        weights,
        kernels,
        tokenizer,
        source: ModelSource::Gguf,
    })
}

/// Random ternary weights with the shapes of `config` (see [`crate::synthetic`]); no
/// tokenizer.
pub(crate) fn synthetic(config: ModelConfig, seed: u64, opts: &LoadOptions) -> Result<Loaded> {
    let kernels = make_kernels(opts)?;
    let mut weights = crate::synthetic::weights(&config, seed, &kernels);
    apply_head_type(&mut weights, opts, &kernels)?;
    Ok(Loaded {
        config,
        weights,
        kernels,
        tokenizer: None,
        source: ModelSource::Synthetic,
    })
}

/// Re-stores the head as `opts.head_type` asks (quantising on the kernels' thread count).
fn apply_head_type(
    weights: &mut ModelWeights,
    opts: &LoadOptions,
    kernels: &Kernels,
) -> Result<()> {
    let threads = kernels.threads();
    let head = match opts.head_type {
        HeadType::Stored => return Ok(()),
        HeadType::Q8_0 => weights.head.to_q8_0(threads)?,
        HeadType::Q6K => weights.head.to_q6_k(threads)?,
        HeadType::Q4K => weights.head.to_q4_k(threads)?,
        HeadType::Q4KRescored => {
            if !weights.head.is_float() {
                return Err(EngineError::InvalidSetting {
                    name: "head type",
                    value: format!(
                        "{} (this model's head is {})",
                        opts.head_type,
                        weights.head.type_name()
                    ),
                    reason: "the rescored head recomputes its best logits from a float (F16, \
                             BF16 or F32) head; use q4_k for a model whose head is quantised",
                });
            }
            weights.rescore = Some(Arc::clone(&weights.head));
            weights.head.to_q4_k(threads)?
        }
    };
    weights.head = Arc::new(head);
    Ok(())
}

/// Most kernel threads a model runs on. Every thread is spawned up front and joins every
/// matrix product, so a count from a typo or a stale tuning cache (`--threads 100000`) would
/// fail to spawn, or crawl; it is refused before any file is read.
pub const MAX_THREADS: usize = 1024;

fn make_kernels(opts: &LoadOptions) -> Result<Kernels> {
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    if threads > MAX_THREADS {
        return Err(EngineError::InvalidSetting {
            name: "threads",
            value: threads.to_string(),
            reason: "more than 1024 threads (bitnet_engine::MAX_THREADS)",
        });
    }
    match &opts.kernel {
        None => Ok(Kernels::new(threads)),
        Some(id) => {
            let ops = bitnet_kernels::by_id(id).ok_or_else(|| EngineError::InvalidSetting {
                name: "kernel",
                value: id.clone(),
                reason: "not a kernel id available on this CPU",
            })?;
            Ok(Kernels::with_backend(ops, threads))
        }
    }
}
