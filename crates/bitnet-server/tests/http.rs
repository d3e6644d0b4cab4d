//! HTTP tests against a real server (127.0.0.1, random port) serving the tiny I2_S fixture.

mod common;

use std::time::{Duration, Instant};

use bitnet_engine::SamplingParams;
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

/// What the server samples with for `temperature: 0.9, top_p: 0.95, seed: 1234` (the rest at
/// OpenAI's defaults, which are the server's without flags).
fn seeded_0_9() -> SamplingParams {
    SamplingParams {
        temperature: 0.9,
        top_k: 0,
        top_p: 0.95,
        min_p: 0.0,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        seed: 1234,
        ..SamplingParams::default()
    }
}

fn ids(v: &Value) -> Vec<u32> {
    v["bitnet"]["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[actix_web::test]
async fn completion_matches_the_engine_alone_and_counts_usage() {
    let s = TestServer::start(config());
    let tok = s.state.loaded().unwrap().engine.model.tokenizer().unwrap();
    let prompt = tok.encode("Hello", true, true).unwrap();

    let (status, v) = post(
        &s.url("/v1/completions"),
        &json!({"model": "model-i2_s", "prompt": "Hello", "max_tokens": 12, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
    let got = ids(&v);
    assert_eq!(got, reference(&s, &prompt, 12, SamplingParams::greedy()));
    assert_eq!(v["usage"]["prompt_tokens"], prompt.len());
    assert_eq!(v["usage"]["completion_tokens"], got.len());
    assert_eq!(v["usage"]["total_tokens"], prompt.len() + got.len());
    assert_eq!(v["choices"][0]["text"], tok.decode(&got, false).unwrap());
    assert_eq!(v["choices"][0]["finish_reason"], "length");

    // Seeded sampling: same seed, same tokens as the engine's sampler with that seed.
    let sampling = seeded_0_9();
    let (status, v) = post(
        &s.url("/v1/completions"),
        &json!({"prompt": prompt, "max_tokens": 10, "temperature": 0.9, "top_p": 0.95, "seed": 1234}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(ids(&v), reference(&s, &prompt, 10, sampling));
    s.stop().await;
}

/// `--temp`, `--top-k`, ... and `--seed` on the server are what a request that leaves those
/// fields out gets; a field in the request still wins.
#[actix_web::test]
async fn server_sampling_flags_are_request_defaults() {
    let mut cfg = config();
    cfg.sampling = bitnet_server::config::SamplingDefaults {
        temperature: 0.9,
        top_k: 0,
        top_p: 0.95,
        min_p: 0.0,
        repeat_penalty: 1.0,
        seed: Some(1234),
    };
    let s = TestServer::start(cfg);
    let tok = s.state.loaded().unwrap().engine.model.tokenizer().unwrap();
    let prompt = tok.encode("Hello", true, true).unwrap();
    let seeded = seeded_0_9();
    let (status, v) = post(
        &s.url("/v1/completions"),
        &json!({"prompt": prompt, "max_tokens": 10}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(ids(&v), reference(&s, &prompt, 10, seeded));
    let (status, v) = post(
        &s.url("/v1/completions"),
        &json!({"prompt": prompt, "max_tokens": 10, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        ids(&v),
        reference(&s, &prompt, 10, SamplingParams::greedy())
    );
    s.stop().await;
}

#[actix_web::test]
async fn chat_streaming_equals_non_streaming_and_ends_with_done() {
    let s = TestServer::start(config());
    let body = json!({
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
        "max_tokens": 9, "seed": 7, "temperature": 0.8,
    });
    let (status, full) = post(&s.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{full}");
    assert_eq!(full["object"], "chat.completion");
    assert_eq!(full["choices"][0]["message"]["role"], "assistant");

    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    sbody["stream_options"] = json!({"include_usage": true});
    let (status, events) = stream(&s.url("/v1/chat/completions"), &sbody).await;
    assert_eq!(status, 200);
    assert_eq!(events.last().unwrap(), &Value::String("[DONE]".into()));
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(
        events
            .iter()
            .filter(|e| e.is_object())
            .all(|e| e["object"] == "chat.completion.chunk")
    );
    assert_eq!(
        stream_text(&events),
        full["choices"][0]["message"]["content"].as_str().unwrap()
    );
    let streamed: Vec<u32> = stream_ids(&events).into_iter().map(|x| x as u32).collect();
    assert_eq!(streamed, ids(&full));
    let usage = &events[events.len() - 2]["usage"];
    assert_eq!(
        usage["completion_tokens"],
        full["usage"]["completion_tokens"]
    );
    assert_eq!(usage["prompt_tokens"], full["usage"]["prompt_tokens"]);
    // The second identical prompt reused the first one's cached prefix.
    assert!(
        usage["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );

    // Completions stream too.
    let (_, events) = stream(
        &s.url("/v1/completions"),
        &json!({"prompt": "Hello", "max_tokens": 5, "temperature": 0, "stream": true}),
    )
    .await;
    assert_eq!(events.last().unwrap(), &Value::String("[DONE]".into()));
    assert_eq!(
        events[events.len() - 2]["choices"][0]["finish_reason"],
        "length"
    );
    assert_eq!(stream_ids(&events).len(), 5);
    s.stop().await;
}

#[actix_web::test]
async fn concurrent_requests_are_batched_and_equal_each_served_alone() {
    check_batched_equals_alone(config()).await;
}

/// `--head-type q8_0`: the batched Q8_0 head gives each request exactly what it gets alone,
/// and the served model is the engine's with that head.
#[actix_web::test]
async fn q8_0_head_batched_equals_alone_and_matches_the_engine() {
    let mut cfg = config();
    cfg.head_type = bitnet_engine::HeadType::Q8_0;
    let s = TestServer::start(cfg.clone());
    let engine = &s.state.loaded().unwrap().engine;
    assert_eq!(engine.model.weights().head.type_name(), "Q8_0");
    let prompt = engine
        .model
        .tokenizer()
        .unwrap()
        .encode("Hello", true, true)
        .unwrap();
    let (status, v) = post(
        &s.url("/v1/completions"),
        &json!({"prompt": "Hello", "max_tokens": 12, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        ids(&v),
        reference(&s, &prompt, 12, SamplingParams::greedy())
    );
    s.stop().await;
    check_batched_equals_alone(cfg).await;
}

async fn check_batched_equals_alone(cfg: bitnet_server::config::ServerConfig) {
    let s = TestServer::start(cfg);
    let bodies: Vec<Value> = (0..6)
        .map(|i| {
            json!({
                "prompt": format!("Request number {i} says"),
                "max_tokens": 16 + i,
                "temperature": 0.9,
                "seed": 100 + i,
            })
        })
        .collect();
    let url = s.url("/v1/completions");
    let together = futures_util::future::join_all(bodies.iter().map(|b| post(&url, b))).await;
    let metrics = get(&s.url("/metrics")).await.1;
    for (b, (status, v)) in bodies.iter().zip(&together) {
        assert_eq!(*status, 200, "{v}");
        let (_, alone) = post(&url, b).await;
        assert_eq!(v["choices"][0]["text"], alone["choices"][0]["text"]);
        assert_eq!(ids(v), ids(&alone));
    }
    // Some decode steps ran more than one request (continuous batching).
    let singles = metric(&metrics, "bitnet_decode_batch_size_bucket{le=\"1.0\"}").unwrap();
    let all = metric(&metrics, "bitnet_decode_batch_size_count").unwrap();
    assert!(
        singles < all,
        "no batched step: {singles} of {all} steps had one request"
    );
    s.stop().await;
}

#[actix_web::test]
async fn chat_next_turn_reuses_the_cached_prefix_without_changing_the_output() {
    let s = TestServer::start(config());
    let turn1 = json!({"messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 8, "temperature": 0});
    let (_, r1) = post(&s.url("/v1/chat/completions"), &turn1).await;
    let reply = r1["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let turn2 = json!({"messages": [
        {"role": "user", "content": "Tell me a story"},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": "And then?"},
    ], "max_tokens": 8, "temperature": 0});
    let (status, r2) = post(&s.url("/v1/chat/completions"), &turn2).await;
    assert_eq!(status, 200, "{r2}");
    let cached = r2["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    let prompt1 = r1["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(
        cached >= prompt1 - 1,
        "cached {cached} of turn 1's {prompt1}"
    );

    // A fresh server (nothing cached) gives the same answer.
    let fresh = TestServer::start(config());
    let (_, r2_fresh) = post(&fresh.url("/v1/chat/completions"), &turn2).await;
    assert_eq!(
        r2_fresh["usage"]["prompt_tokens_details"]["cached_tokens"],
        0
    );
    assert_eq!(ids(&r2), ids(&r2_fresh));
    fresh.stop().await;
    s.stop().await;
}

#[actix_web::test]
async fn full_pool_evicts_least_recently_used_sessions() {
    let mut cfg = config();
    cfg.max_batch = 1;
    cfg.kv_pool_sessions = 1;
    let s = TestServer::start(cfg);
    for p in ["first prompt", "a different one"] {
        let (status, _) = post(
            &s.url("/v1/completions"),
            &json!({"prompt": p, "max_tokens": 2}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let m = get(&s.url("/metrics")).await.1;
    assert_eq!(metric(&m, "bitnet_kv_pool_evictions_total"), Some(1.0));
    assert_eq!(
        metric(&m, "bitnet_kv_pool_sessions{state=\"idle\"}"),
        Some(1.0)
    );
    assert!(metric(&m, "bitnet_kv_pool_blocks_used").unwrap() >= 1.0);
    s.stop().await;
}

#[actix_web::test]
async fn stop_strings_and_stop_tokens_end_generation() {
    let s = TestServer::start(config());
    let url = s.url("/v1/completions");
    let (_, free) = post(
        &url,
        &json!({"prompt": "Hello", "max_tokens": 12, "temperature": 0}),
    )
    .await;
    let text = free["choices"][0]["text"].as_str().unwrap().to_string();
    // Stop at the third character of the greedy text: only what precedes it is returned.
    let stop: String = text.chars().skip(2).take(1).collect();
    let (status, v) = post(
        &url,
        &json!({"prompt": "Hello", "max_tokens": 12, "temperature": 0, "stop": stop}),
    )
    .await;
    assert_eq!(status, 200);
    let cut = &text[..text.find(&stop).unwrap()];
    assert_eq!(v["choices"][0]["text"], cut);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["bitnet"]["finish_detail"], "stop_string");
    s.stop().await;
}

#[actix_web::test]
async fn bad_input_gets_openai_errors_and_the_server_keeps_serving() {
    let mut cfg = config();
    cfg.max_body_bytes = 4096;
    let s = TestServer::start(cfg);
    let c = s.url("/v1/completions");
    let chat = s.url("/v1/chat/completions");
    let long: Vec<u32> = vec![65; 300];
    let cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        (&c, b"{not json".to_vec(), 400, None),
        (
            &c,
            br#"{"prompt": "x", "max_tokens": "ten"}"#.to_vec(),
            400,
            Some("max_tokens"),
        ),
        (
            &c,
            br#"{"prompt": "x", "temperature": [1]}"#.to_vec(),
            400,
            Some("temperature"),
        ),
        (&c, br#"{"max_tokens": 3}"#.to_vec(), 400, Some("prompt")),
        // A known field of the wrong type is still refused, naming it.
        (
            &c,
            br#"{"prompt": "x", "n": "two", "bogus": 1}"#.to_vec(),
            400,
            Some("n"),
        ),
        (
            &c,
            br#"{"prompt": "x", "temperature": 2.5}"#.to_vec(),
            400,
            Some("temperature"),
        ),
        (
            &c,
            br#"{"prompt": "x", "max_tokens": 5000}"#.to_vec(),
            400,
            Some("max_tokens"),
        ),
        (&c, br#"{"prompt": "x", "n": 17}"#.to_vec(), 400, Some("n")),
        (&c, br#"{"prompt": "x", "n": 0}"#.to_vec(), 400, Some("n")),
        (
            &c,
            br#"{"prompt": "x", "frequency_penalty": 3}"#.to_vec(),
            400,
            Some("frequency_penalty"),
        ),
        (
            &c,
            br#"{"prompt": "x", "presence_penalty": -2.5}"#.to_vec(),
            400,
            Some("presence_penalty"),
        ),
        (
            &c,
            br#"{"prompt": "x", "logprobs": 21}"#.to_vec(),
            400,
            Some("logprobs"),
        ),
        (
            &chat,
            br#"{"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21}"#.to_vec(),
            400,
            Some("top_logprobs"),
        ),
        (
            &chat,
            br#"{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}"#.to_vec(),
            400,
            Some("top_logprobs"),
        ),
        (
            &c,
            json!({"prompt": long}).to_string().into_bytes(),
            400,
            Some("prompt"),
        ),
        (&c, br#"{"prompt": [70000]}"#.to_vec(), 400, Some("prompt")),
        (
            &c,
            br#"{"prompt": "x", "model": "gpt-4"}"#.to_vec(),
            404,
            None,
        ),
        (&c, vec![b' '; 5000], 413, None),
        (
            &chat,
            br#"{"messages": []}"#.to_vec(),
            400,
            Some("messages"),
        ),
        (
            &chat,
            br#"{"messages": [{"role": "wizard", "content": "x"}]}"#.to_vec(),
            400,
            Some("messages[0].role"),
        ),
        (
            &chat,
            br#"{"messages": "hi"}"#.to_vec(),
            400,
            Some("messages"),
        ),
    ];
    for (url, body, want, param) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let (status, v) = post_raw(url, body, None).await;
        assert_eq!(status, want, "{shown}: {v}");
        let err = &v["error"];
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{shown}: {v}"
        );
        assert!(err["type"].is_string(), "{shown}: {v}");
        if let Some(p) = param {
            assert_eq!(err["param"], p, "{shown}: {v}");
        }
    }
    let (status, v) = get(&s.url("/no/such/route")).await;
    assert_eq!(status, 404);
    assert!(v.contains("not_found_error"));
    let (status, _) = get(&c).await;
    assert_eq!(status, 405);
    // Still serving.
    let (status, v) = post(&c, &json!({"prompt": "ok", "max_tokens": 2})).await;
    assert_eq!(status, 200, "{v}");
    let m = get(&s.url("/metrics")).await.1;
    // OpenAI answers 400 for every invalid request; nothing is answered 422.
    assert!(m.contains("bitnet_requests_total{endpoint=\"/v1/completions\",status=\"400\"}"));
    assert!(!m.contains("status=\"422\""), "{m}");
    s.stop().await;
}

#[actix_web::test]
async fn api_key_is_required_when_configured() {
    let mut cfg = config();
    cfg.api_keys = vec!["sekret".into()];
    let s = TestServer::start(cfg);
    let body = br#"{"prompt": "x", "max_tokens": 1}"#.to_vec();
    let (status, v) = post_raw(&s.url("/v1/completions"), body.clone(), None).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["type"], "authentication_error");
    let (status, _) = post_raw(&s.url("/v1/completions"), body.clone(), Some("wrong")).await;
    assert_eq!(status, 401);
    let (status, _) = post_raw(&s.url("/v1/completions"), body, Some("sekret")).await;
    assert_eq!(status, 200);
    // Operations endpoints stay open.
    assert_eq!(get(&s.url("/health")).await.0, 200);
    s.stop().await;
}

#[actix_web::test]
async fn full_queue_answers_429() {
    let mut cfg = config();
    cfg.max_batch = 1;
    cfg.kv_pool_sessions = 1;
    cfg.max_queue = 1;
    let s = TestServer::start(cfg);
    let url = s.url("/v1/completions");
    let body = json!({"prompt": "long", "max_tokens": 120});
    let all = futures_util::future::join_all((0..6).map(|_| post(&url, &body))).await;
    let statuses: Vec<u16> = all.iter().map(|(st, _)| *st).collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    let busy = all.iter().find(|(st, _)| *st == 429).expect("a 429");
    assert_eq!(busy.1["error"]["type"], "rate_limit_error");
    assert!(
        statuses.iter().all(|&st| st == 200 || st == 429),
        "{statuses:?}"
    );
    let (status, _) = post(&url, &json!({"prompt": "after", "max_tokens": 1})).await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[actix_web::test]
async fn not_ready_until_loaded() {
    let s = TestServer::start_with(config(), false);
    assert_eq!(get(&s.url("/health")).await.0, 200);
    let (status, body) = get(&s.url("/ready")).await;
    assert_eq!(status, 503);
    assert!(body.contains("still loading"));
    let (status, v) = post(&s.url("/v1/completions"), &json!({"prompt": "x"})).await;
    assert_eq!(status, 503);
    assert_eq!(v["error"]["type"], "service_unavailable");
    s.state
        .install(bitnet_server::Engine::load(&s.state.config).unwrap())
        .unwrap();
    assert_eq!(get(&s.url("/ready")).await.0, 200);
    s.stop().await;
}

#[actix_web::test]
async fn disconnecting_client_cancels_its_request() {
    let s = TestServer::start(config());
    let mut resp = client()
        .post(s.url("/v1/completions"))
        .send_json(&json!({"prompt": "go on", "max_tokens": 200, "stream": true}))
        .await
        .unwrap();
    let first = resp.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(resp);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = get(&s.url("/metrics")).await.1;
        if metric(&m, "bitnet_cancelled_requests_total") == Some(1.0) {
            assert_eq!(metric(&m, "bitnet_active_requests"), Some(0.0));
            assert!(metric(&m, "bitnet_generated_tokens_total").unwrap() < 200.0);
            break;
        }
        assert!(Instant::now() < deadline, "not cancelled:\n{m}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    s.stop().await;
}

#[actix_web::test]
async fn models_health_and_metrics() {
    let s = TestServer::start(config());
    let (status, body) = get(&s.url("/v1/models")).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"][0]["id"], "model-i2_s");
    assert_eq!(get(&s.url("/v1/models/model-i2_s")).await.0, 200);
    assert_eq!(get(&s.url("/v1/models/other")).await.0, 404);
    let (status, body) = get(&s.url("/health")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    post(
        &s.url("/v1/completions"),
        &json!({"prompt": "hi", "max_tokens": 3}),
    )
    .await;
    let m = get(&s.url("/metrics")).await.1;
    for name in [
        "bitnet_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 1",
        "bitnet_generated_tokens_total 3",
        "bitnet_prompt_tokens_total",
        "bitnet_queue_depth 0",
        "bitnet_active_requests 0",
        "bitnet_time_to_first_token_seconds_count 1",
        "bitnet_token_latency_seconds_count 2",
        "bitnet_kv_pool_blocks_total",
        "bitnet_kv_pool_bytes_allocated",
        "bitnet_kernel_info{id=",
    ] {
        assert!(m.contains(name), "missing {name} in\n{m}");
    }
    s.stop().await;
}
