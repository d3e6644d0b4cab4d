//! The converter converts every checkpoint the engine loads, and the engine computes the same
//! logits from the converted file as from the checkpoint directory: every activation
//! spelling the schema accepts (`relu^2` included), the other `config.json` spellings
//! transformers writes (`rope_parameters`, `dtype`, `eos_token_id` lists, defaults), both
//! `linear_class` conventions, an untied head, both weight layouts and every architecture
//! name. And what the engine refuses, the converter refuses too, naming the same field.

mod common;

use std::path::Path;

use bitnet_engine::{LoadOptions, Model, ModelConfig};
use bitnet_schema::Activation;
use common::*;
use safetensors::tensor::Dtype;
use serde_json::json;

type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

/// A named edit of `config.json`.
type ConfigCase = (&'static str, fn(&mut serde_json::Value));

fn load(path: &Path) -> Result<Model, bitnet_engine::EngineError> {
    let opts = LoadOptions {
        threads: 1,
        ..LoadOptions::default()
    };
    Model::load(path, &opts)
}

fn logits(model: &Model) -> Vec<f32> {
    let mut session = model.new_session();
    model.forward_all(&mut session, &PROMPT).unwrap()
}

/// Converts `dir` (as `--arch arch`) with every linear and the embedding kept exact (I2_S,
/// bf16), then checks that the engine reads the same config from both and computes
/// bit-equal logits.
fn converts_like_the_engine_loads(what: &str, dir: &Path, arch: &str) -> ModelConfig {
    let direct = load(dir).unwrap_or_else(|e| panic!("{what}: the engine refuses the dir: {e}"));
    let out = tempfile::tempdir().unwrap();
    let gguf = out.path().join("m.gguf");
    convert(
        dir,
        &gguf,
        &["--embed-type", "bf16", "--arch", arch, "--verify"],
    );
    let converted =
        load(&gguf).unwrap_or_else(|e| panic!("{what}: the engine refuses the GGUF: {e}"));
    assert_eq!(
        converted.config(),
        &ModelConfig {
            architecture: arch.to_string(),
            ..direct.config().clone()
        },
        "{what}"
    );
    assert_eq!(logits(&converted), logits(&direct), "{what}");
    direct.config().clone()
}

fn no_tensor_edit(_: &mut Tensors) {}

#[test]
fn every_activation_spelling() {
    for (spelling, act) in Activation::SPELLINGS {
        for name in [spelling.to_string(), spelling.to_ascii_uppercase()] {
            let d = variant_of("packed", no_tensor_edit, |c| c["hidden_act"] = json!(name));
            let cfg = converts_like_the_engine_loads(&name, d.path(), "bitnet-b1.58");
            assert_eq!(cfg.activation, act, "{name}");
        }
    }
    // No hidden_act: transformers' BitNet default, relu2.
    let d = variant_of("packed", no_tensor_edit, |c| {
        c.as_object_mut().unwrap().remove("hidden_act");
    });
    let cfg = converts_like_the_engine_loads("no hidden_act", d.path(), "bitnet-b1.58");
    assert_eq!(cfg.activation, Activation::Relu2);
}

#[test]
fn other_config_spellings_and_defaults() {
    let cases: [ConfigCase; 7] = [
        ("rope_parameters", |c| {
            let theta = c.as_object_mut().unwrap().remove("rope_theta").unwrap();
            c["rope_parameters"] = json!({"rope_type": "default", "rope_theta": theta});
        }),
        ("dtype instead of torch_dtype", |c| {
            let dtype = c.as_object_mut().unwrap().remove("torch_dtype").unwrap();
            c["dtype"] = dtype;
        }),
        ("explicit head_dim", |c| c["head_dim"] = json!(64)),
        ("eos_token_id list, no bos", |c| {
            c["eos_token_id"] = json!([2, 3]);
            c.as_object_mut().unwrap().remove("bos_token_id");
        }),
        ("defaults", |c| {
            let o = c.as_object_mut().unwrap();
            for k in [
                "max_position_embeddings",
                "tie_word_embeddings",
                "rms_norm_eps",
            ] {
                o.remove(k);
            }
        }),
        ("bitlinear divides by weight_scale", |c| {
            c["quantization_config"]["linear_class"] = json!("bitlinear")
        }),
        ("no quantization_config", |c| {
            c.as_object_mut().unwrap().remove("quantization_config");
        }),
    ];
    for (what, edit) in cases {
        let d = variant_of("packed", no_tensor_edit, edit);
        converts_like_the_engine_loads(what, d.path(), "bitnet-b1.58");
    }
}

#[test]
fn untied_head_master_layout_and_every_architecture() {
    // An untied head (lm_head = a copy of the embedding with one row changed).
    let d = variant_of(
        "packed",
        |t| {
            let emb = t
                .iter()
                .find(|x| x.0 == "model.embed_tokens.weight")
                .unwrap()
                .clone();
            let mut head = ("lm_head.weight".to_string(), emb.1, emb.2, emb.3);
            head.3[..2].copy_from_slice(&half::bf16::from_f32(0.5).to_le_bytes());
            t.push(head);
        },
        |c| c["tie_word_embeddings"] = json!(false),
    );
    converts_like_the_engine_loads("untied head", d.path(), "bitnet-b1.58");
    // The master (float) layout with a non-default spelling.
    let d = variant_of("master", no_tensor_edit, |c| {
        c["hidden_act"] = json!("relu^2")
    });
    converts_like_the_engine_loads("master relu^2", d.path(), "bitnet-b1.58");
    // Every architecture the engine runs: the activation travels in the file, so `bitnet`
    // (whose default is SiLU) still runs the checkpoint's relu2.
    for arch in bitnet_schema::SUPPORTED_ARCHITECTURES {
        let cfg = converts_like_the_engine_loads(arch, &fixture("packed"), arch);
        assert_eq!(cfg.activation, Activation::Relu2);
    }
}

#[test]
fn what_the_engine_refuses_the_converter_refuses() {
    let cases: [ConfigCase; 5] = [
        ("hidden_act", |c| c["hidden_act"] = json!("tanh")),
        ("num_key_value_heads", |c| {
            c["num_key_value_heads"] = json!(3)
        }),
        ("head_dim", |c| c["head_dim"] = json!(33)),
        ("rope_theta", |c| c["rope_theta"] = json!(-1.0)),
        ("model_type", |c| c["model_type"] = json!("llama")),
    ];
    for (field, edit) in cases {
        let d = variant_of("packed", no_tensor_edit, edit);
        let e = load(d.path())
            .err()
            .unwrap_or_else(|| panic!("engine loads bad {field}"));
        assert!(e.to_string().contains(field), "engine: {e}");
        let out = tempfile::tempdir().unwrap();
        let assert = st2gguf()
            .arg("--input")
            .arg(d.path())
            .arg("--output")
            .arg(out.path().join("m.gguf"))
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(
            stderr.contains(field) && stderr.contains("config.json"),
            "converter: {stderr}"
        );
    }
    // `--arch` takes only what the engine runs.
    let out = tempfile::tempdir().unwrap();
    st2gguf()
        .arg("--input")
        .arg(fixture("packed"))
        .arg("--output")
        .arg(out.path().join("m.gguf"))
        .args(["--arch", "llama"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("bitnet-b1.58"));
}
