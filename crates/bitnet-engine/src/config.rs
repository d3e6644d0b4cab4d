//! Model hyper-parameters, read from GGUF metadata or a Hugging Face `config.json`.
//!
//! GGUF keys and their defaults follow llama.cpp (`<arch>.context_length`,
//! `<arch>.rope.freq_base` defaulting to 10000, `head_count_kv` to `head_count`, ...), with one
//! deliberate difference: the FFN activation. Upstream llama.cpp runs the `bitnet-b1.58`
//! 2B4T model with SiLU, which gives perplexity ~100 instead of ~17; the model was trained with
//! ReLU², so that is the default for `bitnet-b1.58` and `bitnet-25`, and a
//! `<arch>.hidden_activation` key (our converter writes it) overrides it.

use crate::error::{EngineError, Result};
use bitnet_gguf::{GgufFile, Value};

/// The feed-forward activation `act` in `act(gate(x)) * up(x)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `relu(x)^2`: BitNet b1.58 2B4T (`hidden_act: relu2`).
    Relu2,
    /// `x * sigmoid(x)`: the 1bitLLM BitNet models llama.cpp calls `bitnet`.
    Silu,
    /// tanh-approximated GELU (`gelu_pytorch_tanh` and `gelu` map here).
    Gelu,
}

impl Activation {
    /// Parses the names used by transformers' `hidden_act` and our GGUF key.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "relu2" | "relu_squared" | "relu^2" | "squared_relu" => Some(Self::Relu2),
            "silu" | "swish" => Some(Self::Silu),
            "gelu" | "gelu_pytorch_tanh" | "gelu_new" => Some(Self::Gelu),
            _ => None,
        }
    }

    /// The canonical name (what the converter writes to `<arch>.hidden_activation`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu2 => "relu2",
            Self::Silu => "silu",
            Self::Gelu => "gelu",
        }
    }

    /// Applies the activation to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Self::Relu2 => {
                let r = x.max(0.0);
                r * r
            }
            Self::Silu => x / (1.0 + (-x).exp()),
            Self::Gelu => {
                const C: f32 = 0.797_884_6; // sqrt(2/pi)
                0.5 * x * (1.0 + (C * (x + 0.044_715 * x * x * x)).tanh())
            }
        }
    }
}

/// The architectures this engine runs (`general.architecture`).
pub const SUPPORTED_ARCHITECTURES: [&str; 3] = ["bitnet-b1.58", "bitnet-25", "bitnet"];

/// Hyper-parameters of a BitNet b1.58 model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Architecture name (`bitnet-b1.58`, `bitnet-25`, `bitnet`).
    pub architecture: String,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Hidden size (`embedding_length`).
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub n_kv_heads: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// FFN intermediate size.
    pub intermediate_size: usize,
    /// Trained context length.
    pub context_length: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f32,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// Dimensions rotated by RoPE (the whole head unless the file says otherwise).
    pub rope_dim: usize,
    /// FFN activation.
    pub activation: Activation,
}

impl ModelConfig {
    /// Default activation for an architecture when the file does not name one.
    pub fn default_activation(arch: &str) -> Activation {
        match arch {
            "bitnet" => Activation::Silu,
            _ => Activation::Relu2,
        }
    }

