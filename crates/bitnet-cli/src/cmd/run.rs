//! `run` (alias `generate`): one prompt in, generated text (or ids) streamed to stdout, a
//! timing summary on stderr, optionally a JSON record and a receipt.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use anyhow::Result;
use bitnet_engine::{FinishReason, Generation, GenerationParams, Model};
use bitnet_tokenizer::ChatMessage;

use crate::args::RunArgs;
use crate::cmd::chat;
use crate::cmd::receipt::{self, RunRecord};
use crate::common;
use crate::error::CliError;

/// Where the prompt comes from.
enum PromptInput {
    Text(String),
    Ids(Vec<u32>),
}

/// Reads the prompt from whichever source was given, before the model is loaded (so a missing
/// prompt fails fast).
fn prompt_input(args: &RunArgs) -> Result<PromptInput> {
    if let Some(ids) = &args.tokens {
        return Ok(PromptInput::Ids(ids.clone()));
    }
    if let Some(text) = &args.prompt {
        return Ok(PromptInput::Text(text.clone()));
    }
    if let Some(path) = &args.prompt_file {
        return Ok(PromptInput::Text(strip_final_newline(common::read_text(
            path,
        )?)));
    }
    if std::io::stdin().is_terminal() {
        return Err(CliError::NoPrompt.into());
    }
    Ok(PromptInput::Text(
        strip_final_newline(common::read_stdin()?),
    ))
}

/// Drops the one line ending that `echo` and editors put at the end of a file, so `echo P |
/// bitnet-cli run` and `--prompt P` give the model the same prompt.
fn strip_final_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// Token ids for the prompt: ids as given, or text encoded (through the chat template with
/// `--chat`). Text needs a tokenizer.
fn prompt_ids(model: &Model, args: &RunArgs, input: &PromptInput) -> Result<Vec<u32>> {
    match input {
        PromptInput::Ids(ids) => Ok(ids.clone()),
        PromptInput::Text(text) => {
            let tok = model.tokenizer().ok_or(CliError::NoTokenizer)?;
            if args.chat {
                let mut messages = Vec::new();
                if let Some(system) = &args.system {
                    messages.push(ChatMessage {
                        role: "system".into(),
                        content: system.clone(),
                    });
                }
                messages.push(ChatMessage {
                    role: "user".into(),
                    content: text.clone(),
                });
                chat::render_ids(tok, &messages)
            } else {
                Ok(tok.encode(text, tok.add_bos_default(), false)?)
            }
        }
    }
}

/// Runs the generation.
pub fn run(args: RunArgs) -> Result<()> {
    // Output files first: a bad path must fail before a prompt is read or a model loaded.
    let json_out = common::output(args.json_out.as_deref(), "--json-out", args.force)?;
    let receipt_out = common::output(args.receipt.as_deref(), "--receipt", args.force)?;
    if let (Some(a), Some(b)) = (&json_out, &receipt_out)
        && a.path() == b.path()
    {
        anyhow::bail!(
            "--json-out and --receipt name the same file {}",
            a.path().display()
        );
    }
    let input = prompt_input(&args)?;
    let (model, load_time) = common::load_model(&args.model)?;
    let prompt = prompt_ids(&model, &args, &input)?;
    let session_opts = common::session_options(&model, &args.session, 64)?;
    let mut session = model.session(&session_opts);
    common::check_prompt_fits(&model, prompt.len(), session.capacity())?;

    let sampling = common::sampling_params(&args.sampling);
    let tok = model.tokenizer();
    let params = GenerationParams {
        max_tokens: args.sampling.max_tokens,
        sampling: sampling.clone(),
        stop_ids: tok.map(|t| t.stop_ids()).unwrap_or_default(),
        stop_strings: args.sampling.stop.clone(),
    };
    let print_ids = args.ids || tok.is_none();

    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    let mut generation = Generation::new(&model, &mut session, &prompt, params.clone(), tok)?;
    let mut wrote_any = false;
    let mut last_newline = false;
    // The prompt first, as llama-cli prints it, so the output reads as one text (the
    // continuation often starts mid-word). Not in ids mode (the ids are the output) nor with
    // --chat (the reply is an answer, not a continuation).
    if let PromptInput::Text(text) = &input
        && !print_ids
        && !args.chat
        && !args.no_display_prompt
        && !text.is_empty()
    {
        write!(out, "{text}")?;
        wrote_any = true;
        last_newline = text.ends_with('\n');
    }
    for token in generation.by_ref() {
        let token = token?;
        if print_ids {
            if let Some(id) = token.id {
                if wrote_any {
                    write!(out, " ")?;
                }
                write!(out, "{id}")?;
                wrote_any = true;
            }
        } else if !token.text.is_empty() {
            write!(out, "{}", token.text)?;
            wrote_any = true;
            last_newline = token.text.ends_with('\n');
        }
        out.flush()?;
    }
    if wrote_any && !last_newline {
        writeln!(out)?;
        out.flush()?;
    }
    drop(out);
    let total = started.elapsed();
    let finish = generation.finish_reason().unwrap_or(FinishReason::Length);
    let stats = generation.stats();
    let output_ids = generation.tokens().to_vec();
    let output_text = tok.map(|_| generation.text().to_string());
    drop(generation);

    if !args.quiet {
        bitnet_app::logging::notice(
            "bitnet-cli",
            &format!(
                "load {:.1} ms | prompt {} tokens, {:.1} tokens/s | generated {} tokens, {:.1} tokens/s | total {:.1} ms | seed {} | finish {}",
                load_time.as_secs_f64() * 1e3,
                stats.prompt_tokens,
                stats.prefill_tokens_per_second(),
                stats.generated_tokens,
                stats.decode_tokens_per_second(),
                total.as_secs_f64() * 1e3,
                sampling.seed,
                finish.as_str(),
            ),
        );
    }

    let record = RunRecord {
        model_path: &args.model.model,
        model: &model,
        load_time,
        session_ctx: session.capacity(),
        session_opts: &session_opts,
        params: &params,
        prompt_text: match &input {
            PromptInput::Text(t) => Some(t.clone()),
            PromptInput::Ids(_) => None,
        },
        chat: args.chat,
        kernel: args.model.kernel.clone(),
        prompt_ids: prompt.clone(),
        output_ids,
        output_text,
        finish,
        stats,
    };
    if let Some(out) = &json_out {
        let value = receipt::run_json(&record);
        write_json(out, &value)?;
    }
    if let Some(out) = &receipt_out {
        let receipt = receipt::build(&record)?;
        write_json(out, &serde_json::to_value(&receipt)?)?;
    }
    Ok(())
}

/// Writes pretty JSON to a checked output file (temporary file, then rename).
pub fn write_json(out: &bitnet_app::OutputPath, value: &serde_json::Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    out.write(text.as_bytes())?;
    Ok(())
}
