//! `bitnet-st2gguf` as a library: the converter behind the binary, public so that tests and
//! other tools can drive a conversion or read its output.
//!
//! - [`args`]: the command line; [`convert::run`] performs a conversion from it.
//! - [`plan`]: what to write (tensor list, types, sizes, metadata), from the schema;
//!   [`metadata`]: the GGUF keys (the schema's) and the tokenizer fitted to the vocabulary.
//! - [`source`]: reading a planned tensor from the checkpoint; [`encode`]: turning it into
//!   the stored bytes; [`convert`]: the parallel convert / sequential write loop;
//!   [`verify`]: `--verify`; [`output`]: the output is never an input, and no temporary file
//!   outlives an interrupted run.
//! - [`ckpt`] (the `bitnet-checkpoint` crate): Hugging Face checkpoint reading (config,
//!   memory-mapped safetensors, the packed / unpacked-ternary / master layouts decoded to
//!   `TernaryWeights`); [`gguf`] (the `bitnet-gguf` crate): GGUF writing (streamed to a
//!   temporary file, then renamed) and reading; [`schema`] (the `bitnet-schema` crate): the
//!   model description shared with the engine.
//!
//! Modules depend in one direction only (a test checks that no two import each other):
//! `args`, `error` <- `metadata` <- `plan` <- `source` <- `encode` <- `convert`, and
//! `verify` (on `plan` and `source`) <- `convert`, `output` (on `error`) <- `convert`.

#![forbid(unsafe_code)]

pub mod args;
pub mod convert;
pub mod encode;
pub mod error;
pub mod metadata;
pub mod output;
pub mod plan;
pub mod source;
pub mod verify;

pub use bitnet_checkpoint as ckpt;
pub use bitnet_gguf as gguf;
pub use bitnet_schema as schema;
