//! HTTP routes: the OpenAI API (`/v1/completions`, `/v1/chat/completions`, `/v1/models`,
//! `/v1/receipts`), operations (`/health`, `/ready`, `/metrics`) and OpenAI-style errors for
//! everything else.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::header;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use bitnet_engine::Logprobs;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tracing_actix_web::RequestId;

use bitnet_openai::{Body, ChatRequest, CompletionRequest, Usage, parse_body_fields};

use crate::api::{Validate as _, Validated};
use crate::config::ServerConfig;
use crate::engine::Engine;
use crate::error::{ApiError, ServerError};
use crate::metrics::Metrics;
use crate::scheduler::{Event, GenRequest, RequestMeta, Scheduler, Summary};

/// What exists once the model is loaded.
pub struct Loaded {
    /// The model and its settings.
    pub engine: Arc<Engine>,
    /// The decode loop.
    pub scheduler: Scheduler,
    /// The receipt store, when receipts are on.
    #[cfg(feature = "receipts")]
    pub receipts: Option<Arc<crate::receipts::ReceiptStore>>,
}

/// Who made a request, as far as isolation goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenant {
    /// Prefix-cache partition: the key's number (1-based), or 0 when the server needs no key
    /// or shares its cache (`--share-prefix-cache`).
    pub partition: u64,
    /// Fingerprint of the key (receipt ownership); `None` when the server needs no key.
    pub owner: Option<String>,
}

/// A key as the server keeps it: SHA-256 digests, so that comparing takes the same time
/// whatever the key's length, and the owner fingerprint written into receipts.
struct Key {
    digest: [u8; 32],
    owner: String,
}

impl Key {
    fn new(key: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"bitnet-server receipt owner\0");
        h.update(key.as_bytes());
        let owner: String = h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            digest: Sha256::digest(key.as_bytes()).into(),
            owner,
        }
    }
}

/// State shared by every HTTP worker.
pub struct AppState {
    /// The configuration.
    pub config: ServerConfig,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    loaded: OnceLock<Loaded>,
    shutting_down: AtomicBool,
    keys: Vec<Key>,
    /// Generation responses not yet fully handed to their clients (shutdown waits for them).
    open_responses: Arc<AtomicUsize>,
}

/// Counts a generation response as open until dropped (its stream ended or its client left).
struct OpenResponse(Arc<AtomicUsize>);

impl OpenResponse {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(counter))
    }
}

impl Drop for OpenResponse {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State for `config`, model not loaded yet.
    pub fn new(config: ServerConfig) -> Self {
        Self {
            metrics: Arc::new(Metrics::new()),
            loaded: OnceLock::new(),
            shutting_down: AtomicBool::new(false),
            keys: config.api_keys.iter().map(|k| Key::new(k)).collect(),
            open_responses: Arc::new(AtomicUsize::new(0)),
            config,
        }
    }

    /// Generation responses whose end has not reached the client yet (streams being read,
    /// requests being generated). Shutdown waits for this to reach 0.
    pub fn open_responses(&self) -> usize {
        self.open_responses.load(Ordering::SeqCst)
    }

    /// Ends every running and queued generation now (after `--shutdown-timeout`): each
    /// client gets what was generated, then an error saying the server shut down (a final
    /// SSE error event and `[DONE]` for streams).
    pub fn cut_generation(&self) {
        if let Some(l) = self.loaded.get() {
            l.scheduler.abort();
        }
    }

