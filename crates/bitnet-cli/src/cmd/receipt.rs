//! Receipts: a JSON record of one `run` that lets anyone check the computation later.
//!
//! A receipt names the model by size and SHA-256, records the settings, prompt and output
//! token ids, and the kernels the dispatcher actually ran (ids and call counts read from the
//! engine's counters after the run, never written as constants). `verify-receipt` hashes the
//! model again, reruns the generation with the recorded settings (greedy or seeded, so it is
//! deterministic) and compares the output token by token. Kernel ids may legitimately differ
//! on another CPU; the output may not (every SIMD kernel equals the scalar one exactly).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use bitnet_engine::{
    FinishReason, Generation, GenerationParams, GenerationStats, HeadType, LoadOptions, Model,
    SamplingParams, SessionOptions,
};
use serde::{Deserialize, Serialize};

use crate::args::{KvTypeArg, VerifyReceiptArgs};
use crate::common;
use crate::error::CliError;

/// The receipt format version this tool writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// What `run` knows at the end, from which the JSON output and the receipt are built.
pub struct RunRecord<'a> {
    /// The model path as given.
    pub model_path: &'a Path,
    /// The loaded model (after the run: its dispatch counters are final).
    pub model: &'a Model,
    /// Time to load the model.
    pub load_time: Duration,
    /// The session's context length.
    pub session_ctx: usize,
    /// The session options used.
    pub session_opts: &'a SessionOptions,
    /// Generation settings.
    pub params: &'a GenerationParams,
    /// The prompt text, when the prompt was text.
    pub prompt_text: Option<String>,
    /// Whether the chat template was applied.
    pub chat: bool,
    /// Kernel forced with `--kernel`.
    pub kernel: Option<String>,
    /// Prompt token ids (after templating and tokenisation).
    pub prompt_ids: Vec<u32>,
    /// Generated ids.
    pub output_ids: Vec<u32>,
    /// Generated text (when there is a tokenizer).
    pub output_text: Option<String>,
    /// Why generation ended.
    pub finish: FinishReason,
    /// Timings.
    pub stats: GenerationStats,
}

/// The name written for a finish reason.
pub fn finish_name(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "length",
        FinishReason::StopToken => "stop_token",
        FinishReason::StopString => "stop_string",
        FinishReason::ContextFull => "context_full",
    }
}

/// The `--json-out` record of a run.
pub fn run_json(r: &RunRecord) -> serde_json::Value {
    serde_json::json!({
        "model": r.model_path.display().to_string(),
        "prompt": { "text": r.prompt_text, "ids": r.prompt_ids, "chat": r.chat },
        "output": {
            "ids": r.output_ids,
            "text": r.output_text,
            "finish_reason": finish_name(r.finish),
        },
        "settings": Settings::from_record(r),
        "timings": Timings::from_record(r),
    })
}

/// A receipt (schema version 1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Receipt {
    /// Format version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The model file.
    pub model: ModelInfo,
    /// The model's shapes.
    pub shapes: Shapes,
    /// Kernels that ran.
    pub kernels: KernelInfo,
    /// Everything needed to rerun.
    pub settings: Settings,
    /// The prompt.
    pub prompt: PromptInfo,
    /// The output.
    pub output: OutputInfo,
    /// How long it took.
    pub timings: Timings,
    /// The tool that wrote it.
    pub tool: ToolInfo,
    /// When it was written (Unix seconds).
    pub created_unix: u64,
}

/// The model file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    /// Absolute path.
    pub path: PathBuf,
    /// Size in bytes (a directory: the sum of its files).
    pub bytes: u64,
    /// SHA-256 of the file (a directory: see `hash_model`).
    pub sha256: String,
    /// `general.architecture` or equivalent.
    pub architecture: String,
    /// `gguf`, `huggingface` or `synthetic`.
    pub source: String,
}

/// The model's shapes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Shapes {
    /// Vocabulary size.
    pub vocab: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// FFN intermediate size.
    pub ffn: usize,
    /// Trained context length.
    pub ctx: usize,
}

/// One kernel and how often the dispatcher ran it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Dispatched {
    /// Kernel id.
    pub id: String,
    /// Calls.
    pub calls: u64,
}

/// The kernels.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KernelInfo {
    /// The implementation chosen for this CPU.
    pub isa: String,
    /// What the dispatcher ran, with call counts.
    pub dispatched: Vec<Dispatched>,
    /// Worker threads.
    pub threads: usize,
    /// CPU features detected.
    pub cpu_features: Vec<String>,
}

