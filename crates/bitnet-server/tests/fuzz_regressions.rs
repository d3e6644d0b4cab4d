//! Inputs kept from fuzzing (`fuzz/`, targets `openai_request` and `chat_template`): the seeds
//! the fuzzers start from and any input that once crashed, hung or blew up. Each is replayed
//! through the same calls as its fuzz target and must finish cleanly and quickly.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bitnet_openai::{ChatRequest, CompletionRequest, parse_body};
use bitnet_server::ApiError;
use bitnet_tokenizer::{ChatLimits, ChatMessage, ChatTemplate};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 3,
        "expected the seed files in {}",
        dir.display()
    );
    out
}

#[test]
fn kept_openai_requests_parse_or_fail_cleanly() {
    for (path, data) in inputs("openai_request") {
        for result in [
            parse_body::<CompletionRequest>(&data).map(|_| ()),
            parse_body::<ChatRequest>(&data).map(|_| ()),
        ] {
            if let Err(e) = result {
                let body = serde_json::to_value(ApiError::from(e).body()).unwrap();
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty()),
                    "{}: {body}",
                    path.display()
                );
            }
        }
    }
    // The seeds that are valid requests parse.
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions/openai_request");
    assert!(
        parse_body::<CompletionRequest>(&std::fs::read(dir.join("seed-completion")).unwrap())
            .is_ok()
    );
    assert!(parse_body::<ChatRequest>(&std::fs::read(dir.join("seed-chat")).unwrap()).is_ok());
}

#[test]
fn kept_chat_templates_render_within_their_limits() {
    let limits = ChatLimits {
        fuel: 20_000,
        max_output_bytes: 64 << 10,
    };
    for (path, data) in inputs("chat_template") {
        let (template, content) = match data.iter().position(|&b| b == 0) {
            Some(i) => (&data[..i], &data[i + 1..]),
            None => (&data[..], &b"hi"[..]),
        };
        let template = String::from_utf8_lossy(template);
        let content = String::from_utf8_lossy(content);
        let start = Instant::now();
        if let Ok(t) = ChatTemplate::with_limits(&template, limits) {
            let messages = [
                ChatMessage::new("system", "be brief"),
                ChatMessage::new("user", content.as_ref()),
            ];
            if let Ok(out) = t.render(&messages, true, "<s>", "</s>") {
                assert!(out.len() <= limits.max_output_bytes, "{}", path.display());
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{} took {:?}",
            path.display(),
            start.elapsed()
        );
    }
}
