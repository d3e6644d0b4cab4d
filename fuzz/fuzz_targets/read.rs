//! Feeds arbitrary bytes to the GGUF reader: it must return Ok or Err, never panic, hang or
//! allocate beyond the input's size. Every accepted file's metadata and tensor data are read.
//!
//! Run: `cargo +nightly fuzz run read fuzz/corpus/read crates/bitnet-gguf/tests/regressions --
//! -max_total_time=600 -rss_limit_mb=2048` (from the repository root). Crash inputs found are
//! kept as regression tests in crates/bitnet-gguf/tests/regressions/.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = bitnet_gguf::GgufFile::from_bytes(data.to_vec()) {
        let mut sum = 0u64;
        for (k, v) in f.metadata() {
            sum = sum.wrapping_add(k.len() as u64);
            if let Some(a) = v.as_array() {
                sum = sum.wrapping_add(a.len() as u64);
                let _ = a.iter_u64();
                let _ = a.iter_f32();
            }
            let _ = (v.as_u64(), v.as_f64(), v.as_str());
        }
        for t in f.tensors() {
            let d = f.tensor_data(t);
            assert_eq!(d.len(), t.size_bytes);
            sum = sum.wrapping_add(d.iter().map(|&b| u64::from(b)).sum::<u64>());
            assert!(t.n_elements() <= i64::MAX as usize);
        }
        let _ = f.architecture();
        std::hint::black_box(sum);
    }
});
