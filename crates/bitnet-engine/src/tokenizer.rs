//! Builds the model's tokenizer from the `tokenizer.*` keys of a GGUF file.

use bitnet_gguf::GgufFile;
use bitnet_tokenizer::{GgufTokenizerData, Tokenizer};

use crate::error::Result;

/// The tokenizer a GGUF file describes, or `None` when it has no `tokenizer.ggml.model`.
pub fn from_gguf(file: &GgufFile) -> Result<Option<Tokenizer>> {
    let Some(data) = gguf_tokenizer_data(file)? else {
        return Ok(None);
    };
    Ok(Some(Tokenizer::from_gguf(&data)?))
}

/// The raw tokenizer fields of a GGUF file (`None` when it has none).
pub fn gguf_tokenizer_data(file: &GgufFile) -> Result<Option<GgufTokenizerData>> {
    if file.get("tokenizer.ggml.model").is_none() {
        return Ok(None);
    }
    let opt_u32 = |key: &str| -> Result<Option<u32>> {
        Ok(match file.get(key) {
            Some(_) => Some(file.get_u32(key)?),
            None => None,
        })
    };
    let opt_bool = |key: &str| -> Result<Option<bool>> {
        Ok(match file.get(key) {
            Some(_) => Some(file.get_bool(key)?),
            None => None,
        })
    };
    let opt_str = |key: &str| -> Result<Option<String>> {
        Ok(match file.get(key) {
            Some(_) => Some(file.get_str(key)?.to_string()),
            None => None,
        })
    };
    Ok(Some(GgufTokenizerData {
        model: file.get_str("tokenizer.ggml.model")?.to_string(),
        pre: opt_str("tokenizer.ggml.pre")?,
        tokens: file.get_string_array("tokenizer.ggml.tokens")?.to_vec(),
        token_types: match file.get("tokenizer.ggml.token_type") {
            Some(_) => Some(file.get_i32_array("tokenizer.ggml.token_type")?),
            None => None,
        },
        scores: match file.get("tokenizer.ggml.scores") {
            Some(_) => Some(file.get_f32_array("tokenizer.ggml.scores")?),
            None => None,
        },
        merges: match file.get("tokenizer.ggml.merges") {
            Some(_) => Some(file.get_string_array("tokenizer.ggml.merges")?.to_vec()),
            None => None,
        },
        bos_id: opt_u32("tokenizer.ggml.bos_token_id")?,
        eos_id: opt_u32("tokenizer.ggml.eos_token_id")?,
        eot_id: opt_u32("tokenizer.ggml.eot_token_id")?,
        unk_id: opt_u32("tokenizer.ggml.unknown_token_id")?,
        padding_id: opt_u32("tokenizer.ggml.padding_token_id")?,
        add_bos: opt_bool("tokenizer.ggml.add_bos_token")?,
        add_eos: opt_bool("tokenizer.ggml.add_eos_token")?,
        chat_template: opt_str("tokenizer.chat_template")?,
    }))
}
