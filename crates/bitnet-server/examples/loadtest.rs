//! Load test for `bitnet-server` on loopback (bounded in time; it stops by itself).
//!
//! ```text
//! # soak: 32 concurrent streaming clients for 60 s; every response must equal the same
//! # request served alone (same seed); RSS of the server sampled every second.
//! cargo run --release -p bitnet-server --example loadtest -- soak \
//!     --server target/release/bitnet-server --clients 32 --seconds 60 \
//!     -- --model fixtures/tiny-bitnet/i2s/model-i2_s.gguf --max-batch 32 --kv-pool-sessions 40
//!
//! # throughput: aggregate generated tokens/s at several concurrencies (token-id prompts, so it
//! # works on synthetic models without a tokenizer).
//! cargo run --release -p bitnet-server --example loadtest -- throughput \
//!     --server target/release/bitnet-server --concurrency 1,4,16 --seconds 30 --max-tokens 32 \
//!     -- --synthetic 2b4t --ctx 256 --max-batch 16
//!
//! # sse-gap: the longest pause between SSE chunks of running streams (and the slowest
//! # /health) while two large prompts arrive, against a quiet baseline.
//! cargo run --release -p bitnet-server --example loadtest -- sse-gap \
//!     --server target/release/bitnet-server --prompt-bytes 1000000 \
//!     -- --model fixtures/tiny-bitnet/i2s/model-i2_s.gguf --max-body-bytes 4000000
//! ```
//!
//! The server is spawned as a child on 127.0.0.1 with `--port 0`; only loopback is used.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use awc::Client;
use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use serde_json::{Value, json};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Concurrent streaming clients; responses checked against solo runs; RSS sampled.
    Soak {
        /// The server binary.
        #[arg(long, default_value = "target/release/bitnet-server")]
        server: PathBuf,
        /// Concurrent clients.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Duration.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Distinct requests cycled through.
        #[arg(long, default_value_t = 48)]
        distinct: usize,
        /// Server arguments.
        #[arg(last = true)]
        server_args: Vec<String>,
    },
    /// SSE chunk gaps and /health latency while large prompts arrive.
    SseGap {
        /// The server binary.
        #[arg(long, default_value = "target/release/bitnet-server")]
        server: PathBuf,
        /// Bytes of each large prompt.
        #[arg(long, default_value_t = 1_000_000)]
        prompt_bytes: usize,
        /// Large prompts sent at once.
        #[arg(long, default_value_t = 2)]
        prompts: usize,
        /// Concurrent streaming clients whose gaps are measured.
        #[arg(long, default_value_t = 2)]
        streams: usize,
        /// Server arguments.
        #[arg(last = true)]
        server_args: Vec<String>,
    },
    /// Aggregate generated tokens/s at several concurrencies.
    Throughput {
        /// The server binary.
        #[arg(long, default_value = "target/release/bitnet-server")]
        server: PathBuf,
        /// Concurrency levels.
        #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
        concurrency: Vec<usize>,
        /// Seconds per level.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Tokens per request.
        #[arg(long, default_value_t = 32)]
        max_tokens: usize,
        /// Prompt tokens per request.
        #[arg(long, default_value_t = 16)]
        prompt_tokens: usize,
        /// Server arguments.
        #[arg(last = true)]
        server_args: Vec<String>,
    },
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn spawn(bin: &PathBuf, args: &[String]) -> Self {
        let mut child = Command::new(bin)
            .args(args)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let base = line.trim().rsplit(' ').next().expect("url").to_string();
        Self { child, base }
    }

    fn rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    fn stop(mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(300)).finish()
}

