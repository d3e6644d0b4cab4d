//! `bench`: prompt processing (`ppN`: N random tokens in one forward call) and generation
//! (`tgN`: N single-token forward steps, greedy argmax, no sampling cost) tokens per second,
//! mean ± sample standard deviation over `-r` repetitions after one uncounted warm-up, as a
//! llama-bench style table.
//!
//! `--parallel N` adds `tgNxP` rows: P sequences decoded together with the engine's batched
//! step (as the server's continuous batching runs them), aggregate tokens/s.
//!
//! Alongside, the memory read bandwidth is probed in the same process, after the model is
//! dropped (`bitnet_kernels::membw` through [`read_bandwidth`]: the fastest of its SIMD read kernels, two streams per thread, on
//! a kernel pool of the same thread count as decode, best of `--probe-passes` reads of a
//! `--probe-mib` buffer), which gives the decode roofline `bandwidth / bytes streamed per
//! token`: generation cannot beat it, so the table says how close it gets.
//! `scripts/bench/membw_check.sh` checks the probe (`--probe-only`) against a C/OpenMP
//! STREAM-style read.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use bitnet_engine::backend::{ReadProbe, read_bandwidth};
use bitnet_engine::{
    HeadType, KvType, LoadOptions, Model, ModelConfig, ModelRef, Session, SessionOptions,
};
use serde::Serialize;

use crate::args::BenchArgs;
use crate::common;
use crate::error::CliError;

/// One row of the table.
#[derive(Debug, Serialize)]
struct BenchResult {
    model: String,
    size_bytes: u64,
    params: u64,
    backend: String,
    /// Storage type of the output head in memory (`F16`, `Q8_0`, ...).
    head_type: &'static str,
    threads: usize,
    test: String,
    n_prompt: usize,
    n_gen: usize,
    /// Tokens in the context before the test (`-d`).
    n_depth: usize,
    avg_ts: f64,
    stddev_ts: f64,
    samples_ts: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bandwidth_gbs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roofline_ts: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roofline_pct: Option<f64>,
}

/// Parameter count implied by the shapes (embedding counted once when tied).
fn param_count(c: &ModelConfig, tied: bool) -> u64 {
    let (h, q, kv, f) = (
        c.hidden_size as u64,
        c.q_dim() as u64,
        c.kv_dim() as u64,
        c.intermediate_size as u64,
    );
    let per_layer = h * q + 2 * h * kv + q * h + 3 * h * f + 2 * h + q + f;
    let embed = c.vocab_size as u64 * h;
    c.n_layers as u64 * per_layer + embed * if tied { 1 } else { 2 } + h
}

/// `2.41 B`, `52.43 M` as llama-bench prints parameter counts.
fn human_params(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else {
        format!("{:.2} K", n / 1e3)
    }
}

/// Mean and sample standard deviation.
fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Deterministic pseudo-random token ids (xorshift), so every run measures the same input.
fn random_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % vocab as u64) as u32
        })
        .collect()
}

/// Tokens per forward call when filling a context to its test depth (untimed).
const DEPTH_CHUNK: usize = 512;

/// A session whose KV cache already holds `depth` tokens (filled in chunks, untimed).
fn session_at_depth(model: &Model, opts: &SessionOptions, depth: usize) -> Result<Session> {
    let mut session = model.session(opts);
    let vocab = model.config().vocab_size;
    let fill = random_tokens(depth, vocab, 0xdee9 + depth as u64);
    for chunk in fill.chunks(DEPTH_CHUNK) {
        model.forward(&mut session, chunk)?;
    }
    Ok(session)
}

/// Bytes of KV cache one decode step reads at `pos` cached positions: K and V of every
/// layer at every position.
fn kv_bytes_read(c: &ModelConfig, kv_type: KvType, pos: usize) -> usize {
    2 * c.n_layers * c.n_kv_heads * c.head_dim * pos * kv_type.element_bytes()
}