    /// Installs the loaded model: starts the scheduler (and the receipt writer) and turns
    /// `/ready` green.
    pub fn install(&self, engine: Engine) -> Result<(), ServerError> {
        let engine = Arc::new(engine);
        let cfg = &self.config;
        #[cfg(feature = "receipts")]
        let receipts = match &cfg.receipts_log {
            Some(path) => Some(Arc::new(crate::receipts::ReceiptStore::open(
                path,
                Arc::clone(&engine),
            )?)),
            None => None,
        };
        #[cfg(feature = "receipts")]
        let finisher = receipts
            .clone()
            .map(|r| r as Arc<dyn crate::scheduler::Finisher>);
        #[cfg(not(feature = "receipts"))]
        let finisher = None;
        self.metrics.set_kernel(
            &engine.kernel.id,
            engine.kernel.threads,
            engine.kernel.tuned,
        );
        let scheduler = Scheduler::start(
            Arc::clone(&engine),
            Arc::clone(&self.metrics),
            cfg.max_batch,
            cfg.kv_pool_sessions,
            cfg.max_queue,
            finisher,
        );
        tracing::info!(
            model = %engine.name,
            ctx = engine.ctx,
            kernel = %engine.kernel.id,
            threads = engine.kernel.threads,
            tuned = engine.kernel.tuned,
            load_ms = engine.load_ms,
            "model ready"
        );
        let loaded = Loaded {
            engine,
            scheduler,
            #[cfg(feature = "receipts")]
            receipts,
        };
        self.loaded
            .set(loaded)
            .map_err(|_| ServerError::InvalidOption {
                flag: "model",
                reason: "a model is already loaded".into(),
            })
    }

    /// The loaded model, if any.
    pub fn loaded(&self) -> Option<&Loaded> {
        self.loaded.get()
    }

    /// Model loaded and not shutting down.
    pub fn is_ready(&self) -> bool {
        self.loaded.get().is_some() && !self.shutting_down.load(Ordering::SeqCst)
    }

    /// From now on `/ready` and new generation requests answer 503.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Lets the scheduler finish what it has and stops it; flushes receipts.
    pub fn finish_shutdown(&self) {
        self.begin_shutdown();
        if let Some(l) = self.loaded.get() {
            l.scheduler.shutdown();
            #[cfg(feature = "receipts")]
            if let Some(r) = &l.receipts {
                r.flush();
            }
        }
    }

    fn serving(&self) -> Result<&Loaded, ApiError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(ApiError::Unavailable("the server is shutting down".into()));
        }
        self.loaded
            .get()
            .ok_or_else(|| ApiError::Unavailable("the model is still loading".into()))
    }

    /// Checks `Authorization: Bearer KEY` (the scheme is case-insensitive, RFC 7235) and says
    /// which key it was.
    pub(crate) fn check_auth(&self, req: &HttpRequest) -> Result<Tenant, ApiError> {
        if self.keys.is_empty() {
            return Ok(Tenant::default());
        }
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>'".into(),
            ));
        };
        let given = value
            .to_str()
            .ok()
            .map(str::trim)
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim_start())
            .unwrap_or_default();
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        // Every key is compared, each over its whole 32-byte digest: the time depends neither
        // on the configured keys' lengths nor on where the given key first differs. (Hashing
        // the given key takes time by its own length, which the client knows already.)
        let mut found = None;
        for (i, key) in self.keys.iter().enumerate() {
            if digests_equal(&given, &key.digest) && found.is_none() {
                found = Some(i);
            }
        }
        let Some(i) = found else {
            return Err(ApiError::Unauthorized("incorrect API key provided".into()));
        };
        Ok(Tenant {
            partition: if self.config.share_prefix_cache {
                0
            } else {
                i as u64 + 1
            },
            owner: Some(self.keys[i].owner.clone()),
        })
    }
}

/// Compares two digests without an early exit (the `subtle` crate's `ct_eq` does the same
/// over equal-length slices; a 32-byte fold needs no dependency).
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/v1/completions").route(web::post().to(completions)))
        .service(resource("/v1/chat/completions").route(web::post().to(chat_completions)))
        .service(resource("/v1/models").route(web::get().to(models)))
        .service(resource("/v1/models/{id}").route(web::get().to(model)))
        .service(resource("/health").route(web::get().to(health)))
        .service(resource("/ready").route(web::get().to(ready)))
        .service(resource("/metrics").route(web::get().to(metrics)));
    #[cfg(feature = "receipts")]
    cfg.service(resource("/v1/receipts").route(web::get().to(receipt_list)))
        .service(resource("/v1/receipts/{id}").route(web::get().to(receipt)));
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(req.method().to_string()))
}

/// Any unknown route: 404 with an OpenAI error body.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        message: format!("unknown route: {} {}", req.method(), req.path()),
        code: None,
    })
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let loaded = state.serving()?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready", "model": loaded.engine.name})))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Some(l) = state.loaded() {
        state.metrics.queue_depth.set(l.scheduler.queued() as i64);
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}

