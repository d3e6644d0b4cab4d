//! `chat`: a conversation with the model.
//!
//! On a terminal, turns are read with a line editor (rustyline: arrows, Home/End, Ctrl-W,
//! Up/Down through the history, which is kept in `bitnet-rs/chat_history` under the user's
//! data directory unless `--no-history`); escape sequences never reach the model. From a pipe,
//! each line is one user turn and no prompt is shown.
//!
//! Keys (terminal): Ctrl-C during a reply stops that reply only; the text so far stays in the
//! conversation as the assistant's turn (as in llama-cli) and the prompt comes back. Ctrl-C at
//! the prompt discards the line being typed and says how to quit; a second Ctrl-C in a row
//! quits (the Node.js REPL's rule). Ctrl-D on an empty line quits with exit code 0.
//!
//! Commands: `/clear` (alias `/reset`) forgets the conversation but the system prompt,
//! `/save FILE` writes it as OpenAI-shaped JSON messages (`/save! FILE` replaces an existing
//! file), `/help`, `/exit` (alias `/quit`).
//!
//! The whole conversation is rendered with the model's chat template (or the BitNet 2B4T
//! format when the model has none, with a warning) every turn, and the KV cache keeps the
//! longest prefix the new token sequence shares with what it already holds, so a turn only
//! processes the new tokens. Context shift: a turn starts only if the rendered conversation
//! leaves room for min(-n, ctx/4) reply tokens; otherwise the oldest turns are dropped (the
//! system prompt and the new message stay), the conversation is re-rendered and what no
//! longer matches the cache is processed again, and stderr says how many turns went.

mod conversation;
mod input;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use bitnet_engine::{
    FinishReason, Generation, GenerationParams, GenerationStats, Model, SamplingParams, Session,
};
use bitnet_tokenizer::{BITNET_2B4T_CHAT_TEMPLATE, ChatMessage, ChatTemplate, Tokenizer};

use crate::args::ChatArgs;
use crate::common;
use crate::error::CliError;
use conversation::Conversation;
use input::{Input, Source};

/// Token ids of `messages` rendered with the tokenizer's chat template (or the 2B4T format
/// when it has none) and a generation prompt for the assistant; BOS is added only if the
/// template did not write it.
pub fn render_ids(tok: &Tokenizer, messages: &[ChatMessage]) -> Result<Vec<u32>> {
    let text = bitnet_tokenizer::render_chat(
        tok.chat_template(),
        messages,
        true,
        &tok.bos_token(),
        &tok.eos_token(),
    )?;
    Ok(tok.encode_chat(&text)?)
}

/// Length of the common prefix of two token sequences.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

