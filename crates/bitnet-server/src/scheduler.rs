//! The scheduler: one thread that owns the KV pool and runs the model, with continuous
//! batching.
//!
//! Each loop iteration:
//! 1. admits queued requests while fewer than `max_batch` run: leases a session from the pool
//!    (reusing the longest cached prefix), prefills the rest of the prompt with
//!    `Model::forward` and samples the first token;
//! 2. emits every running request's sampled token (text delta, stop ids, stop strings,
//!    `max_tokens`, context end), finishing those that are done and those whose client went
//!    away (cancellation: the response's receiver was dropped);
//! 3. runs **one** `Model::forward_batch` over the remaining requests (one GEMM per linear
//!    layer for the whole batch instead of one GEMV per request; attention per session);
//! 4. samples each request's next token with its own seeded sampler.
//!
//! Batching does not change any number: every request owns its sampler (seeded per request),
//! activations are quantised per row, the ternary dot products are exact integers and the
//! remaining float steps run per row in a fixed order, so a request's tokens equal those of
//! the same request served alone (tested in `tests/http.rs`).
//!
//! The queue in front is a bounded channel: a full queue answers 429 at once rather than
//! letting latency grow without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bitnet_engine::{
    Decoder, FinishReason, GenerationParams, Logprobs, Model, SamplingParams, Session,
};
use tokio::sync::mpsc::UnboundedSender;

use crate::engine::Engine;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::pool::{Eviction, KvPool};

/// One generation request, validated and tokenised.
#[derive(Debug)]
pub struct GenRequest {
    /// Response id (`cmpl-…`/`chatcmpl-…`; also the receipt id).
    pub id: String,
    /// The HTTP request id (for logs).
    pub request_id: String,
    /// Prompt token ids (non-empty, shorter than the context).
    pub prompt: Vec<u32>,
    /// Most tokens to generate (prompt + max_tokens fit in the context).
    pub max_tokens: usize,
    /// Sampling settings, seed included.
    pub sampling: SamplingParams,
    /// Strings that end generation (not emitted).
    pub stop_strings: Vec<String>,
    /// Log-probabilities to send with each token: `None` = none, `Some(k)` = the token's and
    /// the `k` most likely (of the model's raw logits, see [`bitnet_engine::logprobs`]).
    pub logprobs: Option<usize>,
    /// Where tokens go; dropping the receiver cancels the request.
    pub events: UnboundedSender<Event>,
    /// Arrival time (for time to first token).
    pub received: Instant,
    /// The prefix-cache partition (per API key unless the cache is shared): the request
    /// reuses only prefixes cached by its own partition.
    pub partition: u64,
    /// What receipts record about the request.
    pub meta: RequestMeta,
    /// Constrained decoding (`response_format`), when asked for.
    pub grammar: Option<std::sync::Arc<bitnet_engine::Grammar>>,
}

/// Request facts kept for receipts.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RequestMeta {
    /// `/v1/completions` or `/v1/chat/completions`.
    pub endpoint: &'static str,
    /// The prompt text (completions) or rendered chat prompt.
    pub prompt_text: Option<String>,
    /// Whether the chat template was applied.
    pub chat: bool,
    /// Who may read the receipt: a fingerprint of the API key that made the request (`None`
    /// when the server needs no key).
    pub owner: Option<String>,
    /// What the output was constrained to (`response_format`), when it was: the decoder runs
    /// [`GenRequest::grammar`], receipts record this so a rerun compiles the same grammar.
    #[serde(skip)]
    pub format: Option<std::sync::Arc<crate::api::FormatSpec>>,
}

/// What a request's receiver gets.
#[derive(Debug)]
pub enum Event {
    /// A generated token (`id` is `None` for text flushed at the end) and the text it completed.
    Token {
        /// The token id.
        id: Option<u32>,
        /// Newly final text (may be empty).
        text: String,
        /// The token's log-probabilities, when the request asked for them.
        logprobs: Option<Logprobs>,
    },
    /// The end, with counts and timings.
    Done(Box<Summary>),
    /// The engine failed.
    Failed(String),
}

/// How a request ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Why it ended.
    #[serde(skip)]
    pub finish: FinishReason,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Of which served from the KV pool's cache.
    pub cached_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Generated ids.
    pub output_ids: Vec<u32>,
    /// Generated text.
    pub text: String,
    /// Timings.
    pub timings: Timings,
    /// The KV session that served it.
    pub session: u64,
    /// Receipt id, when receipts are on.
    pub receipt_id: Option<String>,
}

