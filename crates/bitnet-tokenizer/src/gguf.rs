//! GGUF tokenizer metadata: the plain struct GGUF readers fill in, the converter's
//! tokenizer.json → GGUF conversion, and the GGUF → `tokenizers::Tokenizer` build.
//!
//! The build reproduces what llama.cpp does with the same metadata, expressed with the stock
//! components of the `tokenizers` crate rather than a hand-written BPE:
//! - `gpt2` with `pre` absent or `llama-bpe` (and llama.cpp's aliases for the same split):
//!   byte-level BPE with the Llama-3 split regex and `ignore_merges` (llama.cpp sets it for
//!   this pre-tokenizer), exactly the pipeline of Meta's tokenizer.json. `gpt-2`: byte-level BPE
//!   with the GPT-2 regex.
//! - `llama` (SentencePiece): the score-ordered merge procedure of llama.cpp's SPM tokenizer
//!   expressed as BPE, as Hugging Face's `LlamaConverter` does: every split `(l, r)` of a vocab
//!   piece with both halves in the vocab becomes a merge, ranked by the piece's score
//!   (highest first); characters that are not pieces fall back to `<0xNN>` byte tokens (else
//!   the unknown token). Text is normalised like llama.cpp: spaces become `▁` and a `▁` is
//!   prepended to every run of text (the whole text, and the text after each special or
//!   user-defined token, which is llama.cpp's `add_space_prefix` after a special token).
//!   Decoding maps `▁` back to spaces, byte tokens to bytes, and strips one leading space.
//!   `pre` is ignored (llama.cpp has pre-tokenizers for BPE only) and `add_space_prefix` is
//!   taken as llama.cpp's default, true. With a vocabulary whose pieces are not characters
//!   (the tiny-bitnet fixture's placeholders), "Hi" becomes the bytes of "▁Hi", which decode
//!   back to "▁Hi" (the `▁` came from byte tokens, not a `▁` piece), exactly as in llama.cpp.
//!   llama.cpp resolves ties in score by position; this BPE form breaks them by piece order,
//!   which can differ only when two candidate merges have exactly equal scores.
//!
//! Token types follow llama.cpp (`1` normal, `2` unknown, `3` control, `4` user-defined, `5`
//! unused, `6` byte). Control and unknown tokens become special added tokens (matched in text
//! only when specials are parsed, dropped when decoding skips specials); user-defined tokens are
//! always matched in text. Without `token_type`, the bos/eos/eot/unk/padding ids are treated as
//! control tokens and everything else as normal.

use std::path::Path;

use tokenizers::decoders::DecoderWrapper;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::TokenizerError;
use crate::hf;

/// The Llama-3 (tiktoken cl100k-style) split pattern, as in Meta's tokenizer.json and llama.cpp's
/// `LLAMA_VOCAB_PRE_TYPE_LLAMA3`.
pub const LLAMA3_SPLIT_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// `tokenizer.ggml.pre` values llama.cpp maps to the Llama-3 split.
const LLAMA3_PRE_NAMES: &[&str] = &[
    "llama-bpe",
    "llama3",
    "llama-v3",
    "falcon3",
    "falcon-h1",
    "falcon_e",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
];

/// llama.cpp token types (`tokenizer.ggml.token_type`).
pub mod token_type {
    /// An ordinary piece.
    pub const NORMAL: i32 = 1;
    /// The unknown token.
    pub const UNKNOWN: i32 = 2;
    /// A control (special) token: BOS, EOS, chat markers.
    pub const CONTROL: i32 = 3;
    /// A non-special added token, always matched in text.
    pub const USER_DEFINED: i32 = 4;
    /// A placeholder filling a hole in the id space.
    pub const UNUSED: i32 = 5;
    /// A `<0xNN>` byte token (SentencePiece byte fallback).
    pub const BYTE: i32 = 6;
}

/// Tokenizer fields as GGUF stores them (keys `tokenizer.ggml.*`, `tokenizer.chat_template`).
///
/// GGUF readers fill this in; [`crate::Tokenizer::from_gguf`] builds a tokenizer from it and
/// [`GgufTokenizerData::from_hf_dir`] produces it from a Hugging Face model directory for the
/// converter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GgufTokenizerData {
    /// `tokenizer.ggml.model`: `"gpt2"` (byte-level BPE) or `"llama"` (SentencePiece).
    pub model: String,
    /// `tokenizer.ggml.pre`: `None` or `"llama-bpe"` means the Llama-3 split (gpt2 only).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, indexed by id (GPT-2 byte-level strings for gpt2).
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`, one per token (see [`token_type`]).
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.scores`, one per token (SentencePiece merge priorities).
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.merges`: `"left right"` strings in rank order (gpt2).
    pub merges: Option<Vec<String>>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_id: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`.
    pub eot_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub padding_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

