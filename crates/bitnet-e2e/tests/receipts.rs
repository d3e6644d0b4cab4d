//! A server's receipts are checked by the CLI: the real `bitnet-server` (receipts on) serves
//! a completion, `GET /v1/receipts/{id}` returns its receipt, and the real `bitnet-cli
//! verify-receipt` accepts it, and rejects copies whose output ids, model hash or settings
//! were tampered with, naming what differs.

use std::path::{Path, PathBuf};

use bitnet_e2e::{Server, run, tiny_gguf};
use serde_json::{Value, json};

/// `bitnet-cli verify-receipt FILE` on `receipt` written to `dir/name`: (exit code, stdout,
/// stderr).
fn verify(dir: &Path, name: &str, receipt: &Value) -> (i32, String, String) {
    let file: PathBuf = dir.join(name);
    std::fs::write(&file, serde_json::to_string_pretty(receipt).unwrap()).unwrap();
    let out = run(
        "bitnet-cli",
        ["verify-receipt", file.to_str().unwrap(), "--threads", "1"],
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts the receipt verifies and returns its output length.
fn assert_verifies(dir: &Path, name: &str, receipt: &Value) -> usize {
    let n = receipt["output"]["ids"].as_array().unwrap().len();
    let (code, stdout, stderr) = verify(dir, name, receipt);
    assert_eq!(code, 0, "verify-receipt failed: {stderr}");
    assert_eq!(stdout.trim(), format!("receipt verified: {n} tokens match"));
    n
}

/// Asserts verification fails with exit 1 and one error line containing `message`.
fn assert_rejected(dir: &Path, name: &str, receipt: &Value, message: &str) {
    let (code, stdout, stderr) = verify(dir, name, receipt);
    assert_eq!(
        code, 1,
        "expected a rejection; stdout {stdout:?}, stderr {stderr:?}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line expected: {stderr:?}");
    assert!(lines[0].starts_with("bitnet-cli: error: "), "{stderr:?}");
    assert!(
        lines[0].contains(message),
        "expected {message:?} in {stderr:?}"
    );
}

/// POSTs a completion request, then fetches its receipt.
fn complete_and_fetch(server: &Server, path: &str, body: Value) -> (Value, Value) {
    let resp = server.post_json(path, &body);
    assert_eq!(resp.status, 200, "{}", resp.body);
    let completion = resp.json();
    let id = completion["id"].as_str().unwrap().to_string();
    assert_eq!(completion["bitnet"]["receipt_id"], id.as_str());
    let resp = server.get(&format!("/v1/receipts/{id}"));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let receipt = resp.json();
    assert_eq!(receipt["schema_version"], 2);
    assert_eq!(receipt["server"]["id"], id.as_str());
    assert_eq!(receipt["tool"]["name"], "bitnet-server");
    assert_eq!(
        receipt["output"]["ids"], completion["bitnet"]["token_ids"],
        "the receipt records what the client got"
    );
    (completion, receipt)
}

#[test]
fn cli_verifies_server_receipts_and_rejects_tampered_copies() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("receipts.jsonl");
    let server = Server::start(&[
        "--model",
        tiny_gguf().to_str().unwrap(),
        "--threads",
        "1",
        "--receipts-log",
        log.to_str().unwrap(),
    ]);

    // Greedy.
    let (_, greedy) = complete_and_fetch(
        &server,
        "/v1/completions",
        json!({"prompt": "Receipts please", "max_tokens": 8, "temperature": 0}),
    );
    assert_eq!(
        greedy["model"]["ref"],
        std::fs::canonicalize(tiny_gguf())
            .unwrap()
            .to_str()
            .unwrap()
    );
    assert_eq!(greedy["settings"]["temperature"], 0.0);
    let n = assert_verifies(dir.path(), "greedy.json", &greedy);
    assert_eq!(n, 8, "the fixture does not stop early: {greedy}");

    // Seeded sampling.
    let (_, sampled) = complete_and_fetch(
        &server,
        "/v1/completions",
        json!({"prompt": "Receipts please", "max_tokens": 8, "temperature": 1.0, "seed": 1234}),
    );
    assert_eq!(sampled["settings"]["seed"], 1234);
    assert_verifies(dir.path(), "sampled.json", &sampled);

    // Tampered output id: named with its position and both values.
    let mut t = greedy.clone();
    let old = t["output"]["ids"][3].as_u64().unwrap();
    let new = (old + 1) % 512;
    t["output"]["ids"][3] = new.into();
    assert_rejected(
        dir.path(),
        "ids.json",
        &t,
        &format!("receipt mismatch: output token 3 differs: receipt has {new}, rerun gave {old}"),
    );

    // Tampered model hash.
    let mut t = sampled.clone();
    t["model"]["sha256"] = "0".repeat(64).into();
    assert_rejected(
        dir.path(),
        "sha.json",
        &t,
        &format!(
            "receipt mismatch: model sha256 differs: receipt has {}",
            "0".repeat(64)
        ),
    );

    // Tampered settings: another seed samples other tokens; a smaller limit stops earlier.
    let mut t = sampled.clone();
    t["settings"]["seed"] = 4321.into();
    assert_rejected(
        dir.path(),
        "seed.json",
        &t,
        "receipt mismatch: output token ",
    );
    let mut t = greedy.clone();
    t["settings"]["max_tokens"] = 5.into();
    assert_rejected(
        dir.path(),
        "max_tokens.json",
        &t,
        "receipt mismatch: output length differs: receipt has 8 tokens, rerun gave 5",
    );
    let mut t = greedy.clone();
    t["settings"]["kv_type"] = "f8".into();
    assert_rejected(
        dir.path(),
        "kv_type.json",
        &t,
        "receipt field settings.kv_type: unknown KV type 'f8'",
    );

    // The log line is the receipt served.
    let logged: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(logged.contains(&greedy) && logged.contains(&sampled));
    let status = server.stop();
    assert!(status.success(), "graceful exit: {status}");
}

#[test]
fn a_chat_receipt_of_the_embedded_model_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("receipts.jsonl");
    // No --model: the embedded model, with a real tokenizer and chat template.
    let server = Server::start(&["--threads", "1", "--receipts-log", log.to_str().unwrap()]);
    let (completion, receipt) = complete_and_fetch(
        &server,
        "/v1/chat/completions",
        json!({
            "messages": [{"role": "user", "content": "What is a closure?"}],
            "max_tokens": 12,
            "temperature": 0.7,
            "seed": 5,
        }),
    );
    assert_eq!(receipt["model"]["ref"], "embedded");
    assert_eq!(receipt["prompt"]["chat"], true);
    assert_eq!(receipt["server"]["endpoint"], "/v1/chat/completions");
    assert_eq!(
        receipt["output"]["text"],
        completion["choices"][0]["message"]["content"]
    );
    assert!(
        !receipt["settings"]["stop_ids"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_verifies(dir.path(), "chat.json", &receipt);

    let mut t = receipt.clone();
    t["prompt"]["ids"][0] = 0.into();
    let (code, _, stderr) = verify(dir.path(), "prompt.json", &t);
    assert_eq!(code, 1, "a changed prompt changes the output: {stderr}");
    assert!(stderr.contains("receipt mismatch: output "), "{stderr}");
    drop(server);
}
