//! Feeds arbitrary bytes to the OpenAI request parser (`bitnet_openai::parse_body_fields` for
//! both endpoints): it must answer Ok or a `RequestError` with a message (which the server
//! answers as a 400), never panic or hang.
//!
//! Run: `cargo +nightly fuzz run openai_request fuzz/corpus/openai_request
//! crates/bitnet-server/tests/fuzz_regressions/openai_request -- -max_total_time=600` (from the
//! repository root). Inputs worth keeping go to that second folder (replayed by `cargo test`).
#![no_main]

use bitnet_openai::{ChatRequest, CompletionRequest, parse_body_fields};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = parse_body_fields::<CompletionRequest>(data) {
        assert!(!e.message.is_empty());
    }
    if let Err(e) = parse_body_fields::<ChatRequest>(data) {
        assert!(!e.message.is_empty());
    }
});
