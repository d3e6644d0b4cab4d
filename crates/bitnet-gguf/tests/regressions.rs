//! Inputs kept from fuzzing (`fuzz/`, target `read`): the seed files the fuzzer started from and
//! any input that once crashed or hung the reader. Each must parse or fail cleanly.

#[test]
fn kept_fuzz_inputs_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| {
            if let Ok(f) = bitnet_gguf::GgufFile::from_bytes(bytes) {
                for t in f.tensors() {
                    assert_eq!(f.tensor_data(t).len(), t.size_bytes);
                }
            }
        });
        assert!(result.is_ok(), "{} panicked", path.display());
        n += 1;
    }
    assert!(n >= 3, "expected the seed files in {}", dir.display());
}

#[test]
fn seed_files_are_valid_gguf() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    for name in ["seed1", "seed2", "seed3"] {
        let f = bitnet_gguf::GgufFile::from_bytes(std::fs::read(dir.join(name)).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!f.tensors().is_empty(), "{name}");
    }
}
