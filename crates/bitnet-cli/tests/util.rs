//! Shared helpers: fixture paths, a command for the binary, a .npy reader, error assertions.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The repository's fixtures directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The bitnet.cpp I2_S GGUF of the tiny model (has a placeholder tokenizer).
pub fn i2s() -> PathBuf {
    fixtures().join("tiny-bitnet/i2s/model-i2_s.gguf")
}

/// The Hugging Face packed checkpoint of the tiny model (no tokenizer).
pub fn packed() -> PathBuf {
    fixtures().join("tiny-bitnet/packed")
}

/// A command running the binary with `args`.
pub fn cli<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitnet-cli"));
    cmd.args(args);
    cmd
}

/// Runs the command and returns stdout, asserting success.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Asserts the command fails with exit `code`, one `bitnet-cli: error:` line (for code 1)
/// containing `message`, and no panic.
pub fn assert_error(cmd: &mut Command, code: i32, message: &str) {
    let out = cmd.output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(
        !stderr.contains("RUST_BACKTRACE"),
        "backtrace hint: {stderr}"
    );
    assert!(
        stderr.contains(message),
        "expected {message:?} in {stderr:?}"
    );
    if code == 1 {
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected: {stderr:?}");
        assert!(lines[0].starts_with("bitnet-cli: error: "), "{stderr:?}");
    }
}

pub use bitnet_test_support::npy::read_f32 as read_npy;

/// Greedy reference tokens of prompt `i` (transformers) from `packed/ref/greedy.json`.
pub fn reference_greedy(i: usize) -> (Vec<u32>, Vec<u32>) {
    let text = std::fs::read_to_string(packed().join("ref/greedy.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let p = &v["prompts"][i];
    let ids = |a: &serde_json::Value| -> Vec<u32> {
        a.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    (ids(&p["prompt"]), ids(&p["greedy"]))
}

/// `1,10,20` from ids.
pub fn id_list(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}
