//! Command-line options and the validated server configuration built from them.

use std::net::IpAddr;
use std::path::PathBuf;

use bitnet_engine::{ModelRef, backend};
use clap::{Parser, ValueEnum};

use crate::error::ServerError;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// KV cache element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KvTypeArg {
    /// 32-bit floats (exact; the default).
    F32,
    /// 16-bit floats (half the memory).
    F16,
}

/// `bitnet-server`: an OpenAI-compatible HTTP server for BitNet b1.58 models.
///
/// llama-server's spellings work too: -m/--model, -c/--ctx-size, -t/--threads, --host,
/// --port, -np/--parallel.
#[derive(Debug, Clone, Parser)]
#[command(name = "bitnet-server", version, about, long_about = None, max_term_width = 100)]
pub struct Args {
    /// The model: a .gguf file, a Hugging Face checkpoint directory, or hf:ORG/REPO or
    /// hf:ORG/REPO:FILE (fetched into the Hugging Face cache before the server starts: HF_TOKEN, HF_ENDPOINT,
    /// HF_HUB_OFFLINE apply) [default: the embedded bitnet-rust-docs-5m model, a small
    /// BitNet b1.58 trained on the Rust documentation].
    /// The file is read into memory, not mapped: replacing or truncating it while the server
    /// runs changes nothing (a mapped file would crash with SIGBUS, as llama.cpp's mmap can).
    #[arg(short, long, value_name = "FILE|DIR")]
    pub model: Option<PathBuf>,
    /// Serve a model with random weights and the shapes of PRESET (2b4t, 3b, 700m, tiny)
    /// instead of a file: for throughput measurements with token-id prompts (no tokenizer).
    #[arg(long, value_name = "PRESET", conflicts_with = "model")]
    pub synthetic: Option<String>,
    /// Name the model is served under (`GET /v1/models`, the `model` request field).
    /// Defaults to the file name without extension (ORG/REPO for an hf: model).
    #[arg(long, value_name = "NAME")]
    pub model_name: Option<String>,
    /// For an hf: model, use only the Hugging Face cache: no network (as HF_HUB_OFFLINE=1).
    #[arg(long)]
    pub offline: bool,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one; the chosen address is printed on stdout).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Kernel worker threads [default: 1 for a model under 50 MB of weights (such as the
    /// embedded one), which more threads only slow down; else one per physical core; as
    /// bitnet-cli chooses]. 0 = every logical core.
    #[arg(short, long, value_name = "N")]
    pub threads: Option<usize>,
    /// Most requests decoded together in one batched step (continuous batching): llama-server's
    /// slots, hence the aliases --parallel and -np.
    #[arg(
        long,
        visible_alias = "parallel",
        alias = "np",
        default_value_t = 8,
        value_name = "N"
    )]
    pub max_batch: usize,
    /// Request defaults: what a request that omits a sampling field gets (llama-server's
    /// spellings; a field in the request always wins).
    #[command(flatten)]
    pub sampling: SamplingDefaults,
    /// Context length of each KV session, in tokens (default: the model's, at most 2048).
    /// Every session's KV cache is allocated for it up front.
    #[arg(
        short = 'c',
        long = "ctx-size",
        visible_alias = "ctx",
        value_name = "N"
    )]
    pub ctx: Option<usize>,
    /// KV cache element type.
    #[arg(long, value_enum, default_value = "f32")]
    pub kv_type: KvTypeArg,
    /// KV sessions kept in the pool (active + idle with a reusable prefix); at least
    /// --max-batch. Default: --max-batch + 4.
    #[arg(long)]
    pub kv_pool_sessions: Option<usize>,
    /// Requests that may wait for a decode slot; more are answered 429.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// Largest request body accepted, in bytes; larger ones are answered 413.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Require `Authorization: Bearer KEY` on /v1 routes. Repeat the flag (or separate keys
    /// with commas) for several clients: each key gets its own prefix cache and sees only its
    /// own receipts.
    #[arg(
        long,
        env = "BITNET_API_KEY",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub api_key: Vec<String>,
    /// Let requests reuse prefixes cached for other API keys (single-tenant use: faster, but
    /// `cached_tokens` and timing then tell one key how much of another key's prompt a guess
    /// matches).
    #[arg(long)]
    pub share_prefix_cache: bool,
    /// Seconds a client may take to send the request line and headers (408 after).
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub header_timeout: u64,
    /// Seconds a client may take to send the whole request body (408 after): a client that
    /// sends a body slowly cannot hold a connection for ever (a 1 MiB body needs 70 KiB/s).
    #[arg(long, default_value_t = 15, value_name = "SECS")]
    pub body_timeout: u64,
    /// Seconds an idle keep-alive connection stays open (0 turns keep-alive off).
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub keep_alive: u64,
    /// Most open connections over all HTTP workers; more wait in the listen backlog. Keeps
    /// the process well inside its file-descriptor limit.
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
    /// Log format (logs go to stderr; RUST_LOG filters them).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Force a kernel implementation by id (e.g. i2s/avx2); disables tuning. `--kernel list`
    /// prints the ids and which of them this CPU runs, and exits.
    #[arg(long, value_name = "ID|list")]
    pub kernel: Option<String>,
    /// Output head storage: `stored` (as in the model: F16 in BitNet GGUFs), `q8_0`
    /// (quantised at load: about half the bytes per token, a small logit error), `q6_k` or
    /// `q4_k` (ggml's Q6_K or Q4_K, as `llama-quantize` writes them) or `q4_k_rescored`
    /// (Q4_K with its best 32 logits recomputed from the F16 rows).
    #[arg(long, value_name = "TYPE", default_value = "stored", value_parser = parse_head_type)]
    pub head_type: bitnet_engine::HeadType,
    /// Seconds to wait for running requests on SIGTERM before closing them.
    #[arg(long, default_value_t = 30)]
    pub shutdown_timeout: u64,
    /// HTTP worker threads (request parsing and streaming; the model runs on its own thread).
    #[arg(long, default_value_t = 2)]
    pub http_workers: usize,
    /// Append a receipt for every completion to FILE (JSONL, fsync'd) and serve them at
    /// GET /v1/receipts/{id}. Without it receipts are off. Needs the `receipts` feature.
    #[arg(long, value_name = "FILE")]
    pub receipts_log: Option<PathBuf>,
    /// Answer cross-origin requests from browsers (CORS) for these origins: `*` for any, or
    /// a comma-separated list such as `http://localhost:3000,https://app.example`. Off by
    /// default (a browser page on another origin then cannot call the API). Preflight
    /// `OPTIONS` requests are answered; `Authorization` is allowed, credentials (cookies) are
    /// not used.
    #[arg(long, value_name = "ORIGINS", value_delimiter = ',')]
    pub cors: Vec<String>,
    /// Skip start-up kernel tuning (`tuning` feature).
    #[arg(long)]
    pub no_tune: bool,
    /// Where tuning results are cached (`tuning` feature). Default:
    /// $XDG_CACHE_HOME/bitnet-rs/tuning.json or ~/.cache/bitnet-rs/tuning.json.
    #[arg(long, value_name = "FILE")]
    pub tuning_cache: Option<PathBuf>,
    /// Do not serve the web chat page at `/` (it is on by default, as in llama-server;
    /// without it `/` answers 404 like any unknown route).
    #[arg(long)]
    pub no_webui: bool,
    /// Print a shell completion script for bitnet-server and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    pub completions: Option<clap_complete::Shell>,
    /// Print the man page (roff) and exit: `bitnet-server --man > bitnet-server.1`.
    #[arg(long, exclusive = true)]
    pub man: bool,
}

