//! Names of the per-block tensors: the schema's layer table (`bitnet_schema::layers`),
//! re-exported so `bitnet_checkpoint::{Linear, Norm}` keep working.

pub use bitnet_schema::{Linear, Norm};
