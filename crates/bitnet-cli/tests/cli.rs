//! Drives the `bitnet-cli` binary as a user would, on the tiny fixture models.

mod util;

mod bench;
mod default_model;
mod errors;
mod inspect;
mod llama_parity;
mod logits;
mod misc;
mod receipt;
mod run;
