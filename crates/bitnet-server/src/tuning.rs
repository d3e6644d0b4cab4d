//! Start-up tuning (`tuning` feature): the server's side of it. The measuring and the cache
//! live in the kernels crate (`bitnet_engine::backend::tuning`), which knows no model; the
//! server passes the loaded model's matmul shapes and its reference as the cache label,
//! and turns a cache it cannot write or shapes it cannot tune into a log line rather than a
//! failed start (the default kernel is a fine choice, only possibly slower).

use std::path::Path;

use bitnet_engine::ModelConfig;
use bitnet_engine::backend::tuning::{self, TuneResult, TuneSpec};

/// The fastest (kernel, threads) for `config`'s layer on this CPU, read from `cache` (default:
/// [`tuning::default_cache_path`]) when it holds a choice for this CPU and `label`, else
/// measured and cached. `max_threads` 0 = all cores; the GEMM is measured over `max_batch`
/// rows (the largest decode batch). `None` (logged) when the shapes cannot be tuned.
pub fn tune(
    config: &ModelConfig,
    label: &str,
    max_threads: usize,
    max_batch: usize,
    cache: Option<&Path>,
) -> Option<TuneResult> {
    // One layer's seven ternary matmuls in forward order (the schema's layer table): what
    // every decode step runs `n_layers` times, so repeated shapes weigh as they do in decode.
    let shapes = config.layer_linear_shapes();
    let spec = TuneSpec {
        shapes: &shapes,
        label,
        max_threads,
        batch: max_batch,
    };
    let cache_path = cache
        .map(Path::to_path_buf)
        .or_else(tuning::default_cache_path);
    match tuning::tune(&spec, cache_path.as_deref()) {
        Ok(tuned) => {
            if let Some(e) = &tuned.cache_error {
                tracing::warn!(
                    path = %e.path.display(),
                    error = %e.source,
                    "could not write the tuning cache"
                );
            }
            Some(tuned.result)
        }
        Err(e) => {
            tracing::warn!(error = %e, "tuning skipped; using the default kernel");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunes_on_tiny_shapes_then_reads_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("t.json");
        let cfg = bitnet_engine::synthetic::preset("tiny").unwrap();
        let first = tune(&cfg, "tiny-test", 2, 4, Some(&cache)).unwrap();
        assert!(!first.cached);
        assert_eq!(
            first.candidates.len(),
            bitnet_engine::backend::available().len() * tuning::thread_candidates(2).len()
        );
        assert_eq!(first.candidates[0].kernel, first.kernel);
        let second = tune(&cfg, "tiny-test", 2, 4, Some(&cache)).unwrap();
        assert!(second.cached);
        assert_eq!(
            (second.kernel, second.threads),
            (first.kernel, first.threads)
        );
        // Another model is another key.
        assert!(!tune(&cfg, "other", 2, 4, Some(&cache)).unwrap().cached);
    }
}
