//! The `bitnet-st2gguf` binary on the tiny-bitnet fixture: `--help`/`--version`, `--force`,
//! the I2_S output against bitnet.cpp's own file, tokenizer keys, and one broken checkpoint
//! per error the converter must name (exit status 2, `error: ...` naming the thing).

mod common;

use std::path::Path;

use assert_cmd::Command;
use bitnet_st2gguf::gguf::{Array, GgmlType, GgufFile, Value};
use common::*;
use predicates::prelude::*;
use safetensors::tensor::Dtype;

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
    let ours = GgufFile::open(&out).unwrap();
    let theirs = GgufFile::open(fixture("i2s/model-i2_s.gguf")).unwrap();
    let names = |f: &GgufFile| {
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
        Some(&Value::String("relu2".into()))
    );
    for (a, b) in ours.tensors().iter().zip(theirs.tensors()) {
        let (da, db) = (ours.tensor_data(a), theirs.tensor_data(b));
        if a.ggml_type == GgmlType::I2_S {
            // Codes and scale equal; the 28 padding bytes are stale memory in bitnet.cpp's file.
            let n = da.len() - 28;
            assert_eq!(&da[..n], &db[..n], "{}", a.name);
        } else {
            // Norms (F32) and the embedding (bf16 -> F16, round to nearest even) are bit-equal.
            assert_eq!(da, db, "{}", a.name);
        }
    }
}

// ---- broken checkpoints --------------------------------------------------------------

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
    assert!(stderr.starts_with("bitnet-st2gguf: error: "), "{stderr}");
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

