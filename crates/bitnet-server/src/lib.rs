//! `bitnet-server`: an OpenAI-compatible HTTP server for BitNet b1.58 models.
//!
//! - OpenAI API: `POST /v1/completions`, `POST /v1/chat/completions` (the model's chat
//!   template), both also as server-sent events (`stream: true`, OpenAI's chunk format ending
//!   in `data: [DONE]`), `GET /v1/models`; OpenAI error bodies with the right statuses.
//! - Operations: `GET /health` (the process serves), `GET /ready` (the model is loaded and the
//!   server is not shutting down), `GET /metrics` (Prometheus), tracing logs with request ids
//!   (text or JSON), graceful shutdown on SIGTERM/SIGINT: stop accepting, finish running
//!   requests, exit 0.
//! - Concurrency: a scheduler thread batches the decode steps of all running requests into one
//!   `Model::forward_batch` (continuous batching), behind a bounded queue (429 when full), and
//!   drops a request whose client disconnected ([`scheduler`]). Sessions are pooled with
//!   prefix reuse and LRU eviction ([`pool`]).
//! - `receipts` feature: a receipt per completion (kernels dispatched, model SHA-256,
//!   settings, token ids, timings), appended with fsync to a JSONL log and served at
//!   `GET /v1/receipts/{id}`; eviction receipts for the KV pool.
//! - `tuning` feature: start-up measurement of kernel/thread configurations on the model's
//!   shapes, cached per CPU and model, reported in `/metrics`, logs and receipts.
//! - A web chat page at `/` ([`webui`]; `--no-webui` turns it off): streamed replies, a stop
//!   button, settings, embedded in the binary.
//!
//! ```no_run
//! # async fn run() -> Result<(), bitnet_server::ServerError> {
//! use bitnet_server::{AppState, Engine, ServerConfig, bind};
//! let config = ServerConfig::for_model("model.gguf");
//! let engine = Engine::load(&config)?;
//! let state = actix_web::web::Data::new(AppState::new(config));
//! state.install(engine)?;
//! let (server, addr) = bind(state.clone(), &bitnet_server::Listen::loopback(0))?;
//! println!("http://{addr}");
//! server.await.ok();
//! state.finish_shutdown();
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod engine;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod pool;
#[cfg(feature = "receipts")]
pub mod receipts;
pub mod routes;
pub mod scheduler;
#[cfg(feature = "tuning")]
pub mod tuning;
pub mod webui;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use actix_web::dev::Service;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{App, HttpMessage, HttpServer, web};
use bitnet_engine::FinishReason;
use tracing_actix_web::{RequestId, TracingLogger};

pub use config::{Args, LogFormat, ServerConfig, llama_argv};
pub use engine::Engine;
pub use error::{ApiError, ServerError};
pub use routes::AppState;

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct Listen {
    /// Address.
    pub host: IpAddr,
    /// Port (0 = any free one).
    pub port: u16,
    /// HTTP worker threads.
    pub workers: usize,
    /// Grace period for running requests at shutdown.
    pub shutdown_timeout: Duration,
    /// Time allowed for the request line and headers (actix `client_request_timeout`).
    pub header_timeout: Duration,
    /// Idle keep-alive time (`None` turns keep-alive off).
    pub keep_alive: Option<Duration>,
    /// Most open connections over all workers (actix's `max_connections` is per worker).
    pub max_connections: usize,
}

impl Listen {
    /// 127.0.0.1:`port`, two workers, 30 s grace.
    pub fn loopback(port: u16) -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
            workers: 2,
            shutdown_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(5),
            keep_alive: Some(Duration::from_secs(5)),
            max_connections: 512,
        }
    }
}

/// OpenAI's `finish_reason` for ours: `length` (token limit or full context) or `stop` (a
/// stop id or stop string). Only the server knows OpenAI's vocabulary.
pub fn openai_finish_reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Length | FinishReason::ContextFull => "length",
        FinishReason::StopToken | FinishReason::StopString => "stop",
    }
}

/// The CORS middleware for `--cors` origins (see [`ServerConfig::cors`]).
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut c = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST"])
        .allow_any_header()
        .expose_headers(["x-request-id", "x-bitnet-receipt-id"])
        .max_age(3600);
    if origins.iter().any(|o| o == "*") {
        c = c.allow_any_origin().send_wildcard();
    } else {
        for o in origins {
            c = c.allowed_origin(o);
        }
    }
    c
}

/// Binds the HTTP server (signals are left to the caller: see the binary). The model may be
/// installed into `state` before or after: until then generation routes answer 503.
pub fn bind(
    state: web::Data<AppState>,
    listen: &Listen,
) -> Result<(actix_web::dev::Server, SocketAddr), ServerError> {
    let st = state.clone();
    let webui = state.config.webui;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(st.clone())
            .configure(routes::configure)
            .configure(|cfg| webui::configure(cfg, webui))
            .default_service(web::to(routes::not_found))
            .wrap_fn(|req, srv| {
                let start = std::time::Instant::now();
                let fut = srv.call(req);
                async move {
                    let mut res = fut.await?;
                    let endpoint = res
                        .request()
                        .match_pattern()
                        .unwrap_or_else(|| "unmatched".to_string());
                    // Access log, inside TracingLogger's span (which carries the request id).
                    tracing::info!(
                        method = %res.request().method(),
                        path = %res.request().path(),
                        status = res.status().as_u16(),
                        latency_ms = start.elapsed().as_secs_f64() * 1e3,
                        "request"
                    );
                    if let Some(state) = res.request().app_data::<web::Data<AppState>>() {
                        state
                            .metrics
                            .count_request(&endpoint, res.status().as_u16());
                    }
                    let id = res.request().extensions().get::<RequestId>().copied();
                    if let Some(id) = id
                        && let Ok(v) = HeaderValue::from_str(&id.to_string())
                    {
                        res.headers_mut()
                            .insert(HeaderName::from_static("x-request-id"), v);
                    }
                    Ok(res)
                }
            })
            .wrap(TracingLogger::default())
            // Outermost: a preflight is answered before routing and auth, and every answer
            // (errors included) carries the CORS headers a browser needs to read it.
            .wrap(actix_web::middleware::Condition::new(
                !st.config.cors.is_empty(),
                cors(&st.config.cors),
            ))
    })
    .workers(listen.workers)
    // Slow or idle clients cannot hold connections for ever (slowloris): the head must arrive
    // in time (the body has its own deadline, see `routes::read_body`), idle keep-alive
    // connections close, and the connection count stays inside the descriptor limit (extra
    // clients wait in the backlog instead of making accept fail).
    .client_request_timeout(listen.header_timeout)
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(match listen.keep_alive {
        Some(d) => actix_web::http::KeepAlive::Timeout(d),
        None => actix_web::http::KeepAlive::Disabled,
    })
    .max_connections(
        listen
            .max_connections
            .div_ceil(listen.workers.max(1))
            .max(1),
    )
    .disable_signals()
    .shutdown_timeout(listen.shutdown_timeout.as_secs())
    .bind((listen.host, listen.port))
    .map_err(|e| ServerError::io(format!("binding {}:{}", listen.host, listen.port), e))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| ServerError::io("binding", std::io::Error::other("no address bound")))?;
    Ok((server.run(), addr))
}