fn model_object(engine: &Engine) -> Value {
    json!({
        "id": engine.name,
        "object": "model",
        "created": engine.created,
        "owned_by": "bitnet-rs",
        "context_length": engine.ctx,
    })
}

async fn models(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.check_auth(&req)?;
    let loaded = state.serving()?;
    Ok(HttpResponse::Ok().json(json!({"object": "list", "data": [model_object(&loaded.engine)]})))
}

async fn model(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.check_auth(&req)?;
    let loaded = state.serving()?;
    if *path != loaded.engine.name {
        return Err(ApiError::NotFound {
            message: format!("the model '{path}' does not exist"),
            code: Some("model_not_found"),
        });
    }
    Ok(HttpResponse::Ok().json(model_object(&loaded.engine)))
}

/// Reads the body up to `limit` bytes (413 beyond, decided from Content-Length when sent),
/// all of it within `timeout` (408 after: a client trickling a body cannot hold the
/// connection, actix's own timeout covers only the head).
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut body: web::Payload,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut buf = BytesMut::new();
    loop {
        let next = tokio::time::timeout_at(deadline, body.next())
            .await
            .map_err(|_| ApiError::RequestTimeout {
                secs: timeout.as_secs(),
            })?;
        let Some(chunk) = next else { break };
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}"), None))?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Which endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Completion,
    Chat,
}

impl Kind {
    fn endpoint(self) -> &'static str {
        match self {
            Self::Completion => "/v1/completions",
            Self::Chat => "/v1/chat/completions",
        }
    }
    fn id_prefix(self) -> &'static str {
        match self {
            Self::Completion => "cmpl",
            Self::Chat => "chatcmpl",
        }
    }
    fn object(self, chunk: bool) -> &'static str {
        match (self, chunk) {
            (Self::Completion, _) => "text_completion",
            (Self::Chat, false) => "chat.completion",
            (Self::Chat, true) => "chat.completion.chunk",
        }
    }
}

trait Validate: Body + Send + 'static {
    fn check(&self, engine: &Engine) -> Result<Validated, ApiError>;
    /// Reads what the parsed request lost from the raw body (the key order of a
    /// `response_format` schema).
    fn attach_body(&mut self, body: &[u8]);
}

impl Validate for CompletionRequest {
    fn check(&self, engine: &Engine) -> Result<Validated, ApiError> {
        self.validate(engine)
    }
    fn attach_body(&mut self, body: &[u8]) {
        self.schema_order = crate::api::schema_order(self.response_format.as_ref(), body);
    }
}

impl Validate for ChatRequest {
    fn check(&self, engine: &Engine) -> Result<Validated, ApiError> {
        self.validate(engine)
    }
    fn attach_body(&mut self, body: &[u8]) {
        self.schema_order = crate::api::schema_order(self.response_format.as_ref(), body);
    }
}

async fn completions(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    generate::<CompletionRequest>(req, body, state, Kind::Completion).await
}

async fn chat_completions(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    generate::<ChatRequest>(req, body, state, Kind::Chat).await
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Fields every response and chunk carries.
#[derive(Clone)]
struct Head {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
}

impl Head {
    fn base(&self, chunk: bool) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("id".into(), self.id.clone().into());
        m.insert("object".into(), self.kind.object(chunk).into());
        m.insert("created".into(), self.created.into());
        m.insert("model".into(), self.model.clone().into());
        m.insert("system_fingerprint".into(), self.fingerprint.clone().into());
        m
    }
}

