//! One cache for both tools: Python's `huggingface_hub` (the reference client) and
//! `bitnet-hub`, against the stand-in Hub. A file Python downloaded is found by bitnet-hub
//! offline at the same snapshot path; a file bitnet-hub downloaded is found by Python with
//! `local_files_only=True`; Python's `scan_cache_dir` reads the result without a warning.
//!
//! Needs a Python with `huggingface_hub`, named by `HUB_PYTHON`:
//! `scripts/interop/hf_cache_interop.sh` (run by `scripts/ci-local.sh interop`) installs it in
//! the interop venv and runs this test. Without `HUB_PYTHON` the test says so and returns.

use std::path::Path;
use std::process::Command;

use bitnet_hub::{Hub, HubRef, Settings};
use bitnet_test_support::hub::{FakeFile, FakeHub, FakeRepo};

fn python(py: &str, hub: &FakeHub, cache: &Path, code: &str) -> String {
    let out = Command::new(py)
        .arg("-c")
        .arg(code)
        .env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HUB_CACHE", cache)
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .expect("HUB_PYTHON runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn python_huggingface_hub_and_bitnet_hub_share_the_cache() {
    let Ok(py) = std::env::var("HUB_PYTHON") else {
        eprintln!(
            "HUB_PYTHON not set: not checked here (scripts/interop/hf_cache_interop.sh runs it)"
        );
        return;
    };
    let gguf = bitnet_default_model::gguf_bytes().to_vec();
    let hub = FakeHub::start(vec![
        FakeRepo::new(
            "org/python-first",
            vec![FakeFile::lfs("model-i2_s.gguf", gguf.clone())],
        ),
        FakeRepo::new(
            "org/rust-first",
            vec![
                FakeFile::git("README.md", b"# model\n".to_vec()),
                FakeFile::lfs("model-i2_s.gguf", gguf.clone()),
            ],
        ),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let settings = Settings {
        endpoint: hub.endpoint(),
        cache_dir: cache.path().to_path_buf(),
        token: None,
        offline: false,
    };

    let by_python = python(
        &py,
        &hub,
        cache.path(),
        "from huggingface_hub import hf_hub_download as d; print(d('org/python-first', 'model-i2_s.gguf'))",
    );
    let found = Hub::new(settings.clone())
        .with_offline(true)
        .fetch(&HubRef::parse("org/python-first").unwrap())
        .unwrap();
    assert_eq!(found.path, Path::new(&by_python));
    assert_eq!(std::fs::read(&found.path).unwrap(), gguf);

    let by_rust = Hub::new(settings)
        .fetch(&HubRef::parse("org/rust-first").unwrap())
        .unwrap();
    let found = python(
        &py,
        &hub,
        cache.path(),
        "from huggingface_hub import hf_hub_download as d; print(d('org/rust-first', 'model-i2_s.gguf', local_files_only=True))",
    );
    assert_eq!(by_rust.path, Path::new(&found));

    let scan = python(
        &py,
        &hub,
        cache.path(),
        "from huggingface_hub import scan_cache_dir as s; r = s(); print(sorted(x.repo_id for x in r.repos), len(r.warnings))",
    );
    assert_eq!(scan, "['org/python-first', 'org/rust-first'] 0");
}