/// Checks `--cors`: `*` alone, or origins `scheme://host[:port]` without a path.
fn cors_origins(given: &[String]) -> Result<Vec<String>, ServerError> {
    let origins: Vec<String> = given
        .iter()
        .map(|o| o.trim().trim_end_matches('/').to_string())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.iter().any(|o| o == "*") {
        if origins.len() > 1 {
            return Err(ServerError::InvalidOption {
                flag: "cors",
                reason: "'*' allows every origin: give it alone, not in a list".into(),
            });
        }
        return Ok(origins);
    }
    for o in &origins {
        let rest = o
            .strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"));
        if !rest.is_some_and(|r| !r.is_empty() && !r.contains(['/', '?', '#', ' '])) {
            return Err(ServerError::InvalidOption {
                flag: "cors",
                reason: format!(
                    "'{o}' is not an origin: give scheme://host[:port] (e.g. \
                     http://localhost:3000) or '*'"
                ),
            });
        }
    }
    Ok(origins)
}

/// The command line with llama-server's `-np N` rewritten to `--parallel N`. clap's short
/// options are one character, so `-np` would parse as `-n -p`; only that exact token (or
/// `-np=N`) is rewritten, nothing else.
pub fn llama_argv<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> Vec<std::ffi::OsString> {
    args.into_iter()
        .map(|a| {
            if a == "-np" {
                "--parallel".into()
            } else if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("-np=")) {
                format!("--parallel={v}").into()
            } else {
                a
            }
        })
        .collect()
}

