//! Shared test helpers: a real server on 127.0.0.1 (random port) serving the tiny fixture, and
//! a small HTTP client (awc) with SSE parsing.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use actix_web::web;
use awc::Client;
use bitnet_server::config::ServerConfig;
use bitnet_server::{AppState, Engine, Listen, bind};
use futures_util::StreamExt;
use serde_json::Value;

/// The I2_S tiny fixture.
pub fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-bitnet/i2s/model-i2_s.gguf")
}

/// Defaults for tests: one kernel thread (CI has two cores), small pool.
pub fn config() -> ServerConfig {
    let mut c = ServerConfig::for_model(fixture());
    c.threads = 1;
    c.max_batch = 8;
    c.kv_pool_sessions = 10;
    c
}

/// A running in-process server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its state.
    pub state: web::Data<AppState>,
    handle: actix_web::dev::ServerHandle,
}

impl TestServer {
    /// Loads the model (unless `load` is false), binds a free port and serves.
    pub fn start_with(cfg: ServerConfig, load: bool) -> Self {
        let state = web::Data::new(AppState::new(cfg.clone()));
        if load {
            state
                .install(Engine::load(&cfg).expect("model loads"))
                .expect("installs");
        }
        let mut listen = Listen::loopback(0);
        listen.workers = 1;
        listen.shutdown_timeout = Duration::from_secs(5);
        let (server, addr) = bind(state.clone(), &listen).expect("binds");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            base: format!("http://{addr}"),
            state,
            handle,
        }
    }

    /// A loaded server with `cfg`.
    pub fn start(cfg: ServerConfig) -> Self {
        Self::start_with(cfg, true)
    }

    /// URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server and the scheduler.
    pub async fn stop(self) {
        self.state.begin_shutdown();
        self.handle.stop(true).await;
        let st = self.state.clone();
        let _ = web::block(move || st.finish_shutdown()).await;
    }
}

/// A client with a generous timeout.
pub fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(60)).finish()
}

/// POSTs JSON; returns status and body parsed as JSON.
pub async fn post(url: &str, body: &Value) -> (u16, Value) {
    post_raw(url, body.to_string().into_bytes(), None).await
}

/// POSTs raw bytes (with an optional bearer key).
pub async fn post_raw(url: &str, body: Vec<u8>, key: Option<&str>) -> (u16, Value) {
    let mut req = client()
        .post(url)
        .insert_header(("content-type", "application/json"));
    if let Some(k) = key {
        req = req.insert_header(("authorization", format!("Bearer {k}")));
    }
    let mut resp = req.send_body(body).await.expect("request sent");
    let status = resp.status().as_u16();
    let bytes = resp.body().limit(16 << 20).await.expect("body read");
    let v = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

/// GETs; returns status and body text.
pub async fn get(url: &str) -> (u16, String) {
    let mut resp = client().get(url).send().await.expect("request sent");
    let status = resp.status().as_u16();
    let bytes = resp.body().limit(16 << 20).await.expect("body read");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// A streamed response: the `data:` payloads in order (`[DONE]` kept as a string).
pub async fn stream(url: &str, body: &Value) -> (u16, Vec<Value>) {
    let mut resp = client()
        .post(url)
        .send_json(body)
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    let mut raw = Vec::new();
    while let Some(chunk) = resp.next().await {
        raw.extend_from_slice(&chunk.expect("chunk"));
    }
    (status, parse_sse(&String::from_utf8_lossy(&raw)))
}

/// Splits an SSE body into its `data:` payloads.
pub fn parse_sse(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|ev| ev.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or(Value::String(d.to_string())))
        .collect()
}

/// Concatenated text of streamed chunks (completions `text` or chat `delta.content`).
pub fn stream_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["choices"].get(0))
        .filter_map(|c| c["text"].as_str().or(c["delta"]["content"].as_str()))
        .collect()
}

/// Token ids of streamed chunks.
pub fn stream_ids(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e["choices"][0]["finish_reason"].is_null())
        .filter_map(|e| e["bitnet"]["token_ids"].as_array())
        .flatten()
        .filter_map(Value::as_u64)
        .collect()
}

/// The value of a metric line `name{labels} value` (first match of `prefix`).
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The engine's own single-request generation of `prompt` (the reference the server must
/// match): the served engine's model, session options and stop ids, no stop strings.
pub fn reference(
    server: &TestServer,
    prompt: &[u32],
    max_tokens: usize,
    sampling: bitnet_engine::SamplingParams,
) -> Vec<u32> {
    let engine = &server.state.loaded().unwrap().engine;
    let model = &engine.model;
    let mut session = model.session(&engine.session_opts);
    let params = bitnet_engine::GenerationParams {
        max_tokens,
        sampling,
        stop_ids: engine.stop_ids.clone(),
        stop_strings: Vec::new(),
    };
    let generation =
        bitnet_engine::Generation::new(model, &mut session, prompt, params, model.tokenizer())
            .unwrap();
    let (_, ids, _, _) = generation.collect_text().unwrap();
    ids
}
