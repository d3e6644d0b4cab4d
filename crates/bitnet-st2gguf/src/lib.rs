//! `bitnet-st2gguf` as a library: the converter behind the binary, public so that tests and
//! other tools can drive a conversion or read its output.
//!
//! - [`args`]: the command line; [`convert::run`] performs a conversion from it.
//! - [`ckpt`]: Hugging Face checkpoint reading (config, memory-mapped safetensors, the packed /
//!   unpacked-ternary / master layouts decoded to `TernaryWeights`).
//! - [`metadata`]: the GGUF keys; [`gguf`]: GGUF writing (streamed, temp file + rename) and
//!   reading; [`verify`]: `--verify`.

pub mod args;
pub mod ckpt;
pub mod convert;
pub mod error;
pub mod gguf;
pub mod metadata;
pub mod verify;
