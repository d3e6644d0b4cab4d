//! `config.json` parsing: the fixture's config, both spellings of `rope_theta` and of the
//! dtype, `eos_token_id` as a number or a list, transformers' defaults, and errors naming the
//! file and field.

use std::path::Path;

use bitnet_schema::{HfConfig, SchemaError};
use serde_json::json;

fn parse(j: serde_json::Value) -> Result<HfConfig, SchemaError> {
    HfConfig::parse(Path::new("/x/config.json"), &j.to_string())
}

/// The fields every config must have; everything else defaults.
fn minimal() -> serde_json::Value {
    json!({
        "model_type": "bitnet",
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "vocab_size": 512
    })
}

fn with(key: &str, value: serde_json::Value) -> serde_json::Value {
    let mut j = minimal();
    j[key] = value;
    j
}

fn err_text(j: serde_json::Value) -> String {
    parse(j).expect_err("config should be refused").to_string()
}

#[test]
fn fixture_config() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-bitnet/packed/config.json");
    let c = HfConfig::parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(c.model_type, "bitnet");
    assert_eq!(
        (c.hidden_size, c.intermediate_size, c.num_hidden_layers),
        (256, 512, 4)
    );
    assert_eq!((c.num_attention_heads, c.num_key_value_heads), (4, 2));
    assert_eq!((c.head_dim, c.head_dim()), (None, 64));
    assert_eq!((c.vocab_size, c.max_position_embeddings), (512, 256));
    assert_eq!(c.rms_norm_eps, 1e-5);
    assert_eq!(c.rope_theta, 500_000.0);
    assert_eq!(c.hidden_act, "relu2");
    assert!(c.tie_word_embeddings);
    assert_eq!(
        (c.bos_token_id, c.eos_token_ids.as_slice()),
        (Some(1), &[2][..])
    );
    assert_eq!(c.dtype.as_deref(), Some("bfloat16"));
    let q = c.quantization.as_ref().unwrap();
    assert_eq!(q.quant_method.as_deref(), Some("bitnet"));
    assert_eq!(q.linear_class.as_deref(), Some("autobitlinear"));
    assert_eq!(q.quantization_mode.as_deref(), Some("offline"));
    assert!(c.scale_multiplies());
}

#[test]
fn defaults() {
    let c = parse(minimal()).unwrap();
    assert_eq!(c.num_key_value_heads, 4, "defaults to num_attention_heads");
    assert_eq!(c.head_dim(), 64, "hidden_size / num_attention_heads");
    assert_eq!(c.max_position_embeddings, 4096);
    assert_eq!(c.rms_norm_eps, 1e-5);
    assert_eq!(c.rope_theta, 10_000.0);
    assert_eq!(c.hidden_act, "relu2");
    assert!(c.tie_word_embeddings);
    assert_eq!(c.bos_token_id, None);
    assert!(c.eos_token_ids.is_empty());
    assert_eq!(c.dtype, None);
    assert_eq!(c.quantization, None);
    assert!(!c.scale_multiplies(), "no linear_class divides");
    // JSON null is the same as absent.
    let c = parse(with("eos_token_id", json!(null))).unwrap();
    assert!(c.eos_token_ids.is_empty());
}

#[test]
fn explicit_head_dim_wins() {
    let c = parse(with("head_dim", json!(128))).unwrap();
    assert_eq!((c.head_dim, c.head_dim()), (Some(128), 128));
}

#[test]
fn rope_theta_both_spellings() {
    let c = parse(with("rope_theta", json!(500000.0))).unwrap();
    assert_eq!(c.rope_theta, 500_000.0);
    // transformers >= 4.56 writes rope_parameters; it wins over a stale top-level value.
    let mut j = with(
        "rope_parameters",
        json!({"rope_type": "default", "rope_theta": 250000.0}),
    );
    let c = parse(j.clone()).unwrap();
    assert_eq!(c.rope_theta, 250_000.0);
    j["rope_theta"] = json!(10000.0);
    assert_eq!(parse(j).unwrap().rope_theta, 250_000.0);
    // rope_parameters without rope_theta falls back to the top-level field.
    let mut j = with("rope_parameters", json!({"rope_type": "default"}));
    j["rope_theta"] = json!(1000.0);
    assert_eq!(parse(j).unwrap().rope_theta, 1000.0);
    let e = err_text(with("rope_parameters", json!({"rope_theta": "big"})));
    assert!(
        e.contains("/x/config.json") && e.contains("rope_parameters.rope_theta"),
        "{e}"
    );
    let e = err_text(with("rope_theta", json!("big")));
    assert!(e.contains("'rope_theta'"), "{e}");
}

