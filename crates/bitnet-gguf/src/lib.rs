//! GGUF v3 reader (memory-mapped, validated, zero-copy) and streaming writer.
//!
//! Written by hand because no crate on crates.io fits: `gguf-rs` (tried first) sizes BF16, I8
//! and several quantised types wrongly, rejects bitnet.cpp's I2_S (type 36), loses metadata
//! types and truncates tokenizer arrays. This crate knows the exact byte size of every ggml
//! type, keeps all 13 metadata value types exactly, and validates every header field before
//! trusting it.
//!
//! ```no_run
//! # fn main() -> Result<(), bitnet_gguf::GgufError> {
//! let file = bitnet_gguf::GgufFile::open("model.gguf")?;
//! println!("{} with {} tensors", file.architecture()?, file.tensors().len());
//! for t in file.tensors() {
//!     println!("{} {} {:?} {} bytes", t.name, t.ggml_type, t.dims, t.size_bytes);
//! }
//! # Ok(()) }
//! ```

mod error;
mod reader;
mod types;
mod value;
mod writer;

pub use error::{GgufError, Result};
pub use reader::{DEFAULT_ALIGNMENT, GgufFile, MAX_DIMS, MAX_NAME_BYTES, TensorInfo};
pub use types::{GgmlType, I2S_TRAILER_BYTES, element_count};
pub use value::{Array, Value, ValueType};
pub use writer::{GgufWriter, TensorSpec, stale_temp_files, temp_path, to_bytes};
