//! OpenAI's wire format as bitnet-server speaks it: the request bodies of `/v1/completions` and
//! `/v1/chat/completions`, their parsing, OpenAI's limits, and the `usage` object.
//!
//! No HTTP and no model here: the server validates a parsed request against the model it
//! serves (context, vocabulary, chat template) and answers errors with HTTP statuses. Keeping
//! the wire format on its own means the parser can be fuzzed and tested without building the
//! server (`fuzz/`, target `openai_request`).
//!
//! Parsing is strict where it matters: a body that is not JSON, or a known field of the wrong
//! type, is a [`RequestError`] naming the field (the server answers it 400). Unknown fields are
//! returned by [`parse_body_fields`] for the caller to log and are otherwise ignored (OpenAI's
//! API and llama-server accept extra fields, and clients send vendor extensions freely).
#![forbid(unsafe_code)]

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Key order of a JSON text's objects: for each object, by JSON pointer, its keys as written
/// (the shape of `bitnet_engine::KeyOrder`, which compiles schemas in that order).
pub type KeyOrder = HashMap<String, Vec<String>>;

/// A request body that cannot be parsed: malformed JSON, not an object, or a known field of
/// the wrong type. Names the field when one is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// What is wrong.
    pub message: String,
    /// The offending top-level field, when one is.
    pub param: Option<String>,
}

impl RequestError {
    fn new(message: impl Into<String>, param: Option<&str>) -> Self {
        Self {
            message: message.into(),
            param: param.map(str::to_string),
        }
    }
}

/// Most stop strings (OpenAI's limit).
pub const MAX_STOP: usize = 4;

/// Default `max_tokens` of `/v1/completions` (OpenAI's).
pub const DEFAULT_COMPLETION_TOKENS: usize = 16;

/// Most choices per request (`n`): each is a full generation, so the cap bounds the work one
/// request can queue.
pub const MAX_N: u32 = 16;

/// Most alternatives per position (`top_logprobs`, and `logprobs` of `/v1/completions`):
/// OpenAI's chat limit.
pub const MAX_TOP_LOGPROBS: u32 = 20;

/// `prompt`: text, token ids, or a one-element list of either.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// Text.
    Text(String),
    /// Token ids.
    Tokens(Vec<u32>),
    /// A batch of texts (only one is accepted: `n` = 1 prompt per request).
    Texts(Vec<String>),
    /// A batch of token lists (only one is accepted).
    TokenLists(Vec<Vec<u32>>),
}

/// `stop`: one string or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with `usage`.
    #[serde(default)]
    pub include_usage: bool,
}

/// Settings shared by both endpoints.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Common {
    /// Model id (must be the served one when given).
    pub model: Option<String>,
    /// Most tokens to generate.
    pub max_tokens: Option<u64>,
    /// Softmax temperature in [0, 2]; 0 is greedy. Default: the server's `--temp` (1).
    pub temperature: Option<f32>,
    /// Nucleus mass in (0, 1]. Default 1.
    pub top_p: Option<f32>,
    /// Keep the k most likely tokens (extension; 0 = all).
    pub top_k: Option<u32>,
    /// Min-p filter (extension; 0 = off).
    pub min_p: Option<f32>,
    /// Multiplicative repetition penalty (extension, llama.cpp's; 1 = off).
    pub repeat_penalty: Option<f32>,
    /// Seed of the sampler; the same seed gives the same output.
    pub seed: Option<i64>,
    /// Stop strings.
    pub stop: Option<Stop>,
    /// Server-sent events.
    pub stream: Option<bool>,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Choices per prompt, 1..=[`MAX_N`]; choice `i` samples with seed `seed + i`.
    pub n: Option<u32>,
    /// OpenAI's presence penalty in [-2, 2] (over the generated tokens).
    pub presence_penalty: Option<f32>,
    /// OpenAI's frequency penalty in [-2, 2] (over the generated tokens).
    pub frequency_penalty: Option<f32>,
    /// Unsupported unless empty.
    pub logit_bias: Option<serde_json::Map<String, Value>>,
    /// Accepted and ignored (an end-user id).
    pub user: Option<String>,
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CompletionRequest {
    /// The prompt (required).
    pub prompt: Option<Prompt>,
    /// Shared settings.
    #[serde(flatten)]
    pub common: Common,
    /// Log-probabilities of each generated token and of the `logprobs` most likely
    /// alternatives (0..=[`MAX_TOP_LOGPROBS`]; null = none).
    pub logprobs: Option<u32>,
    /// Unsupported unless false.
    pub echo: Option<bool>,
    /// Unsupported unless 1.
    pub best_of: Option<u32>,
    /// Unsupported unless null/empty.
    pub suffix: Option<String>,
    /// `text`, `json_object` or `json_schema` (llama-server accepts it here too).
    pub response_format: Option<Value>,
    /// Key order of the body's objects, by JSON pointer, filled in by the server when
    /// `response_format` has a schema (the parsed `Value` keeps no order).
    #[serde(skip)]
    pub schema_order: Option<KeyOrder>,
}

/// Message content: text or a list of text parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Text.
    Text(String),
    /// Parts (`{"type": "text", "text": ...}` only).
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    /// Part type (`text`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its text.
    pub text: Option<String>,
}