#[test]
fn dtype_both_spellings() {
    let c = parse(with("torch_dtype", json!("bfloat16"))).unwrap();
    assert_eq!(c.dtype.as_deref(), Some("bfloat16"));
    let c = parse(with("dtype", json!("float32"))).unwrap();
    assert_eq!(c.dtype.as_deref(), Some("float32"));
    let mut j = with("dtype", json!("float32"));
    j["torch_dtype"] = json!("float16");
    assert_eq!(parse(j).unwrap().dtype.as_deref(), Some("float16"));
}

#[test]
fn eos_number_or_list() {
    assert_eq!(
        parse(with("eos_token_id", json!(2))).unwrap().eos_token_ids,
        [2]
    );
    assert_eq!(
        parse(with("eos_token_id", json!([128001, 128008, 128009])))
            .unwrap()
            .eos_token_ids,
        [128001, 128008, 128009]
    );
    assert!(
        parse(with("eos_token_id", json!([])))
            .unwrap()
            .eos_token_ids
            .is_empty()
    );
    // A bad entry is an error, not silently dropped.
    let e = err_text(with("eos_token_id", json!([2, "x"])));
    assert!(e.contains("'eos_token_id'") && e.contains("\"x\""), "{e}");
    let e = err_text(with("eos_token_id", json!(-1)));
    assert!(e.contains("'eos_token_id'"), "{e}");
    let e = err_text(with("bos_token_id", json!(4294967296u64)));
    assert!(e.contains("'bos_token_id'"), "{e}");
}

#[test]
fn linear_class_decides_multiply_or_divide() {
    let q = |class: serde_json::Value| {
        parse(with(
            "quantization_config",
            json!({"quant_method": "bitnet", "linear_class": class}),
        ))
        .unwrap()
        .scale_multiplies()
    };
    assert!(q(json!("autobitlinear")));
    assert!(q(json!("AutoBitLinear")));
    assert!(!q(json!("bitlinear")));
    assert!(!q(json!(null)));
}

#[test]
fn errors_name_file_and_field() {
    for key in [
        "model_type",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "vocab_size",
    ] {
        let mut j = minimal();
        j.as_object_mut().unwrap().remove(key);
        let e = err_text(j);
        assert!(
            e.contains("/x/config.json")
                && e.contains(&format!("required field '{key}' is missing")),
            "{e}"
        );
    }
    let e = err_text(with("hidden_size", json!("256")));
    assert!(
        e.contains("'hidden_size' is not a non-negative integer"),
        "{e}"
    );
    let e = err_text(with("num_key_value_heads", json!(-2)));
    assert!(e.contains("'num_key_value_heads'"), "{e}");
    let e = err_text(with("rms_norm_eps", json!("small")));
    assert!(e.contains("'rms_norm_eps' is not a number"), "{e}");
    let e = HfConfig::parse(Path::new("/x/config.json"), "{\"model_type\": ")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/x/config.json: invalid JSON"), "{e}");
}

#[test]
fn unknown_linear_class_is_refused_with_the_known_list() {
    let e = err_text(with(
        "quantization_config",
        json!({"quant_method": "bitnet", "linear_class": "fancylinear"}),
    ));
    assert!(
        e.contains("quantization_config.linear_class")
            && e.contains("fancylinear")
            && e.contains("bitlinear, autobitlinear"),
        "{e}"
    );
    let e = err_text(with(
        "quantization_config",
        json!({"quant_method": "bitnet", "linear_class": 3}),
    ));
    assert!(e.contains("quantization_config.linear_class"), "{e}");
}

#[test]
fn absurd_layer_counts_are_refused_by_from_hf() {
    for layers in [1u64 << 24, 1 << 40] {
        let cfg = parse(with("num_hidden_layers", json!(layers))).unwrap();
        let e = bitnet_schema::ModelConfig::from_hf(&cfg)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'num_hidden_layers'") && e.contains("implausibly large"),
            "{layers}: {e}"
        );
    }
}
