//! Receipts (`receipts` feature): a JSON record of every completion — the model's SHA-256,
//! the kernels the dispatcher actually ran (read from the engine's counters, never written as
//! constants), the settings (seed included), prompt and output token ids, timings, the tuning
//! choice — and of every KV-pool eviction (session, blocks, bytes, pool before and after).
//!
//! Receipts are appended to a JSONL log by one writer thread, which `fsync`s
//! (`sync_data`) each batch before the completion's final event reaches the client: when a
//! client has seen a completion end, its receipt is on disk. Writes are grouped (every
//! receipt waiting is written before one `fsync`), so the cost does not grow with
//! concurrency. Recent receipts are also kept in memory; older ones are found by scanning the
//! log. Receipts are on only when `--receipts-log` is given; otherwise none is written and
//! `GET /v1/receipts/{id}` answers 404.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::engine::Engine;
use crate::error::{ApiError, ServerError};
use crate::pool::Eviction;
use crate::routes::AppState;
use crate::scheduler::{CompletionRecord, Event, Finisher};

/// Receipt schema version.
pub const SCHEMA_VERSION: u32 = 1;

/// Receipts kept in memory for `GET /v1/receipts/{id}` without reading the log.
const KEEP_IN_MEMORY: usize = 4096;

enum Msg {
    Completion {
        receipt: Value,
        record: Box<CompletionRecord>,
        events: UnboundedSender<Event>,
    },
    Eviction(Value),
    Flush(Sender<()>),
}

#[derive(Default)]
struct Recent {
    by_id: HashMap<String, Arc<Value>>,
    order: VecDeque<String>,
}

/// The receipt log and its writer thread.
pub struct ReceiptStore {
    path: PathBuf,
    engine: Arc<Engine>,
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ReceiptStore {
    /// Opens (creates) the log for appending and starts the writer.
    pub fn open(path: &Path, engine: Arc<Engine>) -> Result<Self, ServerError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| ServerError::io(format!("opening receipts log {}", path.display()), e))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let recent = Arc::new(Mutex::new(Recent::default()));
        let writer = {
            let recent = Arc::clone(&recent);
            let path = path.to_path_buf();
            std::thread::Builder::new()
                .name("bitnet-receipts".into())
                .spawn(move || write_loop(file, &path, rx, &recent))
                .map_err(|e| ServerError::io("starting the receipt writer", e))?
        };
        Ok(Self {
            path: path.to_path_buf(),
            engine,
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

    /// Waits until every receipt sent so far is on disk.
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        self.send(Msg::Flush(tx));
        let _ = rx.recv();
    }

    /// A receipt by id: from memory, else from the log.
    pub fn get(&self, id: &str) -> Option<Arc<Value>> {
        if let Some(v) = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_id
            .get(id)
        {
            return Some(Arc::clone(v));
        }
        let file = File::open(&self.path).ok()?;
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains(id))
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .find(|v| v.get("id").and_then(Value::as_str) == Some(id))
            .map(Arc::new)
    }

    /// Ids and kinds of the receipts in memory, oldest first.
    pub fn list(&self) -> Vec<Value> {
        let r = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        r.order
            .iter()
            .filter_map(|id| r.by_id.get(id))
            .map(|v| json!({"id": v["id"], "kind": v["kind"], "created_unix": v["created_unix"]}))
            .collect()
    }

    fn model_json(&self) -> Value {
        let e = &self.engine;
        let c = e.model.config();
        json!({
            "name": e.name,
            "path": e.identity.path,
            "bytes": e.identity.bytes,
            "sha256": e.identity.sha256,
            "architecture": e.identity.architecture,
            "source": e.identity.source,
            "shapes": {
                "vocab": c.vocab_size, "hidden": c.hidden_size, "layers": c.n_layers,
                "heads": c.n_heads, "kv_heads": c.n_kv_heads, "head_dim": c.head_dim,
                "ffn": c.intermediate_size, "ctx": c.context_length,
            },
        })
    }