async fn generate<T: Validate>(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
    kind: Kind,
) -> Result<HttpResponse, ApiError> {
    let received = Instant::now();
    let tenant = state.check_auth(&req)?;
    let loaded = state.serving()?;
    let bytes = read_body(
        &req,
        body,
        state.config.max_body_bytes,
        state.config.body_timeout,
    )
    .await?;
    // JSON parsing, the chat template and tokenisation take milliseconds to seconds on a large
    // prompt: on the blocking pool, so the async workers keep streaming and answering.
    let engine_arc = Arc::clone(&loaded.engine);
    let (v, unknown) = web::block(move || {
        let (mut p, unknown) = parse_body_fields::<T>(&bytes)?;
        p.attach_body(&bytes);
        Ok::<_, ApiError>((p.check(&engine_arc)?, unknown))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the request worker failed: {e}")))??;
    let engine = &loaded.engine;
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), |r| r.to_string());
    if !unknown.is_empty() {
        tracing::warn!(
            request_id = %request_id,
            endpoint = kind.endpoint(),
            fields = %unknown.join(", "),
            "ignoring unknown request fields"
        );
    }
    let head = Head {
        kind,
        id: format!("{}-{}", kind.id_prefix(), uuid::Uuid::new_v4().simple()),
        created: unix_now(),
        model: engine.name.clone(),
        fingerprint: format!(
            "bitnet-rs-{}-{}",
            env!("CARGO_PKG_VERSION"),
            engine.kernel.id
        ),
    };
    // `n` choices are `n` independent generations of the same prompt, scheduled (and batched)
    // like separate requests; choice `i` samples with seed `seed + i` and, with receipts on,
    // is recorded under the id `<id>` (choice 0) or `<id>-<i>`. If the queue cannot take them
    // all, the ones already queued are cancelled by dropping their receivers.
    let mut rxs = Vec::with_capacity(v.n);
    for i in 0..v.n {
        let (tx, rx) = unbounded_channel();
        let mut sampling = v.sampling.clone();
        sampling.seed = sampling.seed.wrapping_add(i as u64);
        loaded.scheduler.submit(GenRequest {
            id: choice_id(&head.id, i),
            request_id: request_id.clone(),
            prompt: v.prompt.clone(),
            max_tokens: v.max_tokens,
            sampling,
            stop_strings: v.stop.clone(),
            logprobs: v.logprobs,
            grammar: v.grammar.clone(),
            events: tx,
            received,
            partition: tenant.partition,
            meta: RequestMeta {
                endpoint: kind.endpoint(),
                prompt_text: v.prompt_text.clone(),
                chat: kind == Kind::Chat,
                owner: tenant.owner.clone(),
                format: v.format.clone(),
            },
        })?;
        rxs.push(rx);
    }
    let open = OpenResponse::new(&state.open_responses);
    state
        .metrics
        .queue_depth
        .set(loaded.scheduler.queued() as i64);
    let mut resp = HttpResponse::Ok();
    #[cfg(feature = "receipts")]
    if loaded.receipts.is_some() {
        resp.insert_header(("x-bitnet-receipt-id", head.id.clone()));
    }
    let pieces = Pieces {
        engine: Arc::clone(&loaded.engine),
        logprobs: v.logprobs.is_some(),
    };
    if v.stream {
        let n = rxs.len();
        let events =
            futures_util::stream::select_all(rxs.into_iter().enumerate().map(|(i, rx)| {
                futures_util::stream::unfold(rx, move |mut rx| async move {
                    rx.recv().await.map(|e| ((i, e), rx))
                })
                .boxed()
            }));
        let sse = Sse {
            events,
            head,
            pieces,
            started: false,
            finished: false,
            include_usage: v.include_usage,
            done: vec![None; n],
            offsets: vec![0; n],
            _open: open,
        };
        let stream = futures_util::stream::unfold(sse, |mut s| async move {
            let frame = s.next_frame().await?;
            Some((Ok::<Bytes, std::convert::Infallible>(frame), s))
        });
        return Ok(resp
            .content_type("text/event-stream")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .streaming(stream));
    }
    let results = futures_util::future::join_all(rxs.into_iter().map(wait_done)).await;
    drop(open);
    let choices = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(resp.json(full_response(&head, &pieces, &choices)))
}

/// The id choice `i` of the response `id` is scheduled (and receipted) under.
fn choice_id(id: &str, i: usize) -> String {
    if i == 0 {
        id.to_string()
    } else {
        format!("{id}-{i}")
    }
}

/// A finished choice: its summary and its tokens' log-probabilities (when asked for).
struct Done {
    summary: Box<Summary>,
    logprobs: Vec<Logprobs>,
}