/// Largest vocabulary accepted from `config.json` `vocab_size`: far above any real model, low
/// enough that a corrupt value cannot make us allocate without bound.
const MAX_VOCAB: usize = 1 << 24;

/// llama.cpp's `does_token_look_special` (convert_hf_to_gguf.py): added tokens some models fail
/// to mark as special.
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{ff5c}") && t.ends_with("\u{ff5c}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

impl GgufTokenizerData {
    /// From a Hugging Face model dir's tokenizer.json (+ tokenizer_config.json, config.json if
    /// present): what the converter writes to GGUF.
    ///
    /// Follows llama.cpp's convert_hf_to_gguf.py `_set_vocab_gpt2` / `get_vocab_base`:
    /// `vocab_size` from config.json (else the tokenizer's size, at least the largest id + 1);
    /// tokens by id, holes filled
    /// with `[PAD{id}]` of type unused (5); added tokens are normalised by encoding and decoding
    /// them when not `normalized`, and typed control (3) when special or looking special
    /// (`<|...|>`), else user-defined (4) with `▁` turned into spaces; other tokens normal (1).
    /// Merges are `"left right"` strings in rank order. Special ids, add_bos/add_eos and the
    /// chat template as llama.cpp's `SpecialVocab` reads them. `pre` is recognised from the
    /// pre-tokenizer's structure (not llama.cpp's hash of sample ids): the Llama-3 split gives
    /// `"llama-bpe"`, the plain GPT-2 ByteLevel gives `"gpt-2"`; anything else is refused.
    pub fn from_hf_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let path = dir.join("tokenizer.json");
        let tok = load_tokenizer_json(&path)?;
        let file_err = |message: String| TokenizerError::TokenizerFile {
            path: path.clone(),
            message,
        };
        let to_value = |what: &str, v: Result<serde_json::Value, serde_json::Error>| {
            v.map_err(|e| file_err(format!("cannot serialise the {what}: {e}")))
        };

        let model = to_value("model", serde_json::to_value(tok.get_model()))?;
        let model_type = model.get("type").and_then(|t| t.as_str()).unwrap_or("?");
        if model_type != "BPE" || model.get("byte_fallback") == Some(&serde_json::Value::Bool(true))
        {
            return Err(file_err(format!(
                "the GGUF converter handles byte-level BPE tokenizers only (model type {model_type}, \
                 byte_fallback {})",
                model
                    .get("byte_fallback")
                    .unwrap_or(&serde_json::Value::Null)
            )));
        }
        let decoder = to_value("decoder", serde_json::to_value(tok.get_decoder()))?;
        if decoder.get("type").and_then(|t| t.as_str()) != Some("ByteLevel") {
            return Err(file_err(format!(
                "the GGUF converter needs a ByteLevel decoder, found {decoder}"
            )));
        }
        let pre_tok = to_value(
            "pre_tokenizer",
            serde_json::to_value(tok.get_pre_tokenizer()),
        )?;
        let pre = detect_pre(&pre_tok).ok_or_else(|| {
            file_err(format!(
                "pre_tokenizer is neither the Llama-3 split nor GPT-2 ByteLevel: {pre_tok}"
            ))
        })?;

