//! What the loader fuzz targets run, shared with the test that replays the kept inputs
//! (`tests/fuzz_regressions.rs` declares this module; the targets in the repository's `fuzz/`
//! include this file by path), plus the small valid models the fuzzer starts from: one file,
//! so the replay is exactly what was fuzzed.
//!
//! Both loaders must return `Ok` or `Err` for any input, never panic, abort, hang or allocate
//! far beyond the input's size; a model that loads must run a forward pass.
// Each includer uses part of it (a fuzz target one loader, the replay test both).
#![allow(dead_code)]

use bitnet_engine::config::ModelConfig;
use bitnet_engine::{LoadOptions, Model, SessionOptions};
use bitnet_gguf::{GgmlType, TensorSpec, Value};
use bitnet_schema::{Activation, Linear, ModelTensor, Norm};

/// One kernel thread: fuzzing runs many processes side by side.
fn opts() -> LoadOptions {
    LoadOptions {
        threads: 1,
        ..LoadOptions::default()
    }
}

/// A loaded model runs: a short forward pass over the first and last token ids.
fn exercise(model: &Model) {
    let mut session = model.session(&SessionOptions {
        context: Some(4),
        max_batch: 2,
        ..SessionOptions::default()
    });
    let last = u32::try_from(model.config().vocab_size - 1).unwrap_or(0);
    let _ = model.forward_all(&mut session, &[0, last]);
}

/// GGUF bytes -> `Model` (target `gguf_model`). Returns whether the model loaded.
pub fn gguf_model(data: &[u8]) -> bool {
    match Model::from_gguf_bytes(data.to_vec(), &opts()) {
        Ok(model) => {
            exercise(&model);
            true
        }
        Err(_) => false,
    }
}

/// Input of target `checkpoint_model`: a little-endian u16 length, that many bytes of
/// `config.json`, then the bytes of `model.safetensors`.
pub fn split_checkpoint(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = usize::from(u16::from_le_bytes([*data.first()?, *data.get(1)?]));
    let rest = data.get(2..)?;
    (rest.len() >= n).then(|| rest.split_at(n))
}

/// `config.json` + `model.safetensors` -> `Model` through a checkpoint directory (target
/// `checkpoint_model`); the directory is one per process, rewritten for every input.
/// Returns whether the model loaded.
pub fn checkpoint_model(data: &[u8]) -> bool {
    let Some((config, weights)) = split_checkpoint(data) else {
        return false;
    };
    let dir = std::env::temp_dir().join(format!("bitnet-fuzz-checkpoint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("config.json"), config).expect("write config.json");
    std::fs::write(dir.join("model.safetensors"), weights).expect("write model.safetensors");
    match Model::load(&dir, &opts()) {
        Ok(model) => {
            exercise(&model);
            true
        }
        Err(_) => false,
    }
}

/// The smallest BitNet shape worth fuzzing from: 1 block, hidden 32, 2 heads of 16 (one
/// key/value head), vocabulary 16.
pub fn seed_config() -> ModelConfig {
    ModelConfig {
        architecture: "bitnet-b1.58".into(),
        vocab_size: 16,
        hidden_size: 32,
        n_layers: 1,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 16,
        intermediate_size: 32,
        context_length: 16,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        rope_dim: 16,
        activation: Activation::Relu2,
    }
}

/// Every tensor of [`seed_config`] as (GGUF name, Hugging Face name, rows, cols, ternary),
/// vectors having one row.
fn seed_tensors() -> Vec<(String, String, usize, usize, bool)> {
    let c = seed_config();
    let d = c.dims();
    let mut t = vec![(
        ModelTensor::Embedding.gguf_name().to_string(),
        ModelTensor::Embedding.hf_name().to_string(),
        c.vocab_size,
        c.hidden_size,
        false,
    )];
    for n in Norm::ALL {
        t.push((n.gguf_weight(0), n.hf_weight(0), 1, n.len(&d), false));
    }
    for l in Linear::ALL {
        let (rows, cols) = l.shape(&d);
        t.push((
            format!("{}.weight", l.gguf_base(0)),
            format!("{}.weight", l.hf_base(0)),
            rows,
            cols,
            true,
        ));
    }
    t.push((
        ModelTensor::OutputNorm.gguf_name().to_string(),
        ModelTensor::OutputNorm.hf_name().to_string(),
        1,
        c.hidden_size,
        false,
    ));
    t
}

/// Deterministic values: ternary (x 0.5) for linears, around 1 for the rest.
fn seed_values(n: usize, ternary: bool) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let k = (i * 7 + 3) % 3;
            if ternary {
                (k as f32 - 1.0) * 0.5
            } else {
                1.0 + 0.01 * (k as f32 - 1.0)
            }
        })
        .collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A valid GGUF of [`seed_config`] (all tensors F32): the `gguf_model` seed.
pub fn seed_gguf() -> Vec<u8> {
    let c = seed_config();
    let mut meta = vec![(
        "general.architecture".to_string(),
        Value::String(c.architecture.clone()),
    )];
    meta.extend(c.to_gguf().expect("seed config is valid"));
    let data: Vec<(TensorSpec, Vec<u8>)> = seed_tensors()
        .into_iter()
        .map(|(name, _, rows, cols, ternary)| {
            let dims = if rows == 1 {
                vec![cols as u64]
            } else {
                vec![cols as u64, rows as u64]
            };
            let spec = TensorSpec {
                name,
                dims,
                ggml_type: GgmlType::F32,
            };
            (spec, f32_bytes(&seed_values(rows * cols, ternary)))
        })
        .collect();
    let refs: Vec<(TensorSpec, &[u8])> = data.iter().map(|(s, b)| (s.clone(), &b[..])).collect();
    bitnet_gguf::to_bytes(&meta, &refs).expect("seed GGUF encodes")
}

/// A valid `checkpoint_model` input of [`seed_config`]: its `config.json` and a
/// `model.safetensors` of F32 master weights (written by hand: an 8-byte header length, the
/// JSON header, the data).
pub fn seed_checkpoint() -> Vec<u8> {
    let c = seed_config();
    let config = format!(
        r#"{{"model_type":"bitnet","hidden_size":{},"intermediate_size":{},"num_hidden_layers":{},"num_attention_heads":{},"num_key_value_heads":{},"vocab_size":{},"max_position_embeddings":{},"rms_norm_eps":1e-5,"rope_theta":10000.0,"hidden_act":"relu2","tie_word_embeddings":true,"quantization_config":{{"quant_method":"bitnet","linear_class":"autobitlinear","quantization_mode":"online"}}}}"#,
        c.hidden_size,
        c.intermediate_size,
        c.n_layers,
        c.n_heads,
        c.n_kv_heads,
        c.vocab_size,
        c.context_length
    );
    let mut header = Vec::new();
    let mut body = Vec::new();
    for (_, name, rows, cols, ternary) in seed_tensors() {
        let bytes = f32_bytes(&seed_values(rows * cols, ternary));
        let shape = if rows == 1 {
            format!("[{cols}]")
        } else {
            format!("[{rows},{cols}]")
        };
        header.push(format!(
            r#""{name}":{{"dtype":"F32","shape":{shape},"data_offsets":[{},{}]}}"#,
            body.len(),
            body.len() + bytes.len()
        ));
        body.extend_from_slice(&bytes);
    }
    let header = format!("{{{}}}", header.join(","));
    let mut out = Vec::new();
    out.extend_from_slice(
        &u16::try_from(config.len())
            .expect("short config")
            .to_le_bytes(),
    );
    out.extend_from_slice(config.as_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&body);
    out
}
