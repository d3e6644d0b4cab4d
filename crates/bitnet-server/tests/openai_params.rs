//! The OpenAI request parameters as clients use them, against a real server on 127.0.0.1:
//! `logprobs`/`top_logprobs` (checked against a direct log-softmax of the model's logits),
//! `frequency_penalty`/`presence_penalty` (checked against the engine alone), `n` choices and
//! their seeds, `stream_options.include_usage`, unknown fields, and `--cors`.

mod common;

use bitnet_engine::{ModelRef, SamplingParams};
use common::*;
use serde_json::{Value, json};

/// The embedded model (it has a tokenizer and a chat template), one thread.
fn embedded() -> bitnet_server::ServerConfig {
    let mut c = config();
    c.model = ModelRef::Embedded;
    c.model_name = "embedded".into();
    c
}

fn ids_of(v: &Value) -> Vec<u32> {
    v["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// ln softmax(logits)[i] in f64, the direct way.
fn log_softmax(logits: &[f32], i: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    logits[i] as f64 - max - z.ln()
}

#[actix_web::test]
async fn completion_logprobs_are_the_log_softmax_of_the_model_logits() {
    let s = TestServer::start(embedded());
    let prompt = [1u32, 450, 2000, 30, 7];
    let (status, v) = post(
        &s.url("/v1/completions"),
        &json!({"prompt": prompt, "max_tokens": 6, "temperature": 0, "logprobs": 5}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let out = ids_of(&v["bitnet"]);
    let lp = &v["choices"][0]["logprobs"];
    assert_eq!(lp["token_logprobs"].as_array().unwrap().len(), out.len());
    assert_eq!(lp["tokens"].as_array().unwrap().len(), out.len());
    assert_eq!(lp["text_offset"][0], 0);

    // Replay: the logits at each position, straight from the model.
    let engine = &s.state.loaded().unwrap().engine;
    let model = &engine.model;
    let mut session = model.session(&engine.session_opts);
    let mut logits = model.forward(&mut session, &prompt).unwrap().to_vec();
    for (k, &id) in out.iter().enumerate() {
        let want = log_softmax(&logits, id as usize);
        let got = lp["token_logprobs"][k].as_f64().unwrap();
        assert!((got - want).abs() < 1e-4, "token {k}: {got} vs {want}");
        // Greedy: the chosen token is the most likely, so it heads the top list.
        let top = lp["top_logprobs"][k].as_object().unwrap();
        assert!(!top.is_empty() && top.len() <= 5);
        let best = top
            .values()
            .map(|x| x.as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert!((best - got).abs() < 1e-6, "top {best} vs chosen {got}");
        // Every listed value is the log-softmax of some token at least that likely.
        for x in top.values() {
            assert!(x.as_f64().unwrap() <= 0.0);
        }
        logits = model.forward(&mut session, &[id]).unwrap().to_vec();
    }
}

#[actix_web::test]
async fn chat_logprobs_stream_and_not_agree_and_top_lists_are_sorted() {
    let s = TestServer::start(embedded());
    let body = json!({
        "messages": [{"role": "user", "content": "What is a trait?"}],
        "max_tokens": 8, "temperature": 0, "logprobs": true, "top_logprobs": 3,
    });
    let (status, v) = post(&s.url("/v1/chat/completions"), &body).await;
    assert_eq!(status, 200, "{v}");
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(content.len(), ids_of(&v["bitnet"]).len());
    let mut text = String::new();
    for e in content {
        let top = e["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        let vals: Vec<f64> = top.iter().map(|t| t["logprob"].as_f64().unwrap()).collect();
        assert!(vals.windows(2).all(|w| w[0] >= w[1]), "sorted: {vals:?}");
        assert!(vals[0] <= 0.0);
        assert_eq!(
            e["logprob"], top[0]["logprob"],
            "greedy picks the top entry"
        );
        assert_eq!(e["token"], top[0]["token"]);
        let bytes: Vec<u8> = e["bytes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            e["token"].as_str().unwrap()
        );
        text.push_str(e["token"].as_str().unwrap());
    }
    assert_eq!(
        text,
        v["choices"][0]["message"]["content"].as_str().unwrap()
    );

    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    let (status, events) = stream(&s.url("/v1/chat/completions"), &stream_body).await;
    assert_eq!(status, 200);
    let streamed: Vec<&Value> = events
        .iter()
        .filter_map(|e| e["choices"][0]["logprobs"]["content"].as_array())
        .flatten()
        .collect();
    assert_eq!(streamed.len(), content.len());
    for (a, b) in streamed.iter().zip(content) {
        assert_eq!(*a, b);
    }
}

#[actix_web::test]
async fn penalties_change_the_output_as_the_engine_does() {
    let s = TestServer::start(embedded());
    let prompt = "fn main() { let x = 1; let x = 1; let x = 1;";
    let run = |presence: f64, frequency: f64| {
        let url = s.url("/v1/completions");
        async move {
            let (status, v) = post(
                &url,
                &json!({"prompt": prompt, "max_tokens": 24, "temperature": 0,
                        "presence_penalty": presence, "frequency_penalty": frequency}),
            )
            .await;
            assert_eq!(status, 200, "{v}");
            ids_of(&v["bitnet"])
        }
    };
    let plain = run(0.0, 0.0).await;
    let presence = run(2.0, 0.0).await;
    let frequency = run(0.0, 2.0).await;
    let distinct = |ids: &[u32]| {
        let mut d = ids.to_vec();
        d.sort_unstable();
        d.dedup();
        d.len()
    };
    assert_ne!(plain, presence);
    // Presence 2 pushes towards tokens not used yet: no fewer distinct tokens.
    assert!(
        distinct(&presence) >= distinct(&plain),
        "{presence:?} vs {plain:?}"
    );

    // And each equals the engine's own generation with the same settings.
    let tok = s.state.loaded().unwrap().engine.model.tokenizer().unwrap();
    let ids = tok.encode(prompt, true, true).unwrap();
    for (got, presence_penalty, frequency_penalty) in
        [(&presence, 2.0, 0.0), (&frequency, 0.0, 2.0)]
    {
        let sampling = SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            presence_penalty,
            frequency_penalty,
            ..SamplingParams::default()
        };
        assert_eq!(*got, reference(&s, &ids, 24, sampling));
    }
}

#[actix_web::test]
async fn n_choices_use_seed_plus_index_and_stream_with_usage() {
    let s = TestServer::start(embedded());
    let url = s.url("/v1/completions");
    let body = json!({"prompt": "Ownership", "max_tokens": 6, "temperature": 1.0,
                      "seed": 40, "n": 3, "unknown_vendor_field": {"x": 1}});
    let (status, v) = post(&url, &body).await;
    assert_eq!(status, 200, "{v}");
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    let mut completion_tokens = 0;
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        // Choice i is the single request with seed 40 + i.
        let (_, one) = post(
            &url,
            &json!({"prompt": "Ownership", "max_tokens": 6, "temperature": 1.0,
                    "seed": 40 + i}),
        )
        .await;
        assert_eq!(c["text"], one["choices"][0]["text"], "choice {i}");
        assert_eq!(
            ids_of(&v["bitnet"]["choices"][i]),
            ids_of(&one["bitnet"]),
            "choice {i}"
        );
        completion_tokens += one["usage"]["completion_tokens"].as_u64().unwrap();
    }
    assert_eq!(v["usage"]["completion_tokens"], completion_tokens);
    let texts: Vec<&str> = choices
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert!(
        texts[0] != texts[1] || texts[1] != texts[2],
        "three seeds, three identical texts: {texts:?}"
    );

    // Streaming: chunks carry their choice's index; per index, the same text; a final chunk
    // with empty choices and the summed usage, then [DONE].
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    sbody["stream_options"] = json!({"include_usage": true});
    let (status, events) = stream(&url, &sbody).await;
    assert_eq!(status, 200);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let usage = &events[events.len() - 2];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], completion_tokens);
    // (cached_tokens may differ: the second request finds the prompt in the prefix cache.)
    assert_eq!(usage["usage"]["prompt_tokens"], v["usage"]["prompt_tokens"]);
    assert_eq!(usage["usage"]["total_tokens"], v["usage"]["total_tokens"]);
    for (i, c) in choices.iter().enumerate() {
        let text: String = events
            .iter()
            .filter_map(|e| e["choices"].get(0))
            .filter(|c| c["index"] == i)
            .filter_map(|c| c["text"].as_str())
            .collect();
        assert_eq!(text, c["text"].as_str().unwrap(), "choice {i}");
        let finishes = events
            .iter()
            .filter_map(|e| e["choices"].get(0))
            .filter(|c| c["index"] == i && !c["finish_reason"].is_null())
            .count();
        assert_eq!(finishes, 1, "choice {i} finishes once");
    }
}

#[actix_web::test]
async fn cors_answers_preflight_for_allowed_origins_only() {
    let mut cfg = config();
    cfg.cors = vec!["http://app.example".into()];
    let s = TestServer::start(cfg);
    let preflight = |origin: &'static str| {
        client()
            .request(
                actix_web::http::Method::OPTIONS,
                s.url("/v1/chat/completions"),
            )
            .insert_header(("origin", origin))
            .insert_header(("access-control-request-method", "POST"))
            .insert_header((
                "access-control-request-headers",
                "authorization, content-type",
            ))
            .send()
    };
    let resp = preflight("http://app.example").await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let h = resp.headers();
    assert_eq!(
        h.get("access-control-allow-origin").unwrap(),
        "http://app.example"
    );
    let methods = h
        .get("access-control-allow-methods")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let allowed = h
        .get("access-control-allow-headers")
        .unwrap()
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");

    // The actual request carries the header; an origin not on the list gets none.
    let mut resp = client()
        .post(s.url("/v1/completions"))
        .insert_header(("origin", "http://app.example"))
        .send_json(&json!({"prompt": "x", "max_tokens": 1}))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers().get("access-control-allow-origin").unwrap(),
        "http://app.example"
    );
    let _ = resp.body().await;
    let resp = preflight("http://evil.example").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    // Off by default: no CORS headers at all.
    let plain = TestServer::start(config());
    let mut resp = client()
        .post(plain.url("/v1/completions"))
        .insert_header(("origin", "http://app.example"))
        .send_json(&json!({"prompt": "x", "max_tokens": 1}))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let _ = resp.body().await;
}

#[actix_web::test]
async fn cors_wildcard_allows_any_origin() {
    let mut cfg = config();
    cfg.cors = vec!["*".into()];
    let s = TestServer::start(cfg);
    let resp = client()
        .request(actix_web::http::Method::OPTIONS, s.url("/v1/models"))
        .insert_header(("origin", "http://anything.example:8000"))
        .insert_header(("access-control-request-method", "GET"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers().get("access-control-allow-origin").unwrap(),
        "*"
    );
}