/// Parses `--head-type` (see `HeadType`'s `FromStr`).
fn parse_head_type(s: &str) -> Result<bitnet_engine::HeadType, String> {
    s.parse()
}

/// Sampling settings for requests that leave them out. The defaults are OpenAI's (temperature
/// 1, no top-k, top-p 1, no min-p, no repetition penalty), not llama.cpp's, so that a client
/// written for OpenAI gets what it expects; `--temp 0.8 --top-k 40` etc. give llama-server's
/// behaviour.
#[derive(Debug, Clone, Copy, PartialEq, clap::Args)]
pub struct SamplingDefaults {
    /// Default temperature, >= 0 (0 = greedy).
    #[arg(
        long = "temp",
        visible_alias = "temperature",
        default_value_t = 1.0,
        value_name = "T"
    )]
    pub temperature: f32,
    /// Default top-k (0 = off).
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub top_k: u32,
    /// Default top-p, in (0, 1].
    #[arg(long, default_value_t = 1.0, value_name = "P")]
    pub top_p: f32,
    /// Default min-p, in [0, 1] (0 = off).
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub min_p: f32,
    /// Default repetition penalty over the last 64 tokens (1 = off).
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    pub repeat_penalty: f32,
    /// Default seed (without one, and without `seed` in the request, each request draws a
    /// fresh seed, which its receipt records).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

impl Default for SamplingDefaults {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            seed: None,
        }
    }
}

impl SamplingDefaults {
    /// Checks each range with the engine's own rules
    /// ([`bitnet_engine::SamplingParams::validate`]), naming
    /// the flag.
    fn validate(&self) -> Result<(), ServerError> {
        let params = bitnet_engine::SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k as usize,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            ..bitnet_engine::SamplingParams::default()
        };
        params.validate().map_err(|e| match e {
            bitnet_engine::EngineError::InvalidSetting {
                name,
                value,
                reason,
            } => ServerError::InvalidOption {
                flag: match name {
                    "temperature" => "temp",
                    "top_p" => "top-p",
                    "min_p" => "min-p",
                    "repeat_penalty" => "repeat-penalty",
                    other => other,
                },
                reason: format!("{value} is out of range: it {reason}"),
            },
            other => ServerError::InvalidOption {
                flag: "temp",
                reason: other.to_string(),
            },
        })
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// What to load: a path, the embedded model (no `--model`), or a synthetic preset (seed 0).
    pub model: ModelRef,
    /// Served model id.
    pub model_name: String,
    /// Kernel threads (0 = all).
    pub threads: usize,
    /// Decode batch limit.
    pub max_batch: usize,
    /// Sampling settings for requests that leave them out (`--temp`, `--top-k`, ...).
    pub sampling: SamplingDefaults,
    /// Requested context (clamped to the model's at load time).
    pub ctx: Option<usize>,
    /// KV element type.
    pub kv_type: bitnet_engine::KvType,
    /// Pool size in sessions.
    pub kv_pool_sessions: usize,
    /// Queue limit.
    pub max_queue: usize,
    /// Body limit.
    pub max_body_bytes: usize,
    /// API keys; empty when none is required.
    pub api_keys: Vec<String>,
    /// Prefix-cache reuse across API keys (`--share-prefix-cache`).
    pub share_prefix_cache: bool,
    /// Time allowed for a request body.
    pub body_timeout: std::time::Duration,
    /// Forced kernel.
    pub kernel: Option<String>,
    /// Output head storage.
    pub head_type: bitnet_engine::HeadType,
    /// Receipts log (receipts on when set).
    pub receipts_log: Option<PathBuf>,
    /// Run start-up tuning (only with the `tuning` feature).
    pub tune: bool,
    /// Tuning cache file.
    pub tuning_cache: Option<PathBuf>,
    /// Serve the web chat page at `/` (`--no-webui` turns it off).
    pub webui: bool,
    /// Origins allowed to call the API from a browser (`--cors`): empty = CORS off, `["*"]`
    /// = any origin.
    pub cors: Vec<String>,
}

