//! `tokenize` and `detokenize`: only the tokenizer is read (not the weights), so these are
//! instant even for large models.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Result;
use bitnet_tokenizer::Tokenizer;

use crate::args::{DetokenizeArgs, TokenizeArgs};
use crate::common;
use crate::error::CliError;

/// The tokenizer of a GGUF file or checkpoint directory.
fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    common::require_exists(path)?;
    let tok = if common::is_embedded(path) {
        let file = bitnet_gguf::GgufFile::from_static(bitnet_default_model::gguf_bytes(), path)?;
        bitnet_engine::tokenizer::from_gguf(&file)?
    } else if path.is_dir() {
        if path.join("tokenizer.json").is_file() {
            Some(Tokenizer::from_hf_dir(path)?)
        } else {
            None
        }
    } else {
        common::require_regular_file(path)?;
        let file = bitnet_gguf::GgufFile::open(path)?;
        bitnet_engine::tokenizer::from_gguf(&file)?
    };
    tok.ok_or_else(|| {
        CliError::NoTokenizerIn {
            path: path.to_path_buf(),
        }
        .into()
    })
}

/// Prints the ids of the text (space-separated, or JSON with each id's piece).
pub fn tokenize(args: TokenizeArgs) -> Result<()> {
    let text = match &args.text {
        Some(t) => t.clone(),
        None if std::io::stdin().is_terminal() => {
            anyhow::bail!("no text: give --text or pipe the text to stdin")
        }
        None => common::read_stdin()?,
    };
    let tok = load_tokenizer(&args.model)?;
    let ids = tok.encode(&text, tok.add_bos_default() && !args.no_bos, args.special)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let tokens: Vec<serde_json::Value> = ids
            .iter()
            .map(|&id| {
                serde_json::json!({
                    "id": id,
                    "piece": tok.decode(&[id], false).unwrap_or_default(),
                })
            })
            .collect();
        let value = serde_json::json!({ "ids": ids, "count": ids.len(), "tokens": tokens });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        writeln!(out, "{}", list.join(" "))?;
    }
    out.flush()?;
    Ok(())
}

/// Prints the text of the ids.
pub fn detokenize(args: DetokenizeArgs) -> Result<()> {
    let tok = load_tokenizer(&args.model)?;
    let text = tok.decode(&args.tokens, args.skip_special)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}
