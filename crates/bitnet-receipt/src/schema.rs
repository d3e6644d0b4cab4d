//! The receipt schema, version 2: one typed record of one generation, written by every front
//! end (`bitnet-cli run --receipt`, the server's `receipts` feature) and read by
//! `verify-receipt`.
//!
//! Design decisions:
//! - **Everything needed to rerun** is in [`Settings`] and [`Prompt`] (sampling with its
//!   seed, limits, stop strings *and* stop ids, activation quantisation, head and KV types,
//!   context, prefill batch, and the output [`Constraint`] when there was one): a verifier
//!   never guesses a default.
//! - **Facts are read, not written as constants**: kernel ids and call counts come from the
//!   engine's dispatch counters, CPU features from detection, the model from
//!   [`ModelIdentity::of`].
//! - **Front-end specifics are optional sections**: the server adds [`ServerInfo`] (request
//!   ids, prefix-cache hits, batching) and tuning; the CLI leaves them out. Fields a front
//!   end does not measure are `None` and omitted from the JSON rather than written as 0.
//! - **Names through one function**: finish reasons ([`bitnet_engine::FinishReason::as_str`]), KV and head types
//!   ([`kv_type_name`], `HeadType::as_str`), model sources ([`source_name`]).
//! - Unknown fields are ignored when reading, so a newer writer's extra facts do not break
//!   an older verifier; a different `schema_version` is refused with a clear message.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitnet_engine::backend::tuning::TuneResult;
use bitnet_engine::{
    FinishReason, GenerationParams, GenerationStats, Grammar, KeyOrder, KvType, Model, ModelConfig,
    ModelSource, SamplingParams, SessionOptions,
};
use serde::{Deserialize, Serialize};

use crate::SCHEMA_VERSION;
use crate::error::{ReadError, SchemaError};
use crate::identity::ModelIdentity;

/// A receipt: what ran, on what, with which settings, and what came out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// Format version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The model: identity (reference and hash), name, architecture.
    pub model: ModelInfo,
    /// The model's shapes.
    pub shapes: Shapes,
    /// The kernels that ran.
    pub kernels: KernelInfo,
    /// Everything needed to rerun.
    pub settings: Settings,
    /// The prompt as token ids (and text, when it was text).
    pub prompt: Prompt,
    /// The generated tokens.
    pub output: Output,
    /// How long it took.
    pub timings: Timings,
    /// The program that wrote the receipt.
    pub tool: Tool,
    /// When it was written (Unix seconds).
    pub created_unix: u64,
    /// Facts only a server has; absent in CLI receipts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerInfo>,
}

/// The model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `ref`, `bytes`, `sha256` (see [`ModelIdentity`]).
    #[serde(flatten)]
    pub identity: ModelIdentity,
    /// A short name (the served model id, or the file name).
    pub name: String,
    /// `general.architecture` or equivalent.
    pub architecture: String,
    /// `gguf`, `huggingface` or `synthetic` ([`source_name`]).
    pub source: String,
}

impl ModelInfo {
    /// The model section for a loaded `model` with `identity`, served or shown as `name`.
    pub fn new(identity: ModelIdentity, model: &Model, name: impl Into<String>) -> Self {
        Self {
            identity,
            name: name.into(),
            architecture: model.config().architecture.clone(),
            source: source_name(model.source()).to_string(),
        }
    }
}

/// The model's shapes (enough to tell two models of one family apart at a glance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shapes {
    /// Vocabulary size.
    pub vocab: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Transformer blocks.
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

impl Shapes {
    /// The shapes of `c`.
    pub fn of(c: &ModelConfig) -> Self {
        Self {
            vocab: c.vocab_size,
            hidden: c.hidden_size,
            layers: c.n_layers,
            heads: c.n_heads,
            kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            ffn: c.intermediate_size,
            ctx: c.context_length,
        }
    }
}

/// One kernel and how often the dispatcher ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatched {
    /// Kernel id (e.g. `i2s/avx2:gemv`).
    pub id: String,
    /// Calls.
    pub calls: u64,
}

