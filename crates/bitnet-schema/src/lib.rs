//! The BitNet b1.58 model schema: one definition of the hyper-parameters, the layer table,
//! the tensor names and the GGUF keys, used by the engine, the converter and the kernel tuner,
//! so that a converter and an engine built from one commit cannot disagree about what a
//! model is.
//!
//! - [`ModelConfig`] ([`config`]): the hyper-parameters, with one [`ModelConfig::validate`]
//!   that every way in runs: [`ModelConfig::from_gguf`], [`ModelConfig::from_hf`] (from
//!   [`HfConfig`], `config.json` parsed by [`hf`]) and [`ModelConfig::to_gguf`], the metadata
//!   the converter writes. [`linear_shapes`] lists the distinct linear shapes for the tuner.
//! - [`Activation`] ([`activation`]): every accepted spelling (`relu2`, `relu^2`, `silu`, ...)
//!   in one table.
//! - [`layers`]: the seven linears and four norms of a block and the model-level tensors, each
//!   with its Hugging Face name, GGUF name and shape; the block order bitnet.cpp writes.
//! - [`keys`] and [`tokenizer`]: the GGUF key names, and the tokenizer's keys in both
//!   directions.
//! - [`presets`]: the shapes of known BitNet models.
//!
//! Architecture invariant: this crate knows names, shapes and values, never tensor data or
//! kernels. It depends only on the GGUF value types and the tokenizer's GGUF form; the
//! checkpoint reader, the engine, the converter and the server depend on it.

#![forbid(unsafe_code)]

pub mod activation;
pub mod config;
pub mod error;
pub mod hf;
pub mod keys;
pub mod layers;
pub mod param;
pub mod presets;
pub mod tokenizer;

pub use activation::Activation;
pub use config::{
    DEFAULT_ARCHITECTURE, MAX_CONTEXT, MAX_LAYERS, ModelConfig, Param, SUPPORTED_ARCHITECTURES,
    linear_shapes,
};
pub use error::{Result, SchemaError};
pub use hf::{HfConfig, KNOWN_LINEAR_CLASSES, Quantization, SUPPORTED_MODEL_TYPES};
pub use layers::{BLOCK_ORDER, BlockTensor, Dims, Linear, ModelTensor, Norm};
