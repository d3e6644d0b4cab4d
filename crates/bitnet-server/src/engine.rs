//! The loaded model and everything fixed at start-up: context, chat template, stop ids, the
//! kernel in use (tuned or not) and, with receipts on, the model's identity.
//!
//! The identity is `bitnet_receipt::ModelIdentity` (the one rule every front end uses) and is
//! computed here, on the loader thread, because hashing a large model takes seconds; it is
//! computed only when receipts are on.
//!
//! The model is loaded with [`Model::open_in_memory`]: the GGUF file is read, not mapped, and
//! nothing the server runs on refers to the file after the load, so truncating or overwriting
//! the served file (`cp new.gguf served.gguf`) cannot crash the server with SIGBUS or change
//! its weights mid-stream (issue 14). The cost is the model's weights in anonymous memory
//! rather than shared page cache; llama.cpp maps by default and has the SIGBUS hazard.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bitnet_engine::backend::tuning::TuneResult;
use bitnet_engine::{KvType, LoadOptions, Model, ModelRef, SessionOptions};
use bitnet_tokenizer::ChatTemplate;
use serde::Serialize;

use crate::config::ServerConfig;
use crate::error::ServerError;

/// Default context when `--ctx-size` is not given: the model's, at most this (a full 4096-position
/// f32 cache of the 2B4T model is 630 MB per session).
pub const DEFAULT_MAX_CTX: usize = 2048;

/// Tokens per prefill forward call (the engine's GEMM batch for prompts).
pub const PREFILL_BATCH: usize = 64;

/// The kernel configuration in use and how it was chosen.
#[derive(Debug, Clone, Serialize)]
pub struct KernelChoice {
    /// Kernel implementation id.
    pub id: String,
    /// Worker threads.
    pub threads: usize,
    /// Chosen by start-up tuning.
    pub tuned: bool,
    /// The tuning measurements (`tuning` feature).
    pub tuning: Option<TuneResult>,
}

/// Everything the HTTP layer and the scheduler share about the model.
pub struct Engine {
    /// The model.
    pub model: Arc<Model>,
    /// What was loaded (receipts record it so a verifier can load it again).
    pub model_ref: ModelRef,
    /// Served model id.
    pub name: String,
    /// Context of every session.
    pub ctx: usize,
    /// Options of every session.
    pub session_opts: SessionOptions,
    /// The chat template (the model's, or BitNet 2B4T's when it has none); `None` without a
    /// tokenizer.
    pub chat: Option<ChatTemplate>,
    /// BOS text for the template.
    pub bos_token: String,
    /// EOS text for the template.
    pub eos_token: String,
    /// Ids that end generation.
    pub stop_ids: Vec<u32>,
    /// Whether text prompts get BOS.
    pub add_bos: bool,
    /// When the model was loaded (Unix seconds; the `created` of `/v1/models`).
    pub created: u64,
    /// The kernel in use.
    pub kernel: KernelChoice,
    /// The options the model was loaded with (after tuning): what receipts record.
    pub load_options: LoadOptions,
    /// The model's identity for receipts; `None` when receipts are off (the model is not
    /// hashed then).
    #[cfg(feature = "receipts")]
    pub identity: Option<bitnet_receipt::ModelIdentity>,
    /// Time to load (and tune).
    pub load_ms: f64,
    /// What requests that leave out a sampling field get (`--temp`, `--top-k`, ...).
    pub sampling_defaults: crate::config::SamplingDefaults,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("name", &self.name)
            .field("ctx", &self.ctx)
            .field("kernel", &self.kernel)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads (and, with the `tuning` feature, tunes) the model of `cfg`. Blocking.
    pub fn load(cfg: &ServerConfig) -> Result<Self, ServerError> {
        let start = Instant::now();
        #[cfg_attr(not(feature = "tuning"), allow(unused_mut))]
        let mut opts = LoadOptions {
            threads: cfg.threads,
            activation_quantization: true,
            kernel: cfg.kernel.clone(),
            head_type: cfg.head_type,
        };
        #[cfg_attr(not(feature = "tuning"), allow(unused_mut))]
        let mut model = Model::open_in_memory(&cfg.model, &opts)?;
        #[cfg_attr(not(feature = "tuning"), allow(unused_mut))]
        let mut kernel = KernelChoice {
            id: model.kernels().backend().id().to_string(),
            threads: model.kernels().threads(),
            tuned: false,
            tuning: None,
        };
        #[cfg(feature = "tuning")]
        if cfg.tune
            && let Some(result) = crate::tuning::tune(
                model.config(),
                &cfg.model.to_string(),
                cfg.threads,
                cfg.max_batch,
                cfg.tuning_cache.as_deref(),
            )
        {
            tracing::info!(
                kernel = %result.kernel,
                threads = result.threads,
                cached = result.cached,
                "tuning chose a kernel configuration"
            );
            if result.kernel != kernel.id || result.threads != kernel.threads {
                opts.kernel = Some(result.kernel.clone());
                opts.threads = result.threads;
                model = Model::open_in_memory(&cfg.model, &opts)?;
            }
            kernel = KernelChoice {
                id: model.kernels().backend().id().to_string(),
                threads: model.kernels().threads(),
                tuned: true,
                tuning: Some(result),
            };
        }
        let c = model.config();
        let ctx = cfg
            .ctx
            .unwrap_or(c.context_length.min(DEFAULT_MAX_CTX))
            .min(c.context_length);
        let session_opts = SessionOptions {
            context: Some(ctx),
            kv_type: cfg.kv_type,
            max_batch: PREFILL_BATCH,
        };
        let (chat, bos_token, eos_token, stop_ids, add_bos) = match model.tokenizer() {
            Some(tok) => {
                let chat = match tok.chat_template() {
                    Some(src) => ChatTemplate::new(src).map_err(ServerError::ChatTemplate)?,
                    None => ChatTemplate::bitnet_2b4t(),
                };
                (
                    Some(chat),
                    tok.bos_token(),
                    tok.eos_token(),
                    tok.stop_ids(),
                    tok.add_bos_default(),
                )
            }
            None => (None, String::new(), String::new(), Vec::new(), false),
        };
        #[cfg(feature = "receipts")]
        let identity = match cfg.receipts_log {
            Some(_) => Some(identify(&cfg.model)?),
            None => None,
        };
        Ok(Self {
            name: cfg.model_name.clone(),
            ctx,
            session_opts,
            chat,
            bos_token,
            eos_token,
            stop_ids,
            add_bos,
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            kernel,
            load_options: opts,
            model_ref: cfg.model.clone(),
            #[cfg(feature = "receipts")]
            identity,
            load_ms: start.elapsed().as_secs_f64() * 1e3,
            sampling_defaults: cfg.sampling,
            model: Arc::new(model),
        })
    }

    /// Vocabulary size.
    pub fn vocab(&self) -> usize {
        self.model.config().vocab_size
    }

    /// Element type name of the KV cache.
    pub fn kv_type_name(&self) -> &'static str {
        match self.session_opts.kv_type {
            KvType::F16 => "f16",
            KvType::F32 => "f32",
        }
    }
}

/// The identity of the served model for receipts (hashes it: call once, off the HTTP threads).
#[cfg(feature = "receipts")]
pub(crate) fn identify(
    model: &bitnet_engine::ModelRef,
) -> Result<bitnet_receipt::ModelIdentity, ServerError> {
    bitnet_receipt::ModelIdentity::of(model).map_err(|e| {
        ServerError::io(
            format!("hashing the model {} for receipts", e.path.display()),
            e.source,
        )
    })
}
