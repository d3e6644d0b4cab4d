//! One error enum for everything this crate can refuse, each variant naming the file, GGUF
//! field or token id at fault so a user can act on the message.

use std::path::PathBuf;

/// Why a tokenizer could not be loaded, built or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (tokenizer_config.json, config.json) is not valid JSON or has a wrong shape.
    #[error("{}: {message}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tokenizer.json the `tokenizers` crate refused, or one this crate cannot convert.
    #[error("{}: {message}", path.display())]
    TokenizerFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `tokenizer.ggml.model` names a tokenizer this crate does not implement.
    #[error("unsupported tokenizer.ggml.model {0:?} (supported: \"gpt2\", \"llama\")")]
    UnknownModel(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer this crate does not implement.
    #[error(
        "unsupported tokenizer.ggml.pre {0:?} for a gpt2 tokenizer (supported: absent, \"llama-bpe\" \
         and its aliases for the Llama-3 split, \"gpt-2\")"
    )]
    UnknownPre(String),
    /// A GGUF tokenizer field is missing, inconsistent or out of range.
    #[error("invalid {field}: {message}")]
    InvalidField {
        /// The GGUF key, e.g. `tokenizer.ggml.merges`.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A token id given to decode or a stream is not in the vocabulary.
    #[error("token id {id} is out of range: the vocabulary has {vocab_size} tokens")]
    TokenIdOutOfRange {
        /// The id.
        id: u32,
        /// Number of tokens in the vocabulary.
        vocab_size: usize,
    },
    /// BOS was requested but the tokenizer has no BOS token.
    #[error("a BOS token was requested but this tokenizer has none")]
    NoBosToken,
    /// The chat template failed to parse or render (including `raise_exception`).
    #[error("chat template: {0}")]
    ChatTemplate(String),
    /// The chat template hit a render limit (fuel or output size): it loops too long or writes
    /// too much. Its own variant so a server can answer it apart from a template error.
    #[error("chat template: {what} limit of {limit} exceeded ({hint})")]
    ChatTemplateLimit {
        /// `fuel` (instructions) or `output` (bytes).
        what: &'static str,
        /// The limit that tripped.
        limit: u64,
        /// What it usually means.
        hint: &'static str,
    },
    /// The `tokenizers` crate failed while encoding or decoding.
    #[error("tokenizer: {0}")]
    Tokenizers(String),
}
