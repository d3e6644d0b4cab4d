//! Drives the `bitnet-cli` binary as a user would, on the tiny fixture models.

mod util;

mod bench;
#[cfg(unix)]
mod chat;
mod default_model;
mod errors;
mod hub;
mod inspect;
mod llama_parity;
mod logits;
mod misc;
mod receipt;
mod run;
