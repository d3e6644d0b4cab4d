//! Compiles and renders arbitrary chat templates with arbitrary message text under small
//! `ChatLimits`: every input must render or fail with an error (a limit included) quickly,
//! never panic, hang or grow without bound. Input: template bytes, a 0 byte, message bytes.
//!
//! Run: `cargo +nightly fuzz run chat_template fuzz/corpus/chat_template
//! crates/bitnet-server/tests/fuzz_regressions/chat_template -- -max_total_time=600
//! -rss_limit_mb=2048` (from the repository root). Inputs worth keeping go to that second
//! folder (replayed by `cargo test`).
//!
//! Known residual, skipped here: a template that doubles a string *in a variable* without
//! printing it (`{% set ns.s = ns.s ~ ns.s %}` in a loop, found by this target in 45 s, kept
//! in `fuzz/known-residual/`) grows within its fuel until memory runs out: minijinja has no
//! hook on string concatenation, so only a memory-capped render process can bound it. Templates
//! using `namespace` (the loop-carried form) are skipped so the target keeps finding other
//! bugs.
#![no_main]

use bitnet_tokenizer::{ChatLimits, ChatMessage, ChatTemplate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (template, content) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"hi"[..]),
    };
    let template = String::from_utf8_lossy(template);
    if template.contains("namespace") {
        return;
    }
    let content = String::from_utf8_lossy(content);
    let limits = ChatLimits {
        fuel: 20_000,
        max_output_bytes: 64 << 10,
    };
    if let Ok(t) = ChatTemplate::with_limits(&template, limits) {
        let messages = [
            ChatMessage::new("system", "be brief"),
            ChatMessage::new("user", content.as_ref()),
        ];
        if let Ok(out) = t.render(&messages, true, "<s>", "</s>") {
            assert!(out.len() <= limits.max_output_bytes);
        }
    }
});
