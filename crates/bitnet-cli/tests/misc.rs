//! Help, completions, tokenize/detokenize, perplexity, and a GGUF writer for error tests.

use std::path::Path;

use crate::util::{cli, i2s, stdout_of};

/// The fixture GGUF with `general.architecture` changed to `llama` (a complete, valid GGUF
/// of a model this engine does not run).
pub fn write_llama_gguf(path: &Path) {
    use bitnet_gguf::{GgufFile, GgufWriter, TensorSpec, Value};
    let src = GgufFile::open(i2s()).unwrap();
    let mut meta = src.metadata().to_vec();
    meta.iter_mut()
        .find(|(k, _)| k == "general.architecture")
        .unwrap()
        .1 = Value::String("llama".into());
    let specs = src
        .tensors()
        .iter()
        .map(|t| TensorSpec {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ggml_type: t.ggml_type,
        })
        .collect();
    let mut w = GgufWriter::create(path, true, meta, specs).unwrap();
    for t in src.tensors() {
        w.write_tensor(&t.name, src.tensor_data(t)).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "run",
        "generate",
        "chat",
        "inspect",
        "tokenize",
        "detokenize",
        "bench",
        "perplexity",
        "logits",
        "verify-receipt",
        "completions",
    ] {
        let out = stdout_of(&mut cli([sub, "--help"]));
        assert!(out.contains("Usage: bitnet-cli"), "{sub}: {out}");
    }
    let ppl = stdout_of(&mut cli(["perplexity", "--help"]));
    assert!(ppl.contains("PPL = exp("), "{ppl}");
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = stdout_of(&mut cli(["completions", shell]));
        assert!(out.contains("verify-receipt"), "{shell}");
    }
}

#[test]
fn tokenize_then_detokenize_round_trips() {
    // The Llama-3 tokenizer (a Hugging Face directory) is byte-level, so text round-trips
    // exactly; its expected ids come from transformers (fixtures/llama3-tokenizer/cases.jsonl).
    let m = crate::util::fixtures().join("llama3-tokenizer");
    let text = "Hello, world! Ownership in Rust.";
    let ids = stdout_of(&mut cli([
        "tokenize",
        "-m",
        m.to_str().unwrap(),
        "--text",
        text,
        "--no-bos",
    ]));
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert_eq!(ids[..4], ["9906", "11", "1917", "0"]);
    let json = stdout_of(&mut cli([
        "tokenize",
        "-m",
        m.to_str().unwrap(),
        "--text",
        text,
        "--no-bos",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["count"], ids.len());
    let decoded = stdout_of(&mut cli([
        "detokenize",
        "-m",
        m.to_str().unwrap(),
        "--tokens",
        &ids.join(","),
    ]));
    assert_eq!(decoded.trim_end_matches('\n'), text);
}

#[test]
fn perplexity_json_counts_windows_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("text.txt");
    std::fs::write(
        &file,
        "the quick brown fox jumps over the lazy dog. ".repeat(3),
    )
    .unwrap();
    let m = i2s();
    let ids = stdout_of(&mut cli([
        "tokenize",
        "-m",
        m.to_str().unwrap(),
        "--no-bos",
        "--text",
        &std::fs::read_to_string(&file).unwrap(),
    ]));
    let n = ids.split_whitespace().count();
    let out = stdout_of(&mut cli([
        "perplexity",
        "-m",
        m.to_str().unwrap(),
        "-f",
        file.to_str().unwrap(),
        "--ctx",
        "32",
        "--threads",
        "1",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The tokenizer adds BOS: windows of BOS + 31 text tokens, every text token scored.
    assert_eq!(v["bos_per_window"], true);
    assert_eq!(v["windows"], n.div_ceil(31));
    assert_eq!(v["scored_tokens"], n);
    let ppl = v["perplexity"].as_f64().unwrap();
    assert!(ppl.is_finite() && ppl > 1.0, "{ppl}");
}
