//! Chat prompts: the model's Jinja `chat_template` rendered with minijinja, configured like
//! Hugging Face's `apply_chat_template` (`trim_blocks`, `lstrip_blocks`, `raise_exception`,
//! `messages`, `add_generation_prompt`, `bos_token`, `eos_token`), with Python string and
//! dict methods (`.strip()`, `.startswith()`, `.items()`, ...) from `minijinja-contrib`'s
//! `pycompat`, which real templates (Llama-3.1, Qwen, Phi) call, and a `tojson` filter that
//! prints like transformers' (Python `json.dumps` separators `", "`/`": "`, non-ASCII kept, no
//! HTML escaping; `indent=` supported, `sort_keys=true` refused) instead of minijinja's compact,
//! HTML-safe one.
//!
//! A chat template comes from the model file, so it is untrusted code: every render runs with
//! [`ChatLimits`] — minijinja's fuel (an instruction budget, which ends loops that would run
//! for ever) and a cap on the bytes written (a template that doubles what it prints stops at
//! the cap instead of exhausting memory). Both front ends (the server and `bitnet-cli chat`)
//! render through [`ChatTemplate`], so both get the same limits. What the limits do not cover:
//! a template that doubles a string in a variable without printing it grows within its fuel
//! (minijinja has no hook on string concatenation); the fuel bounds how many doublings it
//! gets, the caller's input caps bound the seed.

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

/// Limits on one render of a chat template (see the module docs for why they exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatLimits {
    /// minijinja fuel: about one unit per template instruction. The default (2 M) renders a
    /// conversation of thousands of messages with any real template (the BitNet one spends
    /// ~30 per message) and stops a runaway loop in well under a second.
    pub fuel: u64,
    /// Most bytes the render may write. The default (16 MiB) is far above any prompt a model
    /// context can hold.
    pub max_output_bytes: usize,
}

impl ChatLimits {
    /// The defaults both front ends use.
    pub const DEFAULT: Self = Self {
        fuel: 2_000_000,
        max_output_bytes: 16 << 20,
    };
}

impl Default for ChatLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A chat template compiled once, for rendering many conversations (a server).
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    limits: ChatLimits,
}

