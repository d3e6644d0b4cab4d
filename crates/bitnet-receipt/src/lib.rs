//! Run records ("receipts") for BitNet b1.58 generations: one typed schema, one
//! model-identity rule, and verification by rerunning, shared by every front end.
//!
//! Why a crate of its own: the CLI (`run --receipt`, `verify-receipt`) and the server
//! (`receipts` feature, `GET /v1/receipts/{id}`) used to keep one schema each, both called
//! version 1, and two different hashes of a checkpoint directory, so the same model had two
//! identities and the CLI could not check a server's receipt. Both front ends now depend on
//! this crate (and it on the engine only), so there is one floor to change, not two copies.
//!
//! - [`Receipt`] (schema version [`SCHEMA_VERSION`]): model identity and shapes, the kernels
//!   that ran (read from the dispatcher's counters), every setting a rerun needs, prompt and
//!   output ids, timings, the writing tool, and an optional server section.
//! - [`ModelIdentity::of`]: the identity of a [`bitnet_engine::ModelRef`] (file, checkpoint
//!   directory, embedded model, synthetic preset and seed); see [`identity`] for the rule.
//! - [`Receipt::verify`]: hash the model, reload it with [`bitnet_engine::Model::open`],
//!   rerun with [`bitnet_engine::Generation`] and compare output ids, text and finish
//!   reason; a difference is a [`Mismatch`] naming what differs.
//!
//! ```no_run
//! use bitnet_receipt::{Receipt, VerifyOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let receipt = Receipt::read("receipt.json".as_ref())?;
//! let verified = receipt.verify(&VerifyOptions::default())?;
//! println!("receipt verified: {} tokens match", verified.tokens);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod error;
pub mod identity;
pub mod schema;
pub mod verify;

pub use error::{IdentityError, Mismatch, ReadError, SchemaError, VerifyError};
pub use identity::{ModelIdentity, hash_path, model_ref_text, sha256_hex};
pub use schema::{
    Batching, Constraint, ConstraintKind, Dispatched, KernelInfo, ModelInfo, Output, Prompt,
    Receipt, Run, ServerInfo, Settings, Shapes, Timings, Tool, kv_type_name, parse_kv_type,
    source_name, unix_now,
};
pub use verify::{Verified, VerifyOptions};

/// The schema version this crate writes and reads (2: the typed receipt both front ends
/// write; version 1 receipts of the old per-front-end formats are refused).
pub const SCHEMA_VERSION: u32 = 2;