async fn wait_ready(base: &str) {
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(r) = c.get(format!("{base}/ready")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "server never became ready");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Streams one request; returns (token ids, text) or an error description.
async fn stream_once(c: &Client, base: &str, body: &Value) -> Result<(Vec<u64>, String), String> {
    let mut resp = c
        .post(format!("{base}/v1/completions"))
        .send_json(body)
        .await
        .map_err(|e| format!("send: {e}"))?;
    if resp.status() != 200 {
        let b = resp.body().await.unwrap_or_default();
        return Err(format!(
            "status {}: {}",
            resp.status(),
            String::from_utf8_lossy(&b)
        ));
    }
    let mut raw = Vec::new();
    while let Some(chunk) = resp.next().await {
        raw.extend_from_slice(&chunk.map_err(|e| format!("body: {e}"))?);
    }
    let text = String::from_utf8_lossy(&raw);
    if !text.ends_with("data: [DONE]\n\n") {
        return Err("stream did not end with [DONE]".into());
    }
    let mut ids = Vec::new();
    let mut out = String::new();
    let mut id_seen = None;
    for ev in text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")) {
        if ev == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(ev).map_err(|e| format!("bad chunk {ev}: {e}"))?;
        if v.get("error").is_some() {
            return Err(format!("error event: {v}"));
        }
        // Every chunk of one response carries that response's id (no mixing).
        let id = v["id"].as_str().unwrap_or_default().to_string();
        match &id_seen {
            None => id_seen = Some(id),
            Some(prev) if *prev != id => return Err(format!("chunk ids differ: {prev} vs {id}")),
            _ => {}
        }
        if v["choices"][0]["finish_reason"].is_null() {
            ids.extend(
                v["bitnet"]["token_ids"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64),
            );
        }
        out.push_str(v["choices"][0]["text"].as_str().unwrap_or_default());
    }
    Ok((ids, out))
}

fn soak_request(i: usize) -> Value {
    let topics = [
        "rust", "ternary", "cache", "batch", "seed", "stream", "token", "queue",
    ];
    json!({
        "prompt": format!("Request {i} about {} and {}:", topics[i % 8], topics[(i / 8) % 8]),
        "max_tokens": 24 + (i * 7) % 40,
        "temperature": if i.is_multiple_of(5) { 0.0 } else { 0.8 },
        "top_p": 0.95,
        "seed": 1000 + i,
        "stream": true,
    })
}

