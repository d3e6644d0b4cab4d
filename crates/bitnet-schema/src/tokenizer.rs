//! The tokenizer in GGUF metadata: the `tokenizer.ggml.*` keys llama.cpp defines, written by
//! the converter ([`to_gguf`]) and read by the engine ([`from_gguf`]) through one mapping
//! between keys and [`GgufTokenizerData`] fields, so the two cannot drift apart.

use bitnet_gguf::{Array, GgufFile, Value};
use bitnet_tokenizer::GgufTokenizerData;

use crate::error::Result;

/// The key names.
pub mod keys {
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE) or `llama` (SentencePiece).
    pub const MODEL: &str = "tokenizer.ggml.model";
    /// `tokenizer.ggml.pre`: the pre-tokenizer's name.
    pub const PRE: &str = "tokenizer.ggml.pre";
    /// `tokenizer.ggml.tokens`: the vocabulary, indexed by id.
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
    /// `tokenizer.ggml.scores`: one score per token.
    pub const SCORES: &str = "tokenizer.ggml.scores";
    /// `tokenizer.ggml.token_type`: one llama.cpp token type per token.
    pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    /// `tokenizer.ggml.merges`: BPE merges in rank order.
    pub const MERGES: &str = "tokenizer.ggml.merges";
    /// `tokenizer.ggml.bos_token_id`.
    pub const BOS_ID: &str = "tokenizer.ggml.bos_token_id";
    /// `tokenizer.ggml.eos_token_id`.
    pub const EOS_ID: &str = "tokenizer.ggml.eos_token_id";
    /// `tokenizer.ggml.eot_token_id`.
    pub const EOT_ID: &str = "tokenizer.ggml.eot_token_id";
    /// `tokenizer.ggml.unknown_token_id`.
    pub const UNK_ID: &str = "tokenizer.ggml.unknown_token_id";
    /// `tokenizer.ggml.padding_token_id`.
    pub const PAD_ID: &str = "tokenizer.ggml.padding_token_id";
    /// `tokenizer.ggml.add_bos_token`.
    pub const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
    /// `tokenizer.ggml.add_eos_token`.
    pub const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
    /// `tokenizer.chat_template`: a Jinja template.
    pub const CHAT_TEMPLATE: &str = "tokenizer.chat_template";
}

/// The tokenizer's keys, in the order llama.cpp's converter writes them; absent fields are
/// left out.
pub fn to_gguf(t: &GgufTokenizerData) -> Vec<(String, Value)> {
    let mut m: Vec<(String, Value)> = Vec::with_capacity(14);
    let mut put = |k: &str, v: Value| m.push((k.to_string(), v));
    put(keys::MODEL, Value::String(t.model.clone()));
    if let Some(pre) = &t.pre {
        put(keys::PRE, Value::String(pre.clone()));
    }
    put(keys::TOKENS, Value::Array(Array::String(t.tokens.clone())));
    if let Some(scores) = &t.scores {
        put(keys::SCORES, Value::Array(Array::F32(scores.clone())));
    }
    if let Some(types) = &t.token_types {
        put(keys::TOKEN_TYPE, Value::Array(Array::I32(types.clone())));
    }
    if let Some(merges) = &t.merges {
        put(keys::MERGES, Value::Array(Array::String(merges.clone())));
    }
    let ids = [
        (keys::BOS_ID, t.bos_id),
        (keys::EOS_ID, t.eos_id),
        (keys::EOT_ID, t.eot_id),
        (keys::UNK_ID, t.unk_id),
        (keys::PAD_ID, t.padding_id),
    ];
    for (k, id) in ids {
        if let Some(id) = id {
            put(k, Value::U32(id));
        }
    }
    if let Some(add_bos) = t.add_bos {
        put(keys::ADD_BOS, Value::Bool(add_bos));
    }
    if let Some(add_eos) = t.add_eos {
        put(keys::ADD_EOS, Value::Bool(add_eos));
    }
    if let Some(tpl) = &t.chat_template {
        put(keys::CHAT_TEMPLATE, Value::String(tpl.clone()));
    }
    m
}

