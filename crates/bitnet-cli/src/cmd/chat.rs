//! `chat`: a conversation. Each line on stdin is one user turn (a "> " prompt is shown on a
//! terminal); the whole history is rendered with the model's chat template (or the BitNet
//! 2B4T format when the model has none) every turn, and the KV cache keeps the longest prefix
//! the new token sequence shares with what it already holds, so a turn only processes the new
//! tokens. `/reset` forgets the conversation, `/exit` (or end of input) ends it.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;
use bitnet_engine::{FinishReason, Generation, GenerationParams};
use bitnet_tokenizer::{ChatMessage, Tokenizer};

use crate::args::ChatArgs;
use crate::common;
use crate::error::CliError;

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

/// Runs the conversation.
pub fn run(args: ChatArgs) -> Result<()> {
    let (model, load_time) = common::load_model(&args.model)?;
    let tok = model.tokenizer().ok_or(CliError::NoTokenizer)?;
    let session_opts = common::session_options(&model, &args.session, 64)?;
    let mut session = model.session(&session_opts);
    let sampling = common::sampling_params(&args.sampling);
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    if !args.quiet {
        eprintln!(
            "loaded {} in {:.1} ms; seed {}; context {} tokens{}",
            args.model.model.display(),
            load_time.as_secs_f64() * 1e3,
            sampling.seed,
            session.capacity(),
            if interactive {
                "; /reset forgets the conversation, /exit ends it"
            } else {
                ""
            }
        );
    }

    let system: Vec<ChatMessage> = args
        .system
        .iter()
        .map(|s| ChatMessage {
            role: "system".into(),
            content: s.clone(),
        })
        .collect();
    let mut history = system.clone();
    let mut cached: Vec<u32> = Vec::new();
    let mut turn = 0u64;
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            let mut err = std::io::stderr().lock();
            write!(err, "> ")?;
            err.flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history = system.clone();
                session.reset();
                cached.clear();
                if interactive {
                    eprintln!("(conversation reset)");
                }
                continue;
            }
            _ => {}
        }
        history.push(ChatMessage {
            role: "user".into(),
            content: line.to_string(),
        });
        let ids = render_ids(tok, &history)?;
        if ids.len() >= session.capacity() {
            history.pop();
            let err = CliError::PromptTooLong {
                tokens: ids.len(),
                ctx: session.capacity(),
                max: model.config().context_length,
            };
            if interactive {
                eprintln!("bitnet-cli: error: {err}; /reset starts over");
                continue;
            }
            return Err(err.into());
        }
        // Keep the cached prefix; at least the last token must be fed again for fresh logits.
        let keep = common_prefix(&cached, &ids).min(ids.len() - 1);
        session.truncate(keep);
        let params = GenerationParams {
            max_tokens: args.sampling.max_tokens,
            sampling: bitnet_engine::SamplingParams {
                seed: sampling.seed.wrapping_add(turn),
                ..sampling.clone()
            },
            stop_ids: tok.stop_ids(),
            stop_strings: args.sampling.stop.clone(),
        };
        let mut out = std::io::stdout().lock();
        let mut generation =
            Generation::new(&model, &mut session, &ids[keep..], params, Some(tok))?;
        for token in generation.by_ref() {
            let token = token?;
            write!(out, "{}", token.text)?;
            out.flush()?;
        }
        writeln!(out)?;
        out.flush()?;
        drop(out);
        let stats = generation.stats();
        let finish = generation.finish_reason().unwrap_or(FinishReason::Length);
        let answer = generation.text().to_string();
        let generated = generation.tokens().to_vec();
        drop(generation);
        // What the session holds now: the prompt and every generated token that was fed back.
        cached = ids;
        cached.extend_from_slice(&generated);
        cached.truncate(session.position());
        history.push(ChatMessage {
            role: "assistant".into(),
            content: answer,
        });
        if !args.quiet {
            eprintln!(
                "[{} new prompt tokens ({} reused), {:.1} tokens/s | {} generated, {:.1} tokens/s | {}]",
                stats.prompt_tokens,
                keep,
                stats.prefill_tokens_per_second(),
                stats.generated_tokens,
                stats.decode_tokens_per_second(),
                finish.as_str(),
            );
        }
        turn += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::common_prefix;

    #[test]
    fn prefix_length() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4, 5]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[1, 2], &[1, 2]), 2);
    }
}
