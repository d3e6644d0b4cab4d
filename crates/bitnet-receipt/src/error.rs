//! Errors, one enum per job: reading a receipt ([`ReadError`], [`SchemaError`]), hashing a
//! model ([`IdentityError`]) and verifying ([`VerifyError`], [`Mismatch`]).
//!
//! Each message names what is wrong (the file, the field, the token) and none formats its own
//! `#[source]`: a chain printer (the CLI's `message_chain`, `anyhow`'s `{:#}`) shows every
//! cause once, e.g. `receipt mismatch: output token 3 differs: receipt has 7, rerun gave 9`.

use std::path::PathBuf;

use crate::SCHEMA_VERSION;

/// Why a text is not a receipt this crate reads.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// Not JSON, or JSON whose fields do not fit the schema (the message names the field).
    #[error("{0}")]
    Json(String),
    /// The JSON is not an object.
    #[error("expected a JSON object")]
    NotAnObject,
    /// No `schema_version` field.
    #[error("missing schema_version")]
    MissingVersion,
    /// A version-1 receipt (the two schemas the front ends wrote before v2).
    #[error("schema_version 1 is no longer read; rerun to get a v2 receipt")]
    Version1,
    /// A version this crate does not know.
    #[error("schema_version {0} is not supported (this tool reads {SCHEMA_VERSION})")]
    UnsupportedVersion(u64),
    /// Another kind of record from the same log (a KV eviction), not a generation.
    #[error("a '{0}' record is not a generation receipt")]
    NotAGeneration(String),
}

/// A receipt file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a receipt.
    #[error("{}: not a valid receipt", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: SchemaError,
    },
}

/// A model could not be hashed (the path names the file or directory).
#[derive(Debug, thiserror::Error)]
#[error("{}: hashing the model", path.display())]
pub struct IdentityError {
    /// The file or directory.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

/// What differs between a receipt and its rerun (or its model).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The model is another one (e.g. another synthetic preset or seed, or a file where the
    /// receipt names a synthetic model).
    #[error("model differs: receipt has {receipt}, rerun has {rerun}")]
    Model {
        /// The receipt's model reference.
        receipt: String,
        /// The model checked.
        rerun: String,
    },
    /// The model's size differs.
    #[error("model size differs: receipt has {receipt} bytes, {model} has {actual}")]
    ModelSize {
        /// Bytes in the receipt.
        receipt: u64,
        /// The model checked.
        model: String,
        /// Its bytes.
        actual: u64,
    },
    /// The model's SHA-256 differs.
    #[error("model sha256 differs: receipt has {receipt}, {model} has {actual}")]
    ModelSha256 {
        /// Hash in the receipt.
        receipt: String,
        /// The model checked.
        model: String,
        /// Its hash.
        actual: String,
    },
    /// A generated token differs.
    #[error("output token {index} differs: receipt has {receipt}, rerun gave {rerun}")]
    OutputToken {
        /// Position in the output.
        index: usize,
        /// The receipt's id.
        receipt: u32,
        /// The rerun's id.
        rerun: u32,
    },
    /// The rerun generated more or fewer tokens.
    #[error("output length differs: receipt has {receipt} tokens, rerun gave {rerun}")]
    OutputLength {
        /// Tokens in the receipt.
        receipt: usize,
        /// Tokens of the rerun.
        rerun: usize,
    },
    /// The output text differs (same ids: a detokenizer or stop-string difference).
    #[error("output text differs: receipt has {receipt:?}, rerun gave {rerun:?}")]
    OutputText {
        /// The receipt's text.
        receipt: String,
        /// The rerun's text.
        rerun: String,
    },
    /// Generation ended for another reason.
    #[error("finish reason differs: receipt has {receipt}, rerun gave {rerun}")]
    FinishReason {
        /// The receipt's reason.
        receipt: String,
        /// The rerun's reason.
        rerun: &'static str,
    },
}

/// Why a receipt did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The receipt and the rerun (or the model) differ.
    #[error("receipt mismatch")]
    Mismatch(#[from] Mismatch),
    /// The model could not be hashed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A field holds a value no run could have recorded.
    #[error("receipt field {field}: {reason}")]
    BadField {
        /// The field, dotted (`settings.kv_type`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Loading the model or generating failed.
    #[error("rerunning the receipt")]
    Engine(#[source] bitnet_engine::EngineError),
}
