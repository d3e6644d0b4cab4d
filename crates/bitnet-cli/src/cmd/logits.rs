//! `logits`: the logits of every position of a token sequence as a float32 `[T, vocab]` .npy
//! file, for cross-checking. `--backend engine` (default) runs one `forward_all` on a fresh
//! session (the same call a test or another implementation would make); `--backend burn`
//! runs bitnet-burn's whole forward pass on Burn tensors over the same loaded model, so the
//! two implementations can be compared file to file.

use anyhow::Result;
use bitnet_engine::SessionOptions;

use crate::args::{KvTypeArg, LogitsArgs, LogitsBackend};
use crate::common;
use crate::npy;

/// Computes and writes the logits.
pub fn run(args: LogitsArgs) -> Result<()> {
    let out = bitnet_app::OutputPath::check(&args.out, "--out", args.force)?;
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
    out.write_with(|w| npy::write_f32(w, &[args.tokens.len(), vocab], &logits))?;
    bitnet_app::logging::notice(
        "bitnet-cli",
        &format!(
            "wrote {} ({} x {} float32)",
            args.out.display(),
            args.tokens.len(),
            vocab
        ),
    );
    Ok(())
}
