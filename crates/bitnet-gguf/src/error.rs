//! Errors: every variant names the file, key or tensor and what is wrong with it.

use std::path::PathBuf;

/// Why a GGUF file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// An OS error on a named file.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The output exists and overwriting was not requested.
    #[error("{path} already exists (pass --force to overwrite)")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The first four bytes are not `GGUF`.
    #[error("{path}: not a GGUF file (magic {found:?}, expected \"GGUF\")")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The bytes found, lossily decoded.
        found: String,
    },
    /// A version other than 2 or 3.
    #[error("{path}: unsupported GGUF version {version} (supported: 2, 3)")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
    /// The file ends before a field it declares.
    #[error("{path}: truncated at byte {offset}: {what} needs {needed} bytes, {available} left")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Byte offset of the field.
        offset: usize,
        /// The field.
        what: String,
        /// Bytes needed.
        needed: u64,
        /// Bytes left in the file.
        available: usize,
    },
    /// A count (keys, tensors, array elements) larger than the rest of the file could hold.
    #[error("{path}: {what} count {count} at byte {offset} exceeds what the file can hold")]
    CountTooLarge {
        /// The file.
        path: PathBuf,
        /// Byte offset of the count.
        offset: usize,
        /// What is counted.
        what: String,
        /// The count.
        count: u64,
    },
    /// A string that is not UTF-8.
    #[error("{path}: {what} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// The file.
        path: PathBuf,
        /// Byte offset.
        offset: usize,
        /// Which string.
        what: String,
    },
    /// A value type id outside 0..=12.
    #[error("{path}: metadata key '{key}': unknown value type {id}")]
    UnknownValueType {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The id.
        id: u32,
    },
    /// The same key twice.
    #[error("{path}: duplicate metadata key '{key}'")]
    DuplicateKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// The same tensor name twice.
    #[error("{path}: duplicate tensor name '{name}'")]
    DuplicateTensor {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// A tensor name of 64 bytes or more (ggml's GGML_MAX_NAME).
    #[error("tensor name '{name}' is {len} bytes; ggml allows at most 63")]
    NameTooLong {
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// More than 4 dimensions.
    #[error("tensor '{name}' has {n_dims} dimensions; ggml allows at most 4")]
    TooManyDims {
        /// The tensor.
        name: String,
        /// Its dimension count.
        n_dims: u32,
    },
    /// The element count overflows.
    #[error("tensor '{name}': element count of dims {dims:?} overflows")]
    ElementOverflow {
        /// The tensor.
        name: String,
        /// Its dims.
        dims: Vec<u64>,
    },
    /// Dims a type cannot store (partial blocks).
    #[error("tensor '{name}' with dims {dims:?}: {reason}")]
    BadShape {
        /// The tensor.
        name: String,
        /// Its dims.
        dims: Vec<u64>,
        /// Why.
        reason: String,
    },
    /// A tensor type id that ggml does not define (or has removed).
    #[error("tensor '{name}': unknown ggml type id {id}")]
    UnknownTensorType {
        /// The tensor.
        name: String,
        /// The id.
        id: u32,
    },
    /// `general.alignment` that is zero, not a power of two, or not a u32.
    #[error("{path}: general.alignment must be a non-zero power of two u32, found {found}")]
    BadAlignment {
        /// The file.
        path: PathBuf,
        /// What was found.
        found: String,
    },
    /// A tensor offset that is not a multiple of the alignment.
    #[error(
        "{path}: tensor '{name}' offset {offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its offset within the data section.
        offset: u64,
        /// The alignment.
        alignment: usize,
    },
    /// Two tensors' data overlap.
    #[error("{path}: tensor '{name}' data overlaps tensor '{other}'")]
    OverlappingTensors {
        /// The file.
        path: PathBuf,
        /// One tensor.
        name: String,
        /// The other.
        other: String,
    },
    /// A tensor's data runs past the end of the file.
    #[error(
        "{path}: tensor '{name}' data ({size} bytes at file offset {start}) runs past the end of the file ({file_size} bytes)"
    )]
    DataPastEnd {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Absolute start.
        start: u64,
        /// Size in bytes.
        size: usize,
        /// File size.
        file_size: usize,
    },
    /// A required metadata key is absent.
    #[error("{path}: missing metadata key '{key}'")]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A metadata key holds another type than the one needed.
    #[error("{path}: metadata key '{key}' is {found}, expected {expected}")]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What the caller needed.
        expected: &'static str,
        /// What the file holds.
        found: String,
    },
    /// Writer: tensors written out of order, with the wrong size, or not at all; or an
    /// invalid tensor declaration.
    #[error("tensor '{name}': {reason}")]
    Tensor {
        /// The tensor.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Result with [`GgufError`].
pub type Result<T> = std::result::Result<T, GgufError>;
