//! Model hyper-parameters: the schema's [`ModelConfig`] and [`Activation`]
//! (`bitnet_schema`), re-exported so that `bitnet_engine::config::ModelConfig` and
//! `bitnet_engine::ModelConfig` keep working.
//!
//! The engine keeps no copy of the keys, defaults or checks: `ModelConfig::from_gguf`,
//! `ModelConfig::from_hf` and `ModelConfig::validate` are the ones the converter uses, so the
//! engine loads every file the converter writes and every checkpoint the converter converts.

pub use bitnet_schema::{
    Activation, DEFAULT_ARCHITECTURE, ModelConfig, Param, SUPPORTED_ARCHITECTURES, linear_shapes,
};
