//! Validation of parsed OpenAI requests ([`bitnet_openai`]) against the served model, into a
//! [`crate::scheduler::GenRequest`]'s parameters.
//!
//! A known field out of range is a 400 naming it; a known OpenAI field this server cannot
//! honour with the value given (`tools`, `logit_bias`, `echo`, ...) is a 400 naming it, rather
//! than being silently ignored and returning something other than what was asked. Prompts
//! are checked against the model's context and vocabulary, chat messages rendered with its
//! template.

use std::collections::BTreeMap;
use std::sync::Arc;

use bitnet_engine::{Grammar, KeyOrder, SamplingParams};
use bitnet_openai::{
    ChatRequest, Common, CompletionRequest, Content, DEFAULT_COMPLETION_TOKENS, MAX_N, MAX_STOP,
    MAX_TOP_LOGPROBS, Prompt, Stop,
};
use bitnet_tokenizer::ChatMessage;
use serde_json::Value;

use crate::config::SamplingDefaults;

use crate::engine::Engine;
use crate::error::ApiError;

/// A validated generation request's parameters.
#[derive(Debug, Clone)]
pub struct Validated {
    /// Prompt ids.
    pub prompt: Vec<u32>,
    /// The prompt text (completions) or rendered chat prompt.
    pub prompt_text: Option<String>,
    /// Most new tokens.
    pub max_tokens: usize,
    /// Sampling settings.
    pub sampling: SamplingParams,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Stream?
    pub stream: bool,
    /// Usage chunk at the end of a stream?
    pub include_usage: bool,
    /// Choices to generate (1..=[`MAX_N`]); choice `i` samples with seed `sampling.seed + i`.
    pub n: usize,
    /// Log-probabilities: `None` = off, `Some(k)` = the chosen token's and the `k` most likely.
    pub logprobs: Option<usize>,
    /// Constrained decoding from `response_format` (`None` for text).
    pub grammar: Option<Arc<Grammar>>,
    /// What `grammar` was compiled from (receipts record it).
    pub format: Option<Arc<FormatSpec>>,
}

fn unsupported(param: &str, what: &str) -> ApiError {
    ApiError::Unprocessable {
        message: format!("'{param}' {what} is not supported by this server"),
        param: Some(param.to_string()),
        code: Some("unsupported_parameter"),
    }
}

/// Checks of the fields both endpoints share (model, `n`, penalties, `logit_bias`).
fn check_common(c: &Common, engine: &Engine) -> Result<(), ApiError> {
    if let Some(m) = &c.model
        && m != &engine.name
    {
        return Err(ApiError::NotFound {
            message: format!(
                "the model '{m}' does not exist; this server serves '{}'",
                engine.name
            ),
            code: Some("model_not_found"),
        });
    }
    if let Some(n) = c.n
        && !(1..=MAX_N).contains(&n)
    {
        return Err(ApiError::invalid(
            format!("n {n} is out of range: it must be in [1, {MAX_N}]"),
            "n",
        ));
    }
    for (name, v) in [
        ("presence_penalty", c.presence_penalty),
        ("frequency_penalty", c.frequency_penalty),
    ] {
        if let Some(v) = v
            && !(v.is_finite() && (-2.0..=2.0).contains(&v))
        {
            return Err(ApiError::invalid(
                format!("{name} {v} is out of range: it must be in [-2, 2]"),
                name,
            ));
        }
    }
    if c.logit_bias.as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(unsupported("logit_bias", ""));
    }
    Ok(())
}

