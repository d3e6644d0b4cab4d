//! Helpers the test trees of several crates need, kept once (`publish = false`, a
//! dev-dependency only):
//!
//! - [`fixtures`]: where the repository's fixtures are, and the transformers reference data
//!   recorded with them (greedy tokens and their top-2 margins).
//! - [`npy`]: a reader for the float32 C-order `.npy` files the references and
//!   `bitnet-cli logits` use (written by hand: the format is a 10-byte preamble and a Python
//!   dict literal, and test code wants panics with the file name, not a dependency).
//! - [`logits`]: max |difference| and top-1 agreement of two logit matrices.
//! - [`data`]: seeded ternary test weights.
//! - [`hub`]: a stand-in for the Hugging Face Hub on 127.0.0.1 (API listing, resolve with
//!   the Hub's headers and CDN redirect, ranged GETs, a dropped connection or a corrupted body
//!   on demand), for the download tests of `bitnet-hub` and the front ends.
//! - [`alloc`]: a counting global allocator, for the tests that prove the hot path does not
//!   allocate.
//!
//! `tests/architecture.rs` of this crate holds the workspace's structural rules
//! (ARCHITECTURE.md): forbidden crate edges read from `cargo metadata`, and no import cycles
//! between source files.

pub mod alloc;
pub mod data;
pub mod fixtures;
pub mod hub;
pub mod logits;
pub mod npy;