impl ServerConfig {
    /// Checks `args` and fills defaults.
    pub fn from_args(args: &Args) -> Result<Self, ServerError> {
        let bad = |flag, reason: &str| ServerError::InvalidOption {
            flag,
            reason: reason.to_string(),
        };
        let model = match (&args.model, &args.synthetic) {
            (Some(p), _) => {
                if !p.exists() {
                    return Err(ServerError::ModelNotFound(p.clone()));
                }
                ModelRef::Path(p.clone())
            }
            (None, Some(s)) => {
                ModelRef::synthetic(s, 0).map_err(|_| ServerError::InvalidOption {
                    flag: "synthetic",
                    reason: format!(
                        "unknown preset '{s}' (known: {})",
                        bitnet_engine::synthetic::PRESETS.join(", ")
                    ),
                })?
            }
            (None, None) => ModelRef::Embedded,
        };
        if args.max_batch == 0 {
            return Err(bad("max-batch", "must be at least 1"));
        }
        if args.max_batch > 256 {
            return Err(bad("max-batch", "must be at most 256"));
        }
        if args.ctx == Some(0) {
            return Err(bad("ctx-size", "must be at least 1"));
        }
        let pool = args.kv_pool_sessions.unwrap_or(args.max_batch + 4);
        if pool < args.max_batch {
            return Err(ServerError::InvalidOption {
                flag: "kv-pool-sessions",
                reason: format!("{pool} is less than --max-batch {}", args.max_batch),
            });
        }
        if args.max_queue == 0 {
            return Err(bad("max-queue", "must be at least 1"));
        }
        if args.max_body_bytes < 64 {
            return Err(bad("max-body-bytes", "must be at least 64"));
        }
        if args.http_workers == 0 {
            return Err(bad("http-workers", "must be at least 1"));
        }
        if args.api_key.iter().any(String::is_empty) {
            return Err(bad("api-key", "must not be empty"));
        }
        if args.body_timeout == 0 {
            return Err(bad("body-timeout", "must be at least 1 second"));
        }
        if args.header_timeout == 0 {
            return Err(bad("header-timeout", "must be at least 1 second"));
        }
        if args.max_connections < args.http_workers {
            return Err(ServerError::InvalidOption {
                flag: "max-connections",
                reason: format!(
                    "{} is less than --http-workers {} (each worker needs one)",
                    args.max_connections, args.http_workers
                ),
            });
        }
        if args.receipts_log.is_some() && !cfg!(feature = "receipts") {
            return Err(ServerError::FeatureMissing {
                flag: "receipts-log",
                feature: "receipts",
            });
        }
        if let Some(id) = &args.kernel
            && backend::by_id(id).is_none()
        {
            return Err(ServerError::InvalidOption {
                flag: "kernel",
                reason: format!(
                    "'{id}' is not a kernel this CPU can run (available: {})",
                    backend::available_ids().join(", ")
                ),
            });
        }
        let model_name = args.model_name.clone().unwrap_or_else(|| match &model {
            ModelRef::Path(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "bitnet".to_string()),
            other => other.name(),
        });
        let threads = args
            .threads
            .unwrap_or_else(|| bitnet_engine::threads::default_threads(&model));
        Ok(Self {
            model,
            model_name,
            threads,
            max_batch: args.max_batch,
            sampling: {
                args.sampling.validate()?;
                args.sampling
            },
            ctx: args.ctx,
            kv_type: match args.kv_type {
                KvTypeArg::F32 => bitnet_engine::KvType::F32,
                KvTypeArg::F16 => bitnet_engine::KvType::F16,
            },
            kv_pool_sessions: pool,
            max_queue: args.max_queue,
            max_body_bytes: args.max_body_bytes,
            api_keys: args.api_key.clone(),
            share_prefix_cache: args.share_prefix_cache,
            body_timeout: std::time::Duration::from_secs(args.body_timeout),
            kernel: args.kernel.clone(),
            head_type: args.head_type,
            receipts_log: args.receipts_log.clone(),
            tune: cfg!(feature = "tuning") && !args.no_tune && args.kernel.is_none(),
            tuning_cache: args.tuning_cache.clone(),
            webui: !args.no_webui,
            cors: cors_origins(&args.cors)?,
        })
    }

