//! `logits`: the logits of every position of a token sequence as a float32 `[T, vocab]` .npy
//! file, for cross-checking. `--backend engine` (default) runs one `forward_all` on a fresh
//! session (the same call a test or another implementation would make); `--backend burn`
//! runs bitnet-burn's whole forward pass on Burn tensors over the same loaded model, so the
//! two implementations can be compared file to file.

use std::io::BufWriter;

use anyhow::Result;
use bitnet_engine::SessionOptions;

use crate::args::{KvTypeArg, LogitsArgs, LogitsBackend};
use crate::common;
use crate::error::CliError;
use crate::npy;

/// Computes and writes the logits.
pub fn run(args: LogitsArgs) -> Result<()> {
    let (model, _) = common::load_model(&args.model)?;
    let ctx = model.config().context_length;
    common::check_prompt_fits(&model, args.tokens.len(), ctx)?;
    let logits = match args.backend {
        LogitsBackend::Engine => {
            let mut session = model.session(&SessionOptions {
                // Sized by the tokens given, not by the model's (possibly huge) context.
                context: Some(args.tokens.len().max(1)),
                kv_type: args.kv_type.engine(),
                ..SessionOptions::default()
            });
            model.forward_all(&mut session, &args.tokens)?
        }
        LogitsBackend::Burn => {
            if args.kv_type != KvTypeArg::F32 {
                anyhow::bail!(
                    "--kv-type f16 applies to --backend engine only (the Burn pass keeps no \
                     cache: its keys and values stay f32)"
                );
            }
            bitnet_burn::model_logits(&model, &args.tokens)?
        }
    };
    let vocab = model.config().vocab_size;
    let file = std::fs::File::create(&args.out).map_err(|e| CliError::file(&args.out, &e))?;
    npy::write_f32(BufWriter::new(file), &[args.tokens.len(), vocab], &logits)
        .map_err(|e| CliError::file(&args.out, &e))?;
    eprintln!(
        "wrote {} ({} x {} float32)",
        args.out.display(),
        args.tokens.len(),
        vocab
    );
    Ok(())
}
