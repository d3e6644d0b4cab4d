//! Receipts (`receipts` feature): a receipt of every completion in the shared typed schema
//! (`bitnet_receipt::Receipt`, version 2, the same the CLI writes and `bitnet-cli
//! verify-receipt` checks) plus a server section (request ids, prefix-cache hits, batching,
//! tuning), and a record of every KV-pool eviction (session, blocks, bytes, pool before and
//! after).
//!
//! Records are appended to a JSONL log by one writer thread, which `fsync`s (`sync_data`)
//! each batch before the completion's final event reaches the client: when a client has seen
//! a completion end, its receipt is on disk. Writes are grouped (every record waiting is
//! written before one `fsync`), so the cost does not grow with concurrency. Each record is
//! serialised once; the same line is written, kept in memory for `GET /v1/receipts/{id}` and
//! served as is. Older ones are found through an index (id -> byte offset, length, owner)
//! built by one scan of the log at start and extended by the writer: a lookup reads one line,
//! and an unknown id costs one hash-map miss, never a scan. Receipts are on only when
//! `--receipts-log` is given; otherwise none is written and the endpoints answer 404.
//!
//! Receipts hold prompts and outputs, so each belongs to the API key that caused it: the
//! line starts with `"owner"`, a fingerprint of that key (a salted SHA-256 prefix, not the
//! key), and only that key reads it. The log file is created with mode 0600 (and an existing
//! one is narrowed to it).

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bitnet_engine::GenerationParams;
use bitnet_receipt::{
    Batching, Constraint, ModelIdentity, Output, Prompt, Receipt, Run, SCHEMA_VERSION, ServerInfo,
    Timings, Tool, unix_now,
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::api::FormatSpec;
use crate::engine::Engine;
use crate::error::ServerError;
use crate::pool::{Eviction, PoolStats};
use crate::scheduler::{CompletionRecord, Event, Finisher};

/// Records kept in memory for `GET /v1/receipts/{id}` without reading the log.
const KEEP_IN_MEMORY: usize = 4096;

/// What `kernels.dispatched` means in a server receipt.
const DISPATCHED_NOTE: &str =
    "server-wide counters over the request's lifetime; they include requests batched with it";

/// A KV-pool eviction record (a line of the same log; not a generation receipt).
#[derive(Debug, Serialize)]
pub struct EvictionRecord<'a> {
    /// The log's schema version.
    pub schema_version: u32,
    /// `kv_eviction`.
    pub kind: &'static str,
    /// Record id (`evict-…`).
    pub id: String,
    /// When (Unix seconds).
    pub created_unix: u64,
    /// The HTTP request whose admission evicted the session.
    pub caused_by_request: &'a str,
    /// The session evicted.
    pub session: u64,
    /// Cached tokens discarded.
    pub tokens: usize,
    /// Blocks discarded.
    pub blocks: usize,
    /// Bytes of those blocks.
    pub bytes: usize,
    /// Tokens kept (shared with the new prompt).
    pub kept_tokens: usize,
    /// Positions per block.
    pub block_tokens: usize,
    /// Pool before.
    pub pool_before: PoolStats,
    /// Pool after.
    pub pool_after: PoolStats,
    /// The served model.
    pub model: EvictionModel<'a>,
}

/// The model an eviction happened on.
#[derive(Debug, Serialize)]
pub struct EvictionModel<'a> {
    /// Served name.
    pub name: &'a str,
    /// SHA-256 (none for a synthetic model).
    pub sha256: Option<&'a str>,
}

/// One log line and what the list endpoint shows of it.
#[derive(Debug)]
struct Stored {
    id: String,
    kind: &'static str,
    created_unix: u64,
    owner: Option<String>,
    line: String,
}

/// Where a record sits in the log.
#[derive(Debug, Clone)]
struct Entry {
    offset: u64,
    len: usize,
    owner: Option<String>,
}

/// Prepends `"owner"` to a serialised record (the fingerprint is hex, nothing to escape).
fn with_owner(line: String, owner: Option<&str>) -> String {
    match (owner, line.strip_prefix('{')) {
        (Some(o), Some(rest)) if rest.trim_start().starts_with('}') => {
            format!("{{\"owner\":\"{o}\"{rest}")
        }
        (Some(o), Some(rest)) => format!("{{\"owner\":\"{o}\",{rest}"),
        _ => line,
    }
}

