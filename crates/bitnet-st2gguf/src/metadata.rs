//! GGUF metadata: the file description under `general.*`, the model keys under `<arch>.*`
//! (the schema's [`ModelConfig::to_gguf`], which the engine's `from_gguf` reads back), and
//! the tokenizer under `tokenizer.*` (the schema's `tokenizer::to_gguf`).
//!
//! The key set and order mirror bitnet.cpp's own I2_S files (see
//! `fixtures/tiny-bitnet/i2s/README.md`), plus `<arch>.hidden_activation`, which BitNet-rs
//! reads (llama.cpp ignores keys it does not know), and `attention.key_length` /
//! `value_length` when the head size is not `hidden_size / num_attention_heads`.

use std::path::Path;

use bitnet_schema::{HfConfig, ModelConfig, keys, tokenizer};
use bitnet_tokenizer::GgufTokenizerData;

use crate::args::OutType;
use crate::error::{ConvertError, Result};
use crate::gguf::Value;

/// ggml's quantisation format version, written as `general.quantization_version`.
const QUANTIZATION_VERSION: u32 = 2;

/// Everything `build` needs besides the config.
pub struct MetaInput<'a> {
    /// `general.name`.
    pub name: &'a str,
    /// Storage type of the linears (`general.file_type`).
    pub outtype: OutType,
    /// The tokenizer, when the checkpoint has one (ids already completed from `config.json`,
    /// see [`complete_ids`]).
    pub tokenizer: Option<&'a GgufTokenizerData>,
    /// `config.json`: BOS and EOS for a file without a tokenizer.
    pub hf: &'a HfConfig,
    /// The checkpoint directory, for error messages.
    pub dir: &'a Path,
}

/// All metadata key/value pairs, in the order bitnet.cpp writes them.
pub fn build(cfg: &ModelConfig, input: &MetaInput<'_>) -> Result<Vec<(String, Value)>> {
    let model_keys = cfg.to_gguf().map_err(|source| ConvertError::Config {
        dir: input.dir.to_path_buf(),
        source,
    })?;
    let mut m: Vec<(String, Value)> = vec![
        (
            keys::ARCHITECTURE.into(),
            Value::String(cfg.architecture.clone()),
        ),
        (keys::NAME.into(), Value::String(input.name.to_string())),
    ];
    m.extend(model_keys);
    m.push((
        keys::FILE_TYPE.into(),
        Value::U32(input.outtype.file_type()),
    ));
    match input.tokenizer {
        Some(t) => m.extend(tokenizer::to_gguf(t)),
        None => m.extend(id_keys(input.hf)),
    }
    m.push((
        keys::QUANTIZATION_VERSION.into(),
        Value::U32(QUANTIZATION_VERSION),
    ));
    Ok(m)
}

/// Fills the special-token ids the tokenizer files do not give from `config.json`
/// (`bos_token_id`, the first `eos_token_id`), as llama.cpp's converter does.
pub fn complete_ids(t: &mut GgufTokenizerData, hf: &HfConfig) {
    t.bos_id = t.bos_id.or(hf.bos_token_id);
    t.eos_id = t.eos_id.or(hf.eos_token_ids.first().copied());
}

/// BOS and EOS from `config.json` for a file without a tokenizer: generation still needs
/// them (the prompt's first token, stop tokens).
fn id_keys(hf: &HfConfig) -> Vec<(String, Value)> {
    let mut m = Vec::new();
    if let Some(bos) = hf.bos_token_id {
        m.push((tokenizer::keys::BOS_ID.to_string(), Value::U32(bos)));
    }
    if let Some(&eos) = hf.eos_token_ids.first() {
        m.push((tokenizer::keys::EOS_ID.to_string(), Value::U32(eos)));
    }
    m
}

/// llama.cpp's token type for padding entries (`UNUSED`).
const TOKEN_TYPE_UNUSED: i32 = 5;

/// Makes the token list exactly `vocab` long: checkpoints often have more embedding rows than
/// tokens (rounded up for speed), and llama.cpp wants one token per row. The extra entries
/// are `[PAD<id>]` of type `UNUSED`, as llama.cpp's converter writes them. More tokens than
/// rows is an error: those ids would index past the embedding.
pub fn fit_tokenizer(t: &mut GgufTokenizerData, vocab: usize, file: &Path) -> Result<usize> {
    let n = t.tokens.len();
    if n > vocab {
        return Err(ConvertError::TokenizerVocab {
            file: file.to_path_buf(),
            tokens: n,
            vocab,
        });
    }
    for id in n..vocab {
        t.tokens.push(format!("[PAD{id}]"));
        if let Some(types) = &mut t.token_types {
            types.push(TOKEN_TYPE_UNUSED);
        }
        if let Some(scores) = &mut t.scores {
            scores.push(0.0);
        }
    }
    Ok(vocab - n)
}