/// The tokenizer a GGUF file describes, or `None` when it has no `tokenizer.ggml.model`.
///
/// # Errors
/// A present key of the wrong type (the GGUF reader names it).
pub fn from_gguf(file: &GgufFile) -> Result<Option<GgufTokenizerData>> {
    if file.get(keys::MODEL).is_none() {
        return Ok(None);
    }
    let present = |key: &str| file.get(key).is_some();
    let opt_u32 = |key: &str| -> Result<Option<u32>> {
        Ok(if present(key) {
            Some(file.get_u32(key)?)
        } else {
            None
        })
    };
    let opt_bool = |key: &str| -> Result<Option<bool>> {
        Ok(if present(key) {
            Some(file.get_bool(key)?)
        } else {
            None
        })
    };
    let opt_str = |key: &str| -> Result<Option<String>> {
        Ok(if present(key) {
            Some(file.get_str(key)?.to_string())
        } else {
            None
        })
    };
    Ok(Some(GgufTokenizerData {
        model: file.get_str(keys::MODEL)?.to_string(),
        pre: opt_str(keys::PRE)?,
        tokens: file.get_string_array(keys::TOKENS)?.to_vec(),
        token_types: match present(keys::TOKEN_TYPE) {
            true => Some(file.get_i32_array(keys::TOKEN_TYPE)?),
            false => None,
        },
        scores: match present(keys::SCORES) {
            true => Some(file.get_f32_array(keys::SCORES)?),
            false => None,
        },
        merges: match present(keys::MERGES) {
            true => Some(file.get_string_array(keys::MERGES)?.to_vec()),
            false => None,
        },
        bos_id: opt_u32(keys::BOS_ID)?,
        eos_id: opt_u32(keys::EOS_ID)?,
        eot_id: opt_u32(keys::EOT_ID)?,
        unk_id: opt_u32(keys::UNK_ID)?,
        padding_id: opt_u32(keys::PAD_ID)?,
        add_bos: opt_bool(keys::ADD_BOS)?,
        add_eos: opt_bool(keys::ADD_EOS)?,
        chat_template: opt_str(keys::CHAT_TEMPLATE)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(t: &GgufTokenizerData) -> Option<GgufTokenizerData> {
        let bytes = bitnet_gguf::to_bytes(&to_gguf(t), &[]).unwrap();
        from_gguf(&GgufFile::from_bytes(bytes).unwrap()).unwrap()
    }

    #[test]
    fn every_field_round_trips() {
        let full = GgufTokenizerData {
            model: "gpt2".into(),
            pre: Some("llama-bpe".into()),
            tokens: vec!["a".into(), "b".into(), "ab".into()],
            token_types: Some(vec![1, 1, 3]),
            scores: Some(vec![0.0, -1.0, -2.5]),
            merges: Some(vec!["a b".into()]),
            bos_id: Some(0),
            eos_id: Some(1),
            eot_id: Some(2),
            unk_id: Some(0),
            padding_id: Some(1),
            add_bos: Some(true),
            add_eos: Some(false),
            chat_template: Some("{{ x }}".into()),
        };
        assert_eq!(round_trip(&full).as_ref(), Some(&full));
        let minimal = GgufTokenizerData {
            model: "llama".into(),
            tokens: vec!["x".into()],
            ..GgufTokenizerData::default()
        };
        assert_eq!(to_gguf(&minimal).len(), 2);
        assert_eq!(round_trip(&minimal).as_ref(), Some(&minimal));
    }

    #[test]
    fn no_model_key_means_no_tokenizer() {
        let bytes = bitnet_gguf::to_bytes(&[], &[]).unwrap();
        assert!(
            from_gguf(&GgufFile::from_bytes(bytes).unwrap())
                .unwrap()
                .is_none()
        );
    }
}
