//! Bad models and bad inputs give errors that name the problem, never a panic.

mod common;

use std::path::{Path, PathBuf};

use bitnet_engine::{EngineError, LoadOptions, Model, SessionOptions};
use bitnet_gguf::{GgufFile, GgufWriter, TensorSpec, Value};

/// Copies the bitnet.cpp fixture, letting `edit` change metadata and drop tensors.
fn rewrite(
    dir: &Path,
    edit_meta: impl Fn(&mut Vec<(String, Value)>),
    keep: impl Fn(&str) -> bool,
) -> PathBuf {
    rewrite_data(dir, edit_meta, keep, |_, _| {})
}

/// [`rewrite`] that also lets `edit_data` change a tensor's bytes (name, type, bytes).
fn rewrite_data(
    dir: &Path,
    edit_meta: impl Fn(&mut Vec<(String, Value)>),
    keep: impl Fn(&str) -> bool,
    edit_data: impl Fn(&str, &mut Vec<u8>),
) -> PathBuf {
    let src = GgufFile::open(common::fixture("i2s/model-i2_s.gguf")).unwrap();
    let mut meta = src.metadata().to_vec();
    edit_meta(&mut meta);
    let tensors: Vec<_> = src.tensors().iter().filter(|t| keep(&t.name)).collect();
    let specs = tensors
        .iter()
        .map(|t| TensorSpec {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ggml_type: t.ggml_type,
        })
        .collect();
    let path = dir.join("model.gguf");
    let mut w = GgufWriter::create(&path, true, meta, specs).unwrap();
    for t in tensors {
        let mut data = src.tensor_data(t).to_vec();
        edit_data(&t.name, &mut data);
        w.write_tensor(&t.name, &data).unwrap();
    }
    w.finish().unwrap()
}

fn set(meta: &mut [(String, Value)], key: &str, value: Value) {
    meta.iter_mut().find(|(k, _)| k == key).unwrap().1 = value;
}

fn load_err(path: &Path) -> EngineError {
    match Model::load(path, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = rewrite(dir.path(), |_| {}, |n| n != "blk.2.ffn_up.weight");
    let msg = load_err(&path).to_string();
    assert!(
        msg.contains("missing tensor 'blk.2.ffn_up.weight'"),
        "{msg}"
    );
}

#[test]
fn shape_mismatch_names_tensor_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = rewrite(
        dir.path(),
        |m| set(m, "bitnet-b1.58.feed_forward_length", Value::U32(768)),
        |_| true,
    );
    let msg = load_err(&path).to_string();
    assert!(msg.contains("blk.0.ffn_gate.weight"), "{msg}");
    assert!(
        msg.contains("[256, 512]") && msg.contains("[256, 768]"),
        "{msg}"
    );
}

#[test]
fn unsupported_architecture_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = rewrite(
        dir.path(),
        |m| set(m, "general.architecture", Value::String("llama".into())),
        |_| true,
    );
    let msg = load_err(&path).to_string();
    assert!(msg.contains("unsupported architecture 'llama'"), "{msg}");
}

#[test]
fn missing_path_and_non_model_file_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gguf");
    assert!(load_err(&missing).to_string().contains("nope.gguf"));
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello, not a model").unwrap();
    let msg = load_err(&text).to_string();
    assert!(msg.contains("notes.txt"), "{msg}");
}

