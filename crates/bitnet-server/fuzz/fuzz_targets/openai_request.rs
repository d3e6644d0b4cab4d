//! Feeds arbitrary bytes to the OpenAI request parser (`parse_body` for both endpoints): it
//! must answer Ok or an `ApiError` whose OpenAI body serialises, never panic or hang.
//!
//! Run: `cargo +nightly fuzz run openai_request -- -max_total_time=600` (from
//! crates/bitnet-server/fuzz). Inputs worth keeping go to
//! crates/bitnet-server/tests/fuzz_regressions/openai_request/ (replayed by `cargo test`).
#![no_main]

use bitnet_server::api::{ChatRequest, CompletionRequest, parse_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = parse_body::<CompletionRequest>(data) {
        assert!(serde_json::to_string(&e.body()).is_ok());
    }
    if let Err(e) = parse_body::<ChatRequest>(data) {
        assert!(serde_json::to_string(&e.body()).is_ok());
    }
});