/// Settings of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    /// Temperature (0 = greedy).
    pub temperature: f32,
    /// Top-k.
    pub top_k: usize,
    /// Top-p.
    pub top_p: f32,
    /// Min-p.
    pub min_p: f32,
    /// Repetition penalty.
    pub repeat_penalty: f32,
    /// Tokens the penalty looks back at.
    pub repeat_last_n: usize,
    /// Seed.
    pub seed: u64,
    /// Most new tokens.
    pub max_tokens: usize,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Stop ids.
    pub stop_ids: Vec<u32>,
    /// Activations quantised to int8.
    pub act_quant: bool,
    /// KV cache type (`f32`, `f16`).
    pub kv_type: String,
    /// Session context length.
    pub ctx: usize,
    /// Prefill batch size.
    pub max_batch: usize,
    /// Kernel forced with `--kernel`, if any.
    pub kernel: Option<String>,
    /// Output head storage (`stored`, `q8_0`); receipts written before the option existed
    /// read as `stored`.
    #[serde(default = "stored_head")]
    pub head_type: String,
}

fn stored_head() -> String {
    HeadType::Stored.to_string()
}

impl Settings {
    fn from_record(r: &RunRecord) -> Self {
        let s = &r.params.sampling;
        Self {
            temperature: s.temperature,
            top_k: s.top_k,
            top_p: s.top_p,
            min_p: s.min_p,
            repeat_penalty: s.repeat_penalty,
            repeat_last_n: s.repeat_last_n,
            seed: s.seed,
            max_tokens: r.params.max_tokens,
            stop: r.params.stop_strings.clone(),
            stop_ids: r.params.stop_ids.clone(),
            act_quant: r.model.activation_quantization(),
            kv_type: match r.session_opts.kv_type {
                bitnet_engine::KvType::F16 => "f16",
                _ => "f32",
            }
            .to_string(),
            ctx: r.session_ctx,
            max_batch: r.session_opts.max_batch,
            kernel: r.kernel.clone(),
            head_type: r.model.head_type().to_string(),
        }
    }
}

/// The prompt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PromptInfo {
    /// The text, when given as text.
    pub text: Option<String>,
    /// Whether the chat template was applied.
    pub chat: bool,
    /// Token ids fed to the model.
    pub ids: Vec<u32>,
}

/// The output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputInfo {
    /// Generated ids.
    pub ids: Vec<u32>,
    /// Generated text (when the model has a tokenizer).
    pub text: Option<String>,
    /// `length`, `stop_token`, `stop_string` or `context_full`.
    pub finish_reason: String,
}

/// Timings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    /// Model load.
    pub load_ms: f64,
    /// Prompt processing.
    pub prefill_ms: f64,
    /// Generation.
    pub decode_ms: f64,
    /// Prompt tokens per second.
    pub prompt_tps: f64,
    /// Generated tokens per second.
    pub gen_tps: f64,
}

impl Timings {
    fn from_record(r: &RunRecord) -> Self {
        Self {
            load_ms: r.load_time.as_secs_f64() * 1e3,
            prefill_ms: r.stats.prefill.as_secs_f64() * 1e3,
            decode_ms: r.stats.decode.as_secs_f64() * 1e3,
            prompt_tps: r.stats.prefill_tokens_per_second(),
            gen_tps: r.stats.decode_tokens_per_second(),
        }
    }
}

/// The tool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolInfo {
    /// `bitnet-cli`.
    pub name: String,
    /// Its version.
    pub version: String,
}

fn source_name(model: &Model) -> &'static str {
    match model.source() {
        bitnet_engine::ModelSource::Gguf => "gguf",
        bitnet_engine::ModelSource::HuggingFace => "huggingface",
        bitnet_engine::ModelSource::Synthetic => "synthetic",
    }
}

fn kernel_info(model: &Model) -> KernelInfo {
    let k = model.kernels();
    KernelInfo {
        isa: k.ops().id().to_string(),
        dispatched: k
            .dispatch_counts()
            .into_iter()
            .map(|(id, calls)| Dispatched {
                id: id.to_string(),
                calls,
            })
            .collect(),
        threads: k.threads(),
        cpu_features: bitnet_kernels::cpu_features()
            .into_iter()
            .map(str::to_string)
            .collect(),
    }
}