#[test]
fn bad_inputs_at_run_time() {
    let model = Model::load(
        &common::fixture("i2s/model-i2_s.gguf"),
        &LoadOptions {
            threads: 1,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let mut s = model.session(&SessionOptions {
        context: Some(8),
        ..SessionOptions::default()
    });
    let long: Vec<u32> = (1..=9).collect();
    let msg = model.forward(&mut s, &long).unwrap_err().to_string();
    assert!(
        msg.contains("9 tokens do not fit in the context of 8"),
        "{msg}"
    );
    let msg = model.forward(&mut s, &[1, 512]).unwrap_err().to_string();
    assert!(
        msg.contains("token id 512 is outside the vocabulary (size 512)"),
        "{msg}"
    );
    assert!(matches!(
        model.forward(&mut s, &[]),
        Err(EngineError::EmptyInput)
    ));
    // The session is still usable after the errors.
    assert_eq!(s.position(), 0);
    assert_eq!(model.forward(&mut s, &[1, 2, 3]).unwrap().len(), 512);
}

/// Writes a non-finite value over element 5 of a float tensor of `ty`.
fn poison(ty: bitnet_gguf::GgmlType, data: &mut [u8], value: f32) {
    match ty {
        bitnet_gguf::GgmlType::F32 => data[20..24].copy_from_slice(&value.to_le_bytes()),
        bitnet_gguf::GgmlType::F16 => {
            data[10..12].copy_from_slice(&half::f16::from_f32(value).to_le_bytes())
        }
        other => panic!("fixture tensor of type {other:?}"),
    }
}

#[test]
fn non_finite_embedding_and_norms_are_refused_naming_the_tensor() {
    let src = GgufFile::open(common::fixture("i2s/model-i2_s.gguf")).unwrap();
    for (name, value) in [
        ("token_embd.weight", f32::NAN),
        ("token_embd.weight", f32::INFINITY),
        ("output_norm.weight", f32::NAN),
        ("blk.1.attn_norm.weight", f32::NEG_INFINITY),
    ] {
        let ty = src.tensor(name).unwrap().ggml_type;
        let dir = tempfile::tempdir().unwrap();
        let path = rewrite_data(
            dir.path(),
            |_| {},
            |_| true,
            |n, data| {
                if n == name {
                    poison(ty, data, value);
                }
            },
        );
        let msg = load_err(&path).to_string();
        assert!(
            msg.contains(&format!("tensor '{name}'")) && msg.contains("element 5"),
            "{name} = {value}: {msg}"
        );
    }
}

#[test]
fn a_block_count_the_file_cannot_hold_is_refused_before_sizing_anything() {
    let dir = tempfile::tempdir().unwrap();
    // Within the schema's cap, far more blocks than the file has tensors for.
    let path = rewrite(
        dir.path(),
        |m| set(m, "bitnet-b1.58.block_count", Value::U32(4000)),
        |_| true,
    );
    let msg = load_err(&path).to_string();
    assert!(
        msg.contains("block count 4000 needs at least 44000 tensors"),
        "{msg}"
    );
    for huge in [1u64 << 24, 1 << 40, 1 << 62] {
        let path = rewrite(
            dir.path(),
            |m| set(m, "bitnet-b1.58.block_count", Value::U64(huge)),
            |_| true,
        );
        let msg = load_err(&path).to_string();
        assert!(
            msg.contains("'bitnet-b1.58.block_count'") && msg.contains("implausibly large"),
            "{huge}: {msg}"
        );
    }
}

#[test]
fn a_huge_context_length_costs_nothing_until_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = rewrite(
        dir.path(),
        |m| set(m, "bitnet-b1.58.context_length", Value::U32(1 << 24)),
        |_| true,
    );
    let start = std::time::Instant::now();
    let model = Model::load(&path, &LoadOptions::default()).unwrap();
    assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    assert_eq!(model.config().context_length, 1 << 24);
    let session = model.new_session();
    assert_eq!(session.capacity(), bitnet_engine::DEFAULT_CONTEXT);
    let explicit = model.session(&SessionOptions {
        context: Some(10_000),
        ..SessionOptions::default()
    });
    assert_eq!(explicit.capacity(), 10_000);
    // Positions past the precomputed RoPE table decode like any other.
    let mut s = model.session(&SessionOptions {
        context: Some(9000),
        ..SessionOptions::default()
    });
    let logits = model.forward_all(&mut s, &[1, 2, 3]).unwrap();
    assert!(logits.iter().all(|x| x.is_finite()));
}

#[test]
fn absurd_thread_counts_are_refused() {
    let opts = LoadOptions {
        threads: 100_000,
        ..LoadOptions::default()
    };
    let msg = match Model::load(&common::fixture("i2s/model-i2_s.gguf"), &opts) {
        Ok(_) => panic!("loaded with 100000 threads"),
        Err(e) => e.to_string(),
    };
    assert!(msg.contains("threads = 100000"), "{msg}");
}

#[test]
fn a_model_opened_in_memory_survives_its_file_being_truncated_and_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("served.gguf");
    std::fs::copy(common::fixture("i2s/model-i2_s.gguf"), &path).unwrap();
    let model_ref = bitnet_engine::ModelRef::Path(path.clone());
    let model = Model::open_in_memory(&model_ref, &LoadOptions::default()).unwrap();
    // A rescored head's F16 rows are the tied embedding itself.
    let rescored = LoadOptions {
        head_type: bitnet_engine::HeadType::Q4KRescored,
        ..LoadOptions::default()
    };
    let q4 = Model::open_in_memory(&model_ref, &rescored).unwrap();
    let exact = q4.weights().rescore.as_ref().expect("rescoring rows");
    assert!(std::sync::Arc::ptr_eq(exact, &q4.weights().embedding));
    let logits = |m: &Model| {
        let mut s = m.new_session();
        m.forward_all(&mut s, &[1, 10, 20, 30]).unwrap()
    };
    let before = logits(&model);
    // Truncate in place, then overwrite in place (as `cp other.gguf served.gguf` does): a
    // mapping of the file would raise SIGBUS or see new weights on the next token.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100)
        .unwrap();
    assert_eq!(logits(&model), before);
    std::fs::write(&path, vec![0x55u8; 1 << 20]).unwrap();
    assert_eq!(logits(&model), before);
    // A truncated file is an error when loading, not a crash.
    std::fs::write(&path, b"GGUF\x03\x00\x00\x00").unwrap();
    assert!(Model::open_in_memory(&model_ref, &LoadOptions::default()).is_err());
}