#[test]
fn tokenizer_keys_are_written() {
    let d = broken(|_| {}, |_| {});
    write_tiny_tokenizer(d.path());
    let out = tempfile::tempdir().unwrap();
    let gguf = out.path().join("tok.gguf");
    convert(d.path(), &gguf, &["--verify"]);
    let file = GgufFile::open(&gguf).unwrap();
    let get = |k: &str| file.get(k).unwrap_or_else(|| panic!("missing {k}")).clone();
    let string = |k: &str| Value::String(k.to_string());
    assert_eq!(get("tokenizer.ggml.model"), string("gpt2"));
    assert_eq!(get("tokenizer.ggml.pre"), string("gpt-2"));
    let Value::Array(Array::String(tokens)) = get("tokenizer.ggml.tokens") else {
        panic!("tokens are not a string array")
    };
    assert_eq!(tokens.len(), 512);
    assert_eq!(tokens[510], "<|begin_of_text|>");
    assert_eq!(tokens[b'a' as usize], "a");
    let Value::Array(Array::String(merges)) = get("tokenizer.ggml.merges") else {
        panic!("merges are not a string array")
    };
    assert_eq!((merges.len(), merges[0].as_str()), (254, "a a"));
    let Value::Array(Array::I32(types)) = get("tokenizer.ggml.token_type") else {
        panic!("token_type is not an i32 array")
    };
    assert_eq!((types[0], types[510], types[511]), (1, 3, 3));
    assert_eq!(get("tokenizer.ggml.bos_token_id"), Value::U32(510));
    assert_eq!(get("tokenizer.ggml.eos_token_id"), Value::U32(511));
    assert_eq!(get("tokenizer.ggml.add_bos_token"), Value::Bool(true));
    let Value::String(tpl) = get("tokenizer.chat_template") else {
        panic!("chat_template is not a string")
    };
    assert!(tpl.contains("m['role']"), "{tpl}");
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

// ---- other layouts -------------------------------------------------------------------

/// Unpacks a 2B4T U8 tensor `[out/4, in]` to I8 `[out, in]` values (fixture README layout).
fn unpack_u8(shape: &[usize], bytes: &[u8]) -> (Vec<usize>, Vec<u8>) {
    let (r4, cols) = (shape[0], shape[1]);
    let mut out = vec![0u8; 4 * r4 * cols];
    for r in 0..r4 {
        for c in 0..cols {
            for i in 0..4 {
                let code = (bytes[r * cols + c] >> (2 * i)) & 3;
                out[(i * r4 + r) * cols + c] = (code as i8 - 1) as u8;
            }
        }
    }
    (vec![4 * r4, cols], out)
}

fn unpacked_checkpoint(poison: Option<&str>) -> tempfile::TempDir {
    broken(
        |t| {
            for x in t.iter_mut().filter(|x| x.1 == Dtype::U8) {
                let (shape, mut data) = unpack_u8(&x.2, &x.3);
                if poison == Some(x.0.as_str()) {
                    data[7] = 2; // a value of +2 is not ternary
                }
                x.1 = Dtype::I8;
                x.2 = shape;
                x.3 = data;
            }
        },
        |_| {},
    )
}

#[test]
fn unpacked_ternary_equals_packed() {
    let d = unpacked_checkpoint(None);
    let out = tempfile::tempdir().unwrap();
    let (a, b) = (out.path().join("a.gguf"), out.path().join("b.gguf"));
    convert(&fixture("packed"), &a, &["--name", "x"]);
    convert(d.path(), &b, &["--name", "x", "--verify"]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn error_unpacked_value_not_ternary() {
    let name = "model.layers.1.mlp.gate_proj.weight";
    let d = unpacked_checkpoint(Some(name));
    fails_naming(d.path(), &[name, "not -1, 0 or +1"]);
}

#[test]
fn sharded_checkpoint_equals_single_file() {
    // Split packed/ into two shards with an index, as large checkpoints are published.
    let src = fixture("packed");
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_owned).collect();
    names.sort();
    let d = tempfile::tempdir().unwrap();
    let mut map = serde_json::Map::new();
    for (i, part) in names.chunks(names.len() / 2 + 1).enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", i + 1);
        let views: Vec<_> = part
            .iter()
            .map(|n| (n.clone(), st.tensor(n).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, None, &d.path().join(&file)).unwrap();
        for n in part {
            map.insert(n.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        d.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    std::fs::copy(src.join("config.json"), d.path().join("config.json")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (a, b) = (out.path().join("a.gguf"), out.path().join("b.gguf"));
    convert(&src, &a, &["--name", "x", "--outtype", "tq2_0"]);
    convert(
        d.path(),
        &b,
        &["--name", "x", "--outtype", "tq2_0", "--verify"],
    );
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

/// The scales and code statistics of the converted linears equal what transformers recorded
/// for the fixture (`scales.json`): the f32 absmean scale for `master/`, the stored bf16
/// `weight_scale` for `packed/`, and the same fraction of non-zero codes.
#[test]
fn linears_match_transformers_scales() {
    let scales: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("scales.json")).unwrap()).unwrap();
    let out = tempfile::tempdir().unwrap();
    for (variant, key) in [("packed", "scale_stored"), ("master", "scale_fp32")] {
        let path = out.path().join(format!("{variant}.gguf"));
        convert(&fixture(variant), &path, &[]);
        let file = GgufFile::open(&path).unwrap();
        let mut checked = 0;
        for (hf, want) in scales.as_object().unwrap() {
            // model.layers.L.self_attn.q_proj -> blk.L.attn_q.weight
            let parts: Vec<&str> = hf.split('.').collect();
            let gguf = match parts[4] {
                "q_proj" => "attn_q",
                "k_proj" => "attn_k",
                "v_proj" => "attn_v",
                "o_proj" => "attn_output",
                "gate_proj" => "ffn_gate",
                "up_proj" => "ffn_up",
                "down_proj" => "ffn_down",
                other => panic!("{other}"),
            };
            let name = format!("blk.{}.{gguf}.weight", parts[2]);
            let info = file.tensors().iter().find(|t| t.name == name).unwrap();
            let (cols, rows) = (info.dims[0] as usize, info.dims[1] as usize);
            let w = bitnet_formats::decode_i2s(file.tensor_data(info), rows, cols).unwrap();
            let want_scale = want[key].as_f64().unwrap() as f32;
            let rel = ((w.scale - want_scale) / want_scale).abs();
            // packed: the bf16 value exactly; master: transformers' f32 mean (summation order
            // may differ in the last bit).
            let tol = if variant == "packed" { 0.0 } else { 2e-7 };
            assert!(
                rel <= tol,
                "{variant} {name}: scale {} vs {want_scale}",
                w.scale
            );
            let nonzero =
                w.values.iter().filter(|&&v| v != 0).count() as f64 / w.values.len() as f64;
            assert_eq!(
                nonzero,
                want["frac_nonzero"].as_f64().unwrap(),
                "{variant} {name}"
            );
            checked += 1;
        }
        assert_eq!(checked, 28);
    }
}

/// `autobitlinear` multiplies by `weight_scale`; `bitlinear` and a missing `linear_class`
/// divide (the mistake llama.cpp's converter makes for 2B4T is the other way round).
#[test]
fn bitlinear_divides_by_weight_scale() {
    let scales: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("scales.json")).unwrap()).unwrap();
    let stored = scales["model.layers.0.self_attn.q_proj"]["scale_stored"]
        .as_f64()
        .unwrap() as f32;
    let out = tempfile::tempdir().unwrap();
    let cases: [(&str, Option<&str>, f32); 3] = [
        ("auto", Some("autobitlinear"), stored),
        ("bitlinear", Some("bitlinear"), 1.0 / stored),
        ("absent", None, 1.0 / stored),
    ];
    for (tag, class, want) in cases {
        let d = broken(
            |_| {},
            |c| match class {
                Some(cl) => c["quantization_config"]["linear_class"] = cl.into(),
                None => {
                    c["quantization_config"]
                        .as_object_mut()
                        .unwrap()
                        .remove("linear_class");
                }
            },
        );
        let path = out.path().join(format!("{tag}.gguf"));
        convert(d.path(), &path, &["--verify"]);
        let file = GgufFile::open(&path).unwrap();
        let info = file
            .tensors()
            .iter()
            .find(|t| t.name == "blk.0.attn_q.weight")
            .unwrap();
        let w = bitnet_formats::decode_i2s(file.tensor_data(info), 256, 256).unwrap();
        assert_eq!(w.scale, want, "{tag}");
    }
}

#[test]
fn error_absurd_layer_count_or_linear_class_in_config() {
    for layers in [1u64 << 24, 1 << 40] {
        let d = broken(|_| {}, |c| c["num_hidden_layers"] = layers.into());
        fails_naming(d.path(), &["num_hidden_layers", "implausibly large"]);
    }
    let d = broken(
        |_| {},
        |c| c["quantization_config"]["linear_class"] = "wideLinear".into(),
    );
    fails_naming(
        d.path(),
        &[
            "quantization_config.linear_class",
            "wideLinear",
            "autobitlinear",
        ],
    );
}

/// The checkpoint as a positional argument (llama.cpp's converters take it so); `--input`
/// keeps working. A missing output directory fails before the checkpoint is read.
#[test]
fn positional_input_and_output_checked_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.gguf");
    st2gguf()
        .arg(fixture("packed"))
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(&std::fs::read(&out).unwrap()[..4], b"GGUF");
    let missing = dir.path().join("no/such/m.gguf");
    st2gguf()
        .arg("/no/such/checkpoint")
        .arg("-o")
        .arg(&missing)
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("--output").and(predicate::str::contains("does not exist")),
        );
    // With --log-format json every stderr line is JSON, the error report included.
    let assert = st2gguf()
        .args(["--log-format", "json"])
        .arg(fixture("packed"))
        .arg("-o")
        .arg(&out)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    for line in stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        assert!(
            v["fields"]["message"].as_str().unwrap().contains("--force"),
            "{line}"
        );
    }
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        Command::cargo_bin("bitnet-st2gguf")
            .unwrap()
            .args(["--completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("outtype"));
    }
    Command::cargo_bin("bitnet-st2gguf")
        .unwrap()
        .arg("--man")
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH bitnet-st2gguf 1"));
}