/// Seconds for one prompt-processing run of `p` tokens after `depth` cached ones.
fn time_pp(model: &Model, opts: &SessionOptions, depth: usize, tokens: &[u32]) -> Result<f64> {
    let mut session = session_at_depth(model, opts, depth)?;
    let start = Instant::now();
    model.forward(&mut session, tokens)?;
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds for `n` single-token decode steps after `depth` cached tokens.
fn time_tg(
    model: &Model,
    opts: &SessionOptions,
    depth: usize,
    first: u32,
    n: usize,
) -> Result<f64> {
    let mut session = session_at_depth(model, opts, depth)?;
    let mut token = first;
    let start = Instant::now();
    for _ in 0..n {
        let logits = model.forward(&mut session, &[token])?;
        token = common::argmax(logits);
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds for `n` decode steps of `firsts.len()` sequences advanced together by
/// [`Model::forward_batch`] (each weight streamed once per step for all of them).
fn time_tg_parallel(
    model: &Model,
    opts: &SessionOptions,
    depth: usize,
    firsts: &[u32],
    n: usize,
) -> Result<f64> {
    let mut sessions = firsts
        .iter()
        .map(|_| session_at_depth(model, opts, depth))
        .collect::<Result<Vec<_>>>()?;
    let mut tokens = firsts.to_vec();
    let start = Instant::now();
    for _ in 0..n {
        let mut refs: Vec<&mut bitnet_engine::Session> = sessions.iter_mut().collect();
        model.forward_batch(&mut refs, &tokens)?;
        for (t, s) in tokens.iter_mut().zip(&sessions) {
            *t = common::argmax(s.logits());
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Memory read bandwidth on `threads` threads of a kernel pool like the decode one (see
/// [`read_bandwidth`]): best of `passes` timed reads of a `mib` MiB buffer.
fn probe(threads: usize, mib: u64, passes: u64) -> ReadProbe {
    read_bandwidth(threads, (mib as usize) << 20, passes as usize)
}

/// `--probe-only`: the probe for each thread count, as lines `probe threads T: X GB/s read
/// (...)` or a JSON array.
fn run_probe_only(args: &BenchArgs, threads: &[usize]) -> Result<()> {
    let probes: Vec<_> = threads
        .iter()
        .map(|&t| probe(t, args.probe_mib, args.probe_passes))
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<_> = probes
            .iter()
            .map(|p| {
                serde_json::json!({
                    "threads": p.threads,
                    "kernel": p.kernel,
                    "bytes": p.bytes,
                    "passes": p.passes,
                    "bandwidth_gbs": p.best_bytes_per_sec / 1e9,
                    "pass_gbs": p.pass_bytes_per_sec.iter().map(|b| b / 1e9).collect::<Vec<_>>(),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
    } else {
        for p in &probes {
            writeln!(
                out,
                "probe threads {}: {:.2} GB/s read ({}, {} MiB, best of {})",
                p.threads,
                p.best_bytes_per_sec / 1e9,
                p.kernel,
                p.bytes >> 20,
                p.passes
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Runs the benchmark and prints the table (or JSON).
pub fn run(args: BenchArgs) -> Result<()> {
    common::check_kernel(args.kernel.as_deref())?;
    let (label, size_on_disk, model_ref) = match (&args.model, &args.synthetic) {
        (Some(path), _) => {
            common::require_exists(path)?;
            (
                model_label(path),
                Some(file_size(path)?),
                common::model_ref(path),
            )
        }
        (None, Some(name)) => {
            let name = name.to_ascii_lowercase();
            if bitnet_engine::synthetic::preset(&name).is_none() {
                return Err(CliError::UnknownPreset {
                    name,
                    known: bitnet_engine::synthetic::PRESETS.join(", "),
                }
                .into());
            }
            (
                format!("{name} synthetic"),
                None,
                ModelRef::Synthetic {
                    preset: name,
                    seed: 42,
                },
            )
        }
        (None, None) => (
            bitnet_default_model::NAME.to_string(),
            Some(bitnet_default_model::gguf_bytes().len() as u64),
            ModelRef::Embedded,
        ),
    };
    let mut threads = args.threads.clone();
    if threads.is_empty() {
        threads.push(bitnet_engine::threads::default_threads(&model_ref));
    }
    threads.dedup();
    if args.probe_only {
        return run_probe_only(&args, &threads);
    }

    let mut results = Vec::new();
    let mut footer = Vec::new();
    let reps = args.repetitions as usize;
    for &t in &threads {
        let opts = LoadOptions {
            threads: t,
            activation_quantization: !args.no_act_quant,
            kernel: args.kernel.clone(),
            head_type: args.head_type,
        };
        let pb = common::spinner(&format!("building model for {t} threads"));
        let model = Model::open(&model_ref, &opts)?;
        pb.finish_and_clear();
        let c = model.config().clone();
        let w = model.weights();
        // The embedding is counted apart unless the head *is* it (tied and not re-stored).
        let head_is_embedding = std::sync::Arc::ptr_eq(&w.head, &w.embedding);
        let size = size_on_disk.unwrap_or_else(|| {
            let embedding = if head_is_embedding {
                0
            } else {
                w.embedding.size_bytes()
            };
            (w.bytes_per_token() + embedding) as u64
        });
        let params = param_count(&c, w.tied);
        let head_type = w.head.type_name();
        let backend = match args.head_type {
            HeadType::Stored => format!("CPU {}", model.kernels().backend().id()),
            other => format!("CPU {} + {other} head", model.kernels().backend().id()),
        };
        let threads_used = model.kernels().threads();
        let row = |test: String, np: usize, ng: usize, nd: usize, samples: Vec<f64>| {
            let (avg, sd) = mean_std(&samples);
            BenchResult {
                model: label.clone(),
                size_bytes: size,
                params,
                backend: backend.clone(),
                head_type,
                threads: threads_used,
                test,
                n_prompt: np,
                n_gen: ng,
                n_depth: nd,
                avg_ts: avg,
                stddev_ts: sd,
                samples_ts: samples,
                bandwidth_gbs: None,
                roofline_ts: None,
                roofline_pct: None,
            }
        };

        // tg rows with the bytes one of their tokens streams on average (weights + KV read).
        let mut tg_rows: Vec<(usize, f64)> = Vec::new();
        let weight_bytes = w.bytes_per_token() as f64;
        for &d in &args.n_depth {
            let at = |test: String| {
                if d == 0 {
                    test
                } else {
                    format!("{test} @ d{d}")
                }
            };
            for &p in args.n_prompt.iter().filter(|&&p| p > 0) {
                check_context(d + p, c.context_length)?;
                let sopts = SessionOptions {
                    context: Some(d + p),
                    kv_type: args.kv_type.engine(),
                    max_batch: p.max(d.min(DEPTH_CHUNK)),
                };
                let tokens = random_tokens(p, c.vocab_size, 0x5eed + p as u64);
                let mut samples = Vec::with_capacity(reps);
                for rep in 0..=reps {
                    let secs = time_pp(&model, &sopts, d, &tokens)?;
                    if rep > 0 {
                        samples.push(p as f64 / secs);
                    }
                }
                results.push(row(at(format!("pp{p}")), p, 0, d, samples));
            }
            for &n in args.n_gen.iter().filter(|&&n| n > 0) {
                check_context(d + n, c.context_length)?;
                let sopts = SessionOptions {
                    context: Some(d + n),
                    kv_type: args.kv_type.engine(),
                    max_batch: d.clamp(1, DEPTH_CHUNK),
                };
                // Step i reads d + i cached positions: on average d + (n - 1) / 2.
                let kv_type = args.kv_type.engine();
                let kv = kv_bytes_read(&c, kv_type, d) as f64
                    + kv_bytes_read(&c, kv_type, n.saturating_sub(1)) as f64 / 2.0;
                let first = random_tokens(1, c.vocab_size, 0x5eed)[0];
                let mut samples = Vec::with_capacity(reps);
                for rep in 0..=reps {
                    let secs = time_tg(&model, &sopts, d, first, n)?;
                    if rep > 0 {
                        samples.push(n as f64 / secs);
                    }
                }
                tg_rows.push((results.len(), weight_bytes + kv));
                results.push(row(at(format!("tg{n}")), 0, n, d, samples));

                // Several sequences decoding together (continuous batching, as the server
                // runs them): aggregate tokens/s over all of them.
                for &npl in args.parallel.iter().filter(|&&p| p > 1) {
                    let firsts = random_tokens(npl, c.vocab_size, 0x5eed + npl as u64);
                    let mut samples = Vec::with_capacity(reps);
                    for rep in 0..=reps {
                        let secs = time_tg_parallel(&model, &sopts, d, &firsts, n)?;
                        if rep > 0 {
                            samples.push((n * npl) as f64 / secs);
                        }
                    }
                    results.push(row(at(format!("tg{n}x{npl}")), 0, n, d, samples));
                }
            }
        }

        if !args.no_bandwidth {
            drop(model);
            let bw = probe(threads_used, args.probe_mib, args.probe_passes).best_bytes_per_sec;
            for &(i, bytes) in &tg_rows {
                let r = &mut results[i];
                r.bandwidth_gbs = Some(bw / 1e9);
                r.roofline_ts = Some(bw / bytes);
                r.roofline_pct = Some(100.0 * r.avg_ts * bytes / bw);
            }
            let reached: Vec<String> = tg_rows
                .iter()
                .map(|&(i, _)| {
                    format!(
                        "{} {:.1} %",
                        results[i].test,
                        results[i].roofline_pct.unwrap_or(0.0)
                    )
                })
                .collect();
            let kv_note = if args.n_depth.iter().any(|&d| d > 0) {
                " (tg rows at a depth add the KV cache they read)"
            } else {
                ""
            };
            footer.push(format!(
                "threads {threads_used}: memory read bandwidth {:.2} GB/s; {:.2} MiB of weights per token; roofline {:.2} tokens/s{kv_note}{}",
                bw / 1e9,
                weight_bytes / (1u64 << 20) as f64,
                bw / weight_bytes,
                if reached.is_empty() {
                    String::new()
                } else {
                    format!("; reached: {}", reached.join(", "))
                }
            ));
        }
    }

    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&results)?)?;
    } else {
        writeln!(
            out,
            "| model | size | params | backend | threads | test | t/s |"
        )?;
        writeln!(out, "| --- | ---: | ---: | --- | ---: | ---: | ---: |")?;
        for r in &results {
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {:.2} ± {:.2} |",
                r.model,
                common::human_bytes(r.size_bytes),
                human_params(r.params),
                r.backend,
                r.threads,
                r.test,
                r.avg_ts,
                r.stddev_ts
            )?;
        }
        if !footer.is_empty() {
            writeln!(out)?;
            for line in &footer {
                writeln!(out, "{line}")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// A test needs `needed` positions of context; the model has `max`.
fn check_context(needed: usize, max: usize) -> Result<(), CliError> {
    if needed > max {
        return Err(CliError::ContextTooLarge { ctx: needed, max });
    }
    Ok(())
}

/// Bytes of a model file, or of the files directly inside a checkpoint directory.
fn file_size(path: &Path) -> Result<u64, CliError> {
    let meta = std::fs::metadata(path).map_err(|e| CliError::file(path, &e))?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let entries = std::fs::read_dir(path).map_err(|e| CliError::file(path, &e))?;
    Ok(entries
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum())
}

fn model_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_stddev() {
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m, 5.0);
        assert!((s - 2.138_089_935).abs() < 1e-6);
        assert_eq!(mean_std(&[3.0]), (3.0, 0.0));
    }

    #[test]
    fn tokens_are_in_range_and_reproducible() {
        let a = random_tokens(100, 512, 7);
        assert!(a.iter().all(|&t| t < 512));
        assert_eq!(a, random_tokens(100, 512, 7));
    }

    #[test]
    fn params_of_2b4t() {
        let cfg = bitnet_engine::synthetic::preset("2b4t").unwrap();
        // 2.41 B with the tied 128256 x 2560 embedding, as llama-bench reports for 2B4T.
        assert_eq!(human_params(param_count(&cfg, true)), "2.41 B");
    }
}
