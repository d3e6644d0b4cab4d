//! Helpers shared by the integration tests: fixture paths, running the binary, building
//! broken checkpoints and a tiny tokenizer, reading `.npy` reference logits.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use safetensors::tensor::{Dtype, TensorView};

/// Positions of the reference prompt p0 and the fixture's vocabulary.
pub const PROMPT: [u32; 8] = [1, 10, 20, 30, 40, 50, 60, 70];
pub const VOCAB: usize = 512;

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny-bitnet")
        .join(rel)
}

pub fn st2gguf() -> Command {
    let mut cmd = Command::cargo_bin("bitnet-st2gguf").unwrap();
    cmd.arg("--quiet");
    cmd
}

pub fn convert(input: &Path, output: &Path, extra: &[&str]) {
    st2gguf()
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(extra)
        .assert()
        .success();
}

/// A copy of `packed/` whose tensors pass through `edit` (which may drop, add or change
/// them) and whose config passes through `edit_config`.
pub fn broken(
    edit: impl Fn(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
    edit_config: impl Fn(&mut serde_json::Value),
) -> tempfile::TempDir {
    variant_of("packed", edit, edit_config)
}

/// A copy of the fixture checkpoint `layout` (`packed` or `master`) whose tensors pass
/// through `edit` and whose config passes through `edit_config`.
pub fn variant_of(
    layout: &str,
    edit: impl Fn(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
    edit_config: impl Fn(&mut serde_json::Value),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(layout);
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    edit(&mut tensors);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(
        views,
        None::<HashMap<String, String>>,
        &dir.path().join("model.safetensors"),
    )
    .unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    edit_config(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

/// Reads a float32 C-order `.npy` file (format in fixtures/tiny-bitnet/README.md).
pub fn read_npy(path: &Path) -> Vec<f32> {
    bitnet_test_support::npy::read_f32(path).1
}

/// max |a - b| and the fraction of positions whose argmax agrees.
pub fn compare(a: &[f32], b: &[f32]) -> (f32, f64) {
    bitnet_test_support::logits::compare(a, b, VOCAB)
}

/// GPT-2's byte-to-unicode map: the printable string of each byte in byte-level BPE vocabularies.
pub fn byte_chars() -> Vec<char> {
    let mut out = vec!['\0'; 256];
    let mut extra = 0u32;
    for b in 0..256u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        out[b as usize] = if printable {
            char::from_u32(b).unwrap()
        } else {
            extra += 1;
            char::from_u32(255 + extra).unwrap()
        };
    }
    out
}

/// A 512-token byte-level BPE tokenizer (256 bytes, 254 merges, BOS/EOS added tokens) with a
/// chat template: the tiny model's vocabulary size, in tokenizer.json's real format.
pub fn write_tiny_tokenizer(dir: &Path) {
    use serde_json::json;
    let chars = byte_chars();
    let mut vocab = serde_json::Map::new();
    for (i, c) in chars.iter().enumerate() {
        vocab.insert(c.to_string(), json!(i));
    }
    let mut merges = Vec::new();
    for i in 0..254usize {
        let a = chars[b'a' as usize + i % 26];
        let b = chars[b'a' as usize + (i / 26) % 26];
        merges.push(format!("{a} {b}"));
        vocab.insert(format!("{a}{b}"), json!(256 + i));
    }
    let added = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    vocab.insert("<|begin_of_text|>".into(), json!(510));
    vocab.insert("<|end_of_text|>".into(), json!(511));
    let bos = json!({"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}});
    let tok = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [added(510, "<|begin_of_text|>"), added(511, "<|end_of_text|>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [510], "tokens": ["<|begin_of_text|>"]}}
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges}
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    let cfg = json!({
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|end_of_text|>",
        "chat_template": "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    });
    std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).unwrap();
}
