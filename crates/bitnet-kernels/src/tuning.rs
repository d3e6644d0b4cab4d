//! Start-up tuning: which kernel implementation and thread count is fastest on this CPU for a
//! given list of ternary matmul shapes, with the choice cached per CPU.
//!
//! Design decisions:
//! - **Shapes come from the caller.** This crate knows no model: a front end passes the
//!   `(rows, cols)` of the matmuls one forward step runs (a transformer layer's q, k, v, o,
//!   gate, up, down, say) and a `label` naming what they belong to (it becomes part of the
//!   cache key, so two models with equal shapes but different labels are tuned separately).
//! - **What is measured** is one pass over every shape on random ternary weights and int8
//!   activations (timing does not depend on the values): once as a GEMV (one sequence
//!   decoding) and once as a GEMM over `batch` rows (a batched decode step). The score is the
//!   time per generated token averaged over the two, so a configuration that is good at one
//!   and bad at the other loses. Every implementation returns exactly the same numbers (the
//!   dot products are exact integers), so the choice changes speed only, never output.
//! - **The cache** is one JSON file mapping a key (CPU model name, the CPU features the
//!   kernels use, core count, label, shapes, thread limit, batch) to the result. A cached
//!   choice is used only if its kernel still exists on this CPU. An unreadable cache counts as
//!   empty; a cache that cannot be written is reported to the caller (the result is still
//!   good), never a failure of tuning itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{Backend, Kernels, PackedTernary, TernaryWeights};

/// One configuration's measurement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Candidate {
    /// Kernel implementation id (e.g. `i2s/avx2`).
    pub kernel: String,
    /// Threads per call.
    pub threads: usize,
    /// One pass over the shapes for one row, milliseconds.
    pub gemv_ms: f64,
    /// One pass over the shapes for `batch` rows, milliseconds.
    pub gemm_ms: f64,
    /// Score: mean of `gemv_ms` and `gemm_ms / batch` (lower is better).
    pub score_ms: f64,
}

/// The outcome of tuning: the choice, and every measurement it was made from (so a receipt or
/// a log can show why).
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
    /// Cache key (CPU, features, cores, label, shapes, thread limit, batch).
    pub key: String,
    /// Every configuration measured, best first.
    pub candidates: Vec<Candidate>,
}

/// What to tune for.
#[derive(Debug, Clone, Copy)]
pub struct TuneSpec<'a> {
    /// `(rows, cols)` of the ternary matmuls of one step (each measured once per pass).
    pub shapes: &'a [(usize, usize)],
    /// What the shapes belong to (a model path or name); part of the cache key.
    pub label: &'a str,
    /// Most threads to try (0 = all cores).
    pub max_threads: usize,
    /// Rows of the GEMM measurement (raised to at least 2 so it is a GEMM).
    pub batch: usize,
}

/// Why tuning could not start: the shapes are unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TuneError {
    /// No shapes were given.
    #[error("tuning needs at least one (rows, cols) shape")]
    NoShapes,
    /// A shape has a zero dimension or more elements than memory can hold.
    #[error("tuning shape {rows}x{cols} is unusable: {reason}")]
    BadShape {
        /// Rows given.
        rows: usize,
        /// Columns given.
        cols: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The tuning cache could not be written (the result is still valid).
#[derive(Debug, thiserror::Error)]
#[error("writing the tuning cache {}", path.display())]
pub struct CacheWriteError {
    /// The cache file.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

/// A tuning result, and whether it could be saved.
#[derive(Debug)]
pub struct Tuned {
    /// The choice.
    pub result: TuneResult,
    /// Set when the cache file could not be written.
    pub cache_error: Option<CacheWriteError>,
}

/// The default cache file: `$XDG_CACHE_HOME/bitnet-rs/tuning.json`, else
/// `~/.cache/bitnet-rs/tuning.json`; `None` when neither variable is set.
pub fn default_cache_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("bitnet-rs").join("tuning.json"))
}

