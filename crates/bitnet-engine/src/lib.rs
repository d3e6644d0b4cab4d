//! BitNet b1.58 inference: model loading (GGUF files and Hugging Face checkpoints), the
//! W1.58A8 forward pass, KV cache, sampling and generation.
//!
//! The forward pass reproduces transformers' `BitNetForCausalLM` (per-token int8 activation
//! quantisation over the whole row, sub-norms, NEOX RoPE, grouped-query attention, tied head);
//! the tests compare its logits with transformers' on the tiny fixture model.
//!
//! ```no_run
//! use bitnet_engine::{GenerationParams, Generation, LoadOptions, Model, SamplingParams};
//! # fn main() -> Result<(), bitnet_engine::EngineError> {
//! let model = Model::load("model.gguf".as_ref(), &LoadOptions::default())?;
//! let tok = model.tokenizer().expect("model has a tokenizer");
//! let prompt = tok.encode("Ownership in Rust", true, false)?;
//! let mut session = model.new_session();
//! let params = GenerationParams {
//!     max_tokens: 32,
//!     sampling: SamplingParams::greedy(),
//!     stop_ids: tok.stop_ids(),
//!     ..GenerationParams::default()
//! };
//! for token in Generation::new(&model, &mut session, &prompt, params, Some(tok))? {
//!     print!("{}", token?.text);
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod attention;
pub mod backend;
pub mod config;
pub mod constraint;
pub mod decode;
pub mod error;
pub mod generate;
pub mod kv_cache;
mod load;
pub mod logprobs;
pub mod model;
pub mod model_ref;
mod rescore;
pub mod rope;
pub mod sampler;
mod session;
pub mod stop;
pub mod synthetic;
pub mod threads;
pub mod tokenizer;
pub mod weights;

pub use config::{Activation, ModelConfig};
pub use constraint::{Grammar, KeyOrder, SchemaError, TokenConstraint, TokenTexts, key_order};
pub use decode::{Accepted, Decoder, FinishReason, GenerationParams};
pub use error::{EngineError, Result};
pub use generate::{GeneratedToken, Generation, GenerationStats};
pub use kv_cache::KvType;
pub use load::MAX_THREADS;
pub use logprobs::{Logprobs, TokenLogprob};
pub use model::{HeadType, LoadOptions, Model, ModelSource, Session, SessionOptions};
pub use model_ref::ModelRef;
pub use sampler::{Sampler, SamplingParams};
pub use session::DEFAULT_CONTEXT;
pub use stop::{StopCheck, StopMatcher};
