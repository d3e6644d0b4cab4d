//! The converter's path (`config.json` -> [`ModelConfig::from_hf`] -> [`ModelConfig::to_gguf`])
//! and the engine's paths ([`ModelConfig::from_gguf`] of what the converter wrote, and
//! `from_hf` of a checkpoint directory) accept the same configs and agree on what they mean:
//! every activation spelling, both RoPE spellings, explicit and derived head sizes. And they
//! refuse the same configs, naming the field.

use std::path::Path;

use bitnet_gguf::{GgufFile, Value};
use bitnet_schema::{Activation, HfConfig, ModelConfig, keys};
use serde_json::json;

fn hf(j: &serde_json::Value) -> HfConfig {
    HfConfig::parse(Path::new("/x/config.json"), &j.to_string()).unwrap()
}

/// The fixture's `config.json` (tiny-bitnet/packed).
fn fixture() -> serde_json::Value {
    json!({
        "model_type": "bitnet",
        "hidden_act": "relu2",
        "hidden_size": 256,
        "intermediate_size": 512,
        "max_position_embeddings": 256,
        "num_attention_heads": 4,
        "num_hidden_layers": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-05,
        "rope_theta": 500000.0,
        "tie_word_embeddings": true,
        "vocab_size": 512
    })
}

/// What the converter writes for `cfg`, read back as the engine reads it.
fn through_gguf(cfg: &ModelConfig) -> ModelConfig {
    let mut meta = vec![(
        keys::ARCHITECTURE.to_string(),
        Value::String(cfg.architecture.clone()),
    )];
    meta.extend(cfg.to_gguf().unwrap());
    let file = GgufFile::from_bytes(bitnet_gguf::to_bytes(&meta, &[]).unwrap()).unwrap();
    ModelConfig::from_gguf(&file).unwrap()
}

#[test]
fn every_activation_spelling_is_accepted_on_both_paths() {
    for (spelling, act) in Activation::SPELLINGS {
        for name in [spelling.to_string(), spelling.to_ascii_uppercase()] {
            let mut j = fixture();
            j["hidden_act"] = json!(name);
            // The engine loading the directory and the converter read it the same way ...
            let cfg = ModelConfig::from_hf(&hf(&j)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(cfg.activation, act, "{name}");
            // ... and the engine loading the converted file gets the same config back.
            assert_eq!(through_gguf(&cfg), cfg, "{name}");
        }
        // A GGUF file naming the activation with any spelling loads too.
        let cfg = ModelConfig::from_hf(&hf(&fixture())).unwrap();
        let mut meta = vec![(
            keys::ARCHITECTURE.to_string(),
            Value::String(cfg.architecture.clone()),
        )];
        meta.extend(cfg.to_gguf().unwrap());
        let key = format!("bitnet-b1.58.{}", keys::HIDDEN_ACTIVATION);
        meta.iter_mut().find(|(k, _)| *k == key).unwrap().1 = Value::String(spelling.into());
        let file = GgufFile::from_bytes(bitnet_gguf::to_bytes(&meta, &[]).unwrap()).unwrap();
        assert_eq!(ModelConfig::from_gguf(&file).unwrap().activation, act);
    }
}

#[test]
fn fixture_config_means_the_tiny_preset() {
    let cfg = ModelConfig::from_hf(&hf(&fixture())).unwrap();
    assert_eq!(cfg, bitnet_schema::presets::preset("tiny").unwrap());
}

#[test]
fn config_variants_agree_on_both_paths() {
    let base = ModelConfig::from_hf(&hf(&fixture())).unwrap();
    // rope_parameters (transformers >= 4.56) instead of rope_theta.
    let mut j = fixture();
    j.as_object_mut().unwrap().remove("rope_theta");
    j["rope_parameters"] = json!({"rope_type": "default", "rope_theta": 500000.0});
    assert_eq!(ModelConfig::from_hf(&hf(&j)).unwrap(), base);
    // An explicit head_dim equal to the derived one, and hidden_act left to its default.
    let mut j = fixture();
    j["head_dim"] = json!(64);
    j.as_object_mut().unwrap().remove("hidden_act");
    assert_eq!(ModelConfig::from_hf(&hf(&j)).unwrap(), base);
    // A head size that is not hidden / heads is written as key_length and read back.
    let mut j = fixture();
    j["head_dim"] = json!(32);
    let cfg = ModelConfig::from_hf(&hf(&j)).unwrap();
    assert_eq!((cfg.q_dim(), cfg.kv_dim(), cfg.rope_dim), (128, 64, 32));
    assert_eq!(through_gguf(&cfg), cfg);
}

#[test]
fn both_paths_refuse_naming_the_field() {
    let err = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut j = fixture();
        edit(&mut j);
        ModelConfig::from_hf(&hf(&j)).unwrap_err().to_string()
    };
    let e = err(&|j| j["hidden_act"] = json!("tanh"));
    assert!(
        e.contains("'hidden_act'")
            && e.contains("unknown activation 'tanh'")
            && e.contains("relu^2"),
        "{e}"
    );
    let e = err(&|j| j["model_type"] = json!("gpt2"));
    assert!(e.contains("model_type 'gpt2'"), "{e}");
    let e = err(&|j| j["num_key_value_heads"] = json!(3));
    assert!(e.contains("'num_key_value_heads'"), "{e}");
    let e = err(&|j| j["num_attention_heads"] = json!(3));
    assert!(e.contains("not a multiple of 3 heads"), "{e}");
    let e = err(&|j| j["head_dim"] = json!(33));
    assert!(e.contains("'head_dim'") && e.contains("even"), "{e}");
    let e = err(&|j| j["vocab_size"] = json!(0));
    assert!(e.contains("'vocab_size': must be at least 1"), "{e}");
    let e = err(&|j| j["max_position_embeddings"] = json!(1u64 << 40));
    assert!(
        e.contains("'max_position_embeddings'") && e.contains("implausibly large"),
        "{e}"
    );
    let e = err(&|j| j["rms_norm_eps"] = json!(-1.0));
    assert!(e.contains("'rms_norm_eps'"), "{e}");
}