/// The render's writer: a `String` that refuses to grow past the output cap (the refusal
/// surfaces as minijinja's write failure; `tripped` tells the two apart).
struct CappedWriter {
    out: Vec<u8>,
    cap: usize,
    tripped: bool,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.cap {
            self.tripped = true;
            return Err(std::io::Error::other("chat template output limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Name of the one template in [`ChatTemplate`]'s environment.
const TEMPLATE_NAME: &str = "chat_template";

impl ChatTemplate {
    /// Compiles `source` (a model's `chat_template`) with the default [`ChatLimits`]; syntax
    /// errors are reported here.
    pub fn new(source: &str) -> Result<Self, TokenizerError> {
        Self::with_limits(source, ChatLimits::DEFAULT)
    }

    /// Compiles `source` with `limits` on every render.
    pub fn with_limits(source: &str, limits: ChatLimits) -> Result<Self, TokenizerError> {
        let mut env = Environment::new();
        env.set_fuel(Some(limits.fuel));
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
        Ok(Self { env, limits })
    }

    /// The limits every render runs with.
    pub fn limits(&self) -> ChatLimits {
        self.limits
    }

    /// The BitNet b1.58 2B4T template ([`BITNET_2B4T_CHAT_TEMPLATE`]).
    pub fn bitnet_2b4t() -> Self {
        Self::new(BITNET_2B4T_CHAT_TEMPLATE).expect("the built-in template compiles")
    }

    /// Renders `messages` within the template's [`ChatLimits`] (a tripped limit is
    /// [`TokenizerError::ChatTemplateLimit`]); see [`render_chat`].
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<String, TokenizerError> {
        let tmpl = self.env.get_template(TEMPLATE_NAME).map_err(render_err)?;
        let mut out = CappedWriter {
            out: Vec::new(),
            cap: self.limits.max_output_bytes,
            tripped: false,
        };
        let result = tmpl.render_captured_to(
            context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => bos_token,
                eos_token => eos_token,
            },
            &mut out,
        );
        match result {
            Ok(_) => String::from_utf8(out.out)
                .map_err(|e| TokenizerError::ChatTemplate(format!("output is not UTF-8: {e}"))),
            Err(_) if out.tripped => Err(TokenizerError::ChatTemplateLimit {
                what: "output",
                limit: self.limits.max_output_bytes as u64,
                hint: "bytes: the template writes too much",
            }),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(TokenizerError::ChatTemplateLimit {
                what: "fuel",
                limit: self.limits.fuel,
                hint: "instructions: the template loops too long",
            }),
            Err(e) => Err(render_err(e)),
        }
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

/// The widest `tojson(indent=N)`: real templates use 2 or 4. The indent is repeated per
/// nesting level on every line, and the output is built before the render's byte limit sees
/// it, so a template asking for `indent=361868357` (found by the `chat_template` fuzz target)
/// would allocate gigabytes: refused instead.
const MAX_TOJSON_INDENT: usize = 64;

/// transformers' `tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    if let Some(n) = indent.filter(|&n| n > MAX_TOJSON_INDENT) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson(indent={n}) is wider than the most supported, {MAX_TOJSON_INDENT}"),
        ));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hi() -> Vec<ChatMessage> {
        vec![ChatMessage::new("user", "hi")]
    }

    /// 10^10 iterations: without fuel this runs for hours.
    const ENDLESS: &str = "{% for a in range(100000) %}{% for b in range(100000) %}\
        {% endfor %}{% endfor %}";

    /// Prints a string that doubles every iteration: 2^64 bytes without a cap.
    const DOUBLING: &str = "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(64) %}\
        {{ ns.s }}{% set ns.s = ns.s ~ ns.s %}{% endfor %}";

    /// What the `chat_template` fuzz target found: `tojson(indent=361868357)` allocated
    /// gigabytes before the output cap could see it. Refused by name; real indents work.
    #[test]
    fn a_huge_tojson_indent_is_refused() {
        let t = ChatTemplate::new("{{ messages | tojson(indent=361868357) }}").unwrap();
        let err = t
            .render(&hi(), true, "<s>", "</s>")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tojson(indent=361868357)"), "{err}");
        let t = ChatTemplate::new("{{ messages | tojson(indent=64) }}").unwrap();
        let out = t.render(&hi(), true, "<s>", "</s>").unwrap();
        assert!(out.contains(&format!("\n{}{{", " ".repeat(64))), "{out}");
    }

    #[test]
    fn a_loop_that_never_ends_runs_out_of_fuel() {
        let t = ChatTemplate::new(ENDLESS).unwrap();
        let start = std::time::Instant::now();
        let err = t.render(&hi(), true, "<s>", "</s>").unwrap_err();
        assert!(
            matches!(
                err,
                TokenizerError::ChatTemplateLimit {
                    what: "fuel",
                    limit: 2_000_000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
    }

    #[test]
    fn a_doubling_template_stops_at_the_output_cap() {
        let limits = ChatLimits {
            fuel: ChatLimits::DEFAULT.fuel,
            max_output_bytes: 1 << 20,
        };
        let t = ChatTemplate::with_limits(DOUBLING, limits).unwrap();
        let err = t.render(&hi(), true, "<s>", "</s>").unwrap_err();
        assert!(
            matches!(
                err,
                TokenizerError::ChatTemplateLimit {
                    what: "output",
                    limit: 1_048_576,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("output limit of 1048576"), "{err}");
    }

    #[test]
    fn real_conversations_fit_the_default_limits() {
        let many: Vec<ChatMessage> = (0..2000)
            .map(|i| ChatMessage::new(if i % 2 == 0 { "user" } else { "assistant" }, "hello"))
            .collect();
        let out = ChatTemplate::bitnet_2b4t()
            .render(&many, true, "<s>", "</s>")
            .unwrap();
        assert!(out.starts_with("<s>User: hello<|eot_id|>Assistant: hello<|eot_id|>"));
        assert!(out.ends_with("Assistant: "));
        assert_eq!(out.matches("<|eot_id|>").count(), 2000);
    }
}