/// The request's sampling settings; a field it leaves out takes the server's default
/// (`--temp`, `--top-k`, ...: OpenAI's values unless the operator set others).
fn sampling(c: &Common, defaults: &SamplingDefaults) -> Result<SamplingParams, ApiError> {
    let temperature = c.temperature.unwrap_or(defaults.temperature);
    if !(temperature.is_finite() && (0.0..=2.0).contains(&temperature)) {
        return Err(ApiError::invalid(
            format!("temperature {temperature} is out of range: it must be in [0, 2]"),
            "temperature",
        ));
    }
    let top_p = c.top_p.unwrap_or(defaults.top_p);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid(
            format!("top_p {top_p} is out of range: it must be in (0, 1]"),
            "top_p",
        ));
    }
    let min_p = c.min_p.unwrap_or(defaults.min_p);
    if !(0.0..=1.0).contains(&min_p) {
        return Err(ApiError::invalid(
            format!("min_p {min_p} is out of range: it must be in [0, 1]"),
            "min_p",
        ));
    }
    let repeat_penalty = c.repeat_penalty.unwrap_or(defaults.repeat_penalty);
    if !(repeat_penalty.is_finite() && repeat_penalty > 0.0) {
        return Err(ApiError::invalid(
            format!("repeat_penalty {repeat_penalty} must be > 0"),
            "repeat_penalty",
        ));
    }
    // No seed: a fresh one, recorded in the receipt so the output can be reproduced.
    let seed = match (c.seed, defaults.seed) {
        (Some(s), _) => s as u64,
        (None, Some(s)) => s,
        (None, None) => uuid::Uuid::new_v4().as_u64_pair().0,
    };
    Ok(SamplingParams {
        temperature,
        top_k: c.top_k.unwrap_or(defaults.top_k) as usize,
        top_p,
        min_p,
        repeat_penalty,
        repeat_last_n: 64,
        presence_penalty: c.presence_penalty.unwrap_or(0.0),
        frequency_penalty: c.frequency_penalty.unwrap_or(0.0),
        seed,
    })
}

fn stops(c: &Common) -> Result<Vec<String>, ApiError> {
    let stops = match &c.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) => v.clone(),
    };
    if stops.len() > MAX_STOP {
        return Err(ApiError::invalid(
            format!(
                "at most {MAX_STOP} stop sequences are allowed, got {}",
                stops.len()
            ),
            "stop",
        ));
    }
    if stops.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            "stop sequences must not be empty",
            "stop",
        ));
    }
    Ok(stops)
}

/// Checks lengths against the context; `default_max` applies when `max_tokens` is absent.
#[allow(clippy::too_many_arguments)]
fn finish(
    c: &Common,
    engine: &Engine,
    prompt: Vec<u32>,
    prompt_text: Option<String>,
    max_tokens: Option<u64>,
    default_max: usize,
    prompt_param: &str,
    logprobs: Option<usize>,
) -> Result<Validated, ApiError> {
    let ctx = engine.ctx;
    if prompt.is_empty() {
        return Err(ApiError::invalid("the prompt is empty", prompt_param));
    }
    if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= engine.vocab()) {
        return Err(ApiError::invalid(
            format!(
                "token id {bad} is outside the vocabulary (size {})",
                engine.vocab()
            ),
            prompt_param,
        ));
    }
    if prompt.len() >= ctx {
        return Err(ApiError::Unprocessable {
            message: format!(
                "this model's context is {ctx} tokens, but the prompt is {} tokens \
                 (at least one token must be left to generate)",
                prompt.len()
            ),
            param: Some(prompt_param.to_string()),
            code: Some("context_length_exceeded"),
        });
    }
    let room = ctx - prompt.len();
    let max_tokens = match max_tokens {
        Some(0) => {
            return Err(ApiError::invalid(
                "max_tokens must be at least 1",
                "max_tokens",
            ));
        }
        Some(m) if m > room as u64 => {
            return Err(ApiError::Unprocessable {
                message: format!(
                    "this model's context is {ctx} tokens; you requested {} tokens \
                     ({} in the prompt, {m} for the completion)",
                    prompt.len() as u64 + m,
                    prompt.len()
                ),
                param: Some("max_tokens".to_string()),
                code: Some("context_length_exceeded"),
            });
        }
        Some(m) => m as usize,
        None => default_max.min(room),
    };
    Ok(Validated {
        prompt,
        prompt_text,
        max_tokens,
        sampling: sampling(c, &engine.sampling_defaults)?,
        stop: stops(c)?,
        stream: c.stream.unwrap_or(false),
        include_usage: c.stream_options.as_ref().is_some_and(|o| o.include_usage),
        n: c.n.unwrap_or(1) as usize,
        logprobs,
        grammar: None,
        format: None,
    })
}