enum Msg {
    Completion {
        stored: Option<Stored>,
        record: Box<CompletionRecord>,
        events: UnboundedSender<Event>,
    },
    Eviction(Stored),
    Flush(Sender<()>),
}

#[derive(Default)]
struct Recent {
    by_id: HashMap<String, Arc<Stored>>,
    order: VecDeque<String>,
    /// Every record in the log.
    index: HashMap<String, Entry>,
}

/// The receipt log and its writer thread.
pub struct ReceiptStore {
    path: PathBuf,
    engine: Arc<Engine>,
    identity: ModelIdentity,
    tx: Mutex<Sender<Msg>>,
    recent: Arc<Mutex<Recent>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ReceiptStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Serialises a record to one JSON line (without the newline); `None`, logged, if it cannot be
/// (only a non-UTF-8 model path could cause that, and the identity refuses those).
fn to_line<T: Serialize>(record: &T, id: &str) -> Option<String> {
    match serde_json::to_string(record) {
        Ok(line) => Some(line),
        Err(e) => {
            tracing::error!(id, error = %e, "a receipt could not be serialised; none written");
            None
        }
    }
}

/// Tokens per second over `ms` milliseconds (0 when no time passed).
fn rate(tokens: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        tokens as f64 * 1e3 / ms
    } else {
        0.0
    }
}

impl ReceiptStore {
    /// Opens (creates) the log for appending and starts the writer. The engine's identity is
    /// used when it was computed at load time (it is when its config had a receipts log);
    /// otherwise the model is hashed here.
    pub fn open(path: &Path, engine: Arc<Engine>) -> Result<Self, ServerError> {
        let identity = match &engine.identity {
            Some(id) => id.clone(),
            None => crate::engine::identify(&engine.model_ref)?,
        };
        let ctx = || format!("opening receipts log {}", path.display());
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts.open(path).map_err(|e| ServerError::io(ctx(), e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| ServerError::io(ctx(), e))?;
        }
        let (index, end) = build_index(path).map_err(|e| ServerError::io(ctx(), e))?;
        tracing::info!(path = %path.display(), records = index.len(), "receipt index built");
        let (tx, rx) = std::sync::mpsc::channel();
        let recent = Arc::new(Mutex::new(Recent {
            index,
            ..Recent::default()
        }));
        let writer = {
            let recent = Arc::clone(&recent);
            let path = path.to_path_buf();
            std::thread::Builder::new()
                .name("bitnet-receipts".into())
                .spawn(move || write_loop(file, end, &path, rx, &recent))
                .map_err(|e| ServerError::io("starting the receipt writer", e))?
        };
        Ok(Self {
            path: path.to_path_buf(),
            engine,
            identity,
            tx: Mutex::new(tx),
            recent,
            writer: Mutex::new(Some(writer)),
        })
    }

    fn send(&self, msg: Msg) {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = tx.send(msg) {
            // The writer is gone (it only stops at shutdown): deliver the completion anyway.
            if let Msg::Completion { record, events, .. } = e.0 {
                let _ = events.send(Event::Done(Box::new(record.summary)));
            }
        }
    }