async fn wait_done(mut rx: UnboundedReceiver<Event>) -> Result<Done, ApiError> {
    let mut logprobs = Vec::new();
    loop {
        match rx.recv().await {
            Some(Event::Token { logprobs: lp, .. }) => logprobs.extend(lp),
            Some(Event::Done(summary)) => return Ok(Done { summary, logprobs }),
            Some(Event::Failed(m)) => return Err(ApiError::Internal(m)),
            None => {
                return Err(ApiError::Internal(
                    "the generation stopped unexpectedly".into(),
                ));
            }
        }
    }
}

fn extension(summary: &Summary) -> Value {
    json!({
        "token_ids": summary.output_ids,
        "receipt_id": summary.receipt_id,
        "session": summary.session,
        "finish_detail": summary.finish.as_str(),
        "timings": summary.timings,
    })
}

/// Usage of a response: the prompt counted once, the completion tokens of every choice.
fn usage<'a>(summaries: impl IntoIterator<Item = &'a Summary>) -> Usage {
    let mut it = summaries.into_iter();
    let Some(first) = it.next() else {
        return Usage::new(0, 0, 0);
    };
    let completion = first.completion_tokens + it.map(|s| s.completion_tokens).sum::<usize>();
    Usage::new(first.prompt_tokens, completion, first.cached_tokens)
}

/// Turns token ids into the text and bytes that OpenAI's `logprobs` objects carry.
struct Pieces {
    engine: Arc<Engine>,
    logprobs: bool,
}

/// GPT-2's byte-level alphabet, inverted: the byte a vocabulary character stands for.
fn byte_level(c: char) -> Option<u8> {
    let c = c as u32;
    let direct = |c: u32| {
        (0x21..=0x7e).contains(&c) || (0xa1..=0xac).contains(&c) || (0xae..=0xff).contains(&c)
    };
    if c < 256 {
        return direct(c).then_some(c as u8);
    }
    // The other 68 bytes map, in order, to U+0100 onwards.
    let k = c - 256;
    (0u32..256)
        .filter(|&b| !direct(b))
        .nth(k as usize)
        .map(|b| b as u8)
}

impl Pieces {
    /// A token's text and its exact bytes: a byte token (`<0xNN>`) is its byte; a byte-level
    /// BPE piece that is not valid UTF-8 on its own (part of a character) maps back through
    /// GPT-2's byte alphabet; otherwise the bytes of its decoded text. The text is the bytes
    /// read as UTF-8 (U+FFFD for a partial character), as OpenAI shows such tokens.
    fn piece(&self, id: u32) -> (String, Vec<u8>) {
        let Some(tok) = self.engine.model.tokenizer() else {
            return (String::new(), Vec::new());
        };
        let raw = tok.id_to_token(id).unwrap_or_default();
        if let Some(hex) = raw.strip_prefix("<0x").and_then(|r| r.strip_suffix('>'))
            && hex.len() == 2
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            return (String::from_utf8_lossy(&[b]).into_owned(), vec![b]);
        }
        let text = tok.decode(&[id], false).unwrap_or_default();
        if text.contains('\u{FFFD}')
            && let Some(bytes) = raw.chars().map(byte_level).collect::<Option<Vec<u8>>>()
        {
            return (String::from_utf8_lossy(&bytes).into_owned(), bytes);
        }
        let bytes = text.as_bytes().to_vec();
        (text, bytes)
    }

    /// `{token, logprob, bytes}` of one token.
    fn entry(&self, id: u32, logprob: f32) -> (String, Value) {
        let (token, bytes) = self.piece(id);
        let v = json!({"token": token, "logprob": logprob, "bytes": bytes});
        (token, v)
    }

    /// Chat's `logprobs` object for `lps`.
    fn chat(&self, lps: &[Logprobs]) -> Value {
        let content: Vec<Value> = lps
            .iter()
            .map(|lp| {
                let (_, mut v) = self.entry(lp.chosen.id, lp.chosen.logprob);
                let top: Vec<Value> = lp
                    .top
                    .iter()
                    .map(|t| self.entry(t.id, t.logprob).1)
                    .collect();
                v["top_logprobs"] = Value::Array(top);
                v
            })
            .collect();
        json!({"content": content, "refusal": null})
    }

    /// Legacy completions' `logprobs` object for `lps`; `offset` is the completion text's
    /// length (in characters) before the first of them, advanced past them.
    fn completion(&self, lps: &[Logprobs], offset: &mut usize) -> Value {
        let mut tokens = Vec::with_capacity(lps.len());
        let mut token_logprobs = Vec::with_capacity(lps.len());
        let mut top_logprobs = Vec::with_capacity(lps.len());
        let mut text_offset = Vec::with_capacity(lps.len());
        for lp in lps {
            let (token, _) = self.piece(lp.chosen.id);
            text_offset.push(*offset);
            *offset += token.chars().count();
            tokens.push(token);
            token_logprobs.push(lp.chosen.logprob);
            let mut top = serde_json::Map::new();
            for t in &lp.top {
                // Two ids with the same text: the more likely one is kept (listed first).
                top.entry(self.piece(t.id).0).or_insert(json!(t.logprob));
            }
            top_logprobs.push(Value::Object(top));
        }
        json!({
            "tokens": tokens,
            "token_logprobs": token_logprobs,
            "top_logprobs": top_logprobs,
            "text_offset": text_offset,
        })
    }

    /// The `logprobs` value of a choice or chunk of `kind`: null unless asked for.
    fn value(&self, kind: Kind, lps: &[Logprobs], offset: &mut usize) -> Value {
        if !self.logprobs {
            return Value::Null;
        }
        match kind {
            Kind::Completion => self.completion(lps, offset),
            Kind::Chat => self.chat(lps),
        }
    }
}