const HELP: &str = "\
commands:
  /clear         forget the conversation (the system prompt stays); /reset does the same
  /save FILE     write the conversation as JSON messages [{\"role\", \"content\"}]
  /save! FILE    the same, replacing FILE if it exists
  /help          this text
  /exit          quit (/quit, or Ctrl-D on an empty line)
keys: Ctrl-C stops a reply (the partial reply is kept); at the prompt it clears the line and
      a second Ctrl-C quits; Up/Down recall earlier lines";

/// What the user typed, parsed.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    Empty,
    Message(&'a str),
    Exit,
    Clear,
    Help,
    Save { file: &'a str, overwrite: bool },
    Unknown(&'a str),
}

fn parse(line: &str) -> Line<'_> {
    let line = line.trim();
    if line.is_empty() {
        return Line::Empty;
    }
    if !line.starts_with('/') {
        return Line::Message(line);
    }
    let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    match cmd {
        "/exit" | "/quit" => Line::Exit,
        "/clear" | "/reset" => Line::Clear,
        "/help" | "/?" => Line::Help,
        "/save" | "/save!" => Line::Save {
            file: rest,
            overwrite: cmd == "/save!",
        },
        _ => Line::Unknown(cmd),
    }
}

/// The chat state between turns.
struct Chat<'m> {
    model: &'m Model,
    tok: &'m Tokenizer,
    template: ChatTemplate,
    session: Session,
    conversation: Conversation,
    /// The token ids the session's KV cache holds, in order.
    cached: Vec<u32>,
    sampling: SamplingParams,
    max_tokens: usize,
    stop: Vec<String>,
    turn: u64,
}

/// How a turn's reply ended.
struct Reply {
    stats: GenerationStats,
    finish: FinishReason,
    reused: usize,
    stopped: bool,
}

impl Chat<'_> {
    fn ids(&self) -> Result<Vec<u32>> {
        let text = self.template.render(
            &self.conversation.messages(),
            true,
            &self.tok.bos_token(),
            &self.tok.eos_token(),
        )?;
        Ok(self.tok.encode_chat(&text)?)
    }

    /// Room a turn must leave for its reply before it starts: the whole `-n` when the context
    /// allows, but never more than a quarter of it (a long `-n` must not shift away every
    /// earlier turn).
    fn reserve(&self) -> usize {
        self.max_tokens.min(self.session.capacity() / 4).max(1)
    }

    /// Renders the conversation with `message` as the new user turn, dropping the oldest turns
    /// while it does not leave [`Self::reserve`] tokens of room. Returns the ids and how many
    /// turns were dropped, or the error to show when even the system prompt and `message`
    /// alone leave no room for one token or the template fails (the message is then not
    /// kept, so the chat can go on without it).
    fn prepare(&mut self, message: &str) -> Result<(Vec<u32>, usize)> {
        self.conversation.push("user", message);
        let capacity = self.session.capacity();
        let mut dropped = 0;
        loop {
            let ids = match self.ids() {
                Ok(ids) => ids,
                Err(e) => {
                    // A template that fails to render: the message is not kept either.
                    self.conversation.pop();
                    return Err(e);
                }
            };
            if ids.len() + self.reserve() <= capacity {
                return Ok((ids, dropped));
            }
            if self.conversation.drop_oldest_turn() {
                dropped += 1;
                continue;
            }
            if ids.len() < capacity {
                // Only the system prompt and this message are left: answer in the room there is.
                return Ok((ids, dropped));
            }
            self.conversation.pop();
            return Err(CliError::PromptTooLong {
                tokens: ids.len(),
                ctx: capacity,
                max: self.model.config().context_length,
            }
            .into());
        }
    }

    /// Generates the reply to `ids` (the rendered conversation), writing it to stdout as it
    /// comes; stops early when `interrupt` is set (checked before every token, and left set
    /// for the caller to clear). The reply,
    /// whole or partial, joins the conversation.
    fn reply(&mut self, ids: &[u32], interrupt: &AtomicBool) -> Result<Reply> {
        // Keep the cached prefix; at least the last token must be fed again for fresh logits.
        let keep = common_prefix(&self.cached, ids).min(ids.len() - 1);
        self.session.truncate(keep);
        let params = GenerationParams {
            max_tokens: self.max_tokens,
            sampling: SamplingParams {
                seed: self.sampling.seed.wrapping_add(self.turn),
                ..self.sampling.clone()
            },
            stop_ids: self.tok.stop_ids(),
            stop_strings: self.stop.clone(),
        };
        self.turn += 1;
        let mut out = std::io::stdout().lock();
        let mut generation = Generation::new(
            self.model,
            &mut self.session,
            &ids[keep..],
            params,
            Some(self.tok),
        )?;
        let mut stopped = false;
        loop {
            if interrupt.load(Ordering::SeqCst) {
                stopped = true;
                break;
            }
            let Some(token) = generation.next() else {
                break;
            };
            write!(out, "{}", token?.text)?;
            out.flush()?;
        }
        writeln!(out)?;
        out.flush()?;
        let stats = generation.stats();
        let finish = generation.finish_reason().unwrap_or(FinishReason::Length);
        let answer = generation.text().to_string();
        let generated = generation.tokens().to_vec();
        drop(generation);
        // What the session holds now: the prompt and every generated token that was fed back.
        self.cached.clear();
        self.cached.extend_from_slice(ids);
        self.cached.extend_from_slice(&generated);
        self.cached.truncate(self.session.position());
        self.conversation.push("assistant", &answer);
        Ok(Reply {
            stats,
            finish,
            reused: keep,
            stopped,
        })
    }
}

/// Runs the conversation.
pub fn run(args: ChatArgs) -> Result<()> {
    let (model, load_time) = common::load_model(&args.model)?;
    let tok = model.tokenizer().ok_or(CliError::NoTokenizer)?;
    let session_opts = common::session_options(&model, &args.session, 64)?;
    let session = model.session(&session_opts);
    let sampling = common::sampling_params(&args.sampling);
    let interactive = std::io::stdin().is_terminal();

    // SIGINT (Ctrl-C while a reply is written: the terminal is in cooked mode then) only sets
    // this flag, which the reply loop checks before every token. At the prompt the line editor
    // has the terminal in raw mode, so Ctrl-C arrives there as a key, not a signal. From a pipe
    // Ctrl-C keeps its default meaning (end the process).
    let interrupt = Arc::new(AtomicBool::new(false));
    if interactive {
        signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupt))?;
    }
    let mut source = if interactive {
        let history = if args.no_history {
            None
        } else {
            input::default_history_path()
        };
        Source::terminal(history)?
    } else {
        Source::pipe()
    };

    if !args.quiet {
        bitnet_app::logging::notice(
            "bitnet-cli",
            &format!(
                "loaded {} in {:.1} ms; seed {}; context {} tokens{}",
                args.model.model.display(),
                load_time.as_secs_f64() * 1e3,
                sampling.seed,
                session.capacity(),
                if interactive {
                    "; /help lists commands, Ctrl-C stops a reply, Ctrl-D quits"
                } else {
                    ""
                }
            ),
        );
    }
    if tok.chat_template().is_none() {
        bitnet_app::logging::warning(
            "bitnet-cli",
            "the model has no chat template; using the BitNet b1.58 2B4T \
             format (\"User: ...<|eot_id|>Assistant: \"). A base model that was not trained \
             for chat will likely just continue the text.",
        );
    }
    let template = ChatTemplate::new(tok.chat_template().unwrap_or(BITNET_2B4T_CHAT_TEMPLATE))?;
    let mut chat = Chat {
        model: &model,
        tok,
        template,
        session,
        conversation: Conversation::new(args.system.as_deref()),
        cached: Vec::new(),
        sampling,
        max_tokens: args.sampling.max_tokens,
        stop: args.sampling.stop.clone(),
        turn: 0,
    };

    let mut interrupted_at_prompt = false;
    loop {
        // A Ctrl-C that came after the last reply ended must not stop the next one. Cleared
        // here, where the terminal is about to go raw (no SIGINT from the keyboard until the
        // line is read), and not when the reply starts: a Ctrl-C during the prefill counts.
        interrupt.store(false, Ordering::SeqCst);
        let line = match source.read("> ")? {
            Input::Line(line) => line,
            // On Ctrl-D the line editor has already ended the "> " line, so the shell's prompt
            // starts on its own line (the pty test checks it).
            Input::Eof => break,
            Input::Interrupted => {
                if interrupted_at_prompt {
                    break;
                }
                interrupted_at_prompt = true;
                bitnet_app::logging::notice("bitnet-cli", "(Ctrl-C again, Ctrl-D or /exit quits)");
                continue;
            }
        };
        interrupted_at_prompt = false;
        if !line.trim().is_empty() {
            source.remember(&line);
        }
        let message = match parse(&line) {
            Line::Empty => continue,
            Line::Exit => break,
            Line::Help => {
                bitnet_app::logging::notice("bitnet-cli", HELP);
                continue;
            }
            Line::Clear => {
                chat.conversation.clear();
                if interactive {
                    bitnet_app::logging::notice("bitnet-cli", "(conversation cleared)");
                }
                continue;
            }
            Line::Save { file: "", .. } => {
                bitnet_app::report::print_error_text(
                    "bitnet-cli",
                    "/save needs a file name: /save FILE",
                );
                continue;
            }
            Line::Save { file, overwrite } => {
                match chat
                    .conversation
                    .save(std::path::Path::new(file), overwrite)
                {
                    Ok(()) => bitnet_app::logging::notice(
                        "bitnet-cli",
                        &format!("(conversation saved to {file})"),
                    ),
                    Err(e) => bitnet_app::report::print_error_text("bitnet-cli", &format!("{e}")),
                }
                continue;
            }
            Line::Unknown(cmd) => {
                bitnet_app::report::print_error_text(
                    "bitnet-cli",
                    &format!("unknown command {cmd}; /help lists the commands"),
                );
                continue;
            }
            Line::Message(m) => m,
        };
        let (ids, dropped) = match chat.prepare(message) {
            Ok(x) => x,
            Err(e) if interactive => {
                bitnet_app::report::print_error_text("bitnet-cli", &format!("{e}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        if dropped > 0 {
            bitnet_app::logging::notice(
                "bitnet-cli",
                &format!(
                    "context full: dropped {dropped} oldest turn{} (the context holds {} tokens)",
                    if dropped == 1 { "" } else { "s" },
                    chat.session.capacity()
                ),
            );
        }
        let reply = chat.reply(&ids, &interrupt)?;
        if reply.stopped {
            bitnet_app::logging::notice(
                "bitnet-cli",
                "(reply stopped; what was written stays in the conversation)",
            );
        } else if reply.finish == FinishReason::Length
            && reply.stats.generated_tokens < chat.max_tokens
        {
            // "length" before -n tokens: the context ran out (Generation clamps to its room).
            bitnet_app::logging::notice(
                "bitnet-cli",
                "context full: the reply was cut; the next turn drops the oldest turns",
            );
        }
        if !args.quiet {
            let s = reply.stats;
            bitnet_app::logging::notice(
                "bitnet-cli",
                &format!(
                    "[{} new prompt tokens ({} reused), {:.1} tokens/s | {} generated, {:.1} tokens/s | {}]",
                    s.prompt_tokens,
                    reply.reused,
                    s.prefill_tokens_per_second(),
                    s.generated_tokens,
                    s.decode_tokens_per_second(),
                    if reply.stopped {
                        "stopped"
                    } else {
                        reply.finish.as_str()
                    }
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_length() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4, 5]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[1, 2], &[1, 2]), 2);
    }

    #[test]
    fn parses_commands() {
        assert_eq!(parse("  "), Line::Empty);
        assert_eq!(parse(" hello "), Line::Message("hello"));
        assert_eq!(parse("/exit"), Line::Exit);
        assert_eq!(parse("/reset"), Line::Clear);
        assert_eq!(
            parse("/save  a b.json "),
            Line::Save {
                file: "a b.json",
                overwrite: false
            }
        );
        assert_eq!(
            parse("/save! x"),
            Line::Save {
                file: "x",
                overwrite: true
            }
        );
        assert_eq!(
            parse("/save"),
            Line::Save {
                file: "",
                overwrite: false
            }
        );
        assert_eq!(parse("/nope x"), Line::Unknown("/nope"));
    }
}
