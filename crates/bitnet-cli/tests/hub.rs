//! `pull` and `-m hf:ORG/REPO` against the stand-in Hub on 127.0.0.1 (HF_ENDPOINT), with a
//! private Hugging Face cache (HF_HOME) per test.

use std::path::Path;

use assert_cmd::Command;
use bitnet_test_support::hub::{FakeFile, FakeHub, FakeRepo};

use crate::util::{assert_error, cli, packed, stdout_of};

fn hub() -> FakeHub {
    let read = |p: &Path| std::fs::read(p).unwrap();
    FakeHub::start(vec![
        FakeRepo::new(
            "org/docs-5m-gguf",
            vec![FakeFile::lfs(
                "bitnet-rust-docs-5m-i2_s.gguf",
                bitnet_default_model::gguf_bytes().to_vec(),
            )],
        ),
        FakeRepo::new(
            "org/tiny-safetensors",
            vec![
                FakeFile::git("config.json", read(&packed().join("config.json"))),
                FakeFile::lfs(
                    "model.safetensors",
                    read(&packed().join("model.safetensors")),
                ),
            ],
        ),
    ])
}

/// The binary with the Hub at `hub` and the cache in `home` (nothing from the caller's
/// environment).
fn with_hub(hub: &FakeHub, home: &Path, args: &[&str]) -> Command {
    let mut cmd = cli(args);
    cmd.env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HOME", home)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HF_TOKEN_PATH")
        .env_remove("HF_HUB_OFFLINE");
    cmd
}

const RUN: &[&str] = &["-p", "Ownership in Rust", "-n", "16", "--greedy", "-t", "1"];

#[test]
fn pull_then_run_gives_the_embedded_models_text() {
    let hub = hub();
    let home = tempfile::tempdir().unwrap();
    let out = with_hub(&hub, home.path(), &["pull", "org/docs-5m-gguf"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8(out.stdout).unwrap();
    let path = Path::new(path.trim());
    assert!(path.starts_with(home.path().join("hub/models--org--docs-5m-gguf/snapshots")));
    assert_eq!(
        std::fs::read(path).unwrap(),
        bitnet_default_model::gguf_bytes()
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("downloaded bitnet-rust-docs-5m-i2_s.gguf")
    );

    let mut args = vec!["run", "-m", "hf:org/docs-5m-gguf"];
    args.extend(RUN);
    let pulled = stdout_of(&mut with_hub(&hub, home.path(), &args));
    let mut args = vec!["run"];
    args.extend(RUN);
    let embedded = stdout_of(&mut cli(&args));
    assert!(!embedded.trim().is_empty());
    assert_eq!(pulled, embedded);

    // A second pull downloads nothing.
    hub.clear_requests();
    let out = with_hub(&hub, home.path(), &["pull", "hf:org/docs-5m-gguf"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("up to date"));
    assert!(hub.requests().iter().all(|q| q.path.starts_with("/api/")));

    // Offline (flag or environment): the cached file, without a request.
    hub.clear_requests();
    let mut args = vec!["--offline", "run", "-m", "hf:org/docs-5m-gguf"];
    args.extend(RUN);
    assert_eq!(stdout_of(&mut with_hub(&hub, home.path(), &args)), embedded);
    let mut args = vec!["inspect", "hf:org/docs-5m-gguf"];
    args.push("--json");
    let mut cmd = with_hub(&hub, home.path(), &args);
    cmd.env("HF_HUB_OFFLINE", "1");
    assert!(stdout_of(&mut cmd).contains("general.architecture"));
    assert!(hub.requests().is_empty());
}

#[test]
fn offline_without_cache_and_missing_repo_name_the_repo() {
    let hub = hub();
    let home = tempfile::tempdir().unwrap();
    assert_error(
        &mut with_hub(
            &hub,
            home.path(),
            &["--offline", "run", "-m", "hf:org/docs-5m-gguf", "-p", "x"],
        ),
        1,
        "hf:org/docs-5m-gguf is not in the Hugging Face cache",
    );
    assert_error(
        &mut with_hub(&hub, home.path(), &["pull", "org/no-such-model"]),
        1,
        "repository 'org/no-such-model' not found",
    );
    assert_error(
        &mut with_hub(&hub, home.path(), &["pull", "no-slash"]),
        1,
        "'no-slash' is not a Hugging Face model",
    );
}

#[test]
fn safetensors_repo_is_converted_on_pull_and_runs() {
    let hub = hub();
    let home = tempfile::tempdir().unwrap();
    let out = with_hub(&hub, home.path(), &["pull", "org/tiny-safetensors"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("converted org/tiny-safetensors"),
        "{stderr}"
    );
    let path = String::from_utf8(out.stdout).unwrap();
    assert!(
        path.trim().ends_with("tiny-safetensors-i2_s.gguf"),
        "{path}"
    );
    let run = [
        "--tokens", "1,2,3", "-n", "8", "--greedy", "--ids", "-t", "1",
    ];
    let mut args = vec!["run", "-m", "hf:org/tiny-safetensors"];
    args.extend(run);
    let pulled = stdout_of(&mut with_hub(&hub, home.path(), &args));
    assert_eq!(
        pulled
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .count(),
        8,
        "{pulled}"
    );
    // The converted GGUF generates what the checkpoint directory itself generates.
    let dir = packed();
    let mut args = vec!["run", "-m", dir.to_str().unwrap()];
    args.extend(run);
    assert_eq!(pulled, stdout_of(&mut cli(&args)));
}
