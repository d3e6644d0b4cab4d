//! [`Tokenizer`]: a `tokenizers::Tokenizer` plus the special-token facts generation needs.

use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use crate::gguf::{self, GgufTokenizerData};
use crate::{TokenizerError, hf};

/// Texts of end-of-turn tokens that stop generation when present in the vocabulary.
const EOT_TEXTS: &[&str] = &["<|eot_id|>", "<|end_of_text|>", "<|im_end|>"];

/// A text tokenizer for one model.
///
/// BOS is never added by the wrapped pipeline's post-processor: [`Tokenizer::encode`] adds it
/// explicitly, so that a tokenizer.json and the GGUF made from it behave the same.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// A clone of `inner` that treats special-token text as plain text, made on first use.
    ordinary: OnceLock<tokenizers::Tokenizer>,
    vocab_size: usize,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    eot_id: Option<u32>,
    add_bos: bool,
    chat_template: Option<String>,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .field("eot_id", &self.eot_id)
            .field("add_bos", &self.add_bos)
            .field("has_chat_template", &self.chat_template.is_some())
            .finish_non_exhaustive()
    }
}

fn tk_err(e: tokenizers::Error) -> TokenizerError {
    TokenizerError::Tokenizers(e.to_string())
}

impl Tokenizer {
    /// Loads a tokenizer.json. `tokenizer_config.json` and `config.json` beside it, when present,
    /// give bos/eos ids, `add_bos_token` and the chat template (same rules as the GGUF
    /// converter, see [`GgufTokenizerData::from_hf_dir`]).
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let inner = gguf::load_tokenizer_json(path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let vocab_size = inner
            .get_vocab(true)
            .values()
            .copied()
            .max()
            .map_or(0, |m| m as usize + 1);
        let mut added: Vec<(u32, String)> = inner
            .get_added_tokens_decoder()
            .iter()
            .map(|(id, a)| (*id, a.content.clone()))
            .collect();
        added.sort_unstable();
        let pp = inner
            .get_post_processor()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| TokenizerError::TokenizerFile {
                path: path.to_path_buf(),
                message: format!("cannot serialise the post_processor: {e}"),
            })?;
        let sp = hf::hf_specials(dir, &added, pp.as_ref(), vocab_size)?;
        Ok(Self {
            inner,
            ordinary: OnceLock::new(),
            vocab_size,
            bos_id: sp.bos_id,
            eos_id: sp.eos_id,
            eot_id: None,
            add_bos: sp.add_bos.unwrap_or(false),
            chat_template: sp.chat_template,
        })
    }

    /// Loads `dir/tokenizer.json` (with `tokenizer_config.json` and `config.json` if present).
    pub fn from_hf_dir(dir: &Path) -> Result<Self, TokenizerError> {
        Self::from_file(&dir.join("tokenizer.json"))
    }

    /// Builds the tokenizer GGUF metadata describes (see [`crate::gguf`] for the exact
    /// semantics of `gpt2` and `llama`).
    pub fn from_gguf(data: &GgufTokenizerData) -> Result<Self, TokenizerError> {
        let built = gguf::build(data)?;
        Ok(Self {
            inner: built.inner,
            ordinary: OnceLock::new(),
            vocab_size: data.tokens.len(),
            bos_id: data.bos_id,
            eos_id: data.eos_id,
            eot_id: data.eot_id,
            add_bos: built.add_bos,
            chat_template: data.chat_template.clone(),
        })
    }

    /// Token ids of `text`.
    ///
    /// `add_bos` prepends the BOS id (an error if there is none). With `parse_special`,
    /// special-token text such as `<|eot_id|>` becomes the special id (the Hugging Face
    /// default); without it, it is tokenized as plain text (HF `encode_special_tokens`,
    /// tiktoken `encode_ordinary`). Non-special added tokens are matched either way.
    pub fn encode(
        &self,
        text: &str,
        add_bos: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let tk = if parse_special {
            &self.inner
        } else {
            self.ordinary.get_or_init(|| {
                let mut t = self.inner.clone();
                t.set_encode_special_tokens(true);
                t
            })
        };
        let enc = tk.encode_fast(text, false).map_err(tk_err)?;
        let ids = enc.get_ids();
        if !add_bos {
            return Ok(ids.to_vec());
        }
        let bos = self.bos_id.ok_or(TokenizerError::NoBosToken)?;
        let mut out = Vec::with_capacity(ids.len() + 1);
        out.push(bos);
        out.extend_from_slice(ids);
        Ok(out)
    }

    /// Encodes a rendered chat prompt: specials parsed, and BOS prepended when the model adds
    /// one by default and the prompt does not already start with it (templates often emit
    /// `{{ bos_token }}` themselves; this avoids a doubled BOS).
    pub fn encode_chat(&self, rendered: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = self.encode(rendered, false, true)?;
        if let Some(bos) = self.bos_id
            && self.add_bos
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    /// Checks that every id is a token of this vocabulary.
    pub(crate) fn check_ids(&self, ids: &[u32]) -> Result<(), TokenizerError> {
        for &id in ids {
            if id as usize >= self.vocab_size || self.inner.id_to_token(id).is_none() {
                return Err(TokenizerError::TokenIdOutOfRange {
                    id,
                    vocab_size: self.vocab_size,
                });
            }
        }
        Ok(())
    }

    /// Text of `ids`. `skip_special` drops special tokens (BOS, `<|eot_id|>`, ...); otherwise
    /// their text is kept. Bytes that are not valid UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        self.check_ids(ids)?;
        self.inner.decode(ids, skip_special).map_err(tk_err)
    }

    /// Number of token ids (one more than the largest id).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Id of a token given in its vocabulary form (byte-level form for GPT-2 style tokenizers,
    /// e.g. `"Ġhello"`; special tokens as written).
    pub fn token_to_id(&self, s: &str) -> Option<u32> {
        self.inner.token_to_id(s)
    }

    /// Vocabulary form of a token id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// BOS id, if the model has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// EOS id, if the model declares one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// End-of-turn id declared by GGUF metadata (`tokenizer.ggml.eot_token_id`), if any.
    pub fn eot_id(&self) -> Option<u32> {
        self.eot_id
    }

    /// Whether prompts get BOS by default (the model's `add_bos_token`, else its tokenizer
    /// family's default); always false without a BOS id.
    pub fn add_bos_default(&self) -> bool {
        self.add_bos && self.bos_id.is_some()
    }

    /// Ids that end generation: eos, eot, and `<|eot_id|>`, `<|end_of_text|>`, `<|im_end|>` when
    /// present in the vocabulary; deduplicated, in that order.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let by_text = EOT_TEXTS.iter().filter_map(|t| self.inner.token_to_id(t));
        for id in [self.eos_id, self.eot_id]
            .into_iter()
            .flatten()
            .chain(by_text)
        {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    /// The bytes each token id contributes to decoded text, indexed by id: `None` for special
    /// tokens (BOS, `<|eot_id|>`, ...: they are control, not text) and for ids without a token.
    ///
    /// Built from the vocabulary form, not from `decode(&[id])`: a token holding part of a
    /// multi-byte character decodes alone to U+FFFD, while constrained decoding needs its
    /// exact bytes. Byte-level BPE (GPT-2, Llama 3) maps each char of the form back through
    /// the GPT-2 byte table; SentencePiece maps `▁` to a space and `<0xXX>` to that byte (the
    /// decoder's strip of one leading space at the start of a text is not applied).
    pub fn token_bytes(&self) -> Vec<Option<Vec<u8>>> {
        let byte_level = matches!(
            self.inner.get_decoder(),
            Some(tokenizers::decoders::DecoderWrapper::ByteLevel(_))
        );
        let unbyte = gpt2_unicode_to_byte();
        let added = self.inner.get_added_tokens_decoder();
        (0..self.vocab_size as u32)
            .map(|id| {
                if let Some(a) = added.get(&id) {
                    return (!a.special).then(|| a.content.as_bytes().to_vec());
                }
                let form = self.inner.id_to_token(id)?;
                if byte_level {
                    form.chars()
                        .map(|c| unbyte.get(&c).copied())
                        .collect::<Option<Vec<u8>>>()
                } else if let Some(hex) = form
                    .strip_prefix("<0x")
                    .and_then(|h| h.strip_suffix('>'))
                    .filter(|h| h.len() == 2)
                {
                    u8::from_str_radix(hex, 16).ok().map(|b| vec![b])
                } else {
                    Some(form.replace('\u{2581}', " ").into_bytes())
                }
            })
            .collect()
    }

    /// The model's Jinja chat template, if it ships one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// Text of the BOS token (`""` without one), for [`crate::render_chat`].
    pub fn bos_token(&self) -> String {
        self.bos_id
            .and_then(|id| self.inner.id_to_token(id))
            .unwrap_or_default()
    }

    /// Text of the EOS token (`""` without one), for [`crate::render_chat`].
    pub fn eos_token(&self) -> String {
        self.eos_id
            .and_then(|id| self.inner.id_to_token(id))
            .unwrap_or_default()
    }
}

/// The inverse of GPT-2's `bytes_to_unicode`: byte-level BPE writes every byte as a printable
/// char (printable Latin-1 bytes as themselves, the others as U+0100 onwards, in order).
fn gpt2_unicode_to_byte() -> std::collections::HashMap<char, u8> {
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut next = 0u32;
    for b in 0u8..=255 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let c = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + next).unwrap_or('\0');
            next += 1;
            c
        };
        map.insert(c, b);
    }
    map
}