    /// A configuration for tests and embedding: the model at `path`, the command line's
    /// defaults otherwise (tuning off).
    pub fn for_model(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let model_name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bitnet".to_string());
        Self {
            model: ModelRef::Path(path),
            model_name,
            threads: 0,
            max_batch: 8,
            sampling: SamplingDefaults::default(),
            ctx: None,
            kv_type: bitnet_engine::KvType::F32,
            kv_pool_sessions: 12,
            max_queue: 64,
            max_body_bytes: 1 << 20,
            api_keys: Vec::new(),
            share_prefix_cache: false,
            body_timeout: std::time::Duration::from_secs(15),
            kernel: None,
            head_type: bitnet_engine::HeadType::Stored,
            receipts_log: None,
            tune: false,
            tuning_cache: None,
            webui: true,
            cors: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Args {
        let argv = llama_argv(
            std::iter::once("bitnet-server")
                .chain(args.iter().copied())
                .map(std::ffi::OsString::from),
        );
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn sampling_defaults_from_llama_server_flags() {
        let a = parse(&[
            "--temp",
            "0.5",
            "--top-k",
            "40",
            "--top-p",
            "0.9",
            "--min-p",
            "0.05",
            "--repeat-penalty",
            "1.1",
            "--seed",
            "7",
        ]);
        assert_eq!(
            a.sampling,
            SamplingDefaults {
                temperature: 0.5,
                top_k: 40,
                top_p: 0.9,
                min_p: 0.05,
                repeat_penalty: 1.1,
                seed: Some(7),
            }
        );
        assert_eq!(parse(&[]).sampling, SamplingDefaults::default());
        for (arg, flag) in [
            ("--temp=-1", "temp"),
            ("--top-p=0", "top-p"),
            ("--min-p=1.5", "min-p"),
            ("--repeat-penalty=0", "repeat-penalty"),
        ] {
            let err = ServerConfig::from_args(&parse(&[arg])).unwrap_err();
            assert!(err.to_string().contains(flag), "{arg}: {err}");
        }
    }

    #[test]
    fn llama_server_spellings() {
        let a = parse(&[
            "-m",
            "model.gguf",
            "-c",
            "512",
            "-t",
            "3",
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "-np",
            "4",
        ]);
        assert_eq!(a.model.as_deref(), Some(std::path::Path::new("model.gguf")));
        assert_eq!(a.ctx, Some(512));
        assert_eq!(a.threads, Some(3));
        assert_eq!(a.host.to_string(), "0.0.0.0");
        assert_eq!(a.port, 9000);
        assert_eq!(a.max_batch, 4);
        assert_eq!(parse(&["--parallel", "2"]).max_batch, 2);
        assert_eq!(parse(&["--np", "3"]).max_batch, 3);
        assert_eq!(parse(&["-np=5"]).max_batch, 5);
        assert_eq!(parse(&["--max-batch", "6"]).max_batch, 6);
        assert_eq!(parse(&["--ctx-size", "64"]).ctx, Some(64));
    }

    #[test]
    fn only_the_exact_np_token_is_rewritten() {
        let argv = llama_argv(["x", "--model-name", "-npx", "-np", "2"].map(Into::into));
        assert_eq!(argv, ["x", "--model-name", "-npx", "--parallel", "2"]);
    }

    #[test]
    fn threads_default_from_the_model_size() {
        // The embedded model is small: one thread, as bitnet-cli picks.
        let c = ServerConfig::from_args(&parse(&[])).unwrap();
        assert_eq!(c.threads, 1);
        // -t 0 keeps meaning every logical core (the engine resolves 0).
        let c = ServerConfig::from_args(&parse(&["-t", "0"])).unwrap();
        assert_eq!(c.threads, 0);
        // A synthetic 2B4T (size unknown before it is built) counts as large.
        let c = ServerConfig::from_args(&parse(&["--synthetic", "2b4t"])).unwrap();
        assert_eq!(c.threads, bitnet_engine::threads::physical_cores());
    }
}