fn encode(engine: &Engine, text: &str, add_bos: bool) -> Result<Vec<u32>, ApiError> {
    let tok = engine.model.tokenizer().ok_or_else(|| {
        ApiError::invalid(
            "this model has no tokenizer: give the prompt as token ids",
            "prompt",
        )
    })?;
    tok.encode(text, add_bos, true)
        .map_err(|e| ApiError::invalid(format!("the prompt cannot be tokenized: {e}"), "prompt"))
}

/// A parsed request body checked against the served model.
pub trait Validate {
    /// Validates (and tokenises, rendering the chat template for chat requests).
    fn validate(&self, engine: &Engine) -> Result<Validated, ApiError>;
}

impl Validate for CompletionRequest {
    fn validate(&self, engine: &Engine) -> Result<Validated, ApiError> {
        check_common(&self.common, engine)?;
        if let Some(k) = self.logprobs
            && k > MAX_TOP_LOGPROBS
        {
            return Err(ApiError::invalid(
                format!("logprobs {k} is out of range: it must be in [0, {MAX_TOP_LOGPROBS}]"),
                "logprobs",
            ));
        }
        if self.echo == Some(true) {
            return Err(unsupported("echo", ""));
        }
        if self.best_of.is_some_and(|b| b != 1) {
            return Err(unsupported("best_of", "other than 1"));
        }
        if self.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
            return Err(unsupported("suffix", ""));
        }
        let one = |n: usize| {
            if n == 1 {
                Ok(())
            } else {
                Err(ApiError::invalid(
                    format!("exactly one prompt per request is supported, got {n}"),
                    "prompt",
                ))
            }
        };
        let (ids, text) = match &self.prompt {
            None => {
                return Err(ApiError::bad_request(
                    "missing required parameter 'prompt'",
                    Some("prompt"),
                ));
            }
            Some(Prompt::Text(t)) => (encode(engine, t, engine.add_bos)?, Some(t.clone())),
            Some(Prompt::Texts(v)) => {
                one(v.len())?;
                (encode(engine, &v[0], engine.add_bos)?, Some(v[0].clone()))
            }
            Some(Prompt::Tokens(ids)) => (ids.clone(), None),
            Some(Prompt::TokenLists(v)) => {
                one(v.len())?;
                (v[0].clone(), None)
            }
        };
        let format = response_format(
            self.response_format.as_ref(),
            self.schema_order.as_ref(),
            engine,
        )?;
        let mut v = finish(
            &self.common,
            engine,
            ids,
            text,
            self.common.max_tokens,
            DEFAULT_COMPLETION_TOKENS,
            "prompt",
            self.logprobs.map(|k| k as usize),
        )?;
        (v.grammar, v.format) = format.unzip();
        Ok(v)
    }
}