fn full_response(head: &Head, pieces: &Pieces, done: &[Done]) -> Value {
    let mut m = head.base(false);
    let choices: Vec<Value> = done
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let s = &d.summary;
            let logprobs = pieces.value(head.kind, &d.logprobs, &mut 0);
            match head.kind {
                Kind::Completion => json!({
                    "index": i,
                    "text": s.text,
                    "logprobs": logprobs,
                    "finish_reason": crate::openai_finish_reason(s.finish),
                }),
                Kind::Chat => json!({
                    "index": i,
                    "message": {"role": "assistant", "content": s.text},
                    "logprobs": logprobs,
                    "finish_reason": crate::openai_finish_reason(s.finish),
                }),
            }
        })
        .collect();
    m.insert("choices".into(), Value::Array(choices));
    m.insert(
        "usage".into(),
        json!(usage(done.iter().map(|d| &*d.summary))),
    );
    let mut ext = extension(&done[0].summary);
    if done.len() > 1 {
        ext["choices"] = done.iter().map(|d| extension(&d.summary)).collect();
    }
    m.insert("bitnet".into(), ext);
    Value::Object(m)
}

/// A streaming response in progress: the events of its `n` choices, merged as they come.
struct Sse {
    events: futures_util::stream::SelectAll<BoxStream<'static, (usize, Event)>>,
    head: Head,
    pieces: Pieces,
    started: bool,
    finished: bool,
    include_usage: bool,
    /// Each choice's summary once it has finished.
    done: Vec<Option<Box<Summary>>>,
    /// Each choice's text length so far, in characters (completions' `text_offset`).
    offsets: Vec<usize>,
    /// Dropped with the stream: when its last frame was handed to actix, or the client left.
    _open: OpenResponse,
}

fn frame(v: &Value) -> String {
    format!("data: {v}\n\n")
}

