//! Why a conversion failed. Every variant names the file, tensor or key at fault; the
//! underlying library error (if any) is the `source`, printed by `main` after a colon.

use std::path::PathBuf;

/// A failed conversion.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The checkpoint could not be opened or read (not a directory, missing config or
    /// weights, unsupported dtype, missing or extra tensors, bad shapes, ...).
    #[error("reading checkpoint {dir}")]
    Checkpoint {
        /// The input directory.
        dir: PathBuf,
        /// What the checkpoint reader found.
        #[source]
        source: crate::ckpt::CheckpointError,
    },
    /// `config.json` describes no model the engine runs (not BitNet, unknown activation,
    /// inconsistent or implausible dimensions), or `--arch` is not one it runs.
    #[error("reading the model config in {dir}")]
    Config {
        /// The input directory.
        dir: PathBuf,
        /// The schema's reason, naming the field.
        #[source]
        source: bitnet_schema::SchemaError,
    },
    /// A tensor does not have the shape `config.json` implies.
    #[error("tensor '{tensor}': shape {found:?}, expected {expected:?} (from config.json)")]
    ShapeMismatch {
        /// The checkpoint tensor.
        tensor: String,
        /// Shape implied by the config (`[rows, cols]`, PyTorch order).
        expected: Vec<usize>,
        /// Shape found.
        found: Vec<usize>,
    },
    /// A per-tensor scale is NaN, infinite or zero.
    #[error("tensor '{tensor}': scale {scale} is not a finite non-zero number")]
    BadScale {
        /// The checkpoint tensor holding the scale.
        tensor: String,
        /// The value.
        scale: f32,
    },
    /// A float tensor holds NaN or infinite values.
    #[error("tensor '{tensor}': holds NaN or infinite values (element {element})")]
    NonFinite {
        /// The checkpoint tensor.
        tensor: String,
        /// First bad element (flat index).
        element: usize,
    },
    /// A value does not fit the requested float type.
    #[error(
        "tensor '{tensor}': element {element} = {value} overflows {ty}; use --embed-type bf16/f32 or --outtype f32"
    )]
    Overflow {
        /// The tensor.
        tensor: String,
        /// First element that overflows.
        element: usize,
        /// Its value.
        value: f32,
        /// The requested type.
        ty: &'static str,
    },
    /// A tensor's dtype cannot be converted to the requested type.
    #[error("tensor '{tensor}': dtype {dtype} is not supported here ({expected})")]
    UnsupportedDtype {
        /// The checkpoint tensor.
        tensor: String,
        /// Its dtype.
        dtype: String,
        /// What would be accepted.
        expected: &'static str,
    },
    /// The weights cannot be stored in the requested GGUF type (shape, values).
    #[error("tensor '{tensor}' cannot be stored as {outtype}")]
    Encode {
        /// The GGUF tensor.
        tensor: String,
        /// The requested storage type.
        outtype: &'static str,
        /// The encoder's reason.
        #[source]
        source: bitnet_formats::FormatError,
    },
    /// A tensor's shape does not fit the requested type's blocks (checked before writing).
    #[error(
        "tensor '{tensor}' ({rows}x{cols}) cannot be stored as {outtype}: {reason}; try --outtype i2_s or f16"
    )]
    BlockShape {
        /// The GGUF tensor.
        tensor: String,
        /// Output features.
        rows: usize,
        /// Input features.
        cols: usize,
        /// The requested storage type.
        outtype: &'static str,
        /// What the type needs.
        reason: &'static str,
    },
    /// The tokenizer files could not be read.
    #[error("reading the tokenizer in {dir}")]
    Tokenizer {
        /// The input directory.
        dir: PathBuf,
        /// What the tokenizer reader found.
        #[source]
        source: bitnet_tokenizer::TokenizerError,
    },
    /// The tokenizer has more tokens than the embedding has rows.
    #[error(
        "{file}: {tokens} tokens, but config.json vocab_size is {vocab} (the embedding has one row per token)"
    )]
    TokenizerVocab {
        /// `tokenizer.json`.
        file: PathBuf,
        /// Tokens in the tokenizer (including added tokens).
        tokens: usize,
        /// `vocab_size`.
        vocab: usize,
    },
    /// The output is one of the checkpoint's own files (refused even with `--force`).
    #[error(
        "the output {output} is the input file {input}; writing it would destroy the checkpoint (choose another --output)"
    )]
    OutputIsInput {
        /// The output path given.
        output: PathBuf,
        /// The input file it is.
        input: PathBuf,
    },
    /// The output exists and `--force` was not given.
    #[error("{path} exists; pass --force to replace it")]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },
    /// The output path fails the shared output policy (its directory is missing, or it is a
    /// directory).
    #[error(transparent)]
    Output(#[from] bitnet_app::OutputError),
    /// Writing or re-reading the GGUF file failed.
    #[error("{action} {path}")]
    Gguf {
        /// What was being done ("writing", "reopening").
        action: &'static str,
        /// The output path.
        path: PathBuf,
        /// The GGUF library's error (boxed: it is large and this path is cold).
        #[source]
        source: Box<crate::gguf::GgufError>,
    },
    /// The worker threads could not be started.
    #[error("starting {threads} conversion threads")]
    ThreadPool {
        /// The requested count (0: one per core).
        threads: usize,
        /// rayon's reason.
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    /// `--verify` found a difference between the output and the checkpoint.
    #[error("verify {path}: {what}")]
    Verify {
        /// The output path.
        path: PathBuf,
        /// The key or tensor that differs, and how.
        what: String,
    },
}

/// Result alias.
pub type Result<T, E = ConvertError> = std::result::Result<T, E>;