impl Validate for ChatRequest {
    fn validate(&self, engine: &Engine) -> Result<Validated, ApiError> {
        check_common(&self.common, engine)?;
        if let Some(k) = self.top_logprobs {
            if k > MAX_TOP_LOGPROBS {
                return Err(ApiError::invalid(
                    format!(
                        "top_logprobs {k} is out of range: it must be in [0, {MAX_TOP_LOGPROBS}]"
                    ),
                    "top_logprobs",
                ));
            }
            if k > 0 && self.logprobs != Some(true) {
                return Err(ApiError::invalid(
                    "top_logprobs needs logprobs set to true",
                    "top_logprobs",
                ));
            }
        }
        let logprobs =
            (self.logprobs == Some(true)).then(|| self.top_logprobs.unwrap_or(0) as usize);
        if self.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(unsupported("tools", ""));
        }
        if self
            .tool_choice
            .as_ref()
            .is_some_and(|v| !(v.is_null() || v == &Value::from("none")))
        {
            return Err(unsupported("tool_choice", ""));
        }
        let format = response_format(
            self.response_format.as_ref(),
            self.schema_order.as_ref(),
            engine,
        )?;
        let Some(messages) = &self.messages else {
            return Err(ApiError::bad_request(
                "missing required parameter 'messages'",
                Some("messages"),
            ));
        };
        if messages.is_empty() {
            return Err(ApiError::invalid(
                "'messages' must not be empty",
                "messages",
            ));
        }
        let mut chat = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            let role = match m.role.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                other => {
                    return Err(ApiError::invalid(
                        format!(
                            "messages[{i}].role '{other}' is not supported (system, user, assistant)"
                        ),
                        &format!("messages[{i}].role"),
                    ));
                }
            };
            let content = match &m.content {
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(parts)) => {
                    let mut s = String::new();
                    for p in parts {
                        if p.kind != "text" {
                            return Err(ApiError::invalid(
                                format!(
                                    "messages[{i}]: content part type '{}' is not supported (text only)",
                                    p.kind
                                ),
                                &format!("messages[{i}].content"),
                            ));
                        }
                        s.push_str(p.text.as_deref().unwrap_or_default());
                    }
                    s
                }
                None => String::new(),
            };
            chat.push(ChatMessage::new(role, content));
        }
        let Some(template) = &engine.chat else {
            return Err(ApiError::invalid(
                "this model has no tokenizer: use /v1/completions with token ids",
                "messages",
            ));
        };
        let rendered = template
            .render(&chat, true, &engine.bos_token, &engine.eos_token)
            .map_err(|e| match e {
                // The model's template misbehaved (a loop, a runaway output): a server error.
                bitnet_tokenizer::TokenizerError::ChatTemplateLimit { .. } => {
                    ApiError::TemplateLimit(e.to_string())
                }
                // `raise_exception` and friends: the template refusing these messages.
                e => ApiError::invalid(format!("the chat template failed: {e}"), "messages"),
            })?;
        let tok = engine
            .model
            .tokenizer()
            .ok_or_else(|| ApiError::invalid("this model has no tokenizer", "messages"))?;
        let ids = tok.encode_chat(&rendered).map_err(|e| {
            ApiError::invalid(format!("the prompt cannot be tokenized: {e}"), "messages")
        })?;
        let max = self.max_completion_tokens.or(self.common.max_tokens);
        let mut v = finish(
            &self.common,
            engine,
            ids,
            Some(rendered),
            max,
            usize::MAX,
            "messages",
            logprobs,
        )?;
        (v.grammar, v.format) = format.unzip();
        Ok(v)
    }
}

/// Where a `json_schema` format's schema is in a request body.
const SCHEMA_POINTER: &str = "/response_format/json_schema/schema";

/// The key order of `body` when `response_format` carries a schema (`None` otherwise: the
/// second parse is paid only then). serde_json's map sorts keys; the schema's `properties`
/// are generated in the order the client wrote them, as llama-server does.
pub fn schema_order(rf: Option<&Value>, body: &[u8]) -> Option<KeyOrder> {
    let rf = rf?;
    (rf.get("type").and_then(Value::as_str) == Some("json_schema"))
        .then(|| bitnet_engine::key_order(body))
}

