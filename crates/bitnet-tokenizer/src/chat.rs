//! Chat prompts: the model's Jinja `chat_template` rendered with minijinja, configured like
//! Hugging Face's `apply_chat_template` (`trim_blocks`, `lstrip_blocks`, `raise_exception`,
//! `messages`, `add_generation_prompt`, `bos_token`, `eos_token`), with Python string and
//! dict methods (`.strip()`, `.startswith()`, `.items()`, ...) from `minijinja-contrib`'s
//! `pycompat`, which real templates (Llama-3.1, Qwen, Phi) call, and a `tojson` filter that
//! prints like transformers' (Python `json.dumps` separators `", "`/`": "`, non-ASCII kept, no
//! HTML escaping; `indent=` supported, `sort_keys=true` refused) instead of minijinja's compact,
//! HTML-safe one.

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind, context};
use serde::{Deserialize, Serialize};

use crate::TokenizerError;

/// One chat turn. `role` is `system`, `user` or `assistant` (templates may accept others).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who speaks.
    pub role: String,
    /// What is said.
    pub content: String,
}

impl ChatMessage {
    /// A message from `role`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The chat template of `microsoft/bitnet-b1.58-2B-4T` (the `chat_template` of its
/// tokenizer_config.json), used when a model has none: `Role: content<|eot_id|>` per message
/// (role capitalised, content trimmed), `bos_token` before the first, then `Assistant: ` when a
/// generation prompt is asked for; e.g. `<|begin_of_text|>User: Hey<|eot_id|>Assistant: `, the
/// prompt form of transformers' BitNet example.
pub const BITNET_2B4T_CHAT_TEMPLATE: &str = "{% set loop_messages = messages %}\
{% for message in loop_messages %}\
{% set content = message['role'] | capitalize + ': '+ message['content'] | trim + '<|eot_id|>' %}\
{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}\
{{ content }}\
{% endfor %}\
{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";

/// A chat template compiled once, for rendering many conversations (a server).
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
}

/// Name of the one template in [`ChatTemplate`]'s environment.
const TEMPLATE_NAME: &str = "chat_template";

impl ChatTemplate {
    /// Compiles `source` (a model's `chat_template`); syntax errors are reported here.
    pub fn new(source: &str) -> Result<Self, TokenizerError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(render_err)?;
        Ok(Self { env })
    }

    /// The BitNet b1.58 2B4T template ([`BITNET_2B4T_CHAT_TEMPLATE`]).
    pub fn bitnet_2b4t() -> Self {
        Self::new(BITNET_2B4T_CHAT_TEMPLATE).expect("the built-in template compiles")
    }

    /// Renders `messages`; see [`render_chat`].
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String, TokenizerError> {
        let tmpl = self.env.get_template(TEMPLATE_NAME).map_err(render_err)?;
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
        })
        .map_err(render_err)
    }
}

fn render_err(e: Error) -> TokenizerError {
    TokenizerError::ChatTemplate(e.to_string())
}

/// Renders `messages` with `template` (the model's `chat_template`), or with
/// [`BITNET_2B4T_CHAT_TEMPLATE`] when `None`, which gives
/// `"<|begin_of_text|>User: hi<|eot_id|>Assistant: "` for one user message "hi" with
/// `bos_token = "<|begin_of_text|>"`. Compiles the template on every call: keep a
/// [`ChatTemplate`] to render many conversations.
///
/// The result usually starts with the BOS text already: encode it with
/// [`crate::Tokenizer::encode_chat`] (or with `add_bos = false`) to avoid a second BOS.
pub fn render_chat(
    template: Option<&str>,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
) -> Result<String, TokenizerError> {
    ChatTemplate::new(template.unwrap_or(BITNET_2B4T_CHAT_TEMPLATE))?.render(
        messages,
        add_generation_prompt,
        bos_token,
        eos_token,
    )
}

/// `json.dumps` separators without indent: `", "` between items, `": "` after keys.
struct PythonCompact;

impl serde_json::ser::Formatter for PythonCompact {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

/// transformers' `tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let _separators: Option<Value> = kwargs.get("separators")?;
    if kwargs.get::<Option<bool>>("sort_keys")? == Some(true) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson(sort_keys=true) is not supported",
        ));
    }
    kwargs.assert_all_used()?;
    let mut out = Vec::new();
    let result = match indent {
        Some(n) => {
            let pad = vec![b' '; n];
            let fmt = serde_json::ser::PrettyFormatter::with_indent(&pad);
            serde::Serialize::serialize(
                value,
                &mut serde_json::Serializer::with_formatter(&mut out, fmt),
            )
        }
        None => serde::Serialize::serialize(
            value,
            &mut serde_json::Serializer::with_formatter(&mut out, PythonCompact),
        ),
    };
    result.map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let text = String::from_utf8(out)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    Ok(Value::from_safe_string(text))
}
