//! A model file whose chat template never ends or doubles its output (issue 14): `bitnet-cli
//! chat` stops it with the same limits as the server (bitnet-tokenizer's `ChatLimits`) and
//! says which limit tripped, instead of hanging or exhausting memory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitnet_e2e::{binary, tiny_gguf};

/// The tiny fixture with `tokenizer.chat_template` set to `template`.
fn with_template(dir: &Path, template: &str) -> PathBuf {
    use bitnet_gguf::{GgufFile, TensorSpec, Value};
    let f = GgufFile::open(tiny_gguf()).unwrap();
    let mut meta: Vec<(String, Value)> = f
        .metadata()
        .iter()
        .filter(|(k, _)| k != "tokenizer.chat_template")
        .cloned()
        .collect();
    meta.push((
        "tokenizer.chat_template".into(),
        Value::String(template.into()),
    ));
    let tensors: Vec<(TensorSpec, &[u8])> = f
        .tensors()
        .iter()
        .map(|t| {
            let spec = TensorSpec {
                name: t.name.clone(),
                dims: t.dims.clone(),
                ggml_type: t.ggml_type,
            };
            (spec, f.tensor_data(t))
        })
        .collect();
    let path = dir.join("hostile.gguf");
    std::fs::write(&path, bitnet_gguf::to_bytes(&meta, &tensors).unwrap()).unwrap();
    path
}

#[test]
fn cli_chat_stops_runaway_templates() {
    let cases = [
        (
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            "fuel limit",
        ),
        (
            "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(64) %}\
             {{ ns.s }}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "output limit",
        ),
    ];
    for (template, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let model = with_template(dir.path(), template);
        let start = Instant::now();
        let mut child = Command::new(binary("bitnet-cli"))
            .args([
                "chat",
                "--model",
                model.to_str().unwrap(),
                "--threads",
                "1",
                "-q",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"hi\n").unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(want), "{want}: {err}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }
}