/// One chat message.
#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    /// What is said.
    pub content: Option<Content>,
    /// Speaker name (ignored).
    pub name: Option<String>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChatRequest {
    /// The conversation (required, non-empty).
    pub messages: Option<Vec<Message>>,
    /// Shared settings.
    #[serde(flatten)]
    pub common: Common,
    /// Newer name of `max_tokens`.
    pub max_completion_tokens: Option<u64>,
    /// Return each generated token's log-probability.
    pub logprobs: Option<bool>,
    /// And the `top_logprobs` most likely alternatives (0..=[`MAX_TOP_LOGPROBS`]; needs
    /// `logprobs: true`).
    pub top_logprobs: Option<u32>,
    /// `text`, `json_object` or `json_schema`.
    pub response_format: Option<Value>,
    /// Key order of the body's objects, by JSON pointer, filled in by the server when
    /// `response_format` has a schema (the parsed `Value` keeps no order).
    #[serde(skip)]
    pub schema_order: Option<KeyOrder>,
    /// Unsupported unless empty.
    pub tools: Option<Vec<Value>>,
    /// Unsupported unless `none`/absent.
    pub tool_choice: Option<Value>,
    /// Ignored.
    pub parallel_tool_calls: Option<bool>,
    /// Ignored (nothing is stored).
    pub store: Option<bool>,
    /// Ignored.
    pub metadata: Option<Value>,
}

/// Fields of [`Common`].
const COMMON_FIELDS: &[&str] = &[
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
];

/// A request body with a fixed set of top-level fields: [`parse_body_fields`] tells the
/// unknown ones (ignored, logged) from these, and looks for a type error only among these.
pub trait Body: DeserializeOwned + Default {
    /// Its own top-level fields (besides [`Common`]'s).
    const FIELDS: &'static [&'static str];
}

impl Body for CompletionRequest {
    const FIELDS: &'static [&'static str] = &[
        "prompt",
        "logprobs",
        "echo",
        "best_of",
        "suffix",
        "response_format",
    ];
}

impl Body for ChatRequest {
    const FIELDS: &'static [&'static str] = &[
        "messages",
        "max_completion_tokens",
        "logprobs",
        "top_logprobs",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "store",
        "metadata",
    ];
}

/// Parses a JSON body: 400 for malformed JSON and missing/wrong-typed fields; unknown fields
/// are ignored (see [`parse_body_fields`] for their names).
pub fn parse_body<T: Body>(bytes: &[u8]) -> Result<T, RequestError> {
    parse_body_fields(bytes).map(|(body, _)| body)
}

/// Parses a JSON body as [`parse_body`] does and also returns the names of the top-level
/// fields it ignored as unknown (for the caller's log line). The offending field of a type
/// error is found by parsing each top-level field on its own.
pub fn parse_body_fields<T: Body>(bytes: &[u8]) -> Result<(T, Vec<String>), RequestError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| RequestError::new(format!("the request body is not valid JSON: {e}"), None))?;
    let Value::Object(map) = &value else {
        return Err(RequestError::new(
            "the request body must be a JSON object",
            None,
        ));
    };
    let known = |k: &str| T::FIELDS.contains(&k) || COMMON_FIELDS.contains(&k);
    let unknown: Vec<String> = map.keys().filter(|k| !known(k)).cloned().collect();
    match serde_json::from_value::<T>(value.clone()) {
        Ok(v) => Ok((v, unknown)),
        Err(e) => {
            let msg = e.to_string();
            for (k, v) in map.iter().filter(|(k, _)| known(k)) {
                let mut one = serde_json::Map::new();
                one.insert(k.clone(), v.clone());
                if let Err(e) = serde_json::from_value::<T>(Value::Object(one)) {
                    return Err(RequestError::new(
                        format!("invalid value for '{k}': {e}"),
                        Some(k),
                    ));
                }
            }
            Err(RequestError::new(format!("invalid request: {msg}"), None))
        }
    }
}

/// `usage`.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Sum.
    pub total_tokens: usize,
    /// Cached prompt tokens (OpenAI's `prompt_tokens_details.cached_tokens`).
    pub prompt_tokens_details: PromptDetails,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Serialize)]
pub struct PromptDetails {
    /// Prompt tokens served from the KV cache.
    pub cached_tokens: usize,
}

impl Usage {
    /// From counts.
    pub fn new(prompt: usize, completion: usize, cached: usize) -> Self {
        Self {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: PromptDetails {
                cached_tokens: cached,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_field_of_the_wrong_type_is_named() {
        let e = parse_body::<CompletionRequest>(br#"{"prompt": "hi", "max_tokens": "ten"}"#)
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        assert!(
            e.message.starts_with("invalid value for 'max_tokens'"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_are_returned_not_refused() {
        let (req, unknown) = parse_body_fields::<ChatRequest>(
            br#"{"messages": [{"role": "user", "content": "hi"}], "mirostat": 2, "n": 2}"#,
        )
        .unwrap();
        assert_eq!(unknown, vec!["mirostat".to_string()]);
        assert_eq!(req.common.n, Some(2));
        assert_eq!(req.messages.unwrap()[0].role, "user");
    }

    #[test]
    fn malformed_bodies_name_no_field() {
        for body in [&b"{"[..], b"[1]", b"\"null\""] {
            let e = parse_body::<ChatRequest>(body).unwrap_err();
            assert_eq!(e.param, None, "{e}");
        }
    }

    #[test]
    fn prompts_take_every_openai_shape() {
        for (body, want) in [
            (&br#"{"prompt": "a"}"#[..], "Text"),
            (br#"{"prompt": [1, 2]}"#, "Tokens"),
            (br#"{"prompt": ["a"]}"#, "Texts"),
            (br#"{"prompt": [[1]]}"#, "TokenLists"),
        ] {
            let r = parse_body::<CompletionRequest>(body).unwrap();
            let got = format!("{:?}", r.prompt.unwrap());
            assert!(got.starts_with(want), "{got}");
        }
    }

    #[test]
    fn usage_totals_and_reports_cached_tokens() {
        let u = serde_json::to_value(Usage::new(7, 5, 3)).unwrap();
        assert_eq!(u["total_tokens"], 12);
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 3);
    }
}