    /// The receipt of a finished completion.
    pub fn completion_receipt(&self, r: &CompletionRecord) -> Value {
        let e = &self.engine;
        let s = &r.sampling;
        json!({
            "schema_version": SCHEMA_VERSION,
            "kind": "completion",
            "id": r.id,
            "request_id": r.request_id,
            "created_unix": unix_now(),
            "endpoint": r.meta.endpoint,
            "model": self.model_json(),
            "kernels": {
                "isa": e.model.kernels().ops().id(),
                "threads": e.model.kernels().threads(),
                "tuned": e.kernel.tuned,
                "tuning": e.kernel.tuning,
                "dispatched": r.dispatched.iter()
                    .map(|(id, calls)| json!({"id": id, "calls": calls}))
                    .collect::<Vec<_>>(),
                "dispatched_note": "server-wide counters over the request's lifetime; they include requests batched with it",
                "cpu_features": bitnet_kernels::cpu_features(),
            },
            "settings": {
                "temperature": s.temperature,
                "top_k": s.top_k,
                "top_p": s.top_p,
                "min_p": s.min_p,
                "repeat_penalty": s.repeat_penalty,
                "repeat_last_n": s.repeat_last_n,
                "seed": s.seed,
                "max_tokens": r.max_tokens,
                "stop": r.stop_strings,
                "stop_ids": e.stop_ids,
                "act_quant": e.model.activation_quantization(),
                "head_type": e.model.head_type().as_str(),
                "kv_type": e.kv_type_name(),
                "ctx": e.ctx,
            },
            "prompt": {
                "text": r.meta.prompt_text,
                "chat": r.meta.chat,
                "ids": r.prompt,
                "cached_tokens": r.summary.cached_tokens,
            },
            "output": {
                "ids": r.summary.output_ids,
                "text": r.summary.text,
                "finish_reason": crate::finish_name(r.summary.finish),
            },
            "batching": {
                "session": r.summary.session,
                "max_decode_batch": r.max_batch_seen,
            },
            "timings": r.summary.timings,
            "tool": {"name": "bitnet-server", "version": env!("CARGO_PKG_VERSION")},
        })
    }
}

impl Finisher for ReceiptStore {
    fn finish(&self, mut record: CompletionRecord, events: UnboundedSender<Event>) {
        record.summary.receipt_id = Some(record.id.clone());
        let receipt = self.completion_receipt(&record);
        self.send(Msg::Completion {
            receipt,
            record: Box::new(record),
            events,
        });
    }

    fn eviction(&self, ev: &Eviction, request_id: &str) {
        let receipt = json!({
            "schema_version": SCHEMA_VERSION,
            "kind": "kv_eviction",
            "id": format!("evict-{}", uuid::Uuid::new_v4().simple()),
            "created_unix": unix_now(),
            "caused_by_request": request_id,
            "session": ev.session,
            "tokens": ev.tokens,
            "blocks": ev.blocks,
            "bytes": ev.bytes,
            "kept_tokens": ev.kept_tokens,
            "block_tokens": crate::pool::BLOCK_TOKENS,
            "pool_before": ev.before,
            "pool_after": ev.after,
            "model": {"name": self.engine.name, "sha256": self.engine.identity.sha256},
        });
        self.send(Msg::Eviction(receipt));
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

fn write_loop(mut file: File, path: &Path, rx: Receiver<Msg>, recent: &Mutex<Recent>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut failed = None;
        for msg in &batch {
            let receipt = match msg {
                Msg::Completion { receipt, .. } | Msg::Eviction(receipt) => receipt,
                Msg::Flush(_) => continue,
            };
            let mut line = receipt.to_string();
            line.push('\n');
            if let Err(e) = file.write_all(line.as_bytes()) {
                failed = Some(e);
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
                    receipt,
                    record,
                    events,
                } => {
                    remember(recent, receipt);
                    let _ = events.send(Event::Done(Box::new(record.summary)));
                }
                Msg::Eviction(receipt) => remember(recent, receipt),
                Msg::Flush(done) => {
                    let _ = done.send(());
                }
            }
        }
    }
}

fn remember(recent: &Mutex<Recent>, receipt: Value) {
    let Some(id) = receipt
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return;
    };
    let mut r = recent
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    r.by_id.insert(id.clone(), Arc::new(receipt));
    r.order.push_back(id);
    while r.order.len() > KEEP_IN_MEMORY {
        if let Some(old) = r.order.pop_front() {
            r.by_id.remove(&old);
        }
    }
}

fn store(req: &HttpRequest, state: &AppState) -> Result<Arc<ReceiptStore>, ApiError> {
    state.check_auth(req)?;
    state
        .loaded()
        .and_then(|l| l.receipts.clone())
        .ok_or_else(|| ApiError::NotFound {
            message: "receipts are disabled on this server (start it with --receipts-log FILE)"
                .into(),
            code: Some("receipts_disabled"),
        })
}

/// `GET /v1/receipts/{id}`.
pub async fn get(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let store = store(&req, &state)?;
    let id = id.into_inner();
    let found = web::block(move || store.get(&id).ok_or(id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    match found {
        Ok(v) => Ok(HttpResponse::Ok().json(&*v)),
        Err(id) => Err(ApiError::NotFound {
            message: format!("no receipt with id '{id}'"),
            code: Some("receipt_not_found"),
        }),
    }
}

/// `GET /v1/receipts`: the receipts held in memory (id, kind, time).
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = store(&req, &state)?;
    Ok(HttpResponse::Ok().json(json!({"object": "list", "data": store.list()})))
}
