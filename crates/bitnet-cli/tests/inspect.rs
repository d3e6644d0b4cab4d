//! `inspect`: bitnet.cpp's I2_S GGUF, as text and JSON.

use crate::util::{cli, i2s, stdout_of};

#[test]
fn inspect_json_lists_every_tensor() {
    let out = stdout_of(&mut cli(["inspect", i2s().to_str().unwrap(), "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect --json is JSON");
    assert_eq!(v["version"], 3);
    assert_eq!(v["metadata"]["general.architecture"], "bitnet-b1.58");
    assert_eq!(v["metadata"]["bitnet-b1.58.block_count"], 4);
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 46);
    let q = tensors
        .iter()
        .find(|t| t["name"] == "blk.0.attn_q.weight")
        .unwrap();
    assert_eq!(q["type"], "I2_S");
    assert_eq!(q["shape"], serde_json::json!([256, 256]));
    assert_eq!(q["bytes"], 16416);
    let i2s_count = tensors.iter().filter(|t| t["type"] == "I2_S").count();
    assert_eq!(i2s_count, 28);
    // The 512-token vocabulary is summarised, not dumped.
    let tokens = &v["metadata"]["tokenizer.ggml.tokens"];
    assert_eq!(tokens["len"], 512);
    assert!(tokens["first"].as_array().unwrap().len() <= 8);
}

#[test]
fn inspect_text_summarises_long_arrays() {
    let out = stdout_of(&mut cli(["inspect", i2s().to_str().unwrap()]));
    assert!(out.contains("general.architecture"), "{out}");
    assert!(out.contains("[512 strings: "), "{out}");
    assert!(out.contains("token_embd.weight"), "{out}");
    assert!(out.contains("I2_S"), "{out}");
    assert!(out.contains("46 tensors"), "{out}");
}
