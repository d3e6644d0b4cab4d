//! `config.json`: parsed into the schema's [`HfConfig`] (`bitnet_schema::hf`), which owns the
//! fields, transformers' defaults and every spelling; this crate only reads the file. The
//! types are re-exported so `bitnet_checkpoint::HfConfig` keeps working.

pub use bitnet_schema::{HfConfig, Quantization};