/// Reads OpenAI's `response_format`: `{"type": "text"}` (or absent) generates freely;
/// `{"type": "json_object"}` constrains the output to a JSON object; `{"type": "json_schema",
/// "json_schema": {"name": ..., "schema": {...}, "strict": ...}}` to a value valid against the
/// schema (the subset [`Grammar::from_schema`] lists; without `schema`, any JSON value). The
/// schema is compiled here, once per request, on the blocking pool. Errors are 400s naming
/// `response_format` and, for a schema, the keyword and its place.
///
/// Returns the grammar and what it was compiled from: the schema and the key order written
/// under it ([`FormatSpec`]), from which a receipt's verifier compiles the same grammar.
pub fn response_format(
    rf: Option<&Value>,
    order: Option<&KeyOrder>,
    engine: &Engine,
) -> Result<Option<Format>, ApiError> {
    const PARAM: &str = "response_format";
    let bad = |m: String| ApiError::bad_request(m, Some(PARAM));
    let Some(rf) = rf.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let kind = rf
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("response_format must be an object with a string 'type'".into()))?;
    let (grammar, spec) = match kind {
        "text" => return Ok(None),
        "json_object" => (Grammar::any_object(), FormatSpec::JsonObject),
        "json_schema" => {
            let js = rf
                .get("json_schema")
                .filter(|v| v.is_object())
                .ok_or_else(|| {
                    bad("response_format of type 'json_schema' needs a 'json_schema' object".into())
                })?;
            if js.get("name").is_some_and(|n| !n.is_string()) {
                return Err(bad(
                    "response_format.json_schema.name must be a string".into()
                ));
            }
            if js
                .get("strict")
                .is_some_and(|s| !(s.is_boolean() || s.is_null()))
            {
                return Err(bad(
                    "response_format.json_schema.strict must be a boolean".into()
                ));
            }
            let schema = js.get("schema").filter(|v| !v.is_null());
            let grammar = match (schema, order) {
                (None, _) => Grammar::from_schema(&Value::Bool(true)),
                (Some(schema), Some(order)) => {
                    Grammar::from_schema_in_order(schema, order, SCHEMA_POINTER)
                }
                (Some(schema), None) => Grammar::from_schema(schema),
            }
            .map_err(|e| bad(format!("response_format.json_schema.schema: {e}")))?;
            let property_order = order
                .map(|o| order_under(o, SCHEMA_POINTER))
                .unwrap_or_default();
            (
                grammar,
                FormatSpec::JsonSchema {
                    schema: schema.cloned(),
                    property_order,
                },
            )
        }
        other => {
            return Err(bad(format!(
                "response_format type '{other}' is not supported (text, json_object, json_schema)"
            )));
        }
    };
    // Builds the per-model token table now, on the blocking pool, rather than in the decode
    // loop on the first constrained request.
    if engine.model.token_texts().is_none() {
        return Err(bad(
            "response_format needs a model with a tokenizer (token texts are matched)".into(),
        ));
    }
    Ok(Some((Arc::new(grammar), Arc::new(spec))))
}

/// A constraining `response_format`: the grammar to decode with and what it was compiled from.
pub type Format = (Arc<Grammar>, Arc<FormatSpec>);

/// What a constraining `response_format` was compiled from: enough to compile the same
/// [`Grammar`] again (a receipt's verifier does).
#[derive(Debug, Clone, PartialEq)]
pub enum FormatSpec {
    /// `json_object`: any JSON object.
    JsonObject,
    /// `json_schema`.
    JsonSchema {
        /// The schema (`None`: the request gave none, any JSON value).
        schema: Option<Value>,
        /// The key order written in the schema's text, by JSON pointer relative to the schema
        /// (`""` is the schema): [`Grammar::from_schema_in_order`] with base `""` reads it.
        property_order: BTreeMap<String, Vec<String>>,
    },
}

/// The entries of `order` at and below the JSON pointer `base`, with `base` cut off their
/// keys (so they are pointers relative to the value at `base`).
fn order_under(order: &KeyOrder, base: &str) -> BTreeMap<String, Vec<String>> {
    order
        .iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix(base)?;
            (rest.is_empty() || rest.starts_with('/')).then(|| (rest.to_string(), v.clone()))
        })
        .collect()
}