impl Receipt {
    /// Builds the receipt of a finished run (hashes the model file).
    pub fn build(r: &RunRecord) -> Result<Self> {
        let path = if common::is_embedded(r.model_path) {
            r.model_path.to_path_buf()
        } else {
            std::fs::canonicalize(r.model_path).map_err(|e| CliError::file(r.model_path, &e))?
        };
        let (bytes, sha256) = common::hash_model(&path)?;
        let c = r.model.config();
        Ok(Self {
            schema_version: SCHEMA_VERSION,
            model: ModelInfo {
                path,
                bytes,
                sha256,
                architecture: c.architecture.clone(),
                source: source_name(r.model).to_string(),
            },
            shapes: Shapes {
                vocab: c.vocab_size,
                hidden: c.hidden_size,
                layers: c.n_layers,
                heads: c.n_heads,
                kv_heads: c.n_kv_heads,
                head_dim: c.head_dim,
                ffn: c.intermediate_size,
                ctx: c.context_length,
            },
            kernels: kernel_info(r.model),
            settings: Settings::from_record(r),
            prompt: PromptInfo {
                text: r.prompt_text.clone(),
                chat: r.chat,
                ids: r.prompt_ids.clone(),
            },
            output: OutputInfo {
                ids: r.output_ids.clone(),
                text: r.output_text.clone(),
                finish_reason: finish_name(r.finish).to_string(),
            },
            timings: Timings::from_record(r),
            tool: ToolInfo {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            created_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        })
    }
}

fn mismatch(msg: String) -> anyhow::Error {
    CliError::ReceiptMismatch(msg).into()
}

/// `verify-receipt`: checks the model's size and hash, reruns, compares the output.
pub fn verify(args: VerifyReceiptArgs) -> Result<()> {
    let text = common::read_text(&args.file)?;
    let bad = |reason: String| CliError::BadReceipt {
        path: args.file.clone(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    match value.get("schema_version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(SCHEMA_VERSION) => {}
        Some(v) => {
            return Err(bad(format!(
                "schema_version {v} is not supported (this tool reads {SCHEMA_VERSION})"
            ))
            .into());
        }
        None => return Err(bad("missing schema_version".into()).into()),
    }
    let receipt: Receipt = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;

    let path = args
        .model
        .clone()
        .unwrap_or_else(|| receipt.model.path.clone());
    common::require_exists(&path)?;
    let (bytes, sha256) = common::hash_model(&path)?;
    if bytes != receipt.model.bytes {
        return Err(mismatch(format!(
            "model size differs: receipt has {} bytes, {} has {}",
            receipt.model.bytes,
            path.display(),
            bytes
        )));
    }
    if sha256 != receipt.model.sha256 {
        return Err(mismatch(format!(
            "model sha256 differs: receipt has {}, {} has {}",
            receipt.model.sha256,
            path.display(),
            sha256
        )));
    }

    let s = &receipt.settings;
    let opts = LoadOptions {
        threads: args.threads,
        activation_quantization: s.act_quant,
        kernel: s.kernel.clone(),
        head_type: s
            .head_type
            .parse()
            .map_err(|e: String| bad(format!("settings.head_type: {e}")))?,
    };
    let (model, _) = common::load_model_with(&path, &opts)?;
    let kv_type = match s.kv_type.as_str() {
        "f32" => KvTypeArg::F32,
        "f16" => KvTypeArg::F16,
        other => return Err(bad(format!("unknown kv_type '{other}'")).into()),
    };
    let mut session = model.session(&SessionOptions {
        context: Some(s.ctx),
        kv_type: kv_type.engine(),
        max_batch: s.max_batch,
    });
    let params = GenerationParams {
        max_tokens: s.max_tokens,
        sampling: SamplingParams {
            temperature: s.temperature,
            top_k: s.top_k,
            top_p: s.top_p,
            min_p: s.min_p,
            repeat_penalty: s.repeat_penalty,
            repeat_last_n: s.repeat_last_n,
            seed: s.seed,
        },
        stop_ids: s.stop_ids.clone(),
        stop_strings: s.stop.clone(),
    };
    let generation = Generation::new(
        &model,
        &mut session,
        &receipt.prompt.ids,
        params,
        model.tokenizer(),
    )?;
    let (text, ids, finish, _) = generation.collect_text()?;

    let expected = &receipt.output.ids;
    if let Some(i) = (0..expected.len().min(ids.len())).find(|&i| expected[i] != ids[i]) {
        return Err(mismatch(format!(
            "output token {i} differs: receipt has {}, rerun gave {}",
            expected[i], ids[i]
        )));
    }
    if expected.len() != ids.len() {
        return Err(mismatch(format!(
            "output length differs: receipt has {} tokens, rerun gave {}",
            expected.len(),
            ids.len()
        )));
    }
    if let Some(expected_text) = &receipt.output.text
        && model.tokenizer().is_some()
        && *expected_text != text
    {
        return Err(mismatch(format!(
            "output text differs: receipt has {expected_text:?}, rerun gave {text:?}"
        )));
    }
    if finish_name(finish) != receipt.output.finish_reason {
        return Err(mismatch(format!(
            "finish reason differs: receipt has {}, rerun gave {}",
            receipt.output.finish_reason,
            finish_name(finish)
        )));
    }
    let now = kernel_info(&model);
    let ids_then: Vec<&str> = receipt
        .kernels
        .dispatched
        .iter()
        .map(|d| d.id.as_str())
        .collect();
    let ids_now: Vec<&str> = now.dispatched.iter().map(|d| d.id.as_str()).collect();
    if ids_then != ids_now {
        eprintln!(
            "note: kernels differ (receipt: {}; this machine: {}); the output matches regardless",
            ids_then.join(", "),
            ids_now.join(", ")
        );
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "receipt verified: {} tokens match", ids.len())?;
    out.flush()?;
    Ok(())
}