/// The kernels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelInfo {
    /// The ternary implementation the model ran (e.g. `i2s/avx2`).
    pub id: String,
    /// Threads per kernel call.
    pub threads: usize,
    /// What the dispatcher ran, with call counts, read from its counters.
    pub dispatched: Vec<Dispatched>,
    /// CPU features detected.
    pub cpu_features: Vec<String>,
    /// Whether start-up tuning chose `id` and `threads`.
    pub tuned: bool,
    /// The tuning measurements, when tuned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<TuneResult>,
}

impl KernelInfo {
    /// The kernels of `model`, with `dispatched` call counts (from
    /// `model.kernels().dispatch_counts()`, or a difference of two snapshots); not tuned.
    pub fn of(model: &Model, dispatched: &[(String, u64)]) -> Self {
        let k = model.kernels();
        Self {
            id: k.backend().id().to_string(),
            threads: k.threads(),
            dispatched: dispatched
                .iter()
                .map(|(id, calls)| Dispatched {
                    id: id.clone(),
                    calls: *calls,
                })
                .collect(),
            cpu_features: bitnet_engine::backend::cpu_features()
                .into_iter()
                .map(str::to_string)
                .collect(),
            tuned: false,
            tuning: None,
        }
    }
}

/// Settings of the generation: everything a rerun needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Temperature (0 = greedy).
    pub temperature: f32,
    /// Top-k (0 = all).
    pub top_k: usize,
    /// Top-p.
    pub top_p: f32,
    /// Min-p.
    pub min_p: f32,
    /// Repetition penalty (1 = off).
    pub repeat_penalty: f32,
    /// Tokens the penalty looks back at.
    pub repeat_last_n: usize,
    /// OpenAI's presence penalty (0 = off). Absent from receipts written before it existed
    /// and left out when 0, so those receipts keep their exact bytes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub presence_penalty: f32,
    /// OpenAI's frequency penalty (0 = off); written like `presence_penalty`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frequency_penalty: f32,
    /// Seed of the sampler.
    pub seed: u64,
    /// Most new tokens.
    pub max_tokens: usize,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Token ids that end generation.
    pub stop_ids: Vec<u32>,
    /// Activations quantised to int8 (the model as trained).
    pub act_quant: bool,
    /// Output head storage (`stored`, `q8_0`, `q6_k`, `q4_k`, `q4_k_rescored`).
    pub head_type: String,
    /// KV cache element type (`f32`, `f16`).
    pub kv_type: String,
    /// Session context length.
    pub ctx: usize,
    /// Most prompt tokens per forward batch.
    pub prefill_batch: usize,
    /// Kernel implementation the model was loaded with explicitly (forced or tuned), if any.
    pub kernel: Option<String>,
    /// The output constraint (the server's `response_format`), when the output was
    /// constrained; absent otherwise, so unconstrained receipts keep their exact bytes (and
    /// receipts written before it existed read as unconstrained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<Constraint>,
}

/// What the output was constrained to, as data a verifier compiles into the same
/// [`Grammar`] the writer decoded with (a compiled grammar is not data; its source is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraint {
    /// Which constraint.
    pub kind: ConstraintKind,
    /// The JSON Schema (`json_schema`; absent there when the request gave none: any JSON
    /// value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    /// The order the schema's text wrote each object's keys in, by JSON pointer relative to
    /// the schema (`""` is the schema itself): `properties` are generated in the written
    /// order, which the schema above (a JSON object, whose keys readers sort) cannot keep.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub property_order: BTreeMap<String, Vec<String>>,
}

/// The kinds of [`Constraint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    /// Any JSON object.
    JsonObject,
    /// A value valid against [`Constraint::schema`].
    JsonSchema,
}

impl Constraint {
    /// Any JSON object.
    pub fn json_object() -> Self {
        Self {
            kind: ConstraintKind::JsonObject,
            schema: None,
            property_order: BTreeMap::new(),
        }
    }

    /// A value valid against `schema` (any JSON value when `None`), its objects' keys in
    /// `property_order` (see the field).
    pub fn json_schema(
        schema: Option<serde_json::Value>,
        property_order: BTreeMap<String, Vec<String>>,
    ) -> Self {
        Self {
            kind: ConstraintKind::JsonSchema,
            schema,
            property_order,
        }
    }

