//! `perplexity`: the exact definition is in the command's `--help` (args.rs); in short,
//! non-overlapping windows of `--ctx` tokens, a fresh KV cache per window, log-softmax in f64.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use anyhow::Result;
use bitnet_engine::SessionOptions;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::PerplexityArgs;
use crate::common;
use crate::error::CliError;

/// `ln p(target)` from one row of logits, by a log-softmax in f64.
pub fn log_prob(logits: &[f32], target: u32) -> f64 {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let sum: f64 = logits.iter().map(|&v| (f64::from(v) - max).exp()).sum();
    f64::from(logits[target as usize]) - max - sum.ln()
}

/// Cuts `tokens` into windows: `(window tokens, index of the first scored position)`.
/// With `bos`, each window is BOS + up to `ctx - 1` text tokens and every text token is
/// scored (from position 1); without, a window is up to `ctx` tokens scored from position 1.
fn windows(tokens: &[u32], ctx: usize, bos: Option<u32>) -> Vec<Vec<u32>> {
    let per = if bos.is_some() { ctx - 1 } else { ctx };
    tokens
        .chunks(per)
        .map(|chunk| {
            let mut w = Vec::with_capacity(ctx);
            w.extend(bos);
            w.extend_from_slice(chunk);
            w
        })
        .filter(|w| w.len() >= 2)
        .collect()
}

/// Computes and prints the perplexity.
pub fn run(args: PerplexityArgs) -> Result<()> {
    let text = common::read_text(&args.file)?;
    let (model, _) = common::load_model(&args.model)?;
    let tok = model.tokenizer().ok_or(CliError::NoTokenizer)?;
    let max = model.config().context_length;
    let ctx = match args.ctx {
        Some(c) => usize::try_from(c).unwrap_or(usize::MAX),
        // llama.cpp's default window, unless the model cannot hold it.
        None => max.min(512),
    };
    if ctx > max {
        return Err(CliError::ContextTooLarge { ctx, max }.into());
    }
    let tokens = tok.encode(&text, false, false)?;
    let bos = if tok.add_bos_default() {
        tok.bos_id()
    } else {
        None
    };
    let mut windows = windows(&tokens, ctx, bos);
    if windows.is_empty() {
        return Err(CliError::TooShort {
            path: args.file.clone(),
            tokens: tokens.len(),
        }
        .into());
    }
    if let Some(n) = args.max_windows {
        windows.truncate(n.max(1));
    }
    let total_scored: usize = windows.iter().map(|w| w.len() - 1).sum();

    let mut session = model.session(&SessionOptions {
        context: Some(ctx),
        kv_type: args.kv_type.engine(),
        max_batch: ctx.min(512),
    });
    let pb = if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(total_scored as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:40} {pos}/{len} tokens, {per_sec}, eta {eta} | {msg}",
        ) {
            pb.set_style(style);
        }
        pb
    } else {
        ProgressBar::hidden()
    };
    let vocab = model.config().vocab_size;
    let started = Instant::now();
    let mut nll = 0.0f64;
    let mut scored = 0usize;
    for (i, window) in windows.iter().enumerate() {
        session.reset();
        let logits = model.forward_all(&mut session, window)?;
        for (pos, &target) in window.iter().enumerate().skip(1) {
            let row = &logits[(pos - 1) * vocab..pos * vocab];
            nll -= log_prob(row, target);
        }
        scored += window.len() - 1;
        let ppl = (nll / scored as f64).exp();
        pb.set_position(scored as u64);
        pb.set_message(format!("ppl {ppl:.4}"));
        if pb.is_hidden() && !args.json {
            bitnet_app::logging::notice(
                "bitnet-cli",
                &format!("[{}/{}] ppl {ppl:.4}", i + 1, windows.len()),
            );
        }
    }
    pb.finish_and_clear();
    let ppl = (nll / scored as f64).exp();
    let secs = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({
            "perplexity": ppl,
            "mean_nll": nll / scored as f64,
            "scored_tokens": scored,
            "windows": windows.len(),
            "ctx": ctx,
            "bos_per_window": bos.is_some(),
            "seconds": secs,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        writeln!(
            out,
            "perplexity {ppl:.4} over {scored} tokens in {} windows of {ctx} ({:.1} tokens/s)",
            windows.len(),
            scored as f64 / secs.max(1e-9),
        )?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_prob_of_uniform_is_minus_log_n() {
        let lp = log_prob(&[3.0; 4], 2);
        assert!((lp + 4f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn windows_with_and_without_bos() {
        let t: Vec<u32> = (10..17).collect();
        assert_eq!(
            windows(&t, 4, Some(1)),
            vec![vec![1, 10, 11, 12], vec![1, 13, 14, 15], vec![1, 16]]
        );
        assert_eq!(
            windows(&t, 4, None),
            vec![vec![10, 11, 12, 13], vec![14, 15, 16]]
        );
        // A lone last token without BOS scores nothing and is dropped.
        assert_eq!(windows(&t[..5], 4, None), vec![vec![10, 11, 12, 13]]);
    }
}
