//! Receipts of `run` and `verify-receipt`: thin calls into `bitnet-receipt`, which owns the
//! schema (version 2, shared with the server), the model-identity rule and verification.
//!
//! A receipt names the model by reference and SHA-256, records every setting, the prompt and
//! output token ids, and the kernels the dispatcher actually ran (read from the engine's
//! counters after the run). `verify-receipt` accepts any v2 receipt, the server's included:
//! it hashes the model again, reruns the generation with the recorded settings and compares
//! the output token by token. Kernel ids may legitimately differ on another CPU; the output
//! may not.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use bitnet_engine::{FinishReason, GenerationParams, GenerationStats, Model, SessionOptions};
use bitnet_receipt::{
    ModelIdentity, Output, Prompt, Receipt, Run, Settings, Timings, Tool, VerifyOptions,
};

use crate::args::VerifyReceiptArgs;
use crate::common;
use crate::error::CliError;

/// What `run` knows at the end, from which the JSON output and the receipt are built.
pub struct RunRecord<'a> {
    /// The model path as given.
    pub model_path: &'a Path,
    /// The loaded model (after the run: its dispatch counters are final).
    pub model: &'a Model,
    /// Time to load the model.
    pub load_time: Duration,
    /// The session's context length.
    pub session_ctx: usize,
    /// The session options used.
    pub session_opts: &'a SessionOptions,
    /// Generation settings.
    pub params: &'a GenerationParams,
    /// The prompt text, when the prompt was text.
    pub prompt_text: Option<String>,
    /// Whether the chat template was applied.
    pub chat: bool,
    /// Kernel forced with `--kernel`.
    pub kernel: Option<String>,
    /// Prompt token ids (after templating and tokenisation).
    pub prompt_ids: Vec<u32>,
    /// Generated ids.
    pub output_ids: Vec<u32>,
    /// Generated text (when there is a tokenizer).
    pub output_text: Option<String>,
    /// Why generation ended.
    pub finish: FinishReason,
    /// Timings.
    pub stats: GenerationStats,
}

impl RunRecord<'_> {
    fn settings(&self) -> Settings {
        Settings::new(
            self.model,
            self.session_opts,
            self.session_ctx,
            self.params,
            self.kernel.clone(),
        )
    }

    fn output(&self) -> Output {
        Output::new(
            self.output_ids.clone(),
            self.output_text.clone(),
            self.finish,
        )
    }

    fn prompt(&self) -> Prompt {
        Prompt {
            text: self.prompt_text.clone(),
            chat: self.chat,
            ids: self.prompt_ids.clone(),
        }
    }
}

/// The `--json-out` record of a run (the receipt's prompt, output, settings and timings,
/// without hashing the model).
pub fn run_json(r: &RunRecord) -> serde_json::Value {
    serde_json::json!({
        "model": r.model_path.display().to_string(),
        "prompt": r.prompt(),
        "output": r.output(),
        "settings": r.settings(),
        "timings": Timings::from_stats(&r.stats, Some(r.load_time)),
    })
}

/// The receipt of a finished run (hashes the model).
pub fn build(r: &RunRecord) -> Result<Receipt> {
    let model_ref = common::model_ref(r.model_path);
    let identity = ModelIdentity::of(&model_ref)?;
    let dispatched = r.model.kernels().dispatch_counts();
    Ok(Receipt::new(Run {
        model: r.model,
        identity,
        name: model_ref.name(),
        session: r.session_opts,
        ctx: r.session_ctx,
        params: r.params,
        kernel: r.kernel.clone(),
        dispatched: &dispatched,
        prompt: r.prompt(),
        output: r.output(),
        timings: Timings::from_stats(&r.stats, Some(r.load_time)),
        tool: Tool {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
    }))
}

/// `verify-receipt`: checks the model's size and hash, reruns, compares the output.
pub fn verify(args: VerifyReceiptArgs) -> Result<()> {
    let text = common::read_text(&args.file)?;
    let receipt = Receipt::parse(&text).map_err(|e| CliError::BadReceipt {
        path: args.file.clone(),
        reason: e.to_string(),
    })?;
    let model = match &args.model {
        Some(path) => {
            common::require_exists(path)?;
            Some(common::model_ref(path))
        }
        None => None,
    };
    let verified = receipt.verify(&VerifyOptions {
        threads: args.threads,
        model,
    })?;
    for note in &verified.notes {
        bitnet_app::logging::notice("bitnet-cli", &format!("note: {note}"));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "receipt verified: {} tokens match", verified.tokens)?;
    out.flush()?;
    Ok(())
}