        let vocab = tok.get_vocab(true);
        let max_id = vocab.values().copied().max().map_or(0, |m| m as usize + 1);
        let config = hf::read_json_opt(&dir.join("config.json"))?;
        let vocab_size = match config.as_ref().and_then(|c| c.get("vocab_size")) {
            Some(v) => v
                .as_u64()
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| TokenizerError::Json {
                    path: dir.join("config.json"),
                    message: format!("vocab_size is not a non-negative integer: {v}"),
                })?,
            // llama.cpp uses `len(tokenizer.vocab)` and asserts every id is below it; ids with
            // holes (no config.json) are accepted here by covering the largest id.
            None => vocab.len().max(max_id),
        };
        if max_id > vocab_size || vocab_size > MAX_VOCAB {
            return Err(TokenizerError::Json {
                path: dir.join("config.json"),
                message: format!(
                    "vocab_size {vocab_size} does not fit the tokenizer (largest id {}; limit {MAX_VOCAB})",
                    max_id.saturating_sub(1)
                ),
            });
        }
        let mut reverse: Vec<Option<&str>> = vec![None; vocab_size];
        for (s, &id) in &vocab {
            reverse[id as usize] = Some(s.as_str());
        }
        let added = tok.get_added_tokens_decoder();
        let mut tokens = Vec::with_capacity(vocab_size);
        let mut types = Vec::with_capacity(vocab_size);
        for (i, entry) in reverse.iter().enumerate() {
            let Some(text) = entry else {
                tokens.push(format!("[PAD{i}]"));
                types.push(token_type::UNUSED);
                continue;
            };
            // `i < vocab_size <= MAX_VOCAB`, so it fits in u32.
            let id = i as u32;
            match added.get(&id).filter(|a| a.content == *text) {
                Some(a) => {
                    let mut t = (*text).to_owned();
                    if !a.normalized {
                        let enc = tok.encode_fast(t.as_str(), false).map_err(|e| {
                            file_err(format!("cannot encode added token {t:?}: {e}"))
                        })?;
                        t = tok.decode(enc.get_ids(), false).map_err(|e| {
                            file_err(format!("cannot decode added token {t:?}: {e}"))
                        })?;
                    }
                    if a.special || looks_special(&t) {
                        types.push(token_type::CONTROL);
                    } else {
                        t = t.replace('\u{2581}', " ");
                        types.push(token_type::USER_DEFINED);
                    }
                    tokens.push(t);
                }
                None => {
                    tokens.push((*text).to_owned());
                    types.push(token_type::NORMAL);
                }
            }
        }

        let merges = model
            .get("merges")
            .and_then(|m| m.as_array())
            .ok_or_else(|| file_err("the BPE model has no merges".to_owned()))?
            .iter()
            .map(|m| merge_string(m).ok_or_else(|| file_err(format!("malformed merge {m}"))))
            .collect::<Result<Vec<_>, _>>()?;

        let mut added_list: Vec<(u32, String)> = added
            .iter()
            .map(|(id, a)| (*id, a.content.clone()))
            .collect();
        added_list.sort_unstable();
        let pp = tok
            .get_post_processor()
            .map(|p| to_value("post_processor", serde_json::to_value(p)))
            .transpose()?;
        let sp = hf::hf_specials(dir, &added_list, pp.as_ref(), vocab_size)?;
        Ok(Self {
            model: "gpt2".to_owned(),
            pre: Some(pre.to_owned()),
            tokens,
            token_types: Some(types),
            scores: None,
            merges: Some(merges),
            bos_id: sp.bos_id,
            eos_id: sp.eos_id,
            eot_id: None,
            unk_id: sp.unk_id,
            padding_id: sp.padding_id,
            add_bos: sp.add_bos,
            add_eos: sp.add_eos,
            chat_template: sp.chat_template,
        })
    }
}

/// Reads and parses a tokenizer.json, naming the file on failure.
pub(crate) fn load_tokenizer_json(path: &Path) -> Result<tokenizers::Tokenizer, TokenizerError> {
    let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| TokenizerError::TokenizerFile {
        path: path.to_path_buf(),
        message: format!("not a valid tokenizer.json: {e}"),
    })
}

/// One merge as GGUF stores it. The list form (`["a", "b"]`, transformers ≥ 4.45) is joined
/// with a space after encoding spaces inside the parts as U+0120, as gguf-py does.
fn merge_string(m: &serde_json::Value) -> Option<String> {
    match m {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(pair) if pair.len() == 2 => {
            let enc = |v: &serde_json::Value| v.as_str().map(|s| s.replace(' ', "\u{0120}"));
            Some(format!("{} {}", enc(&pair[0])?, enc(&pair[1])?))
        }
        _ => None,
    }
}

