//! The served model file cannot change under the real binary (issue 14): truncating it in
//! place and then overwriting it (as `cp other.gguf served.gguf` does) while the server runs
//! leaves every answer as it was; with a memory-mapped model the next request raised SIGBUS.
//! Also `--ctx-size`/`-c` sizing each session.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

#[actix_web::test]
async fn truncating_or_overwriting_the_served_gguf_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served.gguf");
    std::fs::copy(fixture(), &served).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitnet-server"))
        .args(["--model", served.to_str().unwrap(), "--port", "0"])
        .args(["--threads", "1", "-c", "64"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("bitnet-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&format!("{base}/ready")).await.0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let ask = || async {
        post(
            &format!("{base}/v1/completions"),
            &json!({"prompt": "Hello", "max_tokens": 8, "temperature": 0}),
        )
        .await
    };
    let (status, first) = ask().await;
    assert_eq!(status, 200, "{first}");
    let text = first["choices"][0]["text"].clone();

    std::fs::OpenOptions::new()
        .write(true)
        .open(&served)
        .unwrap()
        .set_len(64)
        .unwrap();
    let (status, v) = ask().await;
    assert_eq!(status, 200, "after truncation: {v}");
    assert_eq!(v["choices"][0]["text"], text);

    std::fs::write(&served, vec![0xA5u8; 1 << 20]).unwrap();
    let (status, v) = ask().await;
    assert_eq!(status, 200, "after overwrite: {v}");
    assert_eq!(v["choices"][0]["text"], text);
    assert!(child.try_wait().unwrap().is_none(), "the server died");

    // -c 64: a prompt longer than the session's context is refused, not served.
    let long = "word ".repeat(200);
    let (status, v) = post(
        &format!("{base}/v1/completions"),
        &json!({"prompt": long, "max_tokens": 4}),
    )
    .await;
    assert!(matches!(status, 400 | 422), "{status}: {v}");
    assert!(v.to_string().contains("context is 64 tokens"), "{v}");
    child.kill().unwrap();
    child.wait().unwrap();
}
