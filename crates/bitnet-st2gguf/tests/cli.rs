//! End-to-end tests of the `bitnet-st2gguf` binary on the tiny-bitnet fixture: every outtype
//! from `packed/` and `master/`, loaded by the engine and compared with the engine loading the
//! Hugging Face directory directly and with transformers' reference logits; `--force`,
//! `--verify`; and one broken checkpoint per error the converter must name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use bitnet_engine::{LoadOptions, Model};
use predicates::prelude::*;
use safetensors::tensor::{Dtype, TensorView};

const PROMPT: [u32; 8] = [1, 10, 20, 30, 40, 50, 60, 70];
const VOCAB: usize = 512;
const OUTTYPES: [&str; 5] = ["i2_s", "tq2_0", "tq1_0", "f16", "f32"];

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny-bitnet")
        .join(rel)
}

fn st2gguf() -> Command {
    let mut cmd = Command::cargo_bin("bitnet-st2gguf").unwrap();
    cmd.arg("--quiet");
    cmd
}

/// Reads a float32 C-order `.npy` file (format in fixtures/tiny-bitnet/README.md).
fn read_npy(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// max |a - b| and the fraction of positions whose argmax agrees.
fn compare(a: &[f32], b: &[f32]) -> (f32, f64) {
    assert_eq!(a.len(), b.len());
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let rows = a.len() / VOCAB;
    let agree = (0..rows)
        .filter(|&r| {
            argmax(&a[r * VOCAB..(r + 1) * VOCAB]) == argmax(&b[r * VOCAB..(r + 1) * VOCAB])
        })
        .count();
    (max, agree as f64 / rows as f64)
}

fn logits(path: &Path) -> Vec<f32> {
    let opts = LoadOptions {
        threads: 1,
        ..LoadOptions::default()
    };
    let model = Model::load(path, &opts).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut session = model.new_session();
    model.forward_all(&mut session, &PROMPT).unwrap()
}

fn convert(input: &Path, output: &Path, extra: &[&str]) {
    st2gguf()
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(extra)
        .assert()
        .success();
}

/// Which conversions keep every weight bit-exact, so that the engine's logits equal those it
/// computes from the Hugging Face directory (with a bf16 embedding, which keeps the bf16
/// source exact):
/// - `packed/`: the bf16 `weight_scale` is exact in f32 (I2_S), in f16 (TQ2_0/TQ1_0 block
///   scales; bf16 values in f16's normal range are f16 values) and in `value*scale` f16/f32.
/// - `master/`: the absmean scale is an f32, exact in I2_S and f32; TQ*/f16 round it to f16.
fn exact(variant: &str, outtype: &str) -> bool {
    variant == "packed" || matches!(outtype, "i2_s" | "f32")
}

fn every_outtype(variant: &str) {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(variant);
    let direct = logits(&src);
    let reference = read_npy(&fixture(&format!("{variant}/ref/logits_p0.npy")));
    for outtype in OUTTYPES {
        for embed in ["bf16", "default"] {
            let out = dir.path().join(format!("{variant}-{outtype}-{embed}.gguf"));
            let mut extra = vec!["--outtype", outtype, "--verify"];
            if embed != "default" {
                extra.extend(["--embed-type", embed]);
            }
            convert(&src, &out, &extra);
            let got = logits(&out);
            let (d_direct, top1_direct) = compare(&got, &direct);
            let (d_ref, top1_ref) = compare(&got, &reference);
            eprintln!(
                "{variant} {outtype} embed={embed}: vs HF dir max|d| {d_direct:.3e} top-1 {:.1}%; vs transformers max|d| {d_ref:.3} top-1 {:.1}%",
                100.0 * top1_direct,
                100.0 * top1_ref
            );
            if embed == "bf16" && exact(variant, outtype) {
                assert_eq!(
                    got, direct,
                    "{variant} {outtype}: logits differ from the HF dir"
                );
            }
            assert!(
                d_ref < 1.0 && top1_ref >= 0.9,
                "{variant} {outtype} embed={embed}: max|d| {d_ref}, top-1 {top1_ref} vs transformers"
            );
            assert!(
                d_direct < 1.0 && top1_direct >= 0.9,
                "{variant} {outtype} embed={embed}: max|d| {d_direct}, top-1 {top1_direct} vs HF dir"
            );
        }
    }
}

#[test]
fn packed_every_outtype_matches_hf_dir() {
    every_outtype("packed");
}

#[test]
fn master_every_outtype_matches_hf_dir() {
    every_outtype("master");
}

#[test]
fn f32_embedding_is_exact_too() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.gguf");
    convert(
        &fixture("packed"),
        &out,
        &["--outtype", "tq2_0", "--embed-type", "f32", "--verify"],
    );
    assert_eq!(logits(&out), logits(&fixture("packed")));
}

