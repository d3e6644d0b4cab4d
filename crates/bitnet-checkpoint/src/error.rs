//! Why a checkpoint cannot be read: each variant names the file, tensor or field.

use std::path::PathBuf;

use safetensors::Dtype;

/// Why a checkpoint cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The input path is not a directory.
    #[error("{path} is not a directory (expected a Hugging Face checkpoint directory)")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// `config.json` is absent.
    #[error("{path} is missing")]
    MissingConfig {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// Neither `model.safetensors` nor `model.safetensors.index.json` exists.
    #[error("{dir} has neither model.safetensors nor model.safetensors.index.json")]
    MissingWeights {
        /// The directory.
        dir: PathBuf,
    },
    /// `model.safetensors.index.json` names a shard that is not in the directory.
    #[error("{index}: shard {shard} is missing")]
    MissingShard {
        /// The index file.
        index: PathBuf,
        /// The shard it names.
        shard: PathBuf,
    },
    /// A file could not be read or mapped.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `config.json` is malformed or a field has the wrong type.
    #[error(transparent)]
    Config(#[from] bitnet_schema::SchemaError),
    /// A JSON file is malformed or a field has the wrong type.
    #[error("{path}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A safetensors header is invalid.
    #[error("{path}: invalid safetensors file: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The safetensors crate's message.
        message: String,
    },
    /// A tensor the config implies is absent.
    #[error("missing tensor '{name}'")]
    MissingTensor {
        /// The tensor name.
        name: String,
    },
    /// A tensor no BitNet model has.
    #[error("unexpected tensor '{name}' in {file} (not part of a BitNet model with this config)")]
    UnexpectedTensor {
        /// The tensor name.
        name: String,
        /// The file holding it.
        file: PathBuf,
    },
    /// `num_hidden_layers` needs more tensors than the safetensors files hold.
    #[error(
        "config.json field 'num_hidden_layers': {layers} layers need at least {needed} tensors, the checkpoint has {found}"
    )]
    TooFewTensors {
        /// `num_hidden_layers`.
        layers: usize,
        /// Tensors those layers need.
        needed: usize,
        /// Tensors in the checkpoint.
        found: usize,
    },
    /// A tensor has the wrong shape.
    #[error("tensor '{name}': shape {found:?}, expected {expected}")]
    Shape {
        /// The tensor name.
        name: String,
        /// Expected shape, described.
        expected: String,
        /// Shape found.
        found: Vec<usize>,
    },
    /// A tensor has a dtype this layout does not use.
    #[error("tensor '{name}': unsupported dtype {dtype:?} ({expected})")]
    Dtype {
        /// The tensor name.
        name: String,
        /// Its dtype.
        dtype: Dtype,
        /// What is accepted.
        expected: &'static str,
    },
    /// A value is not what the layout allows (non-ternary, code 3, NaN scale).
    #[error("tensor '{name}': {reason}")]
    BadValue {
        /// The tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Result with [`CheckpointError`].
pub type Result<T> = std::result::Result<T, CheckpointError>;
