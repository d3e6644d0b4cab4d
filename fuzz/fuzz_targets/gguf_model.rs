//! Feeds arbitrary bytes to the whole GGUF model loader (parse, schema, weights, session,
//! one forward pass): it must return Ok or Err, never panic, abort on an allocation, or hang.
//!
//! Run: `cargo +nightly fuzz run gguf_model fuzz/corpus/gguf_model
//! crates/bitnet-engine/tests/fuzz_regressions/gguf_model -- -max_total_time=600
//! -rss_limit_mb=2048` (from the repository root; the second folder holds the seed and every
//! input worth keeping, replayed by crates/bitnet-engine/tests/fuzz_regressions.rs).
#![no_main]

#[path = "../../crates/bitnet-engine/tests/fuzz_harness/mod.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    harness::gguf_model(data);
});