#[test]
fn help_and_version() {
    Command::cargo_bin("bitnet-st2gguf")
        .unwrap()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("--outtype").and(predicate::str::contains("--verify")));
    Command::cargo_bin("bitnet-st2gguf")
        .unwrap()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn existing_output_is_kept_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.gguf");
    std::fs::write(&out, b"keep me").unwrap();
    st2gguf()
        .arg("--input")
        .arg(fixture("packed"))
        .arg("--output")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force").and(predicate::str::contains("m.gguf")));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    convert(&fixture("packed"), &out, &["--force"]);
    assert_eq!(&std::fs::read(&out).unwrap()[..4], b"GGUF");
    // No temporary files are left next to the output.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("m.gguf")]);
}

#[test]
fn i2s_output_has_bitnet_cpp_layout() {
    // The I2_S file must carry what bitnet.cpp's own file (fixtures/tiny-bitnet/i2s) carries:
    // same tensors in the same order with the same types and dims, the same model keys with
    // the same values, and the same ternary codes and scales.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.gguf");
    convert(&fixture("packed"), &out, &[]);
    let ours = bitnet_gguf::GgufFile::open(&out).unwrap();
    let theirs = bitnet_gguf::GgufFile::open(&fixture("i2s/model-i2_s.gguf")).unwrap();
    let names = |f: &bitnet_gguf::GgufFile| {
        f.tensors()
            .iter()
            .map(|t| (t.name.clone(), t.dims.clone(), t.ggml_type))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&ours), names(&theirs));
    for key in [
        "general.architecture",
        "general.file_type",
        "general.quantization_version",
        "bitnet-b1.58.vocab_size",
        "bitnet-b1.58.context_length",
        "bitnet-b1.58.embedding_length",
        "bitnet-b1.58.block_count",
        "bitnet-b1.58.feed_forward_length",
        "bitnet-b1.58.rope.dimension_count",
        "bitnet-b1.58.attention.head_count",
        "bitnet-b1.58.attention.head_count_kv",
        "bitnet-b1.58.attention.layer_norm_rms_epsilon",
        "bitnet-b1.58.rope.freq_base",
    ] {
        assert_eq!(ours.get(key), theirs.get(key), "{key}");
    }
    assert_eq!(
        ours.get("bitnet-b1.58.hidden_activation"),
        Some(&bitnet_gguf::Value::String("relu2".into()))
    );
    for (a, b) in ours.tensors().iter().zip(theirs.tensors()) {
        let (da, db) = (ours.tensor_data(a), theirs.tensor_data(b));
        if a.ggml_type == bitnet_gguf::GgmlType::I2_S {
            // Codes and scale equal; the 28 padding bytes are stale memory in bitnet.cpp's file.
            let n = da.len() - 28;
            assert_eq!(&da[..n], &db[..n], "{}", a.name);
        } else if a.ggml_type == bitnet_gguf::GgmlType::F32 {
            assert_eq!(da, db, "{}", a.name);
        }
    }
}

// ---- broken checkpoints --------------------------------------------------------------

