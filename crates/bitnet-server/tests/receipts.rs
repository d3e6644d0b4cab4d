//! Receipts (`receipts` feature): the happy path (every completion and every KV eviction
//! leaves a durable receipt with the right payload, served at `/v1/receipts/{id}`) and the
//! guard path (feature built, receipts off: nothing written, the endpoint answers 404), and
//! receipts of constrained (`response_format`) completions that verify by rerunning under
//! the recorded constraint.
#![cfg(feature = "receipts")]

mod common;

use common::*;
use serde_json::{Value, json};

/// The fixture's SHA-256 as listed in its SHA256SUMS.
fn fixture_sha256() -> String {
    let sums = std::fs::read_to_string(fixture().with_file_name("SHA256SUMS")).unwrap();
    sums.lines()
        .find(|l| l.ends_with("  model-i2_s.gguf"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn log_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[actix_web::test]
async fn every_completion_and_eviction_has_a_durable_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("receipts.jsonl");
    let mut cfg = config();
    cfg.receipts_log = Some(log.clone());
    cfg.max_batch = 1;
    cfg.kv_pool_sessions = 1;
    let s = TestServer::start(cfg);
    let engine = s.state.loaded().unwrap().engine.clone();
    let tok = engine.model.tokenizer().unwrap();

    let mut resp = client()
        .post(s.url("/v1/completions"))
        .send_json(
            &json!({"prompt": "Receipts please", "max_tokens": 6, "temperature": 0.7, "seed": 42}),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let header_id = resp
        .headers()
        .get("x-bitnet-receipt-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = resp.json().await.unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(header_id, id);
    assert_eq!(v["bitnet"]["receipt_id"], id.as_str());

    // On disk before the client saw the end (fsync'd by the writer before it delivered).
    let lines = log_lines(&log);
    let on_disk = lines
        .iter()
        .find(|l| l["server"]["id"] == id.as_str())
        .expect("receipt in the log");

    let (status, body) = get(&s.url(&format!("/v1/receipts/{id}"))).await;
    assert_eq!(status, 200, "{body}");
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(&r, on_disk);
    assert_eq!(r["server"]["kind"], "completion");
    assert_eq!(r["server"]["id"], id.as_str());
    assert_eq!(r["schema_version"], 2);
    assert_eq!(
        r["model"]["ref"],
        std::fs::canonicalize(fixture()).unwrap().to_str().unwrap()
    );
    // The same typed schema the CLI writes and verifies.
    let typed = bitnet_receipt::Receipt::parse(&body).unwrap();
    assert_eq!(typed.tool.name, "bitnet-server");
    assert_eq!(r["model"]["sha256"], fixture_sha256());
    assert_eq!(
        r["model"]["bytes"],
        std::fs::metadata(fixture()).unwrap().len()
    );
    assert_eq!(r["shapes"]["vocab"], 512);
    assert_eq!(r["kernels"]["id"], engine.kernel.id.as_str());
    let dispatched = r["kernels"]["dispatched"].as_array().unwrap();
    assert!(!dispatched.is_empty());
    for d in dispatched {
        assert!(d["id"].as_str().unwrap().contains('/'), "{d}");
        assert!(d["calls"].as_u64().unwrap() > 0);
    }
    // 6 tokens: one prefill (GEMM) and 5 decode steps (batch of one: GEMV).
    assert!(
        dispatched
            .iter()
            .any(|d| d["id"].as_str().unwrap().ends_with(":gemv")),
        "{dispatched:?}"
    );
    assert_eq!(r["settings"]["seed"], 42);
    assert!((r["settings"]["temperature"].as_f64().unwrap() - 0.7).abs() < 1e-6);
    assert_eq!(r["settings"]["max_tokens"], 6);
    assert_eq!(r["settings"]["ctx"], 256);
    let prompt_ids: Vec<Value> = tok
        .encode("Receipts please", true, true)
        .unwrap()
        .into_iter()
        .map(Value::from)
        .collect();
    assert_eq!(r["prompt"]["ids"], Value::Array(prompt_ids));
    assert_eq!(r["prompt"]["text"], "Receipts please");
    assert_eq!(r["output"]["ids"], v["bitnet"]["token_ids"]);
    assert_eq!(r["output"]["text"], v["choices"][0]["text"]);
    assert_eq!(r["output"]["finish_reason"], "length");
    assert!(r["timings"]["total_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(r["server"]["endpoint"], "/v1/completions");
    // Unconstrained: no constraint written (the receipt's bytes are what they always were).
    assert!(r["settings"].get("constraint").is_none(), "{r}");
    assert_eq!(
        r["settings"]["stop_ids"],
        serde_json::to_value(tok.stop_ids()).unwrap()
    );

    // A different prompt with a one-session pool evicts the first prompt's cache.
    let (status, v2) = post(
        &s.url("/v1/chat/completions"),
        &json!({"messages": [{"role": "user", "content": "Something else entirely"}], "max_tokens": 3, "stream": false}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, list) = get(&s.url("/v1/receipts")).await;
    let list: Value = serde_json::from_str(&list).unwrap();
    let kinds: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["completion", "kv_eviction", "completion"]);
    let ev_id = list["data"][1]["id"].as_str().unwrap();
    let (_, ev) = get(&s.url(&format!("/v1/receipts/{ev_id}"))).await;
    let ev: Value = serde_json::from_str(&ev).unwrap();
    let first_cached = r["prompt"]["ids"].as_array().unwrap().len() + 5; // prompt + 5 fed tokens
    assert_eq!(ev["session"], 0);
    assert_eq!(
        ev["tokens"].as_u64().unwrap() + ev["kept_tokens"].as_u64().unwrap(),
        first_cached as u64
    );
    assert_eq!(
        ev["blocks"].as_u64().unwrap(),
        (first_cached as u64).div_ceil(16) - ev["kept_tokens"].as_u64().unwrap().div_ceil(16)
    );
    let per_block = 2 * 4 * 16 * 128 * 4; // K and V, 4 layers, 16 positions, kv_dim 128, f32
    assert_eq!(
        ev["bytes"].as_u64().unwrap(),
        ev["blocks"].as_u64().unwrap() * per_block
    );
    assert!(ev["pool_before"]["blocks_used"].as_u64() > ev["pool_after"]["blocks_used"].as_u64());
    assert_eq!(ev["model"]["sha256"], fixture_sha256());
    assert_eq!(v2["bitnet"]["receipt_id"], list["data"][2]["id"]);

    // Streaming completions have receipts too, and unknown ids are 404.
    let (_, events) = stream(
        &s.url("/v1/completions"),
        &json!({"prompt": "stream it", "max_tokens": 3, "stream": true, "seed": 5}),
    )
    .await;
    let last = &events[events.len() - 2];
    let sid = last["bitnet"]["receipt_id"].as_str().unwrap();
    let (status, body) = get(&s.url(&format!("/v1/receipts/{sid}"))).await;
    assert_eq!(status, 200);
    let sr: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sr["output"]["ids"], last["bitnet"]["token_ids"]);
    assert_eq!(get(&s.url("/v1/receipts/cmpl-nope")).await.0, 404);
    s.stop().await;

    // A new server on the same log still finds old receipts (from the file).
    let mut cfg = config();
    cfg.receipts_log = Some(log.clone());
    let s2 = TestServer::start(cfg);
    let (status, body) = get(&s2.url(&format!("/v1/receipts/{id}"))).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), r);
    s2.stop().await;
    // Three completions and the two evictions between them.
    assert_eq!(log_lines(&log).len(), 5);
}

#[actix_web::test]
async fn receipts_off_emits_nothing_and_the_endpoint_is_404() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.max_batch = 1;
    cfg.kv_pool_sessions = 1;
    let s = TestServer::start(cfg);
    assert!(s.state.loaded().unwrap().receipts.is_none());
    assert!(s.state.loaded().unwrap().engine.identity.is_none());
    let mut resp = client()
        .post(s.url("/v1/completions"))
        .send_json(&json!({"prompt": "no receipts", "max_tokens": 3}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("x-bitnet-receipt-id").is_none());
    let v: Value = resp.json().await.unwrap();
    assert!(v["bitnet"]["receipt_id"].is_null());
    // An eviction happens, and still nothing is recorded.
    post(
        &s.url("/v1/completions"),
        &json!({"prompt": "another prompt", "max_tokens": 2}),
    )
    .await;
    let m = get(&s.url("/metrics")).await.1;
    assert_eq!(metric(&m, "bitnet_kv_pool_evictions_total"), Some(1.0));
    let id = v["id"].as_str().unwrap();
    let (status, body) = get(&s.url(&format!("/v1/receipts/{id}"))).await;
    assert_eq!(status, 404);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["code"], "receipts_disabled");
    assert_eq!(get(&s.url("/v1/receipts")).await.0, 404);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    s.stop().await;
}

#[actix_web::test]
async fn each_of_n_choices_has_a_receipt_that_records_penalties_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.receipts_log = Some(dir.path().join("receipts.jsonl"));
    let s = TestServer::start(cfg);
    let (status, v) = post(
        &s.url("/v1/completions"),
        &json!({"prompt": "Receipts for two", "max_tokens": 5, "temperature": 0.8,
                "seed": 9, "n": 2, "presence_penalty": 1.5, "frequency_penalty": 0.5}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let id = v["id"].as_str().unwrap();
    for (i, want_id) in [id.to_string(), format!("{id}-1")].iter().enumerate() {
        let ext = &v["bitnet"]["choices"][i];
        assert_eq!(ext["receipt_id"], want_id.as_str());
        let (status, body) = get(&s.url(&format!("/v1/receipts/{want_id}"))).await;
        assert_eq!(status, 200, "{body}");
        let r: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(r["settings"]["seed"], 9 + i as u64, "choice {i}: seed + i");
        assert!((r["settings"]["presence_penalty"].as_f64().unwrap() - 1.5).abs() < 1e-6);
        assert!((r["settings"]["frequency_penalty"].as_f64().unwrap() - 0.5).abs() < 1e-6);
        assert_eq!(r["output"]["ids"], ext["token_ids"]);
        // Rerunning the receipt (penalties included) gives the same tokens.
        let typed = bitnet_receipt::Receipt::parse(&body).unwrap();
        typed
            .verify(&bitnet_receipt::VerifyOptions {
                threads: 1,
                model: None,
            })
            .unwrap_or_else(|e| panic!("choice {i}: {e}"));
    }
    s.stop().await;
}

fn verify(receipt: &bitnet_receipt::Receipt) -> Result<bitnet_receipt::Verified, String> {
    receipt
        .verify(&bitnet_receipt::VerifyOptions {
            threads: 1,
            model: None,
        })
        .map_err(|e| bitnet_app::chain(&e))
}

/// The receipt of the completion `v` (its first choice).
async fn receipt_of(s: &TestServer, v: &Value) -> bitnet_receipt::Receipt {
    let id = v["bitnet"]["receipt_id"].as_str().expect("receipt id");
    let (status, body) = get(&s.url(&format!("/v1/receipts/{id}"))).await;
    assert_eq!(status, 200, "{body}");
    bitnet_receipt::Receipt::parse(&body).unwrap()
}

#[actix_web::test]
async fn constrained_completions_record_the_constraint_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    // The embedded model writes JSON; the tiny fixture's 512 tokens barely can.
    cfg.model = bitnet_engine::ModelRef::Embedded;
    cfg.model_name = "embedded".into();
    cfg.receipts_log = Some(dir.path().join("receipts.jsonl"));
    let s = TestServer::start(cfg);

    // json_schema, sampled, properties written name, age, tags (not sorted: the receipt must
    // keep that order, which its schema object cannot).
    let body = r#"{"messages": [{"role": "user", "content": "Describe a person as JSON."}],
        "max_tokens": 120, "temperature": 0.9, "seed": 3,
        "response_format": {"type": "json_schema", "json_schema": {"name": "person",
        "strict": true, "schema": {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 12},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"enum": ["rust", "cpu", "llm"]}, "maxItems": 3}},
        "required": ["name", "age", "tags"], "additionalProperties": false}}}}"#;
    let (status, v) = post_raw(
        &s.url("/v1/chat/completions"),
        body.as_bytes().to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{text}");
    // The written order, not the sorted one (age, name, tags): the rerun must keep it too.
    let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    assert!(at("name") < at("age"), "{text}");
    let receipt = receipt_of(&s, &v).await;
    let c = receipt.settings.constraint.as_ref().expect("constraint");
    assert_eq!(c.kind, bitnet_receipt::ConstraintKind::JsonSchema);
    assert_eq!(
        c.schema.as_ref().unwrap()["properties"]["name"]["maxLength"],
        12
    );
    assert_eq!(c.property_order["/properties"], ["name", "age", "tags"]);
    let json = serde_json::to_value(&receipt).unwrap();
    assert_eq!(json["settings"]["constraint"]["kind"], "json_schema");
    let verified = verify(&receipt).unwrap();
    assert_eq!(verified.tokens, receipt.output.ids.len());

    // Tampered: without "name" the rerun's grammar writes another object.
    let mut tampered = receipt.clone();
    let t = tampered.settings.constraint.as_mut().unwrap();
    let schema = t.schema.as_mut().unwrap();
    schema["properties"].as_object_mut().unwrap().remove("name");
    schema["required"] = serde_json::json!(["age", "tags"]);
    let err = verify(&tampered).unwrap_err();
    assert!(err.contains("mismatch"), "{err}");
    // A schema no server accepts is an error naming the field.
    let mut bad = receipt.clone();
    bad.settings.constraint.as_mut().unwrap().schema = Some(json!({"pattern": "x"}));
    let err = verify(&bad).unwrap_err();
    assert!(err.contains("settings.constraint.schema"), "{err}");
    // Without the constraint the rerun is free and differs (the gap this record closes).
    let mut free = receipt.clone();
    free.settings.constraint = None;
    assert!(verify(&free).unwrap_err().contains("mismatch"));

    // json_object on /v1/completions, sampled.
    let (status, v) = post(
        &s.url("/v1/completions"),
        &json!({"prompt": "{\"config\":", "max_tokens": 40, "temperature": 0.8, "seed": 11,
                "response_format": {"type": "json_object"}}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let receipt = receipt_of(&s, &v).await;
    let c = receipt.settings.constraint.as_ref().expect("constraint");
    assert_eq!(*c, bitnet_receipt::Constraint::json_object());
    let json = serde_json::to_value(&receipt).unwrap();
    assert_eq!(
        json["settings"]["constraint"],
        json!({"kind": "json_object"})
    );
    verify(&receipt).unwrap();
    s.stop().await;
}
