//! `response_format` on the embedded model: `json_schema` and `json_object` outputs parse (and
//! satisfy the schema), streaming gives the same text as non-streaming, and bad formats or
//! unsupported schema keywords are 400s naming the problem while the server keeps serving.

mod common;

use bitnet_engine::ModelRef;
use common::*;
use serde_json::{Value, json};

fn embedded_server() -> TestServer {
    let mut cfg = config();
    cfg.model = ModelRef::Embedded;
    cfg.model_name = "embedded".into();
    TestServer::start(cfg)
}

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"enum": ["rust", "cpu", "llm"]}, "maxItems": 3}
        },
        "required": ["name", "age", "tags"],
        "additionalProperties": false
    })
}

fn request(seed: u64, format: Value, stream: bool) -> Value {
    json!({
        "messages": [{"role": "user", "content": "Describe a person as JSON."}],
        "max_tokens": 200,
        "temperature": 0.9,
        "seed": seed,
        "stream": stream,
        "response_format": format,
    })
}

/// [`request`] with [`schema`]'s properties written name, age, tags (not sorted).
fn ordered_request(seed: u64) -> String {
    format!(
        r#"{{"messages": [{{"role": "user", "content": "Describe a person as JSON."}}],
            "max_tokens": 200, "temperature": 0.9, "seed": {seed}, "stream": false,
            "response_format": {{"type": "json_schema", "json_schema": {{"name": "person",
            "strict": true, "schema": {{"type": "object", "properties": {{
                "name": {{"type": "string", "maxLength": 12}},
                "age": {{"type": "integer"}},
                "tags": {{"type": "array", "items": {{"enum": ["rust", "cpu", "llm"]}},
                          "maxItems": 3}}}},
            "required": ["name", "age", "tags"], "additionalProperties": false}}}}}}}}"#
    )
}

#[actix_web::test]
async fn json_schema_outputs_parse_and_validate_streaming_too() {
    let s = embedded_server();
    let url = s.url("/v1/chat/completions");
    let format = json!({"type": "json_schema", "json_schema": {"name": "person", "schema": schema(), "strict": true}});
    for seed in 0..4 {
        // Sent as text: a serialised `Value` would sort the keys, and the order written is
        // the order generated.
        let (status, body) = post_raw(&url, ordered_request(seed).into_bytes(), None).await;
        assert_eq!(status, 200, "{body}");
        let choice = &body["choices"][0];
        let text = choice["message"]["content"].as_str().unwrap();
        assert_eq!(choice["finish_reason"], "stop", "seed {seed}: {text:?}");
        let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
        let o = v.as_object().unwrap();
        assert_eq!(o.len(), 3, "{v}");
        // In the order the request wrote `properties` (not serde_json's sorted one).
        let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
        assert!(at("name") < at("age") && at("age") < at("tags"), "{text}");
        assert!(o["name"].as_str().unwrap().chars().count() <= 12);
        assert!(o["age"].as_f64().unwrap().fract() == 0.0);
        let tags = o["tags"].as_array().unwrap();
        assert!(
            tags.len() <= 3
                && tags
                    .iter()
                    .all(|t| ["rust", "cpu", "llm"].contains(&t.as_str().unwrap()))
        );

        // Streaming gives what non-streaming gives (both with the keys as serialised here).
        let (status, whole) = post(&url, &request(seed, format.clone(), false)).await;
        assert_eq!(status, 200, "{whole}");
        let (status, events) = stream(&url, &request(seed, format.clone(), true)).await;
        assert_eq!(status, 200);
        assert_eq!(
            stream_text(&events),
            whole["choices"][0]["message"]["content"].as_str().unwrap(),
            "seed {seed}: streaming differs"
        );
    }
    s.stop().await;
}

#[actix_web::test]
async fn json_object_outputs_are_objects_on_both_endpoints() {
    let s = embedded_server();
    for seed in 0..3 {
        let (status, body) = post(
            &s.url("/v1/chat/completions"),
            &request(seed, json!({"type": "json_object"}), false),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let text = body["choices"][0]["message"]["content"].as_str().unwrap();
        if body["choices"][0]["finish_reason"] == "stop" {
            let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
            assert!(v.is_object(), "{text}");
        }
        let (status, body) = post(
            &s.url("/v1/completions"),
            &json!({"prompt": "{\"config\":", "max_tokens": 80, "seed": seed,
                    "response_format": {"type": "json_object"}}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let text = body["choices"][0]["text"].as_str().unwrap();
        if body["choices"][0]["finish_reason"] == "stop" {
            let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
            assert!(v.is_object(), "{text}");
        }
    }
    s.stop().await;
}

#[actix_web::test]
async fn bad_response_formats_are_400s_naming_the_problem() {
    let s = embedded_server();
    let url = s.url("/v1/chat/completions");
    for (format, needle) in [
        (json!({"type": "xml"}), "'xml'"),
        (json!("json"), "'type'"),
        (json!({"type": "json_schema"}), "'json_schema'"),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema":
                {"type": "object", "properties": {"n": {"type": "number", "minimum": 0}}}}}),
            "'minimum'",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "http://x"}}}),
            "$ref",
        ),
    ] {
        let (status, body) = post(&url, &request(0, format.clone(), false)).await;
        assert_eq!(status, 400, "{format}: {body}");
        assert_eq!(body["error"]["param"], "response_format", "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{format}: {msg}");
    }
    // Still serving, and text is unconstrained.
    let (status, body) = post(&url, &request(0, json!({"type": "text"}), false)).await;
    assert_eq!(status, 200, "{body}");
    s.stop().await;
}
