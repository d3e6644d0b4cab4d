//! Start-up tuning (`tuning` feature): measure every kernel implementation this CPU runs at
//! several thread counts on the loaded model's own layer shapes, keep the fastest, and cache
//! the choice per CPU and model so the next start skips the measurement.
//!
//! What is measured is one transformer layer's seven ternary matmuls (q, k, v, o, gate, up,
//! down) with the model's shapes, on random ternary weights and int8 activations (timing
//! does not depend on the values): once as a GEMV (one request decoding) and once as a GEMM
//! over `max_batch` rows (a full batched decode step). The score is the time per generated
//! token averaged over the two, so a configuration good at one and bad at the other loses.
//! Every kernel gives exactly the same numbers (the dot products are exact integers), so the
//! choice changes speed only, never output.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bitnet_engine::ModelConfig;
use bitnet_kernels::{Kernels, PackedTernary, TernaryOps, TernaryWeights};
use serde::{Deserialize, Serialize};

/// One configuration's measurement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Candidate {
    /// Kernel id.
    pub kernel: String,
    /// Threads.
    pub threads: usize,
    /// One layer's matmuls for one row, milliseconds.
    pub gemv_ms: f64,
    /// One layer's matmuls for `batch` rows, milliseconds.
    pub gemm_ms: f64,
    /// Score: mean of `gemv_ms` and `gemm_ms / batch` (lower is better).
    pub score_ms: f64,
}

/// The choice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TuneResult {
    /// Chosen kernel id.
    pub kernel: String,
    /// Chosen thread count.
    pub threads: usize,
    /// Rows of the GEMM measurement.
    pub batch: usize,
    /// Read from the cache rather than measured now.
    pub cached: bool,
    /// Cache key (CPU, model, shapes, batch).
    pub key: String,
    /// Every configuration measured, best first.
    pub candidates: Vec<Candidate>,
}

/// The default cache file.
pub fn default_cache_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("bitnet-rs").join("tuning.json"))
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Thread counts to try: powers of two below `max`, and `max`.
pub fn thread_candidates(max: usize) -> Vec<usize> {
    let max = max.max(1);
    let mut v: Vec<usize> = std::iter::successors(Some(1usize), |t| t.checked_mul(2))
        .take_while(|&t| t < max)
        .collect();
    v.push(max);
    v
}

/// The layer shapes `(rows, cols)` of the seven ternary matmuls.
fn layer_shapes(c: &ModelConfig) -> [(usize, usize); 7] {
    let (h, q, kv, f) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
    [(q, h), (kv, h), (kv, h), (h, q), (f, h), (f, h), (h, f)]
}

/// Deterministic pseudo-random ternary values (xorshift; the values do not affect timing).
fn random_ternary(rows: usize, cols: usize, seed: u64) -> TernaryWeights {
    let mut s = seed | 1;
    let values = (0..rows * cols)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 3) as i8 - 1
        })
        .collect();
    TernaryWeights {
        rows,
        cols,
        values,
        scale: 1.0,
    }
}

/// Mean time of `f` over at least 2 runs and at least 30 ms (after one warm-up run).
fn time(mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    let mut runs = 0u32;
    while runs < 2 || start.elapsed() < Duration::from_millis(30) {
        f();
        runs += 1;
    }
    start.elapsed() / runs
}

fn measure(
    ops: &'static dyn TernaryOps,
    threads: usize,
    packed: &[PackedTernary],
    batch: usize,
) -> Candidate {
    let kernels = Kernels::with_ops(ops, threads);
    let widest_in = packed.iter().map(PackedTernary::cols).max().unwrap_or(1);
    let widest_out = packed.iter().map(PackedTernary::rows).max().unwrap_or(1);
    let q: Vec<i8> = (0..batch * widest_in).map(|i| (i % 255) as i8).collect();
    let scales = vec![1.0f32; batch];
    let mut y = vec![0.0f32; batch * widest_out];
    let mut layer = |n: usize| {
        for w in packed {
            kernels.ternary_matmul(
                w,
                &q[..n * w.cols()],
                &scales[..n],
                n,
                &mut y[..n * w.rows()],
            );
        }
    };
    let gemv = time(|| layer(1)).as_secs_f64() * 1e3;
    let gemm = time(|| layer(batch)).as_secs_f64() * 1e3;
    Candidate {
        kernel: ops.id().to_string(),
        threads: kernels.threads(),
        gemv_ms: gemv,
        gemm_ms: gemm,
        score_ms: (gemv + gemm / batch as f64) / 2.0,
    }
}

