//! One error type for loading and running a model. Every variant names what is wrong
//! (file, key, tensor, shapes), so a user can act on the message alone.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a BitNet model.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The GGUF file could not be read or is malformed.
    #[error(transparent)]
    Gguf(#[from] bitnet_gguf::GgufError),
    /// The Hugging Face checkpoint could not be read or is malformed.
    #[error(transparent)]
    Checkpoint(#[from] bitnet_checkpoint::CheckpointError),
    /// The tokenizer could not be built or used.
    #[error(transparent)]
    Tokenizer(#[from] bitnet_tokenizer::TokenizerError),
    /// A path is neither a GGUF file nor a checkpoint directory.
    #[error(
        "{path}: not a model: expected a .gguf file or a Hugging Face checkpoint directory (config.json + model.safetensors)"
    )]
    NotAModel {
        /// The path given.
        path: PathBuf,
    },
    /// A synthetic model preset that does not exist.
    #[error("unknown synthetic model preset '{name}' (known: {known})")]
    UnknownPreset {
        /// The name given.
        name: String,
        /// The known names.
        known: String,
    },
    /// I/O error on a named file.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The hyper-parameters are missing, unsupported or inconsistent (the schema names the
    /// GGUF key or `config.json` field).
    #[error(transparent)]
    Schema(#[from] bitnet_schema::SchemaError),
    /// A required tensor is absent.
    #[error("missing tensor '{name}'")]
    MissingTensor {
        /// The tensor name.
        name: String,
    },
    /// A tensor's shape does not fit the declared model shape.
    #[error("tensor '{name}': shape {found:?} does not match the model's expected {expected:?}")]
    ShapeMismatch {
        /// The tensor name.
        name: String,
        /// What the configuration implies.
        expected: Vec<u64>,
        /// What the file holds.
        found: Vec<u64>,
    },
    /// A tensor is stored in a type the engine cannot use for its role.
    #[error("tensor '{name}': type {ty} is not supported here ({reason})")]
    UnsupportedTensorType {
        /// The tensor name.
        name: String,
        /// The ggml type name.
        ty: String,
        /// Which types would work.
        reason: String,
    },
    /// A ternary tensor could not be decoded.
    #[error("tensor '{name}'")]
    Format {
        /// The tensor name.
        name: String,
        /// The decoding error.
        source: bitnet_kernels::formats::FormatError,
    },
    /// The header's block count needs more tensors than the file has.
    #[error(
        "block count {layers} needs at least {needed} tensors, the file has {found} (a corrupt or hostile header)"
    )]
    TooFewTensors {
        /// The block count from the metadata.
        layers: usize,
        /// Tensors those blocks need.
        needed: usize,
        /// Tensors in the file.
        found: usize,
    },
    /// A tensor holds NaN or infinite values or scales.
    #[error("tensor '{name}': {reason}")]
    BadTensor {
        /// The tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// More tokens than the context holds.
    #[error("context overflow: {needed} tokens do not fit in the context of {ctx} tokens")]
    ContextOverflow {
        /// Tokens the request needs (cache + new).
        needed: usize,
        /// The session's context length.
        ctx: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary (size {vocab})")]
    InvalidToken {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// An empty token sequence was given where at least one token is needed.
    #[error("no tokens to process: the prompt is empty")]
    EmptyInput,
    /// The model has no tokenizer but text was given.
    #[error("this model has no tokenizer; give token ids instead of text")]
    NoTokenizer,
    /// A generation or sampling setting is out of range.
    #[error("invalid setting {name} = {value}: {reason}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// Its value, formatted.
        value: String,
        /// The valid range.
        reason: &'static str,
    },
}

/// Result alias for this crate.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
