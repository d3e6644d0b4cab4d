//! `bitnet-server --model hf:ORG/REPO` against the stand-in Hub on 127.0.0.1 (HF_ENDPOINT),
//! with a private Hugging Face cache (HF_HOME).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitnet_test_support::hub::{FakeFile, FakeHub, FakeRepo};
use common::*;
use serde_json::json;

fn bin(hub: &FakeHub, home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitnet-server"));
    cmd.env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HOME", home)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HF_TOKEN_PATH")
        .env_remove("HF_HUB_OFFLINE")
        .env("RUST_LOG", "warn");
    cmd
}

fn hub() -> FakeHub {
    FakeHub::start(vec![FakeRepo::new(
        "org/docs-5m-gguf",
        vec![FakeFile::lfs(
            "bitnet-rust-docs-5m-i2_s.gguf",
            bitnet_default_model::gguf_bytes().to_vec(),
        )],
    )])
}

#[actix_web::test]
async fn serves_a_model_pulled_from_the_hub_under_its_repo_name() {
    let hub = hub();
    let home = tempfile::tempdir().unwrap();
    let mut child = bin(&hub, home.path())
        .args([
            "--model",
            "hf:org/docs-5m-gguf",
            "--port",
            "0",
            "--threads",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&format!("{base}/ready")).await.0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = get(&format!("{base}/v1/models")).await;
    assert_eq!(status, 200);
    let models: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(models["data"][0]["id"], "org/docs-5m-gguf");
    // The embedded model's bytes, so transformers' greedy ids for its reference prompt.
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../models/bitnet-rust-docs-5m/reference_greedy.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let p = &reference["prompts"][0];
    let (status, v) = post(
        &format!("{base}/v1/completions"),
        &json!({"model": "org/docs-5m-gguf", "prompt": p["prompt"], "max_tokens": 8, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let expected: Vec<serde_json::Value> = p["new_ids"].as_array().unwrap()[..8].to_vec();
    assert_eq!(v["bitnet"]["token_ids"].as_array().unwrap(), &expected);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        home.path()
            .join("hub/models--org--docs-5m-gguf/refs/main")
            .is_file()
    );
}

#[test]
fn offline_without_cache_fails_naming_the_repo() {
    let hub = hub();
    let home = tempfile::tempdir().unwrap();
    let out = bin(&hub, home.path())
        .args(["--model", "hf:org/docs-5m-gguf", "--offline", "--port", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("hf:org/docs-5m-gguf is not in the Hugging Face cache"),
        "{stderr}"
    );
    assert!(hub.requests().is_empty());
    let out = bin(&hub, home.path())
        .args(["--model", "hf:org/missing", "--port", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("'org/missing' not found"), "{stderr}");
}
