//! Builds the model's tokenizer from the `tokenizer.*` keys of a GGUF file (read by the
//! schema's `bitnet_schema::tokenizer`, the mapping the converter writes by).

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
    Ok(bitnet_schema::tokenizer::from_gguf(file)?)
}