async fn soak(
    server: PathBuf,
    clients: usize,
    seconds: u64,
    distinct: usize,
    args: Vec<String>,
) -> bool {
    let srv = Server::spawn(&server, &args);
    let base = srv.base.clone();
    wait_ready(&base).await;
    let c = client();
    let requests: Vec<Value> = (0..distinct).map(soak_request).collect();
    // Reference: each request alone, one at a time.
    let mut reference = Vec::new();
    for r in &requests {
        reference.push(stream_once(&c, &base, r).await.expect("solo request"));
    }
    let requests = Arc::new(requests);
    let reference = Arc::new(reference);
    let done = Arc::new(AtomicU64::new(0));
    let tokens = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let rss_before = srv.rss_kb();
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut handles = Vec::new();
    for client_id in 0..clients {
        let (requests, reference, done, tokens, errors, base, latencies) = (
            Arc::clone(&requests),
            Arc::clone(&reference),
            Arc::clone(&done),
            Arc::clone(&tokens),
            Arc::clone(&errors),
            base.clone(),
            Arc::clone(&latencies),
        );
        handles.push(actix_web::rt::spawn(async move {
            let c = client();
            let mut k = 0;
            while Instant::now() < end {
                let i = (client_id + k * clients) % requests.len();
                k += 1;
                let t = Instant::now();
                let result = stream_once(&c, &base, &requests[i]).await;
                latencies
                    .lock()
                    .unwrap()
                    .push(t.elapsed().as_secs_f64() * 1e3);
                match result {
                    Ok(got) if got == reference[i] => {
                        tokens.fetch_add(got.0.len() as u64, Ordering::Relaxed);
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(got) => errors.lock().unwrap().push(format!(
                        "request {i}: response differs from solo: {:?} vs {:?}",
                        got.0, reference[i].0
                    )),
                    Err(e) => errors.lock().unwrap().push(format!("request {i}: {e}")),
                }
            }
        }));
    }
    let mut rss = Vec::new();
    while Instant::now() < end {
        actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        rss.push(srv.rss_kb());
    }
    for h in handles {
        let _ = h.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let metrics = c.get(format!("{base}/metrics")).send().await.ok();
    let metrics = match metrics {
        Some(mut m) => {
            String::from_utf8_lossy(&m.body().limit(1 << 20).await.unwrap_or_default()).into_owned()
        }
        None => String::new(),
    };
    let exited_cleanly = srv.stop();
    let errors = errors.lock().unwrap();
    let warm = rss.get(4).copied().unwrap_or(0);
    let last = rss.last().copied().unwrap_or(0);
    let max = rss.iter().copied().max().unwrap_or(0);
    println!("soak: {clients} clients, {elapsed:.1} s");
    println!("  responses ok:       {}", done.load(Ordering::Relaxed));
    println!("  errors/mismatches:  {}", errors.len());
    for e in errors.iter().take(5) {
        println!("    {e}");
    }
    println!(
        "  tokens/s:           {:.1}",
        tokens.load(Ordering::Relaxed) as f64 / elapsed
    );
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "  requests:           {} (latency p50 {:.1} ms, p99 {:.1} ms)",
        lat.len(),
        pct(0.50),
        pct(0.99)
    );
    println!("  RSS (KiB): before load {rss_before}, at 5 s {warm}, at end {last}, max {max}");
    for line in metrics.lines().filter(|l| {
        l.starts_with("bitnet_decode_batch_size_sum")
            || l.starts_with("bitnet_decode_batch_size_count")
            || l.starts_with("bitnet_kv_pool_evictions_total")
            || l.starts_with("bitnet_prompt_cached_tokens_total")
            || l.starts_with("bitnet_cancelled")
    }) {
        println!("  {line}");
    }
    println!(
        "  server exit on SIGTERM: {}",
        if exited_cleanly { "0" } else { "FAILED" }
    );
    let rss_stable = last <= warm + warm / 10 + 16 * 1024;
    println!("  RSS stable (end <= 5 s value + 10% + 16 MiB): {rss_stable}");
    errors.is_empty() && exited_cleanly && rss_stable && done.load(Ordering::Relaxed) > 0
}

async fn throughput(
    server: PathBuf,
    levels: Vec<usize>,
    seconds: u64,
    max_tokens: usize,
    prompt_tokens: usize,
    args: Vec<String>,
) -> bool {
    let srv = Server::spawn(&server, &args);
    let base = srv.base.clone();
    wait_ready(&base).await;
    let (_, models) = {
        let mut r = client()
            .get(format!("{base}/v1/models"))
            .send()
            .await
            .expect("models");
        (r.status(), r.json::<Value>().await.expect("models json"))
    };
    println!("model: {}", models["data"][0]["id"]);
    let mut ok = true;
    for &conc in &levels {
        let generated = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let end = start + Duration::from_secs(seconds);
        let mut handles = Vec::new();
        for client_id in 0..conc {
            let (generated, failures, base) =
                (Arc::clone(&generated), Arc::clone(&failures), base.clone());
            handles.push(actix_web::rt::spawn(async move {
                let c = client();
                let mut k = 0u64;
                while Instant::now() < end {
                    let prompt: Vec<u64> = (0..prompt_tokens as u64)
                        .map(|j| 1 + (client_id as u64 * 7919 + k * 104_729 + j * 31) % 500)
                        .collect();
                    k += 1;
                    let body = json!({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8, "seed": k});
                    match c.post(format!("{base}/v1/completions")).send_json(&body).await {
                        Ok(mut r) if r.status() == 200 => match r.json::<Value>().limit(1 << 20).await {
                            Ok(v) => {
                                generated.fetch_add(v["usage"]["completion_tokens"].as_u64().unwrap_or(0), Ordering::Relaxed);
                            }
                            Err(_) => {
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                        _ => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        for h in handles {
            let _ = h.await;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let n = generated.load(Ordering::Relaxed);
        let f = failures.load(Ordering::Relaxed);
        ok &= f == 0;
        println!(
            "concurrency {conc:>3}: {n} tokens in {elapsed:.1} s = {:.2} tokens/s aggregate ({f} failures), RSS {} MiB",
            n as f64 / elapsed,
            srv.rss_kb() / 1024
        );
    }
    ok &= srv.stop();
    ok
}

/// Streams requests back to back for `until`; every gap between chunks (and each time to the
/// first chunk), in ms.
async fn stream_gaps(base: String, until: Instant) -> Vec<f64> {
    let c = client();
    let mut gaps = Vec::new();
    let mut k = 0u64;
    while Instant::now() < until {
        k += 1;
        let body = json!({"prompt": "gap", "max_tokens": 200, "seed": k, "stream": true});
        let t = Instant::now();
        let Ok(mut resp) = c
            .post(format!("{base}/v1/completions"))
            .send_json(&body)
            .await
        else {
            continue;
        };
        let mut last = t;
        while let Some(chunk) = resp.next().await {
            if chunk.is_err() {
                break;
            }
            let now = Instant::now();
            gaps.push((now - last).as_secs_f64() * 1e3);
            last = now;
        }
    }
    gaps
}

/// Slowest /health answers until `until`, in ms.
async fn health_times(base: String, until: Instant) -> Vec<f64> {
    let c = client();
    let mut out = Vec::new();
    while Instant::now() < until {
        let t = Instant::now();
        let _ = c.get(format!("{base}/health")).send().await;
        out.push(t.elapsed().as_secs_f64() * 1e3);
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    out
}

async fn sse_gap(
    server: PathBuf,
    prompt_bytes: usize,
    prompts: usize,
    streams: usize,
    args: Vec<String>,
) -> bool {
    let srv = Server::spawn(&server, &args);
    let base = srv.base.clone();
    wait_ready(&base).await;
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    for phase in ["baseline", "with large prompts"] {
        let until = Instant::now() + Duration::from_secs(4);
        let gap_tasks: Vec<_> = (0..streams)
            .map(|_| actix_web::rt::spawn(stream_gaps(base.clone(), until)))
            .collect();
        let health = actix_web::rt::spawn(health_times(base.clone(), until));
        let mut big = Vec::new();
        let mut big_ms = Vec::new();
        if phase != "baseline" {
            actix_web::rt::time::sleep(Duration::from_millis(500)).await;
            for i in 0..prompts {
                let base = base.clone();
                big.push(actix_web::rt::spawn(async move {
                    let text =
                        format!("{i} ") + &"lorem ipsum dolor sit amet ".repeat(prompt_bytes / 27);
                    let t = Instant::now();
                    let status = client()
                        .post(format!("{base}/v1/completions"))
                        .send_json(&json!({"prompt": text, "max_tokens": 1}))
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    (status, t.elapsed().as_secs_f64() * 1e3)
                }));
            }
        }
        let mut gaps = Vec::new();
        for t in gap_tasks {
            gaps.extend(t.await.unwrap_or_default());
        }
        let health = health.await.unwrap_or_default();
        for b in big {
            if let Ok((status, ms)) = b.await {
                big_ms.push(format!("{status} in {ms:.0} ms"));
            }
        }
        println!(
            "{phase:>20}: {} chunks, gap median {:.2} ms, max {:.1} ms; /health max {:.1} ms{}",
            gaps.len(),
            median(&gaps),
            max(&gaps),
            max(&health),
            if big_ms.is_empty() {
                String::new()
            } else {
                format!("; large prompts answered {}", big_ms.join(", "))
            }
        );
    }
    srv.stop()
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let ok = actix_web::rt::System::new().block_on(async move {
        match cli.mode {
            Mode::Soak {
                server,
                clients,
                seconds,
                distinct,
                server_args,
            } => soak(server, clients, seconds, distinct, server_args).await,
            Mode::SseGap {
                server,
                prompt_bytes,
                prompts,
                streams,
                server_args,
            } => sse_gap(server, prompt_bytes, prompts, streams, server_args).await,
            Mode::Throughput {
                server,
                concurrency,
                seconds,
                max_tokens,
                prompt_tokens,
                server_args,
            } => {
                throughput(
                    server,
                    concurrency,
                    seconds,
                    max_tokens,
                    prompt_tokens,
                    server_args,
                )
                .await
            }
        }
    });
    if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