    /// The grammar this constraint decodes with: the one the server compiled for the request
    /// (same schema, same key order), so a rerun samples from the same masked logits.
    pub fn grammar(&self) -> Result<Grammar, bitnet_engine::SchemaError> {
        match self.kind {
            ConstraintKind::JsonObject => Ok(Grammar::any_object()),
            ConstraintKind::JsonSchema => {
                let any = serde_json::Value::Bool(true);
                let order: KeyOrder = self
                    .property_order
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Grammar::from_schema_in_order(self.schema.as_ref().unwrap_or(&any), &order, "")
            }
        }
    }
}

impl Settings {
    /// The settings of a generation with `params` on `model`, in a session of `ctx` positions
    /// made with `session`, the model loaded with `kernel` forced (if any).
    pub fn new(
        model: &Model,
        session: &SessionOptions,
        ctx: usize,
        params: &GenerationParams,
        kernel: Option<String>,
    ) -> Self {
        let s = &params.sampling;
        Self {
            temperature: s.temperature,
            top_k: s.top_k,
            top_p: s.top_p,
            min_p: s.min_p,
            repeat_penalty: s.repeat_penalty,
            repeat_last_n: s.repeat_last_n,
            presence_penalty: s.presence_penalty,
            frequency_penalty: s.frequency_penalty,
            seed: s.seed,
            max_tokens: params.max_tokens,
            stop: params.stop_strings.clone(),
            stop_ids: params.stop_ids.clone(),
            act_quant: model.activation_quantization(),
            head_type: model.head_type().as_str().to_string(),
            kv_type: kv_type_name(session.kv_type).to_string(),
            ctx,
            prefill_batch: session.max_batch,
            kernel,
            constraint: None,
        }
    }

    /// The sampling settings.
    pub fn sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed,
        }
    }
}

/// Whether a penalty is 0 (then it is not written).
fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

/// The prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// The text (after the chat template, when applied), when the prompt was text.
    pub text: Option<String>,
    /// Whether the chat template was applied.
    pub chat: bool,
    /// Token ids fed to the model.
    pub ids: Vec<u32>,
}

/// The output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// Generated ids (a stop id that ended generation is not among them).
    pub ids: Vec<u32>,
    /// Generated text, when the model has a tokenizer.
    pub text: Option<String>,
    /// `length`, `stop_token`, `stop_string` or `context_full` ([`bitnet_engine::FinishReason::as_str`]).
    pub finish_reason: String,
}

impl Output {
    /// The output section.
    pub fn new(ids: Vec<u32>, text: Option<String>, finish: FinishReason) -> Self {
        Self {
            ids,
            text,
            finish_reason: finish.as_str().to_string(),
        }
    }
}

/// Timings in milliseconds (and rates). Which ones a front end measures differs; those it
/// does not are omitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Model load (CLI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_ms: Option<f64>,
    /// Waiting in the queue (server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_ms: Option<f64>,
    /// Prompt processing.
    pub prefill_ms: f64,
    /// Arrival to first token (server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// Generation after the prompt.
    pub decode_ms: f64,
    /// The whole generation (server: arrival to end).
    pub total_ms: f64,
    /// Prompt tokens processed per second.
    pub prompt_tps: f64,
    /// Generated tokens per second.
    pub gen_tps: f64,
}

impl Timings {
    /// Timings of a [`bitnet_engine::Generation`] (`stats`), after a model load of `load`.
    pub fn from_stats(stats: &GenerationStats, load: Option<Duration>) -> Self {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Self {
            load_ms: load.map(ms),
            queue_ms: None,
            prefill_ms: ms(stats.prefill),
            ttft_ms: None,
            decode_ms: ms(stats.decode),
            total_ms: ms(stats.prefill + stats.decode),
            prompt_tps: stats.prefill_tokens_per_second(),
            gen_tps: stats.decode_tokens_per_second(),
        }
    }
}

/// The program that wrote the receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// `bitnet-cli`, `bitnet-server`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// Facts only a server has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// `completion`.
    pub kind: String,
    /// Receipt id (= the response id, `cmpl-…`/`chatcmpl-…`).
    pub id: String,
    /// The HTTP request id (`x-request-id`).
    pub request_id: String,
    /// `/v1/completions` or `/v1/chat/completions`.
    pub endpoint: String,
    /// Prompt tokens served from the KV pool's prefix cache (not recomputed).
    pub cached_tokens: usize,
    /// How the request was batched.
    pub batching: Batching,
    /// What `kernels.dispatched` counts on a server.
    pub dispatched_note: String,
}