    /// Waits until every record sent so far is on disk.
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        self.send(Msg::Flush(tx));
        let _ = rx.recv();
    }

    /// A record's JSON by id, if `owner` (the caller's key fingerprint, `None` without keys)
    /// made it: from memory, else one line of the log read at its indexed offset.
    pub fn get(&self, id: &str, owner: Option<&str>) -> Option<String> {
        let entry = {
            let r = self
                .recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(s) = r.by_id.get(id) {
                return (s.owner.as_deref() == owner).then(|| s.line.clone());
            }
            r.index.get(id)?.clone()
        };
        if entry.owner.as_deref() != owner {
            return None;
        }
        let mut file = File::open(&self.path).ok()?;
        file.seek(SeekFrom::Start(entry.offset)).ok()?;
        let mut line = vec![0; entry.len];
        file.read_exact(&mut line).ok()?;
        String::from_utf8(line).ok()
    }

    /// Records in the log (indexed).
    pub fn indexed(&self) -> usize {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .index
            .len()
    }

    /// Ids, kinds and times of `owner`'s records in memory, oldest first.
    pub fn list(&self, owner: Option<&str>) -> Vec<Value> {
        let r = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        r.order
            .iter()
            .filter_map(|id| r.by_id.get(id))
            .filter(|s| s.owner.as_deref() == owner)
            .map(|s| json!({"id": s.id, "kind": s.kind, "created_unix": s.created_unix}))
            .collect()
    }

    /// The receipt of a finished completion.
    pub fn completion_receipt(&self, r: &CompletionRecord) -> Receipt {
        let e = &self.engine;
        let sum = &r.summary;
        let params = GenerationParams {
            max_tokens: r.max_tokens,
            sampling: r.sampling.clone(),
            stop_ids: e.stop_ids.clone(),
            stop_strings: r.stop_strings.clone(),
        };
        let t = &sum.timings;
        let timings = Timings {
            load_ms: None,
            queue_ms: Some(t.queue_ms),
            prefill_ms: t.prefill_ms,
            ttft_ms: Some(t.ttft_ms),
            decode_ms: t.decode_ms,
            total_ms: t.total_ms,
            prompt_tps: rate(sum.prompt_tokens - sum.cached_tokens, t.prefill_ms),
            // The decode time runs from the first token to the last.
            gen_tps: rate(sum.completion_tokens.saturating_sub(1), t.decode_ms),
        };
        let mut receipt = Receipt::new(Run {
            model: &e.model,
            identity: self.identity.clone(),
            name: e.name.clone(),
            session: &e.session_opts,
            ctx: e.ctx,
            params: &params,
            kernel: e.load_options.kernel.clone(),
            dispatched: &r.dispatched,
            prompt: Prompt {
                text: r.meta.prompt_text.clone(),
                chat: r.meta.chat,
                ids: r.prompt.clone(),
            },
            output: Output::new(
                sum.output_ids.clone(),
                e.model.tokenizer().map(|_| sum.text.clone()),
                sum.finish,
            ),
            timings,
            tool: Tool {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
        });
        receipt.settings.constraint = r.meta.format.as_deref().map(|f| match f {
            FormatSpec::JsonObject => Constraint::json_object(),
            FormatSpec::JsonSchema {
                schema,
                property_order,
            } => Constraint::json_schema(schema.clone(), property_order.clone()),
        });
        receipt.kernels.tuned = e.kernel.tuned;
        receipt.kernels.tuning = e.kernel.tuning.clone();
        receipt.server = Some(ServerInfo {
            kind: "completion".into(),
            id: r.id.clone(),
            request_id: r.request_id.clone(),
            endpoint: r.meta.endpoint.to_string(),
            cached_tokens: sum.cached_tokens,
            batching: Batching {
                session: sum.session,
                max_decode_batch: r.max_batch_seen,
            },
            dispatched_note: DISPATCHED_NOTE.into(),
        });
        receipt
    }
}

impl Finisher for ReceiptStore {
    fn finish(&self, mut record: CompletionRecord, events: UnboundedSender<Event>) {
        record.summary.receipt_id = Some(record.id.clone());
        let receipt = self.completion_receipt(&record);
        let owner = record.meta.owner.clone();
        let stored = to_line(&receipt, &record.id).map(|line| Stored {
            id: record.id.clone(),
            kind: "completion",
            created_unix: receipt.created_unix,
            line: with_owner(line, owner.as_deref()),
            owner,
        });
        self.send(Msg::Completion {
            stored,
            record: Box::new(record),
            events,
        });
    }