/// Per-request timings in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timings {
    /// Waiting in the queue.
    pub queue_ms: f64,
    /// Prefill (the uncached part of the prompt).
    pub prefill_ms: f64,
    /// Arrival to first token.
    pub ttft_ms: f64,
    /// First token to last.
    pub decode_ms: f64,
    /// Arrival to end.
    pub total_ms: f64,
}

/// Why a request could not be queued.
fn queue_error(e: TrySendError<GenRequest>, queued: usize, limit: usize) -> ApiError {
    match e {
        TrySendError::Full(_) => ApiError::QueueFull { queued, limit },
        TrySendError::Disconnected(_) => {
            ApiError::Unavailable("the server is shutting down".into())
        }
    }
}

/// Receives finished requests (receipts, when on); without it `Done` goes straight to the
/// client.
pub trait Finisher: Send + Sync {
    /// Delivers `summary` to `events` (after recording whatever it records).
    fn finish(&self, record: CompletionRecord, events: UnboundedSender<Event>);
    /// Records a KV eviction caused by `request_id` (whose key, `owner`, may read the record).
    fn eviction(&self, eviction: &Eviction, request_id: &str, owner: Option<&str>);
}

/// Everything known about a finished completion.
#[derive(Debug, Clone)]
pub struct CompletionRecord {
    /// Response id.
    pub id: String,
    /// HTTP request id.
    pub request_id: String,
    /// Request facts.
    pub meta: RequestMeta,
    /// Prompt ids.
    pub prompt: Vec<u32>,
    /// Sampling settings.
    pub sampling: SamplingParams,
    /// `max_tokens`.
    pub max_tokens: usize,
    /// Stop strings.
    pub stop_strings: Vec<String>,
    /// Kernel dispatch counts during the request (server-wide counters: they include the
    /// other requests batched with it).
    pub dispatched: Vec<(String, u64)>,
    /// Largest decode batch the request was part of.
    pub max_batch_seen: usize,
    /// The outcome.
    pub summary: Summary,
}

/// Handle to the scheduler thread.
pub struct Scheduler {
    tx: Mutex<Option<SyncSender<GenRequest>>>,
    queued: Arc<AtomicUsize>,
    max_queue: usize,
    stop: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What a request cut by [`Scheduler::abort`] is told.
pub const ABORTED: &str =
    "the server shut down (--shutdown-timeout passed) before this completion finished";

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .field("max_queue", &self.max_queue)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Starts the thread.
    pub fn start(
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        max_batch: usize,
        pool_sessions: usize,
        max_queue: usize,
        finisher: Option<Arc<dyn Finisher>>,
    ) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(max_queue.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let abort = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            abort: Arc::clone(&abort),
            engine,
            metrics,
            rx,
            queued: Arc::clone(&queued),
            stop: Arc::clone(&stop),
            max_batch,
            pool_sessions,
            finisher,
        };
        let thread = std::thread::Builder::new()
            .name("bitnet-scheduler".into())
            .spawn(move || worker.run())
            .ok();
        Self {
            tx: Mutex::new(Some(tx)),
            queued,
            max_queue: max_queue.max(1),
            stop,
            abort,
            thread: Mutex::new(thread),
        }
    }

    /// Queues a request; 429 when the queue is full, 503 once shutting down.
    pub fn submit(&self, req: GenRequest) -> Result<(), ApiError> {
        let guard = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(tx) = guard.as_ref() else {
            return Err(ApiError::Unavailable("the server is shutting down".into()));
        };
        // Count before sending so the worker's decrement never precedes the increment.
        let queued = self.queued.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(req) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                Err(queue_error(e, queued, self.max_queue))
            }
        }
    }

    /// Requests waiting.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Ends every running and queued request now: each gets what it generated so far, then
    /// `Event::Failed` ([`ABORTED`]). For a shutdown whose grace time ran out.
    pub fn abort(&self) {
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        self.abort.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Stops accepting, lets queued and running requests finish, joins the thread.
    pub fn shutdown(&self) {
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        self.stop.store(true, Ordering::SeqCst);
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    rx: Receiver<GenRequest>,
    queued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
    max_batch: usize,
    pool_sessions: usize,
    finisher: Option<Arc<dyn Finisher>>,
}

/// A request being decoded: its KV slot, its [`Decoder`] (the engine's per-sequence
/// sampling, text and stop logic, the same that `bitnet-cli run` uses) and its timings.
struct Active<'m> {
    req: GenRequest,
    slot: usize,
    session_id: u64,
    cached_tokens: usize,
    decoder: Decoder<'m>,
    /// The sampled token not yet accepted.
    next: u32,
    /// Its log-probabilities, when asked for.
    next_logprobs: Option<Logprobs>,
    admitted: Instant,
    prefill: Duration,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    dispatch_start: Vec<(String, u64)>,
    max_batch_seen: usize,
}

