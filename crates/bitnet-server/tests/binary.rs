//! The real `bitnet-server` binary: flags, start-up errors, serving, and graceful shutdown on
//! SIGTERM with a request in flight.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::json;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bitnet-server"))
}

/// Starts the binary on a free port; returns the child and its base URL.
fn spawn(extra: &[&str]) -> (Child, String) {
    let mut child = bin()
        .args([
            "--model",
            fixture().to_str().unwrap(),
            "--port",
            "0",
            "--threads",
            "1",
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("reads the listening line");
    let url = line
        .trim()
        .strip_prefix("bitnet-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (child, url)
}

async fn wait_ready(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&format!("{base}/ready")).await.0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn help_version_and_bad_flags() {
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("bitnet-server 0."));
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--model",
        "--port",
        "--max-batch",
        "--api-key",
        "--log-format",
        "--receipts-log",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }

    let out = bin()
        .args(["--model", "/no/such/model.gguf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("/no/such/model.gguf") && err.contains("no such file"),
        "{err}"
    );

    let f = fixture();
    let out = bin()
        .args(["--model", f.to_str().unwrap(), "--max-batch", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-batch"));

    for bad in [
        "ftp://x.example",
        "http://a.example/path",
        "*,http://a.example",
    ] {
        let out = bin()
            .args(["--model", f.to_str().unwrap(), "--cors", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--cors {bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--cors"),
            "--cors {bad}"
        );
    }

    let out = bin()
        .args(["--model", f.to_str().unwrap(), "--port", "notaport"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // A file that is not a model: the server starts, then exits 1 naming the problem.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"not a gguf file at all").unwrap();
    let out = bin()
        .args(["--model", junk.to_str().unwrap(), "--port", "0"])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loading the model failed"), "{err}");
}

#[actix_web::test]
async fn serves_then_shuts_down_gracefully_on_sigterm() {
    let (mut child, base) = spawn(&["--max-batch", "4"]);
    wait_ready(&base).await;
    let (status, v) = post(
        &format!("{base}/v1/completions"),
        &json!({"prompt": "Hello", "max_tokens": 4, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{v}");

    // A long streaming request is running when SIGTERM arrives: it still completes.
    let mut resp = client()
        .post(format!("{base}/v1/completions"))
        .send_json(&json!({"prompt": "long one", "max_tokens": 150, "stream": true, "seed": 1}))
        .await
        .unwrap();
    let first = resp.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = Vec::new();
    while let Some(chunk) = resp.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "stream cut short: {text}"
    );
    let events = parse_sse(&format!("{}{text}", String::from_utf8_lossy(&first)));
    assert_eq!(stream_ids(&events).len(), 150);

    // Exit 0, soon; new connections are refused meanwhile.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    assert!(client().get(format!("{base}/health")).send().await.is_err());
}

#[actix_web::test]
async fn json_logs_carry_request_ids() {
    let mut child = bin()
        .args([
            "--model",
            fixture().to_str().unwrap(),
            "--port",
            "0",
            "--threads",
            "1",
        ])
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    wait_ready(&base).await;
    let mut resp = client()
        .post(format!("{base}/v1/completions"))
        .send_json(&json!({"prompt": "hi", "max_tokens": 2}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_string();
    let _ = resp.body().await;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let logs = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    // The scheduler's completion log names the HTTP request id.
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["request_id"] == request_id.as_str()
                && l["fields"]["message"] == "completion finished"),
        "no completion log with request id {request_id}:\n{logs}"
    );
}

#[actix_web::test]
async fn without_a_model_flag_it_serves_the_embedded_model() {
    let mut child = bin()
        .args(["--port", "0", "--threads", "1"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    wait_ready(&base).await;
    let (status, body) = get(&format!("{base}/v1/models")).await;
    assert_eq!(status, 200);
    let models: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(models["data"][0]["id"], "bitnet-rust-docs-5m");
    // Greedy text from the embedded model equals transformers' greedy output for this prompt
    // (models/bitnet-rust-docs-5m/reference_greedy.json, prompt 0, 8 tokens).
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../models/bitnet-rust-docs-5m/reference_greedy.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let p = &reference["prompts"][0];
    let (status, v) = post(
        &format!("{base}/v1/completions"),
        &json!({"prompt": p["prompt"], "max_tokens": 8, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let expected: Vec<serde_json::Value> = p["new_ids"].as_array().unwrap()[..8].to_vec();
    assert_eq!(v["bitnet"]["token_ids"].as_array().unwrap(), &expected);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("serving the embedded model"), "{stderr}");
}

/// llama-server's spellings start the server: `-m`, `-t`, `-c`, `-np`, `--host`, `--port`;
/// and --log-format json makes its stderr JSON lines.
#[test]
fn llama_server_spellings_start_the_server() {
    let mut child = bin()
        .args([
            "-m",
            fixture().to_str().unwrap(),
            "-t",
            "1",
            "-c",
            "64",
            "-np",
            "2",
        ])
        .args(["--host", "127.0.0.1", "--port", "0", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("reads the listening line");
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        line.starts_with("bitnet-server listening on http://127.0.0.1:"),
        "{line}"
    );
    // With --log-format json every stderr line is JSON (the start-up logs here; the last
    // line may be cut by the kill).
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complete = stderr.rfind('\n').map_or("", |i| &stderr[..i]);
    assert!(!complete.is_empty(), "some start-up log: {stderr}");
    for l in complete.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
        assert!(v["level"].is_string(), "{l}");
    }
}

/// `--completions SHELL`, `--man` and `--kernel list` print and exit 0 without loading a
/// model; with `--log-format json` a bad flag is reported as one JSON line.
#[test]
fn completions_man_kernel_list_and_json_errors() {
    for shell in ["bash", "zsh", "fish"] {
        let out = bin().args(["--completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("bitnet-server") && script.contains("parallel"),
            "{shell}"
        );
    }
    let out = bin().arg("--man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH bitnet-server 1"), "{page}");
    assert!(page.contains("\\-\\-max\\-batch"), "{page}");
    let out = bin().args(["--kernel", "list"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("i2s/scalar"));

    for args in [
        &["--log-format", "json", "--no-such-flag"][..],
        &["--log-format", "json", "-np", "0"][..],
    ] {
        let out = bin().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        let v: serde_json::Value = serde_json::from_str(err.trim()).expect("a JSON line");
        assert_eq!(v["level"], "ERROR");
        assert!(v["fields"]["message"].is_string(), "{err}");
    }
}
