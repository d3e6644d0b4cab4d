//! Special tokens, `add_bos`/`add_eos` and the chat template of a Hugging Face model directory.
//!
//! This follows llama.cpp's `gguf-py/gguf/vocab.py` `SpecialVocab` (what `convert_hf_to_gguf.py`
//! writes), so that loading a tokenizer.json here and loading the GGUF the converter makes from it
//! agree:
//! - ids come from `tokenizer_config.json` `{bos,eos,unk,pad}_token` (a string or an
//!   `{"content": ..}` object) matched against the added tokens, then from `config.json`
//!   `{typ}_token_id` (also under `text_config`) for those still unset;
//! - `cls`/`sep` stand in for a missing `bos`/`eos`;
//! - `add_bos`/`add_eos` come from the post-processor (`TemplateProcessing` with a leading or
//!   trailing special token, `RobertaProcessing`), then `tokenizer_config.json` `add_*_token`
//!   overrides;
//! - the chat template comes from `tokenizer_config.json` `chat_template` (a string, or the
//!   `"default"` entry of a list), else `chat_template.jinja`, else `chat_template.json`.
//!
//! Two deliberate extensions: when there is no `tokenizer_config.json`, the leading special
//! token of the `TemplateProcessing` post-processor also gives the BOS id (SpecialVocab drops it,
//! which would leave a bare tokenizer.json without BOS), and the chat-template files are read
//! even without a `tokenizer_config.json`. Token contents are compared as strings (SpecialVocab
//! compares an `{"content": ..}` object against a string and so never matches it).

use std::path::Path;

use serde_json::Value;

use crate::TokenizerError;

/// What a Hugging Face model directory says about special tokens.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HfSpecials {
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub padding_id: Option<u32>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub chat_template: Option<String>,
}

/// Reads a JSON file if it exists; `None` when it is absent.
pub(crate) fn read_json_opt(path: &Path) -> Result<Option<Value>, TokenizerError> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let value = serde_json::from_str(&text).map_err(|e| TokenizerError::Json {
        path: path.to_path_buf(),
        message: format!("invalid JSON: {e}"),
    })?;
    Ok(Some(value))
}

/// Token content of a `tokenizer_config.json` entry: `"<s>"` or `{"content": "<s>", ..}`.
fn entry_content(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// `SpecialToken.id` of one `TemplateProcessing` piece, if it is a special token.
fn template_special(piece: Option<&Value>) -> Option<String> {
    piece?
        .get("SpecialToken")?
        .get("id")?
        .as_str()
        .map(str::to_owned)
}

/// Reads the special-token configuration of `dir`.
///
/// `added` lists the added tokens as `(id, content)` in id order; `post_processor` is the
/// tokenizer's post-processor serialised as tokenizer.json stores it; ids at or above `n_vocab`
/// are skipped, like SpecialVocab does.
pub(crate) fn hf_specials(
    dir: &Path,
    added: &[(u32, String)],
    post_processor: Option<&Value>,
    n_vocab: usize,
) -> Result<HfSpecials, TokenizerError> {
    let tc = read_json_opt(&dir.join("tokenizer_config.json"))?;
    let tc_entry = |key: &str| entry_content(tc.as_ref().and_then(|t| t.get(key)));
    let mut special_bos = tc_entry("bos_token");
    let special_cls = tc_entry("cls_token");
    let mut special_eos = tc_entry("eos_token");
    let special_sep = tc_entry("sep_token");
    if special_bos.is_none() && tc.is_some() {
        special_bos.clone_from(&special_cls);
    }
    if special_eos.is_none() && tc.is_some() {
        special_eos.clone_from(&special_sep);
    }

    let mut out = HfSpecials::default();
    let mut template_first: Option<String> = None;
    if let Some(pp) = post_processor {
        let processors: Vec<&Value> = match pp.get("processors").and_then(Value::as_array) {
            Some(list) => list.iter().collect(),
            None => vec![pp],
        };
        for p in processors {
            match p.get("type").and_then(Value::as_str) {
                Some("RobertaProcessing") => {
                    out.add_bos = Some(true);
                    out.add_eos = Some(true);
                }
                Some("TemplateProcessing") => {
                    let single = p.get("single").and_then(Value::as_array);
                    let Some(single) = single.filter(|s| s.len() > 1) else {
                        continue;
                    };
                    if let Some(first) = template_special(single.first()) {
                        if tc.is_none() {
                            special_bos = Some(first.clone());
                        }
                        let is_bos = special_bos.as_deref() == Some(first.as_str())
                            || special_cls.as_deref() == Some(first.as_str());
                        out.add_bos = Some(is_bos);
                        template_first = Some(first);
                    }
                    if let Some(last) = template_special(single.last()) {
                        if tc.is_none() {
                            special_eos = Some(last.clone());
                        }
                        out.add_eos = Some(special_eos.as_deref() == Some(last.as_str()));
                    }
                }
                _ => {}
            }
        }
    }

    let find_added = |content: &str| -> Option<u32> {
        added
            .iter()
            .find(|(_, c)| c == content)
            .map(|(id, _)| *id)
            .filter(|id| (*id as usize) < n_vocab)
    };
    if let Some(tc) = &tc {
        if let Some(b) = tc.get("add_bos_token").and_then(Value::as_bool) {
            out.add_bos = Some(b);
        }
        if let Some(b) = tc.get("add_eos_token").and_then(Value::as_bool) {
            out.add_eos = Some(b);
        }
        out.bos_id = special_bos.as_deref().and_then(find_added);
        out.eos_id = special_eos.as_deref().and_then(find_added);
        out.unk_id = tc_entry("unk_token").as_deref().and_then(find_added);
        out.padding_id = tc_entry("pad_token").as_deref().and_then(find_added);
        out.chat_template = match tc.get("chat_template") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
    } else if let Some(first) = &template_first {
        out.bos_id = find_added(first);
    }
    if out.chat_template.is_none() {
        out.chat_template = read_template_files(dir)?;
    }

    if let Some(config) = read_json_opt(&dir.join("config.json"))? {
        let id_of = |key: &str| -> Option<u32> {
            let v = config
                .get(key)
                .or_else(|| config.get("text_config").and_then(|t| t.get(key)))?;
            v.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .filter(|id| (*id as usize) < n_vocab)
        };
        out.bos_id = out.bos_id.or_else(|| id_of("bos_token_id"));
        out.eos_id = out.eos_id.or_else(|| id_of("eos_token_id"));
        out.unk_id = out.unk_id.or_else(|| id_of("unk_token_id"));
        out.padding_id = out.padding_id.or_else(|| id_of("pad_token_id"));
    }
    Ok(out)
}

/// `chat_template.jinja`, else the `chat_template` string of `chat_template.json`.
fn read_template_files(dir: &Path) -> Result<Option<String>, TokenizerError> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        let text = std::fs::read_to_string(&jinja).map_err(|source| TokenizerError::Io {
            path: jinja,
            source,
        })?;
        return Ok(Some(text));
    }
    let json = read_json_opt(&dir.join("chat_template.json"))?;
    Ok(json
        .as_ref()
        .and_then(|j| j.get("chat_template"))
        .and_then(Value::as_str)
        .map(str::to_owned))
}