/// Batching facts of a served request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batching {
    /// The KV session that served it.
    pub session: u64,
    /// Largest decode batch it was part of.
    pub max_decode_batch: usize,
}

/// What a front end knows after one generation; [`Receipt::new`] turns it into a receipt.
pub struct Run<'a> {
    /// The loaded model (after the generation: its counters are final).
    pub model: &'a Model,
    /// Its identity ([`ModelIdentity::of`], computed once per model).
    pub identity: ModelIdentity,
    /// Its short name.
    pub name: String,
    /// The session options of the generation.
    pub session: &'a SessionOptions,
    /// The session's context length.
    pub ctx: usize,
    /// The generation settings.
    pub params: &'a GenerationParams,
    /// Kernel id the model was loaded with explicitly, if any.
    pub kernel: Option<String>,
    /// Kernel dispatch counts of the generation.
    pub dispatched: &'a [(String, u64)],
    /// The prompt.
    pub prompt: Prompt,
    /// The output.
    pub output: Output,
    /// Timings.
    pub timings: Timings,
    /// The writing program.
    pub tool: Tool,
}

impl Receipt {
    /// The receipt of `run`, stamped now, without a server section.
    pub fn new(run: Run<'_>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            shapes: Shapes::of(run.model.config()),
            kernels: KernelInfo::of(run.model, run.dispatched),
            settings: Settings::new(run.model, run.session, run.ctx, run.params, run.kernel),
            model: ModelInfo::new(run.identity, run.model, run.name),
            prompt: run.prompt,
            output: run.output,
            timings: run.timings,
            tool: run.tool,
            created_unix: unix_now(),
            server: None,
        }
    }

    /// Parses a receipt, checking the version before the fields so that an old receipt gets
    /// "rerun to get a v2 receipt" rather than a missing-field message.
    pub fn parse(text: &str) -> Result<Self, SchemaError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| SchemaError::Json(format!("invalid JSON: {e}")))?;
        let obj = value.as_object().ok_or(SchemaError::NotAnObject)?;
        if let Some(kind) = obj.get("kind").and_then(serde_json::Value::as_str)
            && kind != "completion"
        {
            return Err(SchemaError::NotAGeneration(kind.to_string()));
        }
        match obj.get("schema_version").map(serde_json::Value::as_u64) {
            None => return Err(SchemaError::MissingVersion),
            Some(Some(v)) if v == u64::from(SCHEMA_VERSION) => {}
            Some(Some(1)) => return Err(SchemaError::Version1),
            Some(Some(v)) => return Err(SchemaError::UnsupportedVersion(v)),
            Some(None) => {
                return Err(SchemaError::Json(
                    "schema_version is not an unsigned integer".into(),
                ));
            }
        }
        serde_json::from_value(value).map_err(|e| SchemaError::Json(e.to_string()))
    }

    /// Reads and parses a receipt file, naming it on failure.
    pub fn read(path: &Path) -> Result<Self, ReadError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|source| ReadError::Invalid {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Pretty JSON with a final newline (what receipt files hold). Fails only for a model
    /// path that is not UTF-8 (which [`ModelIdentity::of`] refuses to record).
    pub fn to_json_pretty(&self) -> Result<String, serde_json::Error> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }
}

/// The name receipts use for a KV cache type.
pub fn kv_type_name(t: KvType) -> &'static str {
    match t {
        KvType::F32 => "f32",
        KvType::F16 => "f16",
    }
}

/// The KV cache type named `name` ([`kv_type_name`]'s inverse).
pub fn parse_kv_type(name: &str) -> Result<KvType, String> {
    match name {
        "f32" => Ok(KvType::F32),
        "f16" => Ok(KvType::F16),
        other => Err(format!("unknown KV type '{other}' (expected f32 or f16)")),
    }
}

/// The name receipts use for where a model came from.
pub fn source_name(s: &ModelSource) -> &'static str {
    match s {
        ModelSource::Gguf => "gguf",
        ModelSource::HuggingFace => "huggingface",
        ModelSource::Synthetic => "synthetic",
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
