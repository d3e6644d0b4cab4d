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

/// Parses token ids as `tokenize` prints them and people write them: separated by commas,
/// whitespace or newlines, optionally inside `[...]` (a JSON array), or a whole `tokenize
/// --json` object (its `ids` are taken).
pub fn parse_ids(text: &str) -> Result<Vec<u32>> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(trimmed)
            .map_err(|e| anyhow::anyhow!("token ids: not a tokenize --json object: {e}"))?;
        let ids = value["ids"]
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("token ids: the JSON object has no \"ids\" array"))?;
        return ids
            .iter()
            .map(|v| {
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| anyhow::anyhow!("token ids: {v} is not a token id"))
            })
            .collect();
    }
    let inner = trimmed
        .strip_prefix('[')
        .map(|t| t.strip_suffix(']').unwrap_or(t))
        .unwrap_or(trimmed);
    inner
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>().map_err(|_| {
                anyhow::anyhow!("token ids: '{s}' is not a token id (expected numbers separated by commas or spaces)")
            })
        })
        .collect()
}

/// Prints the text of the ids.
pub fn detokenize(args: DetokenizeArgs) -> Result<()> {
    let text = match &args.tokens {
        Some(t) => t.clone(),
        None if std::io::stdin().is_terminal() => {
            anyhow::bail!("no token ids: give --tokens or pipe them to stdin")
        }
        None => common::read_stdin()?,
    };
    let ids = parse_ids(&text)?;
    let tok = load_tokenizer(&args.model)?;
    let text = tok.decode(&ids, args.skip_special)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_ids;

    #[test]
    fn ids_in_every_spelling() {
        let want = vec![1, 22, 333];
        for text in [
            "1 22 333\n",
            "1,22,333",
            "1, 22, 333",
            "[1, 22, 333]",
            "1\n22\n333\n",
            "{\"ids\": [1, 22, 333], \"count\": 3}",
        ] {
            assert_eq!(parse_ids(text).unwrap(), want, "{text:?}");
        }
        assert_eq!(parse_ids("").unwrap(), Vec::<u32>::new());
        let e = parse_ids("1 x 3").unwrap_err().to_string();
        assert!(e.contains("'x'"), "{e}");
        assert!(parse_ids("-1").is_err());
    }
}