    fn eviction(&self, ev: &Eviction, request_id: &str, owner: Option<&str>) {
        let record = EvictionRecord {
            schema_version: SCHEMA_VERSION,
            kind: "kv_eviction",
            id: format!("evict-{}", uuid::Uuid::new_v4().simple()),
            created_unix: unix_now(),
            caused_by_request: request_id,
            session: ev.session,
            tokens: ev.tokens,
            blocks: ev.blocks,
            bytes: ev.bytes,
            kept_tokens: ev.kept_tokens,
            block_tokens: crate::pool::BLOCK_TOKENS,
            pool_before: ev.before,
            pool_after: ev.after,
            model: EvictionModel {
                name: &self.engine.name,
                sha256: self.identity.sha256.as_deref(),
            },
        };
        if let Some(line) = to_line(&record, &record.id) {
            self.send(Msg::Eviction(Stored {
                id: record.id.clone(),
                kind: record.kind,
                created_unix: record.created_unix,
                owner: owner.map(str::to_string),
                line: with_owner(line, owner),
            }));
        }
    }
}

impl Drop for ReceiptStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it wrote everything.
        let (tx, _) = std::sync::mpsc::channel();
        drop(std::mem::replace(
            &mut *self
                .tx
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            tx,
        ));
        if let Some(h) = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            let _ = h.join();
        }
    }
}

/// The fields of a log line the index needs (the rest is skipped).
#[derive(serde::Deserialize)]
struct LineHead {
    id: Option<String>,
    owner: Option<String>,
    server: Option<ServerHead>,
}

#[derive(serde::Deserialize)]
struct ServerHead {
    id: Option<String>,
}

/// Scans the log once: every record's id -> offset, length, owner; and the end offset. Lines
/// that do not parse (a torn last write) are skipped.
fn build_index(path: &Path) -> std::io::Result<(HashMap<String, Entry>, u64)> {
    let mut index = HashMap::new();
    let mut reader = BufReader::new(File::open(path)?);
    let mut offset = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        if let Ok(head) = serde_json::from_slice::<LineHead>(body) {
            let id = head.server.and_then(|s| s.id).or(head.id);
            if let Some(id) = id {
                index.insert(
                    id,
                    Entry {
                        offset,
                        len: body.len(),
                        owner: head.owner,
                    },
                );
            }
        }
        offset += n as u64;
    }
    Ok((index, offset))
}

fn write_loop(
    mut file: File,
    mut end: u64,
    path: &Path,
    rx: Receiver<Msg>,
    recent: &Mutex<Recent>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut failed = None;
        let mut written_at = Vec::with_capacity(batch.len());
        for msg in &batch {
            let stored = match msg {
                Msg::Completion {
                    stored: Some(s), ..
                }
                | Msg::Eviction(s) => s,
                Msg::Completion { stored: None, .. } | Msg::Flush(_) => continue,
            };
            let written = file
                .write_all(stored.line.as_bytes())
                .and_then(|()| file.write_all(b"\n"));
            match written {
                Ok(()) => {
                    written_at.push((
                        stored.id.clone(),
                        end,
                        stored.line.len(),
                        stored.owner.clone(),
                    ));
                    end += stored.line.len() as u64 + 1;
                }
                Err(e) => {
                    // Where the file ends now is unknown (a partial line): find out.
                    end = file.metadata().map_or(end, |m| m.len());
                    failed = Some(e);
                }
            }
        }
        {
            let mut r = recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (id, offset, len, owner) in written_at {
                r.index.insert(id, Entry { offset, len, owner });
            }
        }
        if let Err(e) = file.sync_data() {
            failed = Some(e);
        }
        if let Some(e) = &failed {
            tracing::error!(path = %path.display(), error = %e, "writing receipts failed");
        }
        for msg in batch {
            match msg {
                Msg::Completion {
                    stored,
                    record,
                    events,
                } => {
                    if let Some(s) = stored {
                        remember(recent, s);
                    }
                    let _ = events.send(Event::Done(Box::new(record.summary)));
                }
                Msg::Eviction(s) => remember(recent, s),
                Msg::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }
}

fn remember(recent: &Mutex<Recent>, stored: Stored) {
    let mut r = recent
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let id = stored.id.clone();
    r.by_id.insert(id.clone(), Arc::new(stored));
    r.order.push_back(id);
    while r.order.len() > KEEP_IN_MEMORY {
        if let Some(old) = r.order.pop_front() {
            r.by_id.remove(&old);
        }
    }
}