    /// Reads the hyper-parameters from GGUF metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let arch = file.architecture()?.to_string();
        if !SUPPORTED_ARCHITECTURES.contains(&arch.as_str()) {
            return Err(EngineError::UnsupportedArchitecture { arch });
        }
        let key = |k: &str| format!("{arch}.{k}");
        let hidden_size = file.get_u64(&key("embedding_length"))? as usize;
        let n_layers = file.get_u64(&key("block_count"))? as usize;
        let n_heads = uniform_u64(file, &key("attention.head_count"))?
            .ok_or_else(|| missing(&key("attention.head_count")))? as usize;
        let n_kv_heads = uniform_u64(file, &key("attention.head_count_kv"))?
            .map(|v| v as usize)
            .unwrap_or(n_heads);
        let intermediate_size = uniform_u64(file, &key("feed_forward_length"))?
            .ok_or_else(|| missing(&key("feed_forward_length")))?
            as usize;
        let context_length = file.get_u64(&key("context_length"))? as usize;
        let rms_norm_eps = file.get_f32(&key("attention.layer_norm_rms_epsilon"))?;
        let rope_theta = match file.get(&key("rope.freq_base")) {
            Some(_) => file.get_f32(&key("rope.freq_base"))?,
            None => 10_000.0,
        };
        if n_heads == 0 {
            return Err(bad(&key("attention.head_count"), "must be at least 1"));
        }
        let head_dim = match file.get(&key("attention.key_length")) {
            Some(_) => file.get_u64(&key("attention.key_length"))? as usize,
            None => hidden_size / n_heads,
        };
        let rope_dim = match file.get(&key("rope.dimension_count")) {
            Some(_) => file.get_u64(&key("rope.dimension_count"))? as usize,
            None => head_dim,
        };
        let vocab_size = match file.get(&key("vocab_size")) {
            Some(_) => file.get_u64(&key("vocab_size"))? as usize,
            None => match file.tensor("token_embd.weight") {
                Some(t) if t.dims.len() == 2 => t.dims[1] as usize,
                _ => file.get_string_array("tokenizer.ggml.tokens")?.len(),
            },
        };
        let activation = match file.get(&key("hidden_activation")) {
            Some(_) => {
                let name = file.get_str(&key("hidden_activation"))?;
                Activation::from_name(name).ok_or_else(|| {
                    bad(
                        &key("hidden_activation"),
                        &format!("unknown activation '{name}' (known: relu2, silu, gelu)"),
                    )
                })?
            }
            None => Self::default_activation(&arch),
        };
        let config = Self {
            architecture: arch,
            vocab_size,
            hidden_size,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            intermediate_size,
            context_length,
            rms_norm_eps,
            rope_theta,
            rope_dim,
            activation,
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads the hyper-parameters from a Hugging Face `config.json`.
    pub fn from_hf(cfg: &bitnet_checkpoint::HfConfig) -> Result<Self> {
        let activation = Activation::from_name(&cfg.hidden_act).ok_or_else(|| {
            bad(
                "hidden_act",
                &format!(
                    "unknown activation '{}' (known: relu2, silu, gelu)",
                    cfg.hidden_act
                ),
            )
        })?;
        if cfg.num_attention_heads == 0 {
            return Err(bad("num_attention_heads", "must be at least 1"));
        }
        let head_dim = cfg
            .head_dim
            .unwrap_or(cfg.hidden_size / cfg.num_attention_heads);
        let config = Self {
            architecture: "bitnet-b1.58".to_string(),
            vocab_size: cfg.vocab_size,
            hidden_size: cfg.hidden_size,
            n_layers: cfg.num_hidden_layers,
            n_heads: cfg.num_attention_heads,
            n_kv_heads: cfg.num_key_value_heads,
            head_dim,
            intermediate_size: cfg.intermediate_size,
            context_length: cfg.max_position_embeddings,
            rms_norm_eps: cfg.rms_norm_eps,
            rope_theta: cfg.rope_theta,
            rope_dim: head_dim,
            activation,
        };
        config.validate()?;
        Ok(config)
    }

    /// Width of the query projection (`n_heads * head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Width of the key and value projections (`n_kv_heads * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    fn validate(&self) -> Result<()> {
        let nonzero = [
            ("vocab_size", self.vocab_size),
            ("embedding_length", self.hidden_size),
            ("block_count", self.n_layers),
            ("attention.head_count_kv", self.n_kv_heads),
            ("head_dim", self.head_dim),
            ("feed_forward_length", self.intermediate_size),
            ("context_length", self.context_length),
        ];
        for (name, v) in nonzero {
            if v == 0 {
                return Err(bad(name, "must be at least 1"));
            }
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(bad(
                "attention.head_count_kv",
                &format!(
                    "{} query heads are not a multiple of {} key/value heads",
                    self.n_heads, self.n_kv_heads
                ),
            ));
        }
        if self.rope_dim > self.head_dim || !self.rope_dim.is_multiple_of(2) {
            return Err(bad(
                "rope.dimension_count",
                &format!(
                    "{} must be even and at most the head size {}",
                    self.rope_dim, self.head_dim
                ),
            ));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps >= 0.0) {
            return Err(bad(
                "attention.layer_norm_rms_epsilon",
                "must be finite and >= 0",
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(bad("rope.freq_base", "must be finite and > 0"));
        }
        // Guard against absurd headers before anything is sized from them.
        if self.context_length > 1 << 24 || self.hidden_size > 1 << 20 || self.vocab_size > 1 << 24
        {
            return Err(bad(
                "context_length/embedding_length/vocab_size",
                "implausibly large",
            ));
        }
        Ok(())
    }
}

fn missing(key: &str) -> EngineError {
    EngineError::BadMetadata {
        key: key.to_string(),
        reason: "required key is missing".to_string(),
    }
}

fn bad(key: &str, reason: &str) -> EngineError {
    EngineError::BadMetadata {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

/// Reads a per-layer count that llama.cpp accepts as a scalar or an array; arrays must hold one
/// value for every layer (this engine does not run models whose layers differ in shape).
fn uniform_u64(file: &GgufFile, key: &str) -> Result<Option<u64>> {
    match file.get(key) {
        None => Ok(None),
        Some(Value::Array(_)) => {
            let arr = file.get(key).and_then(Value::as_array);
            let values: Vec<u64> = match arr {
                Some(a) => a
                    .iter_u64()
                    .ok_or_else(|| bad(key, "expected an array of integers"))?,
                None => return Err(bad(key, "expected an array of integers")),
            };
            let first = *values.first().ok_or_else(|| bad(key, "empty array"))?;
            if values.iter().any(|&v| v != first) {
                return Err(bad(key, "layers with different sizes are not supported"));
            }
            Ok(Some(first))
        }
        Some(_) => Ok(Some(file.get_u64(key)?)),
    }
}
