//! `bitnet-st2gguf` as a library: the converter behind the binary, public so that tests and
//! other tools can drive a conversion or read its output.
//!
//! - [`args`]: the command line; [`convert::run`] performs a conversion from it.
//! - [`ckpt`] (the `bitnet-checkpoint` crate): Hugging Face checkpoint reading (config,
//!   memory-mapped safetensors, the packed / unpacked-ternary / master layouts decoded to
//!   `TernaryWeights`).
//! - [`metadata`]: the GGUF keys; [`gguf`] (the `bitnet-gguf` crate): GGUF writing (streamed,
//!   temp file + rename) and reading; [`verify`]: `--verify`.

pub mod args;
pub mod convert;
pub mod error;
pub mod metadata;
pub mod verify;

pub use bitnet_checkpoint as ckpt;
pub use bitnet_gguf as gguf;