/// The CPU's model name (Linux `/proc/cpuinfo`), else the architecture name.
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

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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

impl TuneSpec<'_> {
    /// The thread limit with 0 resolved to the core count.
    fn threads_limit(&self) -> usize {
        if self.max_threads == 0 {
            cores()
        } else {
            self.max_threads
        }
    }

    /// The GEMM rows actually measured.
    fn gemm_rows(&self) -> usize {
        self.batch.max(2)
    }

    /// The cache key of this spec on this CPU.
    pub fn key(&self) -> String {
        let shapes: Vec<String> = self
            .shapes
            .iter()
            .map(|(r, c)| format!("{r}x{c}"))
            .collect();
        format!(
            "cpu={} features={} cores={} label={} shapes={} threads<={} batch={}",
            cpu_name(),
            crate::cpu_features().join(","),
            cores(),
            self.label,
            shapes.join(","),
            self.threads_limit(),
            self.gemm_rows(),
        )
    }

    fn check(&self) -> Result<(), TuneError> {
        if self.shapes.is_empty() {
            return Err(TuneError::NoShapes);
        }
        for &(rows, cols) in self.shapes {
            let bad = |reason| TuneError::BadShape { rows, cols, reason };
            if rows == 0 || cols == 0 {
                return Err(bad("a dimension is zero"));
            }
            rows.checked_mul(cols)
                .and_then(|n| n.checked_mul(self.gemm_rows()))
                .ok_or_else(|| bad("too many elements"))?;
        }
        Ok(())
    }
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
    ops: &'static dyn Backend,
    threads: usize,
    packed: &[PackedTernary],
    batch: usize,
) -> Candidate {
    let kernels = Kernels::with_backend(ops, threads);
    let widest_in = packed.iter().map(PackedTernary::cols).max().unwrap_or(1);
    let widest_out = packed.iter().map(PackedTernary::rows).max().unwrap_or(1);
    let q: Vec<i8> = (0..batch * widest_in).map(|i| (i % 255) as i8).collect();
    let scales = vec![1.0f32; batch];
    let mut y = vec![0.0f32; batch * widest_out];
    let mut pass = |n: usize| {
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
    let gemv = time(|| pass(1)).as_secs_f64() * 1e3;
    let gemm = time(|| pass(batch)).as_secs_f64() * 1e3;
    Candidate {
        kernel: ops.id().to_string(),
        threads: kernels.threads(),
        gemv_ms: gemv,
        gemm_ms: gemm,
        score_ms: (gemv + gemm / batch as f64) / 2.0,
    }
}

/// Measures every (kernel implementation this CPU runs, thread count) configuration on
/// `spec`'s shapes, without looking at any cache; the result lists them best first.
pub fn measure_all(spec: &TuneSpec<'_>) -> Result<TuneResult, TuneError> {
    spec.check()?;
    let batch = spec.gemm_rows();
    let weights: Vec<TernaryWeights> = spec
        .shapes
        .iter()
        .enumerate()
        .map(|(i, &(r, c))| random_ternary(r, c, i as u64 + 1))
        .collect();
    let mut candidates = Vec::new();
    for ops in crate::available() {
        let packed: Vec<PackedTernary> = weights
            .iter()
            .map(|w| PackedTernary::pack(w, ops.layout()))
            .collect();
        for &t in &thread_candidates(spec.threads_limit()) {
            candidates.push(measure(ops, t, &packed, batch));
        }
    }
    candidates.sort_by(|a, b| a.score_ms.total_cmp(&b.score_ms));
    // `available()` always holds scalar, so there is at least one candidate.
    let best = candidates[0].clone();
    Ok(TuneResult {
        kernel: best.kernel,
        threads: best.threads,
        batch,
        cached: false,
        key: spec.key(),
        candidates,
    })
}

type Table = BTreeMap<String, TuneResult>;

fn read_table(path: &Path) -> Table {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// Writes the table next to its final place and renames it over, so a reader never sees half
/// a file.
fn write_table(path: &Path, table: &Table) -> std::io::Result<()> {
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

/// The tuned choice for `spec`: read from the cache file `cache` when it holds one for this
/// CPU (and its kernel still exists), else measured with [`measure_all`] and added to the
/// cache. `cache: None` measures every time.
pub fn tune(spec: &TuneSpec<'_>, cache: Option<&Path>) -> Result<Tuned, TuneError> {
    spec.check()?;
    let key = spec.key();
    let mut table = cache.map(read_table).unwrap_or_default();
    if let Some(hit) = table.get(&key)
        && crate::by_id(&hit.kernel).is_some()
    {
        return Ok(Tuned {
            result: TuneResult {
                cached: true,
                ..hit.clone()
            },
            cache_error: None,
        });
    }
    let result = measure_all(spec)?;
    let mut cache_error = None;
    if let Some(path) = cache {
        table.insert(key, result.clone());
        if let Err(source) = write_table(path, &table) {
            cache_error = Some(CacheWriteError {
                path: path.to_path_buf(),
                source,
            });
        }
    }
    Ok(Tuned {
        result,
        cache_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPES: [(usize, usize); 3] = [(64, 128), (128, 64), (32, 256)];

    fn spec(label: &str) -> TuneSpec<'_> {
        TuneSpec {
            shapes: &SHAPES,
            label,
            max_threads: 2,
            batch: 4,
        }
    }

    #[test]
    fn thread_candidates_are_powers_of_two_and_the_maximum() {
        assert_eq!(thread_candidates(0), vec![1]);
        assert_eq!(thread_candidates(1), vec![1]);
        assert_eq!(thread_candidates(2), vec![1, 2]);
        assert_eq!(thread_candidates(6), vec![1, 2, 4, 6]);
    }

    #[test]
    fn tunes_then_reads_the_cache_per_label() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("sub").join("t.json");
        let first = tune(&spec("a"), Some(&cache)).unwrap();
        assert!(first.cache_error.is_none());
        let first = first.result;
        assert!(!first.cached);
        assert_eq!(first.batch, 4);
        assert_eq!(
            first.candidates.len(),
            crate::available().len() * thread_candidates(2).len()
        );
        assert_eq!(first.candidates[0].kernel, first.kernel);
        assert_eq!(first.candidates[0].threads, first.threads);
        assert!(
            first
                .candidates
                .windows(2)
                .all(|w| w[0].score_ms <= w[1].score_ms)
        );
        assert!(first.key.contains("shapes=64x128,128x64,32x256"));

        let second = tune(&spec("a"), Some(&cache)).unwrap().result;
        assert!(second.cached);
        assert_eq!(
            (&second.kernel, second.threads),
            (&first.kernel, first.threads)
        );
        // Another label is another key; both end up in the file.
        assert!(!tune(&spec("b"), Some(&cache)).unwrap().result.cached);
        assert_eq!(read_table(&cache).len(), 2);
    }

    #[test]
    fn an_unwritable_cache_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        // A cache "inside" a regular file cannot be created.
        let cache = blocker.join("t.json");
        let tuned = tune(&spec("c"), Some(&cache)).unwrap();
        assert!(!tuned.result.cached);
        let err = tuned.cache_error.expect("write error reported");
        assert_eq!(err.path, cache);
    }

    #[test]
    fn unusable_shapes_are_named() {
        let none = TuneSpec {
            shapes: &[],
            ..spec("x")
        };
        assert_eq!(measure_all(&none).unwrap_err(), TuneError::NoShapes);
        let zero = TuneSpec {
            shapes: &[(0, 128)],
            ..spec("x")
        };
        assert_eq!(
            tune(&zero, None).unwrap_err().to_string(),
            "tuning shape 0x128 is unusable: a dimension is zero"
        );
        let huge = TuneSpec {
            shapes: &[(usize::MAX, 2)],
            ..spec("x")
        };
        assert!(matches!(
            measure_all(&huge),
            Err(TuneError::BadShape {
                reason: "too many elements",
                ..
            })
        ));
    }
}
