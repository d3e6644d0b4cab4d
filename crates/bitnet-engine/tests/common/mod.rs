//! Shared helpers for the engine's integration tests: fixture paths, `.npy` reading, and the
//! reference data recorded from Hugging Face transformers.
#![allow(dead_code)]

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use bitnet_test_support::fixtures::{RefPrompt, read_greedy};
#[allow(unused_imports)]
pub use bitnet_test_support::logits::{argmax, compare};
#[allow(unused_imports)]
pub use bitnet_test_support::npy::read_f32 as read_npy;

/// `fixtures/tiny-bitnet/<rel>` in the repository.
pub fn fixture(rel: &str) -> std::path::PathBuf {
    bitnet_test_support::fixtures::tiny(rel)
}
