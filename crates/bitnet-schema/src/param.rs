//! [`Param`]: the name of a hyper-parameter as each source spells it, so that an error from
//! validating a config built from a GGUF file names the GGUF key, and one built from
//! `config.json` names the JSON field. A file of its own so that the error type and the config
//! both use it without importing each other.

use crate::keys;

/// A hyper-parameter of [`crate::ModelConfig`], so that an error can name it as its source spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// [`crate::ModelConfig::architecture`].
    Architecture,
    /// [`crate::ModelConfig::vocab_size`].
    VocabSize,
    /// [`crate::ModelConfig::context_length`].
    ContextLength,
    /// [`crate::ModelConfig::hidden_size`].
    HiddenSize,
    /// [`crate::ModelConfig::n_layers`].
    Layers,
    /// [`crate::ModelConfig::intermediate_size`].
    IntermediateSize,
    /// [`crate::ModelConfig::rope_dim`].
    RopeDim,
    /// [`crate::ModelConfig::n_heads`].
    Heads,
    /// [`crate::ModelConfig::n_kv_heads`].
    KvHeads,
    /// [`crate::ModelConfig::rms_norm_eps`].
    RmsNormEps,
    /// [`crate::ModelConfig::rope_theta`].
    RopeTheta,
    /// [`crate::ModelConfig::head_dim`].
    HeadDim,
    /// [`crate::ModelConfig::activation`].
    Activation,
}

impl Param {
    /// The struct field's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Architecture => "architecture",
            Self::VocabSize => "vocab_size",
            Self::ContextLength => "context_length",
            Self::HiddenSize => "hidden_size",
            Self::Layers => "n_layers",
            Self::IntermediateSize => "intermediate_size",
            Self::RopeDim => "rope_dim",
            Self::Heads => "n_heads",
            Self::KvHeads => "n_kv_heads",
            Self::RmsNormEps => "rms_norm_eps",
            Self::RopeTheta => "rope_theta",
            Self::HeadDim => "head_dim",
            Self::Activation => "activation",
        }
    }

    /// The GGUF key holding it in a file of architecture `arch`.
    pub fn gguf_key(self, arch: &str) -> String {
        let suffix = match self {
            Self::Architecture => return keys::ARCHITECTURE.to_string(),
            Self::VocabSize => keys::VOCAB_SIZE,
            Self::ContextLength => keys::CONTEXT_LENGTH,
            Self::HiddenSize => keys::EMBEDDING_LENGTH,
            Self::Layers => keys::BLOCK_COUNT,
            Self::IntermediateSize => keys::FEED_FORWARD_LENGTH,
            Self::RopeDim => keys::ROPE_DIMENSION_COUNT,
            Self::Heads => keys::HEAD_COUNT,
            Self::KvHeads => keys::HEAD_COUNT_KV,
            Self::RmsNormEps => keys::RMS_EPSILON,
            Self::RopeTheta => keys::ROPE_FREQ_BASE,
            Self::HeadDim => keys::KEY_LENGTH,
            Self::Activation => keys::HIDDEN_ACTIVATION,
        };
        keys::arch_key(arch, suffix)
    }

    /// The `config.json` field it comes from (RoPE covers the whole head, so `rope_dim` is
    /// `head_dim` there; the architecture is not in `config.json`, `model_type` stands for it).
    pub fn hf_field(self) -> &'static str {
        match self {
            Self::Architecture => "model_type",
            Self::VocabSize => "vocab_size",
            Self::ContextLength => "max_position_embeddings",
            Self::HiddenSize => "hidden_size",
            Self::Layers => "num_hidden_layers",
            Self::IntermediateSize => "intermediate_size",
            Self::RopeDim | Self::HeadDim => "head_dim",
            Self::Heads => "num_attention_heads",
            Self::KvHeads => "num_key_value_heads",
            Self::RmsNormEps => "rms_norm_eps",
            Self::RopeTheta => "rope_theta",
            Self::Activation => "hidden_act",
        }
    }
}