impl Sse {
    fn chunk(
        &mut self,
        index: usize,
        text: Option<&str>,
        finish: Option<&str>,
        token: Option<u32>,
        logprobs: Option<Logprobs>,
    ) -> Value {
        let mut m = self.head.base(true);
        let lps = match &logprobs {
            Some(lp) => self.pieces.value(
                self.head.kind,
                std::slice::from_ref(lp),
                &mut self.offsets[index],
            ),
            None => Value::Null,
        };
        let choice = match self.head.kind {
            Kind::Completion => json!({
                "index": index,
                "text": text.unwrap_or_default(),
                "logprobs": lps,
                "finish_reason": finish,
            }),
            Kind::Chat => {
                let delta = match text {
                    Some(t) => json!({"content": t}),
                    None => json!({}),
                };
                json!({"index": index, "delta": delta, "logprobs": lps, "finish_reason": finish})
            }
        };
        m.insert("choices".into(), json!([choice]));
        if let Some(id) = token {
            m.insert("bitnet".into(), json!({"token_ids": [id]}));
        }
        Value::Object(m)
    }

    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        if !self.started {
            self.started = true;
            if self.head.kind == Kind::Chat {
                let mut out = String::new();
                for i in 0..self.done.len() {
                    let mut m = self.head.base(true);
                    m.insert(
                        "choices".into(),
                        json!([{"index": i, "delta": {"role": "assistant", "content": ""},
                                "logprobs": null, "finish_reason": null}]),
                    );
                    out.push_str(&frame(&Value::Object(m)));
                }
                return Some(Bytes::from(out));
            }
        }
        let out = match self.events.next().await {
            Some((i, Event::Token { id, text, logprobs })) => {
                frame(&self.chunk(i, Some(&text), None, id, logprobs))
            }
            Some((i, Event::Done(s))) => {
                let mut out = String::new();
                let mut last = self.chunk(
                    i,
                    None,
                    Some(crate::openai_finish_reason(s.finish)),
                    None,
                    None,
                );
                if let Value::Object(m) = &mut last {
                    m.insert("bitnet".into(), extension(&s));
                }
                out.push_str(&frame(&last));
                self.done[i] = Some(s);
                if self.done.iter().all(Option::is_some) {
                    self.finished = true;
                    if self.include_usage {
                        let mut m = self.head.base(true);
                        m.insert("choices".into(), json!([]));
                        m.insert(
                            "usage".into(),
                            json!(usage(self.done.iter().flatten().map(|s| &**s))),
                        );
                        out.push_str(&frame(&Value::Object(m)));
                    }
                    out.push_str("data: [DONE]\n\n");
                }
                out
            }
            Some((_, Event::Failed(msg))) => {
                self.finished = true;
                let err = ApiError::Internal(msg);
                format!("{}data: [DONE]\n\n", frame(&json!(err.body())))
            }
            None => {
                self.finished = true;
                let err = ApiError::Internal("the generation stopped unexpectedly".into());
                format!("{}data: [DONE]\n\n", frame(&json!(err.body())))
            }
        };
        Some(Bytes::from(out))
    }
}

#[cfg(feature = "receipts")]
fn receipt_store(
    req: &HttpRequest,
    state: &AppState,
) -> Result<(Arc<crate::receipts::ReceiptStore>, Tenant), ApiError> {
    let tenant = state.check_auth(req)?;
    let store = state
        .loaded()
        .and_then(|l| l.receipts.clone())
        .ok_or_else(|| ApiError::NotFound {
            message: "receipts are disabled on this server (start it with --receipts-log FILE)"
                .into(),
            code: Some("receipts_disabled"),
        })?;
    Ok((store, tenant))
}

/// `GET /v1/receipts/{id}`: the record as written to the log (a completion's typed v2
/// receipt, which `bitnet-cli verify-receipt` checks, or an eviction record). Only the key
/// that made a record reads it; another key gets the same 404 as for an unknown id, so ids
/// cannot be probed.
#[cfg(feature = "receipts")]
async fn receipt(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (store, tenant) = receipt_store(&req, &state)?;
    let id = id.into_inner();
    let found = web::block(move || store.get(&id, tenant.owner.as_deref()).ok_or(id))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    match found {
        Ok(line) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(line)),
        Err(id) => Err(ApiError::NotFound {
            message: format!("no receipt with id '{id}'"),
            code: Some("receipt_not_found"),
        }),
    }
}

/// `GET /v1/receipts`: the caller's records held in memory (id, kind, time).
#[cfg(feature = "receipts")]
async fn receipt_list(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (store, tenant) = receipt_store(&req, &state)?;
    let list = store.list(tenant.owner.as_deref());
    Ok(HttpResponse::Ok().json(json!({"object": "list", "data": list})))
}
