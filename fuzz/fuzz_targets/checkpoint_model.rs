//! Feeds arbitrary `config.json` + `model.safetensors` pairs to the checkpoint loader
//! (config parsing and validation, safetensors header, layouts, weights, one forward pass):
//! it must return Ok or Err, never panic, abort on an allocation, or hang. The input format
//! is `harness::split_checkpoint`'s.
//!
//! Run: `cargo +nightly fuzz run checkpoint_model fuzz/corpus/checkpoint_model
//! crates/bitnet-engine/tests/fuzz_regressions/checkpoint_model -- -max_total_time=600
//! -rss_limit_mb=2048` (from the repository root; kept inputs as for `gguf_model`).
#![no_main]

#[path = "../../crates/bitnet-engine/tests/fuzz_harness/mod.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    harness::checkpoint_model(data);
});
