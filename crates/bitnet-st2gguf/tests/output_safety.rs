//! The output never harms the input or the disk (issue 14): an output path that is an input
//! file is refused even with `--force` (directly, through `..`, a symlink or a hard link); a
//! conversion ended by SIGINT or SIGTERM removes its temporary file; one killed with SIGKILL
//! leaves it, and the next run writing the same output names and removes it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use predicates::prelude::*;
use safetensors::tensor::Dtype;

#[test]
fn output_equal_to_an_input_file_is_refused_even_with_force() {
    let ckpt = variant_of("packed", |_| {}, |_| {});
    let dir = ckpt.path();
    let weights = dir.join("model.safetensors");
    let before = std::fs::read(&weights).unwrap();
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let link = dir.join("link.gguf");
    std::os::unix::fs::symlink(&weights, &link).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let hard = outside.path().join("hard.gguf");
    std::fs::hard_link(&weights, &hard).unwrap();
    for out in [
        weights.clone(),
        sub.join("../model.safetensors"),
        link,
        hard,
        dir.join("config.json"),
    ] {
        st2gguf()
            .arg("--input")
            .arg(dir)
            .arg("--output")
            .arg(&out)
            .arg("--force")
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains("is the input file")
                    .and(predicate::str::contains(out.to_str().unwrap())),
            );
    }
    assert_eq!(std::fs::read(&weights).unwrap(), before);
    // A new file inside the checkpoint directory is fine.
    convert(dir, &dir.join("model.gguf"), &[]);
}

/// The master fixture with a 64 Ki-row embedding (32 MiB of bf16): a conversion that takes
/// long enough, in a debug build, to be interrupted after its temporary file appears.
fn slow_checkpoint() -> tempfile::TempDir {
    const VOCAB: usize = 1 << 16;
    variant_of(
        "master",
        |t| {
            let emb = t
                .iter_mut()
                .find(|x| x.0 == "model.embed_tokens.weight")
                .unwrap();
            assert_eq!(emb.1, Dtype::BF16);
            let row = emb.3[..256 * 2].to_vec();
            emb.2 = vec![VOCAB, 256];
            emb.3 = row.repeat(VOCAB);
        },
        |c| c["vocab_size"] = VOCAB.into(),
    )
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect();
    v.sort();
    v
}

/// Starts a conversion of `input` to `output` and returns once its temporary file exists
/// (`None` if the conversion finished first).
fn start_and_wait_for_temp(input: &Path, output: &Path) -> Option<(Child, PathBuf)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitnet-st2gguf"))
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(["--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = output.parent().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(tmp) = temp_files(dir).pop() {
            return Some((child, tmp));
        }
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        assert!(Instant::now() < deadline, "no temporary file appeared");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn sigint_and_sigterm_remove_the_temporary_file() {
    let ckpt = slow_checkpoint();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("m.gguf");
    for sig in ["-INT", "-TERM"] {
        let Some((child, tmp)) = start_and_wait_for_temp(ckpt.path(), &out) else {
            panic!("the conversion finished before it could be interrupted");
        };
        signal(&child, sig);
        let done = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(130), "{sig}: {stderr}");
        assert!(stderr.contains("removed the temporary file"), "{stderr}");
        assert!(!tmp.exists(), "{sig} left {}", tmp.display());
        assert!(temp_files(out_dir.path()).is_empty());
        assert!(!out.exists());
    }
}

#[test]
fn a_temporary_file_left_by_sigkill_is_named_and_removed_by_the_next_run() {
    let ckpt = slow_checkpoint();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("m.gguf");
    let Some((mut child, tmp)) = start_and_wait_for_temp(ckpt.path(), &out) else {
        panic!("the conversion finished before it could be killed");
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(tmp.exists(), "SIGKILL cannot clean up: {}", tmp.display());
    // Another writer's live temporary file (this test process) is left alone.
    let live = out_dir
        .path()
        .join(format!(".m.gguf.{}.tmp", std::process::id()));
    std::fs::write(&live, b"in use").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_bitnet-st2gguf"))
        .arg("--input")
        .arg(ckpt.path())
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("removed") && stderr.contains(tmp.to_str().unwrap()),
        "{stderr}"
    );
    assert!(!tmp.exists());
    assert!(live.exists());
    assert_eq!(&std::fs::read(&out).unwrap()[..4], b"GGUF");
}
