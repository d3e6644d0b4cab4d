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
        w.write_tensor(&t.name, src.tensor_data(t)).unwrap();
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
