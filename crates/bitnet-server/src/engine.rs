//! The loaded model and everything fixed at start-up: context, chat template, stop ids, the
//! kernel in use (tuned or not) and the model's identity for receipts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bitnet_engine::{KvType, LoadOptions, Model, ModelSource, SessionOptions};
use bitnet_tokenizer::ChatTemplate;
use serde::Serialize;

use crate::config::{ModelSpec, ServerConfig};
use crate::error::ServerError;

/// Default context when `--ctx` is not given: the model's, at most this (a full 4096-position
/// f32 cache of the 2B4T model is 630 MB per session).
pub const DEFAULT_MAX_CTX: usize = 2048;

/// Tokens per prefill forward call (the engine's GEMM batch for prompts).
pub const PREFILL_BATCH: usize = 64;

/// The model file's identity, for receipts.
#[derive(Debug, Clone, Serialize)]
pub struct ModelIdentity {
    /// Absolute path (none for synthetic models).
    pub path: Option<PathBuf>,
    /// Size in bytes (a directory: the sum of its files).
    pub bytes: u64,
    /// SHA-256 (computed only when receipts are on; see [`hash_model`]).
    pub sha256: Option<String>,
    /// `general.architecture` or equivalent.
    pub architecture: String,
    /// `gguf`, `huggingface` or `synthetic`.
    pub source: &'static str,
}

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
    pub tuning: Option<serde_json::Value>,
}

/// Everything the HTTP layer and the scheduler share about the model.
pub struct Engine {
    /// The model.
    pub model: Arc<Model>,
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
    /// Identity for receipts.
    pub identity: ModelIdentity,
    /// Time to load (and tune).
    pub load_ms: f64,
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

fn load_model(spec: &ModelSpec, opts: &LoadOptions) -> Result<Model, ServerError> {
    Ok(match spec {
        ModelSpec::Path(p) => Model::load(p, opts)?,
        ModelSpec::Embedded => {
            Model::from_gguf_bytes(bitnet_default_model::gguf_bytes().to_vec(), opts)?
        }
        ModelSpec::Synthetic(name) => {
            let cfg = bitnet_engine::synthetic::preset(name).ok_or_else(|| {
                ServerError::InvalidOption {
                    flag: "synthetic",
                    reason: format!("unknown preset '{name}'"),
                }
            })?;
            Model::synthetic(cfg, 0, opts)?
        }
    })
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
        let mut model = load_model(&cfg.model, &opts)?;
        #[cfg_attr(not(feature = "tuning"), allow(unused_mut))]
        let mut kernel = KernelChoice {
            id: model.kernels().ops().id().to_string(),
            threads: model.kernels().threads(),
            tuned: false,
            tuning: None,
        };
        #[cfg(feature = "tuning")]
        if cfg.tune {
            let identity = match &cfg.model {
                ModelSpec::Path(p) => p.display().to_string(),
                ModelSpec::Synthetic(s) => format!("synthetic:{s}"),
                ModelSpec::Embedded => bitnet_default_model::PSEUDO_PATH.to_string(),
            };
            let result = crate::tuning::tune(
                model.config(),
                &identity,
                cfg.threads,
                cfg.max_batch,
                cfg.tuning_cache.as_deref(),
            );
            tracing::info!(
                kernel = %result.kernel,
                threads = result.threads,
                cached = result.cached,
                "tuning chose a kernel configuration"
            );
            if result.kernel != kernel.id || result.threads != kernel.threads {
                opts.kernel = Some(result.kernel.clone());
                opts.threads = result.threads;
                model = load_model(&cfg.model, &opts)?;
            }
            kernel = KernelChoice {
                id: model.kernels().ops().id().to_string(),
                threads: model.kernels().threads(),
                tuned: true,
                tuning: serde_json::to_value(&result).ok(),
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
        let identity = identify(&cfg.model, &model, cfg.receipts_log.is_some())?;
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
            identity,
            load_ms: start.elapsed().as_secs_f64() * 1e3,
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

fn identify(spec: &ModelSpec, model: &Model, hash: bool) -> Result<ModelIdentity, ServerError> {
    let source = match model.source() {
        ModelSource::Gguf => "gguf",
        ModelSource::HuggingFace => "huggingface",
        ModelSource::Synthetic => "synthetic",
    };
    let architecture = model.config().architecture.clone();
    if let ModelSpec::Embedded = spec {
        let bytes = bitnet_default_model::gguf_bytes();
        return Ok(ModelIdentity {
            path: Some(PathBuf::from(bitnet_default_model::PSEUDO_PATH)),
            bytes: bytes.len() as u64,
            sha256: hash.then(|| sha256_hex(bytes)),
            architecture,
            source,
        });
    }
    let ModelSpec::Path(p) = spec else {
        return Ok(ModelIdentity {
            path: None,
            bytes: 0,
            sha256: None,
            architecture,
            source,
        });
    };
    let path = std::fs::canonicalize(p).map_err(|e| ServerError::io(p.display().to_string(), e))?;
    let (bytes, sha256) = if hash {
        let (b, h) = hash_model(&path)?;
        (b, Some(h))
    } else {
        (size_of_model(&path)?, None)
    };
    Ok(ModelIdentity {
        path: Some(path),
        bytes,
        sha256,
        architecture,
        source,
    })
}

fn files_of(path: &Path) -> Result<Vec<PathBuf>, ServerError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let rd = std::fs::read_dir(path).map_err(|e| ServerError::io(path.display().to_string(), e))?;
    for entry in rd {
        let entry = entry.map_err(|e| ServerError::io(path.display().to_string(), e))?;
        if entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

fn size_of_model(path: &Path) -> Result<u64, ServerError> {
    let mut total = 0;
    for f in files_of(path)? {
        total += std::fs::metadata(&f)
            .map_err(|e| ServerError::io(f.display().to_string(), e))?
            .len();
    }
    Ok(total)
}

/// Size and SHA-256 of a model. A file: the hash of its bytes (what `sha256sum` prints). A
/// directory: the hash of the lines `"<file name>  <file sha256>\n"` of its files in name
/// order (a `sha256sum` listing of it).
#[cfg(feature = "receipts")]
pub fn hash_model(path: &Path) -> Result<(u64, String), ServerError> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    fn hash_file(f: &Path) -> Result<(u64, String), ServerError> {
        let err = |e| ServerError::io(f.display().to_string(), e);
        let mut file = std::fs::File::open(f).map_err(err)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut n_total = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(err)?;
            if n == 0 {
                break;
            }
            n_total += n as u64;
            h.update(&buf[..n]);
        }
        Ok((n_total, hex(&h.finalize())))
    }
    if path.is_file() {
        return hash_file(path);
    }
    let mut listing = Sha256::new();
    let mut total = 0;
    for f in files_of(path)? {
        let (n, h) = hash_file(&f)?;
        total += n;
        let name = f.file_name().map(|s| s.to_string_lossy().into_owned());
        listing.update(format!("{h}  {}\n", name.unwrap_or_default()).as_bytes());
    }
    Ok((total, hex(&listing.finalize())))
}

/// SHA-256 (lower-case hex) of bytes in memory (the embedded model).
#[cfg(feature = "receipts")]
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

/// Without receipts the model is never hashed.
#[cfg(not(feature = "receipts"))]
fn sha256_hex(_bytes: &[u8]) -> String {
    String::new()
}

/// Without receipts the model is never hashed.
#[cfg(not(feature = "receipts"))]
pub fn hash_model(path: &Path) -> Result<(u64, String), ServerError> {
    Ok((size_of_model(path)?, String::new()))
}

#[cfg(feature = "receipts")]
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
