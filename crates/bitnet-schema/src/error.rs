//! Why a model description is refused. Each variant names the field or key in the spelling of
//! the source it came from (`config.json` field, GGUF key, or the [`ModelConfig`] field when
//! the config was built in code), so the message alone says what to fix.
//!
//! [`ModelConfig`]: crate::ModelConfig

use std::path::PathBuf;

use crate::param::Param;

/// A model description that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A GGUF value has the wrong type (the reader names the key).
    #[error(transparent)]
    Gguf(#[from] bitnet_gguf::GgufError),
    /// `config.json` is not JSON, or a field has the wrong JSON type.
    #[error("{path}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `general.architecture` (or `--arch`) names a model the engine does not run.
    #[error("unsupported architecture '{arch}' (supported: {supported})")]
    UnsupportedArchitecture {
        /// The architecture given.
        arch: String,
        /// The accepted names, comma-separated.
        supported: String,
    },
    /// `config.json` `model_type` names a model that is not BitNet.
    #[error(
        "config.json model_type '{model_type}' is not supported (supported: {supported}); BitNet b1.58 checkpoints only"
    )]
    UnsupportedModelType {
        /// The value found.
        model_type: String,
        /// The accepted values, comma-separated.
        supported: String,
    },
    /// A GGUF metadata key is missing or holds a value no BitNet model can have.
    #[error("metadata key '{key}': {reason}")]
    Metadata {
        /// The full key (`bitnet-b1.58.embedding_length`).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `config.json` field holds a value no BitNet model can have.
    #[error("config.json field '{field}': {reason}")]
    Config {
        /// The field (`hidden_act`, `num_key_value_heads`, ...).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A [`crate::ModelConfig`] built in code breaks an invariant.
    #[error("model config field '{}': {reason}", .param.name())]
    Invalid {
        /// The hyper-parameter.
        param: Param,
        /// What is wrong with it.
        reason: String,
    },
}

impl SchemaError {
    /// The same problem named in a GGUF file's spelling (`<arch>.<key>`).
    pub(crate) fn in_gguf(self, arch: &str) -> Self {
        match self {
            Self::Invalid { param, reason } => Self::Metadata {
                key: param.gguf_key(arch),
                reason,
            },
            other => other,
        }
    }

    /// The same problem named in `config.json`'s spelling.
    pub(crate) fn in_hf(self) -> Self {
        match self {
            Self::Invalid { param, reason } => Self::Config {
                field: param.hf_field(),
                reason,
            },
            other => other,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = SchemaError> = std::result::Result<T, E>;
