//! GGUF metadata key names.
//!
//! Model keys are `<arch>.<suffix>` (llama.cpp's `LLM_KV_*` spellings), so the suffixes live
//! here and [`crate::Param::gguf_key`] joins them with the architecture; file-level keys are
//! under `general.*`. Tokenizer keys are in [`crate::tokenizer`].

/// `general.architecture`: the model family, and the prefix of the model keys.
pub const ARCHITECTURE: &str = "general.architecture";
/// `general.name`: a human-readable model name.
pub const NAME: &str = "general.name";
/// `general.file_type`: llama.cpp's `llama_ftype` of the bulk of the weights.
pub const FILE_TYPE: &str = "general.file_type";
/// `general.quantization_version`: ggml's quantisation format version (2).
pub const QUANTIZATION_VERSION: &str = "general.quantization_version";

/// `<arch>.vocab_size`.
pub const VOCAB_SIZE: &str = "vocab_size";
/// `<arch>.context_length`.
pub const CONTEXT_LENGTH: &str = "context_length";
/// `<arch>.embedding_length` (hidden size).
pub const EMBEDDING_LENGTH: &str = "embedding_length";
/// `<arch>.block_count`.
pub const BLOCK_COUNT: &str = "block_count";
/// `<arch>.feed_forward_length`.
pub const FEED_FORWARD_LENGTH: &str = "feed_forward_length";
/// `<arch>.rope.dimension_count`.
pub const ROPE_DIMENSION_COUNT: &str = "rope.dimension_count";
/// `<arch>.attention.head_count`.
pub const HEAD_COUNT: &str = "attention.head_count";
/// `<arch>.attention.head_count_kv`.
pub const HEAD_COUNT_KV: &str = "attention.head_count_kv";
/// `<arch>.attention.layer_norm_rms_epsilon`.
pub const RMS_EPSILON: &str = "attention.layer_norm_rms_epsilon";
/// `<arch>.rope.freq_base`.
pub const ROPE_FREQ_BASE: &str = "rope.freq_base";
/// `<arch>.attention.key_length` (head size, when not `embedding_length / head_count`).
pub const KEY_LENGTH: &str = "attention.key_length";
/// `<arch>.attention.value_length` (written with `key_length`; equal to it for BitNet).
pub const VALUE_LENGTH: &str = "attention.value_length";
/// `<arch>.hidden_activation`: BitNet-rs's key for the FFN activation (llama.cpp ignores
/// keys it does not know and assumes SiLU).
pub const HIDDEN_ACTIVATION: &str = "hidden_activation";

/// `<arch>.<suffix>`.
pub fn arch_key(arch: &str, suffix: &str) -> String {
    format!("{arch}.{suffix}")
}
