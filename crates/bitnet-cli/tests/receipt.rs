//! Receipts: written by `run --receipt`, checked by `verify-receipt`; tampering is caught.

use std::path::Path;

use crate::util::{assert_error, cli, i2s, packed, stdout_of};

fn write_receipt(dir: &Path, model: &Path, extra: &[&str]) -> std::path::PathBuf {
    let receipt = dir.join("receipt.json");
    let mut args = vec![
        "run".to_string(),
        "-m".into(),
        model.display().to_string(),
        "--tokens".into(),
        "1,10,20,30".into(),
        "-n".into(),
        "8".into(),
        "--threads".into(),
        "1".into(),
        "--receipt".into(),
        receipt.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    stdout_of(&mut cli(args));
    receipt
}

fn load(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn receipt_records_the_computation_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let receipt = write_receipt(
        dir.path(),
        &i2s(),
        &["--seed", "77", "--temperature", "1.2"],
    );
    let v = load(&receipt);
    assert_eq!(v["schema_version"], 2);
    assert_eq!(
        v["model"]["ref"],
        std::fs::canonicalize(i2s()).unwrap().to_str().unwrap()
    );
    assert!(
        v.get("server").is_none(),
        "a CLI receipt has no server section"
    );
    assert_eq!(v["model"]["bytes"], std::fs::metadata(i2s()).unwrap().len());
    assert_eq!(v["model"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(v["model"]["architecture"], "bitnet-b1.58");
    assert_eq!(v["shapes"]["layers"], 4);
    assert_eq!(v["shapes"]["kv_heads"], 2);
    assert_eq!(v["settings"]["seed"], 77);
    assert_eq!(v["prompt"]["ids"], serde_json::json!([1, 10, 20, 30]));
    // The dispatcher's counters: every ternary matmul ran through some kernel.
    let dispatched = v["kernels"]["dispatched"].as_array().unwrap();
    assert!(!dispatched.is_empty(), "{v}");
    let calls: u64 = dispatched
        .iter()
        .map(|d| d["calls"].as_u64().unwrap())
        .sum();
    assert!(calls > 0);
    assert_eq!(v["kernels"]["threads"], 1);

    let out = stdout_of(&mut cli(["verify-receipt", receipt.to_str().unwrap()]));
    let n = v["output"]["ids"].as_array().unwrap().len();
    assert_eq!(out.trim(), format!("receipt verified: {n} tokens match"));
}

#[test]
fn greedy_receipt_of_a_checkpoint_directory_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let receipt = write_receipt(dir.path(), &packed(), &["--greedy"]);
    let out = stdout_of(&mut cli([
        "verify-receipt",
        receipt.to_str().unwrap(),
        "-t",
        "2",
    ]));
    assert_eq!(out.trim(), "receipt verified: 8 tokens match");
}

#[test]
fn tampered_output_fails_naming_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let receipt = write_receipt(dir.path(), &packed(), &["--greedy"]);
    let mut v = load(&receipt);
    let old = v["output"]["ids"][3].as_u64().unwrap();
    let new = (old + 1) % 512;
    v["output"]["ids"][3] = new.into();
    std::fs::write(&receipt, serde_json::to_string(&v).unwrap()).unwrap();
    assert_error(
        &mut cli(["verify-receipt", receipt.to_str().unwrap()]),
        1,
        &format!("receipt mismatch: output token 3 differs: receipt has {new}, rerun gave {old}"),
    );
}

#[test]
fn tampered_hash_fails_naming_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let receipt = write_receipt(dir.path(), &i2s(), &["--greedy"]);
    let mut v = load(&receipt);
    v["model"]["sha256"] = "0".repeat(64).into();
    std::fs::write(&receipt, serde_json::to_string(&v).unwrap()).unwrap();
    assert_error(
        &mut cli(["verify-receipt", receipt.to_str().unwrap()]),
        1,
        &format!(
            "receipt mismatch: model sha256 differs: receipt has {}",
            "0".repeat(64)
        ),
    );
}

#[test]
fn not_a_receipt_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.json");
    std::fs::write(&file, "{\"hello\": 1}").unwrap();
    assert_error(
        &mut cli(["verify-receipt", file.to_str().unwrap()]),
        1,
        "not a valid receipt: missing schema_version",
    );
}

#[test]
fn a_version_1_receipt_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let receipt = write_receipt(dir.path(), &i2s(), &["--greedy"]);
    let mut v = load(&receipt);
    v["schema_version"] = 1.into();
    std::fs::write(&receipt, serde_json::to_string(&v).unwrap()).unwrap();
    assert_error(
        &mut cli(["verify-receipt", receipt.to_str().unwrap()]),
        1,
        "not a valid receipt: schema_version 1 is no longer read; rerun to get a v2 receipt",
    );
}

#[test]
fn a_moved_model_verifies_with_model_and_another_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let receipt = write_receipt(dir.path(), &i2s(), &["--greedy"]);
    let copy = dir.path().join("moved.gguf");
    std::fs::copy(i2s(), &copy).unwrap();
    let out = stdout_of(&mut cli([
        "verify-receipt",
        receipt.to_str().unwrap(),
        "--model",
        copy.to_str().unwrap(),
    ]));
    assert_eq!(out.trim(), "receipt verified: 8 tokens match");
    assert_error(
        &mut cli([
            "verify-receipt",
            receipt.to_str().unwrap(),
            "--model",
            packed().to_str().unwrap(),
        ]),
        1,
        "receipt mismatch: model size differs: receipt has",
    );
}

/// A run whose kernels fall back to another implementation for some op names the code that
/// ran: without activation quantisation the ternary matmul takes f32 activations, which no
/// SIMD backend implements, so the receipt must say `i2s/scalar:f32` whatever the CPU, and
/// never `<simd backend>:f32`.
#[test]
fn a_receipt_names_the_fallback_that_ran() {
    let dir = tempfile::tempdir().unwrap();
    let receipt = write_receipt(dir.path(), &i2s(), &["--greedy", "--no-act-quant"]);
    let v = load(&receipt);
    let ids: Vec<&str> = v["kernels"]["dispatched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"i2s/scalar:f32"), "{ids:?}");
    for id in &ids {
        if id.ends_with(":f32") {
            assert_eq!(
                *id, "i2s/scalar:f32",
                "a fallback reported as SIMD: {ids:?}"
            );
        }
    }
    // And the receipt of that run verifies (the rerun takes the same fallback).
    let out = stdout_of(&mut cli(["verify-receipt", receipt.to_str().unwrap()]));
    assert!(out.starts_with("receipt verified"), "{out}");
}
