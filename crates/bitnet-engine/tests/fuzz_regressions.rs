//! Inputs kept from fuzzing the loaders (the repository's `fuzz/`, targets `gguf_model` and
//! `checkpoint_model`, in `tests/fuzz_regressions/`): the seeds the fuzzer starts from and any input that once crashed,
//! aborted or hung a loader, replayed through the same harness the fuzz targets run.

mod fuzz_harness;

use fuzz_harness as harness;

use std::path::{Path, PathBuf};

fn kept(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8]) -> bool) {
    let files = kept(target);
    assert!(!files.is_empty(), "no kept inputs for {target}");
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let loaded = std::panic::catch_unwind(|| run(&bytes))
            .unwrap_or_else(|_| panic!("{} panicked", path.display()));
        let name = path.file_name().unwrap().to_string_lossy();
        if name.starts_with("seed") {
            assert!(loaded, "seed {} does not load", path.display());
        }
    }
}

#[test]
fn kept_gguf_model_inputs_never_panic() {
    replay("gguf_model", harness::gguf_model);
}

#[test]
fn kept_checkpoint_model_inputs_never_panic() {
    replay("checkpoint_model", harness::checkpoint_model);
}

#[test]
fn the_kept_seeds_are_what_the_harness_builds() {
    let read = |target: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fuzz_regressions")
                .join(target)
                .join("seed"),
        )
        .unwrap()
    };
    assert_eq!(read("gguf_model"), harness::seed_gguf());
    assert_eq!(read("checkpoint_model"), harness::seed_checkpoint());
    assert!(harness::gguf_model(&harness::seed_gguf()));
    assert!(harness::checkpoint_model(&harness::seed_checkpoint()));
}

/// Writes the seeds (run with `--ignored` after changing the harness's seed model).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    for (target, bytes) in [
        ("gguf_model", harness::seed_gguf()),
        ("checkpoint_model", harness::seed_checkpoint()),
    ] {
        std::fs::create_dir_all(root.join(target)).unwrap();
        std::fs::write(root.join(target).join("seed"), bytes).unwrap();
    }
}
