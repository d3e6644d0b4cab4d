//! Prometheus metrics, served at `GET /metrics`.
//!
//! Built on `prometheus-client`, the Prometheus organisation's own Rust client: a typed,
//! lock-free registry that is an ordinary value (not a process-global recorder as in the
//! `metrics` facade), so every server instance — several run in one test process — has its
//! own counters, and it has no HTTP exporter of its own to carry along. It writes the
//! OpenMetrics text format, which Prometheus scrapes natively (counters get the `_total`
//! suffix there: `bitnet_requests_total`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::pool::PoolStats;

/// Labels of `bitnet_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route pattern (`/v1/completions`, ...), or `unmatched`.
    pub endpoint: String,
    /// HTTP status.
    pub status: u16,
}

/// Labels of `bitnet_kernel_info`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KernelLabels {
    /// Kernel implementation id.
    pub id: String,
    /// Worker threads.
    pub threads: String,
    /// `true` when chosen by start-up tuning.
    pub tuned: String,
}

/// Labels of the pool's session gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `active` or `idle`.
    pub state: &'static str,
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by endpoint and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Tokens generated.
    pub generated_tokens: Counter,
    /// Prompt tokens received.
    pub prompt_tokens: Counter,
    /// Prompt tokens served from the KV pool's cached prefixes (not recomputed).
    pub prompt_cached_tokens: Counter,
    /// Requests waiting for a decode slot.
    pub queue_depth: Gauge,
    /// Requests being decoded.
    pub active_requests: Gauge,
    /// Requests whose client went away before the end.
    pub cancelled: Counter,
    /// Time from arrival to the first generated token.
    pub time_to_first_token: Histogram,
    /// Time between consecutive tokens of one request.
    pub token_latency: Histogram,
    /// Requests per batched decode step.
    pub decode_batch_size: Histogram,
    /// Sessions by state.
    pub kv_pool_sessions: Family<StateLabels, Gauge>,
    /// Blocks (16 positions) holding cached positions.
    pub kv_pool_blocks_used: Gauge,
    /// Blocks the pool may hold.
    pub kv_pool_blocks_total: Gauge,
    /// Bytes allocated by KV caches.
    pub kv_pool_bytes_allocated: Gauge,
    /// Bytes of used blocks.
    pub kv_pool_bytes_used: Gauge,
    /// Idle sessions evicted.
    pub kv_pool_evictions: Counter,
    /// The kernel in use (value 1; labels say which).
    pub kernel_info: Family<KernelLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "bitnet_requests",
            "HTTP requests by endpoint and status",
            requests.clone(),
        );
        let generated_tokens = Counter::default();
        registry.register(
            "bitnet_generated_tokens",
            "Tokens generated",
            generated_tokens.clone(),
        );
        let prompt_tokens = Counter::default();
        registry.register(
            "bitnet_prompt_tokens",
            "Prompt tokens received",
            prompt_tokens.clone(),
        );
        let prompt_cached_tokens = Counter::default();
        registry.register(
            "bitnet_prompt_cached_tokens",
            "Prompt tokens reused from the KV pool instead of recomputed",
            prompt_cached_tokens.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "bitnet_queue_depth",
            "Requests waiting for a decode slot",
            queue_depth.clone(),
        );
        let active_requests = Gauge::default();
        registry.register(
            "bitnet_active_requests",
            "Requests being decoded",
            active_requests.clone(),
        );
        let cancelled = Counter::default();
        registry.register(
            "bitnet_cancelled_requests",
            "Requests whose client disconnected before the end",
            cancelled.clone(),
        );
        // 1 ms .. ~33 s
        let time_to_first_token = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "bitnet_time_to_first_token_seconds",
            "Time from a request's arrival to its first generated token",
            time_to_first_token.clone(),
        );
        // 0.5 ms .. ~8 s
        let token_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 15));
        registry.register(
            "bitnet_token_latency_seconds",
            "Time between consecutive generated tokens of one request",
            token_latency.clone(),
        );
        let decode_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        registry.register(
            "bitnet_decode_batch_size",
            "Requests decoded together per batched step",
            decode_batch_size.clone(),
        );
        let kv_pool_sessions = Family::<StateLabels, Gauge>::default();
        registry.register(
            "bitnet_kv_pool_sessions",
            "KV sessions by state",
            kv_pool_sessions.clone(),
        );
        let kv_pool_blocks_used = Gauge::default();
        registry.register(
            "bitnet_kv_pool_blocks_used",
            "KV blocks (16 positions) holding cached positions",
            kv_pool_blocks_used.clone(),
        );
        let kv_pool_blocks_total = Gauge::default();
        registry.register(
            "bitnet_kv_pool_blocks_total",
            "KV blocks the pool may hold",
            kv_pool_blocks_total.clone(),
        );
        let kv_pool_bytes_allocated = Gauge::default();
        registry.register(
            "bitnet_kv_pool_bytes_allocated",
            "Bytes allocated by KV caches",
            kv_pool_bytes_allocated.clone(),
        );
        let kv_pool_bytes_used = Gauge::default();
        registry.register(
            "bitnet_kv_pool_bytes_used",
            "Bytes of KV blocks in use",
            kv_pool_bytes_used.clone(),
        );
        let kv_pool_evictions = Counter::default();
        registry.register(
            "bitnet_kv_pool_evictions",
            "Idle KV sessions evicted (LRU) to serve another request",
            kv_pool_evictions.clone(),
        );
        let kernel_info = Family::<KernelLabels, Gauge>::default();
        registry.register(
            "bitnet_kernel_info",
            "Kernel implementation and threads in use (1)",
            kernel_info.clone(),
        );
        Self {
            registry,
            requests,
            generated_tokens,
            prompt_tokens,
            prompt_cached_tokens,
            queue_depth,
            active_requests,
            cancelled,
            time_to_first_token,
            token_latency,
            decode_batch_size,
            kv_pool_sessions,
            kv_pool_blocks_used,
            kv_pool_blocks_total,
            kv_pool_bytes_allocated,
            kv_pool_bytes_used,
            kv_pool_evictions,
            kernel_info,
        }
    }

    /// Counts one answered request.
    pub fn count_request(&self, endpoint: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_string(),
                status,
            })
            .inc();
    }

    /// Publishes the pool's occupancy.
    pub fn set_pool(&self, s: &PoolStats) {
        let g = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        self.kv_pool_sessions
            .get_or_create(&StateLabels { state: "active" })
            .set(g(s.active));
        self.kv_pool_sessions
            .get_or_create(&StateLabels { state: "idle" })
            .set(g(s.idle));
        self.kv_pool_blocks_used.set(g(s.blocks_used));
        self.kv_pool_blocks_total.set(g(s.blocks_total));
        self.kv_pool_bytes_allocated.set(g(s.bytes_allocated));
        self.kv_pool_bytes_used.set(g(s.bytes_used));
    }

    /// Publishes the kernel in use.
    pub fn set_kernel(&self, id: &str, threads: usize, tuned: bool) {
        self.kernel_info.clear();
        self.kernel_info
            .get_or_create(&KernelLabels {
                id: id.to_string(),
                threads: threads.to_string(),
                tuned: tuned.to_string(),
            })
            .set(1);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