/// A copy of `packed/` whose tensors pass through `edit` (which may drop, add or change
/// them) and whose config passes through `edit_config`.
fn broken(
    edit: impl Fn(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
    edit_config: impl Fn(&mut serde_json::Value),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("packed");
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

fn fails_naming(input: &Path, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gguf");
    let assert = st2gguf()
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(&out)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    eprintln!("{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr does not name '{n}': {stderr}");
    }
    assert!(!out.exists(), "a failed conversion left {}", out.display());
}

#[test]
fn error_not_a_directory() {
    let p = fixture("packed/config.json");
    fails_naming(&p, &["config.json"]);
}

#[test]
fn error_missing_config() {
    let d = broken(|_| {}, |_| {});
    std::fs::remove_file(d.path().join("config.json")).unwrap();
    fails_naming(d.path(), &["config.json"]);
}

#[test]
fn error_missing_weights() {
    let d = broken(|_| {}, |_| {});
    std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
    fails_naming(d.path(), &["model.safetensors"]);
}

#[test]
fn error_unknown_model_type() {
    let d = broken(|_| {}, |c| c["model_type"] = "gpt2".into());
    fails_naming(d.path(), &["model_type", "gpt2"]);
}

#[test]
fn error_missing_tensor() {
    let name = "model.layers.2.mlp.up_proj.weight";
    let d = broken(|t| t.retain(|x| x.0 != name), |_| {});
    fails_naming(d.path(), &[name]);
}

#[test]
fn error_extra_tensor() {
    let name = "model.layers.0.self_attn.rotary_extra.weight";
    let d = broken(
        |t| t.push((name.to_string(), Dtype::BF16, vec![4], vec![0; 8])),
        |_| {},
    );
    fails_naming(d.path(), &[name]);
}

#[test]
fn error_wrong_shape() {
    let name = "model.layers.1.self_attn.q_proj.weight";
    let d = broken(
        |t| {
            let x = t.iter_mut().find(|x| x.0 == name).unwrap();
            // 63 packed rows (252 outputs) instead of 64 (256).
            x.2 = vec![63, 256];
            x.3.truncate(63 * 256);
        },
        |_| {},
    );
    fails_naming(d.path(), &[name]);
}

#[test]
fn error_nan_scale() {
    let name = "model.layers.3.mlp.down_proj.weight_scale";
    let d = broken(
        |t| {
            let x = t.iter_mut().find(|x| x.0 == name).unwrap();
            x.3 = half::bf16::NAN.to_le_bytes().to_vec();
        },
        |_| {},
    );
    fails_naming(d.path(), &["down_proj"]);
}

#[test]
fn error_unsupported_dtype() {
    let name = "model.embed_tokens.weight";
    let d = broken(
        |t| {
            let x = t.iter_mut().find(|x| x.0 == name).unwrap();
            // Same byte count, a dtype no BitNet checkpoint uses for an embedding.
            x.1 = Dtype::I16;
        },
        |_| {},
    );
    fails_naming(d.path(), &[name]);
}

// ---- tokenizer -----------------------------------------------------------------------

/// GPT-2's byte-to-unicode map: the printable string of each byte in byte-level BPE vocabularies.
fn byte_chars() -> Vec<char> {
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
fn write_tiny_tokenizer(dir: &Path) {
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

#[test]
fn tokenizer_is_written_and_round_trips() {
    let d = broken(|_| {}, |_| {});
    write_tiny_tokenizer(d.path());
    let out = tempfile::tempdir().unwrap();
    let gguf = out.path().join("tok.gguf");
    convert(d.path(), &gguf, &["--verify"]);
    let file = bitnet_gguf::GgufFile::open(&gguf).unwrap();
    let s = |k: &str| file.get_str(k).unwrap().to_string();
    assert_eq!(s("tokenizer.ggml.model"), "gpt2");
    assert_eq!(s("tokenizer.ggml.pre"), "gpt-2");
    assert_eq!(
        file.get_string_array("tokenizer.ggml.tokens")
            .unwrap()
            .len(),
        512
    );
    assert_eq!(
        file.get_string_array("tokenizer.ggml.merges")
            .unwrap()
            .len(),
        254
    );
    assert_eq!(
        file.get_i32_array("tokenizer.ggml.token_type").unwrap()[510],
        3
    );
    assert_eq!(file.get_u32("tokenizer.ggml.bos_token_id").unwrap(), 510);
    assert_eq!(file.get_u32("tokenizer.ggml.eos_token_id").unwrap(), 511);
    assert!(file.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert!(s("tokenizer.chat_template").contains("m['role']"));

    // The engine builds the same tokenizer from the GGUF as from the directory.
    let model = Model::load(
        &gguf,
        &LoadOptions {
            threads: 1,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let from_gguf = model.tokenizer().expect("the GGUF has a tokenizer");
    let from_dir = bitnet_tokenizer::Tokenizer::from_hf_dir(d.path()).unwrap();
    for text in ["hello world", "abc zyx  ba\n<|end_of_text|>", "ünïcödé ✓"] {
        assert_eq!(
            from_gguf.encode(text, true, true).unwrap(),
            from_dir.encode(text, true, true).unwrap(),
            "{text:?}"
        );
    }
}

#[test]
fn error_tokenizer_larger_than_vocab() {
    // The Llama-3 tokenizer (128256 tokens) does not fit the tiny model's 512 rows.
    let d = broken(|_| {}, |_| {});
    std::fs::copy(
        fixture("../llama3-tokenizer/tokenizer.json"),
        d.path().join("tokenizer.json"),
    )
    .unwrap();
    fails_naming(d.path(), &["vocab_size"]);
}