/// Measures every (kernel, threads) configuration on `config`'s shapes (or reads the cached
/// choice for this CPU and model) and returns the fastest. `max_threads` 0 = all cores.
pub fn tune(
    config: &ModelConfig,
    model_identity: &str,
    max_threads: usize,
    max_batch: usize,
    cache: Option<&Path>,
) -> TuneResult {
    let max_threads = if max_threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        max_threads
    };
    let batch = max_batch.max(2);
    let key = format!(
        "cpu={} features={} cores={} model={} shapes={}x{}x{}x{}x{} threads<={} batch={}",
        cpu_name(),
        bitnet_kernels::cpu_features().join(","),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        model_identity,
        config.hidden_size,
        config.q_dim(),
        config.kv_dim(),
        config.intermediate_size,
        config.n_layers,
        max_threads,
        batch,
    );
    let cache_path = cache.map(Path::to_path_buf).or_else(default_cache_path);
    let mut table: std::collections::BTreeMap<String, TuneResult> = cache_path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    if let Some(hit) = table.get(&key)
        && bitnet_kernels::by_id(&hit.kernel).is_some()
    {
        return TuneResult {
            cached: true,
            ..hit.clone()
        };
    }

    let shapes = layer_shapes(config);
    let weights: Vec<TernaryWeights> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(r, c))| random_ternary(r, c, i as u64 + 1))
        .collect();
    let mut candidates = Vec::new();
    for ops in bitnet_kernels::available() {
        let packer = Kernels::with_ops(ops, 1);
        let packed: Vec<PackedTernary> = weights.iter().map(|w| packer.pack(w)).collect();
        for &t in &thread_candidates(max_threads) {
            candidates.push(measure(ops, t, &packed, batch));
        }
    }
    candidates.sort_by(|a, b| a.score_ms.total_cmp(&b.score_ms));
    let best = candidates[0].clone();
    let result = TuneResult {
        kernel: best.kernel,
        threads: best.threads,
        batch,
        cached: false,
        key: key.clone(),
        candidates,
    };
    if let Some(p) = &cache_path {
        table.insert(key, result.clone());
        if let Err(e) = write_cache(p, &table) {
            tracing::warn!(path = %p.display(), error = %e, "could not write the tuning cache");
        }
    }
    result
}

fn write_cache(
    path: &Path,
    table: &std::collections::BTreeMap<String, TuneResult>,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(table).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_candidates_are_powers_of_two_and_the_maximum() {
        assert_eq!(thread_candidates(1), vec![1]);
        assert_eq!(thread_candidates(2), vec![1, 2]);
        assert_eq!(thread_candidates(6), vec![1, 2, 4, 6]);
    }

    #[test]
    fn tunes_on_tiny_shapes_then_reads_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("t.json");
        let cfg = bitnet_engine::synthetic::preset("tiny").unwrap();
        let first = tune(&cfg, "tiny-test", 2, 4, Some(&cache));
        assert!(!first.cached);
        let n_kernels = bitnet_kernels::available().len();
        assert_eq!(
            first.candidates.len(),
            n_kernels * thread_candidates(2).len()
        );
        assert_eq!(first.candidates[0].kernel, first.kernel);
        assert!(
            first
                .candidates
                .windows(2)
                .all(|w| w[0].score_ms <= w[1].score_ms)
        );
        let second = tune(&cfg, "tiny-test", 2, 4, Some(&cache));
        assert!(second.cached);
        assert_eq!(
            (second.kernel, second.threads),
            (first.kernel, first.threads)
        );
        // Another model is another key.
        assert!(!tune(&cfg, "other", 2, 4, Some(&cache)).cached);
    }
}