/// `tokenizer.ggml.pre` for a serialised pre-tokenizer, when it is one we implement.
fn detect_pre(v: &serde_json::Value) -> Option<&'static str> {
    let ty = v.get("type")?.as_str()?;
    let bool_field = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_bool);
    match ty {
        "ByteLevel" => (bool_field(v, "add_prefix_space") == Some(false)
            && bool_field(v, "use_regex") == Some(true))
        .then_some("gpt-2"),
        "Sequence" => {
            let list = v.get("pretokenizers")?.as_array()?;
            let [split, bl] = list.as_slice() else {
                return None;
            };
            let is_split = split.get("type")?.as_str()? == "Split"
                && split.get("pattern")?.get("Regex")?.as_str()? == LLAMA3_SPLIT_REGEX
                && split.get("behavior")?.as_str()? == "Isolated"
                && bool_field(split, "invert") == Some(false);
            let is_bl = bl.get("type")?.as_str()? == "ByteLevel"
                && bool_field(bl, "add_prefix_space") == Some(false)
                && bool_field(bl, "use_regex") == Some(false);
            (is_split && is_bl).then_some("llama-bpe")
        }
        _ => None,
    }
}

/// The pieces [`crate::Tokenizer`] needs from a GGUF build.
pub(crate) struct Built {
    pub inner: tokenizers::Tokenizer,
    pub add_bos: bool,
}

fn invalid(field: &'static str, message: String) -> TokenizerError {
    TokenizerError::InvalidField { field, message }
}

/// Builds the `tokenizers` pipeline for GGUF metadata (see the module docs).
pub(crate) fn build(data: &GgufTokenizerData) -> Result<Built, TokenizerError> {
    let n = data.tokens.len();
    if n == 0 {
        return Err(invalid(
            "tokenizer.ggml.tokens",
            "the vocabulary is empty".into(),
        ));
    }
    if n > u32::MAX as usize {
        return Err(invalid(
            "tokenizer.ggml.tokens",
            format!("{n} tokens do not fit u32 ids"),
        ));
    }
    if let Some(t) = &data.token_types
        && t.len() != n
    {
        return Err(invalid(
            "tokenizer.ggml.token_type",
            format!("{} entries for {n} tokens", t.len()),
        ));
    }
    if let Some(s) = &data.scores
        && s.len() != n
    {
        return Err(invalid(
            "tokenizer.ggml.scores",
            format!("{} entries for {n} tokens", s.len()),
        ));
    }
    for (field, id) in [
        ("tokenizer.ggml.bos_token_id", data.bos_id),
        ("tokenizer.ggml.eos_token_id", data.eos_id),
        ("tokenizer.ggml.eot_token_id", data.eot_id),
        ("tokenizer.ggml.unknown_token_id", data.unk_id),
        ("tokenizer.ggml.padding_token_id", data.padding_id),
    ] {
        if let Some(id) = id
            && id as usize >= n
        {
            return Err(invalid(
                field,
                format!("id {id} but the vocabulary has {n} tokens"),
            ));
        }
    }

    let mut vocab = Vocab::default();
    vocab.reserve(n);
    for (id, t) in data.tokens.iter().enumerate() {
        if let Some(prev) = vocab.insert(t.clone(), id as u32) {
            return Err(invalid(
                "tokenizer.ggml.tokens",
                format!("token {t:?} appears twice, at ids {prev} and {id}"),
            ));
        }
    }
    let types: Vec<i32> = match &data.token_types {
        Some(t) => t.clone(),
        None => {
            let mut t = vec![token_type::NORMAL; n];
            for id in [
                data.bos_id,
                data.eos_id,
                data.eot_id,
                data.unk_id,
                data.padding_id,
            ]
            .into_iter()
            .flatten()
            {
                t[id as usize] = token_type::CONTROL;
            }
            t
        }
    };

    let (mut inner, default_add_bos) = match data.model.as_str() {
        "gpt2" => (build_gpt2(data, vocab)?, None),
        "llama" => (build_spm(data, vocab, &types)?, Some(true)),
        other => return Err(TokenizerError::UnknownModel(other.to_owned())),
    };
    let llama3 = data.model == "gpt2"
        && data
            .pre
            .as_deref()
            .is_none_or(|p| LLAMA3_PRE_NAMES.contains(&p));
    let default_add_bos = default_add_bos.unwrap_or(llama3);

    let mut special = Vec::new();
    let mut user = Vec::new();
    for (t, ty) in data.tokens.iter().zip(&types) {
        match *ty {
            token_type::CONTROL | token_type::UNKNOWN => {
                special.push(AddedToken::from(t.clone(), true).normalized(false));
            }
            token_type::USER_DEFINED => {
                user.push(AddedToken::from(t.clone(), false).normalized(false));
            }
            _ => {}
        }
    }
    inner.add_special_tokens(&special);
    inner.add_tokens(&user);
    Ok(Built {
        inner,
        add_bos: data.add_bos.unwrap_or(default_add_bos),
    })
}