/// What emitting a token decided.
enum Step {
    /// Feed the emitted token (`next`) and go on.
    Continue,
    /// Finished.
    Done(FinishReason),
    /// The client went away.
    Cancelled,
    /// Decoding failed (e.g. the detokenizer); the client is told.
    Failed(String),
}

impl Worker {
    fn run(self) {
        let model: &Model = &self.engine.model;
        let mut pool: KvPool<Session> = KvPool::new(self.pool_sessions, self.engine.ctx);
        let mut active: Vec<Active<'_>> = Vec::new();
        self.metrics.set_pool(&pool.stats());
        loop {
            if self.abort.load(Ordering::SeqCst) {
                for a in active.drain(..) {
                    self.fail(a, ABORTED.to_string(), &mut pool);
                }
                while let Ok(req) = self.rx.try_recv() {
                    self.queued.fetch_sub(1, Ordering::SeqCst);
                    let _ = req.events.send(Event::Failed(ABORTED.to_string()));
                }
                return;
            }
            // 1. Admission.
            while active.len() < self.max_batch {
                let req = if active.is_empty() {
                    match self.rx.recv_timeout(Duration::from_millis(50)) {
                        Ok(r) => r,
                        Err(RecvTimeoutError::Timeout) => {
                            if self.stop.load(Ordering::SeqCst) {
                                // Drain what is left, then stop.
                                match self.rx.try_recv() {
                                    Ok(r) => r,
                                    Err(_) => return,
                                }
                            } else {
                                break;
                            }
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                } else {
                    match self.rx.try_recv() {
                        Ok(r) => r,
                        Err(_) => break,
                    }
                };
                let depth = self.queued.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
                self.metrics.queue_depth.set(depth as i64);
                if req.events.is_closed() {
                    self.metrics.cancelled.inc();
                    continue;
                }
                if let Some(a) = self.admit(model, &mut pool, req) {
                    self.metrics.active_requests.inc();
                    active.push(a);
                }
            }
            if active.is_empty() {
                continue;
            }

            // 2. Emit each request's pending token; finish what is done.
            let mut i = 0;
            while i < active.len() {
                let step = {
                    let a = &mut active[i];
                    let pos = pool.session(a.slot).position();
                    self.emit(a, pos)
                };
                match step {
                    Step::Continue => i += 1,
                    Step::Done(reason) => {
                        let a = active.swap_remove(i);
                        self.finish(a, reason, &mut pool);
                    }
                    Step::Cancelled => {
                        let a = active.swap_remove(i);
                        self.cancel(a, &mut pool);
                    }
                    Step::Failed(message) => {
                        let a = active.swap_remove(i);
                        self.fail(a, message, &mut pool);
                    }
                }
            }
            // Each survivor feeds the token it just emitted (the last of its history).
            let feed: Vec<u32> = active.iter().map(|a| a.next).collect();
            if active.is_empty() {
                continue;
            }

            // 3. One batched decode step.
            let slots: Vec<usize> = active.iter().map(|a| a.slot).collect();
            let n = active.len();
            self.metrics.decode_batch_size.observe(n as f64);
            let result = {
                let mut sessions = pool.sessions_mut(&slots);
                model.forward_batch(&mut sessions, &feed)
            };
            if let Err(e) = result {
                let message = bitnet_app::chain(&e);
                tracing::error!(error = %message, batch = n, "batched decode step failed");
                for a in active.drain(..) {
                    self.fail(a, message.clone(), &mut pool);
                }
                continue;
            }

            // 4. Sample each request's next token.
            for a in &mut active {
                a.max_batch_seen = a.max_batch_seen.max(n);
                let logits = pool.session(a.slot).logits();
                a.next = a.decoder.sample(logits);
                a.next_logprobs = a
                    .req
                    .logprobs
                    .map(|k| bitnet_engine::logprobs::logprobs(logits, a.next, k));
            }
        }
    }

    /// Leases a session, prefills, samples the first token. `None` if the request failed
    /// (its client is told).
    fn admit<'m>(
        &self,
        model: &'m Model,
        pool: &mut KvPool<Session>,
        req: GenRequest,
    ) -> Option<Active<'m>> {
        let admitted = Instant::now();
        let dispatch_start = if self.finisher.is_some() {
            model.kernels().dispatch_counts()
        } else {
            Vec::new()
        };
        let params = GenerationParams {
            max_tokens: req.max_tokens,
            sampling: req.sampling.clone(),
            stop_ids: self.engine.stop_ids.clone(),
            stop_strings: req.stop_strings.clone(),
        };
        let mut decoder = match Decoder::new(
            &params,
            model.config().vocab_size,
            model.tokenizer(),
            &req.prompt,
        ) {
            Ok(d) => match (&req.grammar, model.token_texts()) {
                (Some(g), Some(texts)) => {
                    d.with_constraint(bitnet_engine::TokenConstraint::new(g, texts))
                }
                _ => d,
            },
            Err(e) => {
                let _ = req.events.send(Event::Failed(bitnet_app::chain(&e)));
                return None;
            }
        };
        let Some(lease) = pool.acquire(&req.prompt, req.partition, || {
            model.session(&self.engine.session_opts)
        }) else {
            // Cannot happen: the pool holds at least max_batch sessions.
            let _ = req
                .events
                .send(Event::Failed("no KV session available".into()));
            return None;
        };
        if let Some(ev) = &lease.eviction {
            self.metrics.kv_pool_evictions.inc();
            tracing::info!(
                request_id = %req.request_id,
                session = ev.session,
                blocks = ev.blocks,
                bytes = ev.bytes,
                "evicted an idle KV session"
            );
            if let Some(f) = &self.finisher {
                f.eviction(ev, &req.request_id, req.meta.owner.as_deref());
            }
        }
        self.metrics.prompt_tokens.inc_by(req.prompt.len() as u64);
        self.metrics
            .prompt_cached_tokens
            .inc_by(lease.reused as u64);
        self.metrics.set_pool(&pool.stats());
        let session = pool.session_mut(lease.slot);
        let result = model
            .forward(session, &req.prompt[lease.reused..])
            .map(|logits| {
                let next = decoder.sample(logits);
                let lp = req
                    .logprobs
                    .map(|k| bitnet_engine::logprobs::logprobs(logits, next, k));
                (next, lp)
            });
        let prefill = admitted.elapsed();
        let (next, next_logprobs) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = req.events.send(Event::Failed(bitnet_app::chain(&e)));
                let pos = pool.session(lease.slot).position();
                pool.release(lease.slot, req.prompt[..pos.min(req.prompt.len())].to_vec());
                return None;
            }
        };
        tracing::debug!(
            request_id = %req.request_id,
            prompt_tokens = req.prompt.len(),
            cached_tokens = lease.reused,
            session = lease.session,
            "admitted"
        );
        Some(Active {
            slot: lease.slot,
            session_id: lease.session,
            cached_tokens: lease.reused,
            decoder,
            next,
            next_logprobs,
            admitted,
            prefill,
            first_token: None,
            last_token: None,
            dispatch_start,
            max_batch_seen: 1,
            req,
        })
    }

    /// Accepts `a.next` through the request's decoder and sends what it completed. `pos` is
    /// the session's position (the decoder ends the request when the context is full).
    fn emit(&self, a: &mut Active<'_>, pos: usize) -> Step {
        if a.req.events.is_closed() {
            return Step::Cancelled;
        }
        let accepted = match a.decoder.accept(a.next, pos < self.engine.ctx) {
            Ok(acc) => acc,
            Err(e) => return Step::Failed(bitnet_app::chain(&e)),
        };
        if accepted.id.is_some() {
            let now = Instant::now();
            match a.last_token {
                None => {
                    a.first_token = Some(now);
                    self.metrics
                        .time_to_first_token
                        .observe((now - a.req.received).as_secs_f64());
                }
                Some(prev) => self
                    .metrics
                    .token_latency
                    .observe((now - prev).as_secs_f64()),
            }
            a.last_token = Some(now);
            self.metrics.generated_tokens.inc();
        }
        if (accepted.id.is_some() || !accepted.text.is_empty())
            && a.req
                .events
                .send(Event::Token {
                    id: accepted.id,
                    text: accepted.text,
                    // A stop id is not output: its log-probabilities are not either.
                    logprobs: accepted.id.and(a.next_logprobs.take()),
                })
                .is_err()
        {
            return Step::Cancelled;
        }
        match accepted.finish {
            Some(reason) => Step::Done(reason),
            None => Step::Continue,
        }
    }

    fn summary(&self, a: &Active<'_>, reason: FinishReason) -> Summary {
        let now = Instant::now();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let first = a.first_token.unwrap_or(now);
        Summary {
            finish: reason,
            prompt_tokens: a.req.prompt.len(),
            cached_tokens: a.cached_tokens,
            completion_tokens: a.decoder.tokens().len(),
            output_ids: a.decoder.tokens().to_vec(),
            text: a.decoder.text().to_string(),
            timings: Timings {
                queue_ms: ms(a.admitted - a.req.received),
                prefill_ms: ms(a.prefill),
                ttft_ms: ms(first - a.req.received),
                decode_ms: ms(now - first),
                total_ms: ms(now - a.req.received),
            },
            session: a.session_id,
            receipt_id: None,
        }
    }

    fn finish(&self, a: Active<'_>, reason: FinishReason, pool: &mut KvPool<Session>) {
        let summary = self.summary(&a, reason);
        tracing::info!(
            request_id = %a.req.request_id,
            id = %a.req.id,
            prompt_tokens = summary.prompt_tokens,
            cached_tokens = summary.cached_tokens,
            completion_tokens = summary.completion_tokens,
            finish = ?reason,
            ttft_ms = summary.timings.ttft_ms,
            total_ms = summary.timings.total_ms,
            "completion finished"
        );
        let pos = pool.session(a.slot).position();
        pool.release(a.slot, a.decoder.history()[..pos].to_vec());
        // Gauges first: a client that sees the end and then reads /metrics sees them settled.
        self.metrics.active_requests.dec();
        self.metrics.set_pool(&pool.stats());
        match &self.finisher {
            Some(f) => {
                let record = CompletionRecord {
                    id: a.req.id.clone(),
                    request_id: a.req.request_id.clone(),
                    meta: a.req.meta.clone(),
                    prompt: a.req.prompt.clone(),
                    sampling: a.req.sampling.clone(),
                    max_tokens: a.req.max_tokens,
                    stop_strings: a.req.stop_strings.clone(),
                    dispatched: dispatch_delta(
                        &a.dispatch_start,
                        &self.engine.model.kernels().dispatch_counts(),
                    ),
                    max_batch_seen: a.max_batch_seen,
                    summary,
                };
                f.finish(record, a.req.events);
            }
            None => {
                let _ = a.req.events.send(Event::Done(Box::new(summary)));
            }
        }
    }

    fn cancel(&self, a: Active<'_>, pool: &mut KvPool<Session>) {
        self.metrics.cancelled.inc();
        tracing::info!(
            request_id = %a.req.request_id,
            completion_tokens = a.decoder.tokens().len(),
            "client went away: request cancelled"
        );
        self.release(a, pool);
    }

    /// Tells the client that decoding failed and frees its slot.
    fn fail(&self, a: Active<'_>, message: String, pool: &mut KvPool<Session>) {
        tracing::error!(request_id = %a.req.request_id, error = %message, "decoding failed");
        let _ = a.req.events.send(Event::Failed(message));
        self.release(a, pool);
    }

    /// Returns the request's session to the pool (its cached prefix stays reusable).
    fn release(&self, a: Active<'_>, pool: &mut KvPool<Session>) {
        let pos = pool.session(a.slot).position();
        pool.release(a.slot, a.decoder.history()[..pos].to_vec());
        self.metrics.active_requests.dec();
        self.metrics.set_pool(&pool.stats());
    }
}

/// Counts dispatched between two snapshots.
fn dispatch_delta(before: &[(String, u64)], after: &[(String, u64)]) -> Vec<(String, u64)> {
    let before: HashMap<&str, u64> = before.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k.as_str()).copied().unwrap_or(0).min(*v);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_delta_subtracts_and_drops_zero() {
        let before = vec![("a".to_string(), 3), ("b".to_string(), 5)];
        let after = vec![
            ("a".to_string(), 3),
            ("b".to_string(), 9),
            ("c".to_string(), 1),
        ];
        assert_eq!(
            dispatch_delta(&before, &after),
            vec![("b".to_string(), 4), ("c".to_string(), 1)]
        );
    }
}