fn build_gpt2(
    data: &GgufTokenizerData,
    vocab: Vocab,
) -> Result<tokenizers::Tokenizer, TokenizerError> {
    let (pre, ignore_merges): (PreTokenizerWrapper, bool) = match data.pre.as_deref() {
        None => (llama3_pre_tokenizer()?, true),
        Some(p) if LLAMA3_PRE_NAMES.contains(&p) => (llama3_pre_tokenizer()?, true),
        Some("gpt-2") => (ByteLevel::new(false, true, true).into(), false),
        Some(other) => return Err(TokenizerError::UnknownPre(other.to_owned())),
    };
    let merges = data.merges.as_ref().ok_or_else(|| {
        invalid(
            "tokenizer.ggml.merges",
            "missing: a gpt2 tokenizer needs merges".into(),
        )
    })?;
    let merges: Merges = merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            // llama.cpp splits at the first space after the first character.
            let cut = m
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(at, _)| at)
                .ok_or_else(|| {
                    invalid(
                        "tokenizer.ggml.merges",
                        format!("merge {i} {m:?} has no space"),
                    )
                })?;
            Ok((m[..cut].to_owned(), m[cut + 1..].to_owned()))
        })
        .collect::<Result<_, TokenizerError>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| invalid("tokenizer.ggml.merges", e.to_string()))?;
    let mut tok = tokenizers::Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(pre));
    tok.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));
    Ok(tok)
}

fn llama3_pre_tokenizer() -> Result<PreTokenizerWrapper, TokenizerError> {
    let split = Split::new(
        SplitPattern::Regex(LLAMA3_SPLIT_REGEX.to_owned()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| TokenizerError::Tokenizers(format!("Llama-3 split regex: {e}")))?;
    Ok(PreSequence::new(vec![
        split.into(),
        ByteLevel::new(false, true, false).into(),
    ])
    .into())
}

fn build_spm(
    data: &GgufTokenizerData,
    vocab: Vocab,
    types: &[i32],
) -> Result<tokenizers::Tokenizer, TokenizerError> {
    let score = |id: usize| data.scores.as_ref().map_or(0.0, |s| s[id]);
    // Every split of a piece into two pieces is a merge, ranked by the piece's score (highest
    // first), then piece id, then the halves' ids (Hugging Face's SentencePieceExtractor order).
    let mut ranked: Vec<(f32, u32, u32, u32)> = Vec::new();
    for (id, piece) in data.tokens.iter().enumerate() {
        if matches!(
            types[id],
            token_type::CONTROL | token_type::BYTE | token_type::UNKNOWN
        ) {
            continue;
        }
        for (at, _) in piece.char_indices().skip(1) {
            if let (Some(&l), Some(&r)) = (vocab.get(&piece[..at]), vocab.get(&piece[at..])) {
                ranked.push((score(id), id as u32, l, r));
            }
        }
    }
    ranked.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then((a.2, a.3).cmp(&(b.2, b.3)))
    });
    let merges: Merges = ranked
        .iter()
        .map(|&(_, _, l, r)| {
            (
                data.tokens[l as usize].clone(),
                data.tokens[r as usize].clone(),
            )
        })
        .collect();
    let has_bytes = (0..=255u8).all(|b| vocab.contains_key(&format!("<0x{b:02X}>")));
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(has_bytes)
        .fuse_unk(true);
    if let Some(unk) = data.unk_id {
        builder = builder.unk_token(data.tokens[unk as usize].clone());
    }
    let bpe = builder
        .build()
        .map_err(|e| invalid("tokenizer.ggml.tokens", e.to_string()))?;
    let tok_err = |e: tokenizers::Error| TokenizerError::Tokenizers(e.to_string());
    let mut tok = tokenizers::Tokenizer::new(bpe);
    tok.with_normalizer(Some(NormalizerSequence::new(vec![
        Prepend::new("\u{2581}".to_owned()).into(),
        Replace::new(" ", "\u{2581}").map_err(tok_err)?.into(),
    ])));
    tok.with_decoder(Some(DecoderSequence::new(vec![
        Replace::new("\u{2581}", " ").map_err(tok_err)?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
        Strip::new(' ', 1, 0).into(),
    ])));
    Ok(tok)
}
