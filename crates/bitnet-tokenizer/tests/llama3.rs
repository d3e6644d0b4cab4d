//! The Llama-3 tokenizer fixture (BitNet b1.58 2B4T): every case of
//! `fixtures/llama3-tokenizer/cases.jsonl` through tokenizer.json and through the GGUF path.
//! The 9 MB tokenizer is loaded once per path for the whole binary.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bitnet_tokenizer::{GgufTokenizerData, TextStream, Tokenizer, gguf::token_type};
use sha2::{Digest, Sha256};

struct Case {
    text: String,
    ids: Vec<u32>,
    ids_ordinary: Vec<u32>,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/llama3-tokenizer")
}

fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let text = std::fs::read_to_string(fixture_dir().join("cases.jsonl")).unwrap();
        let ids = |v: &serde_json::Value| -> Vec<u32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
                .collect()
        };
        text.lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let case_ids = ids(&v["ids"]);
                Case {
                    text: v["text"].as_str().unwrap().to_owned(),
                    ids_ordinary: v.get("ids_ordinary").map_or(case_ids.clone(), ids),
                    ids: case_ids,
                }
            })
            .collect()
    })
}

fn hf_tok() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| Tokenizer::from_file(&fixture_dir().join("tokenizer.json")).unwrap())
}

fn gguf_data() -> &'static GgufTokenizerData {
    static DATA: OnceLock<GgufTokenizerData> = OnceLock::new();
    DATA.get_or_init(|| GgufTokenizerData::from_hf_dir(&fixture_dir()).unwrap())
}

fn gguf_tok() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| Tokenizer::from_gguf(gguf_data()).unwrap())
}

/// Checks every case; returns the failures (at most a few, for the message).
fn check_all_cases(tok: &Tokenizer) {
    let cases = cases();
    assert_eq!(cases.len(), 409);
    let mut failures = Vec::new();
    let mut tokens = 0;
    for (i, c) in cases.iter().enumerate() {
        tokens += c.ids.len();
        let got = tok.encode(&c.text, false, true).unwrap();
        if got != c.ids {
            failures.push(format!("case {i} {:?}: ids {got:?} != {:?}", c.text, c.ids));
        }
        let got = tok.encode(&c.text, false, false).unwrap();
        if got != c.ids_ordinary {
            failures.push(format!(
                "case {i} {:?}: ordinary {got:?} != {:?}",
                c.text, c.ids_ordinary
            ));
        }
        for ids in [&c.ids, &c.ids_ordinary] {
            let text = tok.decode(ids, false).unwrap();
            if text != c.text {
                failures.push(format!("case {i}: decode {text:?} != {:?}", c.text));
            }
        }
    }
    assert_eq!(tokens, 10_441);
    assert!(
        failures.is_empty(),
        "{} failures, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

/// Everything through tokenizer.json. (Under nextest each test is a process that loads the
/// 9 MB tokenizer again, so each path is one test.)
#[test]
fn tokenizer_json_path() {
    let tok = hf_tok();
    check_all_cases(tok);
    check_bos_and_stop_ids(tok);
    check_out_of_range(tok);
    check_llama_cpp_hash(tok);
    check_stream_deltas(tok);
}

/// Everything through the GGUF metadata the converter makes from the bare tokenizer.json.
#[test]
fn gguf_path() {
    check_gguf_data(gguf_data());
    let tok = gguf_tok();
    check_all_cases(tok);
    check_bos_and_stop_ids(tok);
    check_out_of_range(tok);
    check_llama_cpp_hash(tok);
    check_stream_holds_an_emoji(tok);
}

fn check_gguf_data(d: &GgufTokenizerData) {
    assert_eq!(d.model, "gpt2");
    assert_eq!(d.pre.as_deref(), Some("llama-bpe"));
    assert_eq!(d.tokens.len(), 128_256);
    assert_eq!(d.tokens[0], "!");
    assert_eq!(d.tokens[220], "\u{120}");
    assert_eq!(d.tokens[128_000], "<|begin_of_text|>");
    assert_eq!(d.tokens[128_009], "<|eot_id|>");
    assert_eq!(d.tokens[128_255], "<|reserved_special_token_250|>");
    let types = d.token_types.as_ref().unwrap();
    assert!(types[..128_000].iter().all(|&t| t == token_type::NORMAL));
    assert!(types[128_000..].iter().all(|&t| t == token_type::CONTROL));
    let merges = d.merges.as_ref().unwrap();
    assert_eq!(merges.len(), 280_147);
    assert_eq!(merges[..3], ["Ġ Ġ", "Ġ ĠĠĠ", "ĠĠ ĠĠ"]);
    assert_eq!(d.scores, None);
    // Only tokenizer.json: BOS and add_bos come from its TemplateProcessing post-processor.
    assert_eq!(d.bos_id, Some(128_000));
    assert_eq!(d.add_bos, Some(true));
    assert_eq!(
        (d.eos_id, d.eot_id, d.unk_id, d.padding_id),
        (None, None, None, None)
    );
    assert_eq!(d.chat_template, None);
}

fn check_bos_and_stop_ids(tok: &Tokenizer) {
    assert_eq!(tok.vocab_size(), 128_256);
    assert_eq!(tok.bos_id(), Some(128_000));
    assert!(tok.add_bos_default());
    let c = &cases()[1];
    let with_bos = tok.encode(&c.text, true, true).unwrap();
    assert_eq!(with_bos[0], 128_000);
    assert_eq!(with_bos[1..], c.ids[..]);
    // BOS text in the input is the BOS token when specials are parsed.
    assert_eq!(
        tok.encode("<|begin_of_text|>Hello", false, true).unwrap(),
        [128_000, 9906]
    );
    assert_eq!(
        tok.decode(&with_bos, false).unwrap(),
        format!("<|begin_of_text|>{}", c.text)
    );
    assert_eq!(tok.decode(&with_bos, true).unwrap(), c.text);
    assert_eq!(
        tok.decode(&[128_009, 9906, 128_001], true).unwrap(),
        "Hello"
    );
    assert_eq!(tok.token_to_id("<|eot_id|>"), Some(128_009));
    assert_eq!(tok.token_to_id("Ġworld"), Some(1917));
    assert_eq!(tok.id_to_token(1917).as_deref(), Some("Ġworld"));
    assert_eq!(tok.id_to_token(128_256), None);
    // No eos without tokenizer_config.json; the end-of-turn texts are found in the vocab.
    assert_eq!(tok.stop_ids(), [128_009, 128_001]);
    assert_eq!(
        tok.encode_chat("<|begin_of_text|>User: hi<|eot_id|>Assistant: ")
            .unwrap(),
        [128_000, 1502, 25, 15960, 128_009, 72803, 25, 220]
    );
    assert_eq!(tok.encode_chat("Hello").unwrap(), [128_000, 9906]);
}

fn check_out_of_range(tok: &Tokenizer) {
    let err = tok.decode(&[9906, 128_256], false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "token id 128256 is out of range: the vocabulary has 128256 tokens"
    );
    assert!(TextStream::new(tok).push(u32::MAX).is_err());
}

/// llama.cpp's convert_hf_to_gguf.py recognises the Llama-3 pre-tokenizer by the sha256 of
/// `str(tokenizer.encode(chktxt))` (BOS included) for Meta-Llama-3-8B, whose tokenizer.json is
/// this fixture: `0ef9807a…8c01e5` means `llama-bpe`.
fn check_llama_cpp_hash(tok: &Tokenizer) {
    let chktxt = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u{200d}🌫\u{fe0f} (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";
    let ids = tok.encode(chktxt, true, true).unwrap();
    let repr = format!(
        "[{}]",
        ids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let hash: String = Sha256::digest(repr.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hash,
        "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5"
    );
}

/// Stream-decoding every case token by token gives exactly the full decode.
fn check_stream_deltas(tok: &Tokenizer) {
    let mut held_back = 0;
    for c in cases() {
        for ids in [&c.ids, &c.ids_ordinary] {
            let full = tok.decode(ids, false).unwrap();
            let mut stream = TextStream::new(tok);
            let mut out = String::new();
            for &id in ids.iter() {
                let delta = stream.push(id).unwrap();
                if delta.is_empty() {
                    held_back += 1;
                }
                if !full.contains('\u{FFFD}') {
                    assert!(!delta.contains('\u{FFFD}'), "{:?}: delta {delta:?}", c.text);
                }
                out.push_str(&delta);
            }
            out.push_str(&stream.finish().unwrap());
            assert_eq!(out, full);
        }
    }
    // Multi-token characters (emoji, CJK, random bytes) really were held back.
    assert!(held_back > 100, "{held_back}");
}

fn check_stream_holds_an_emoji(tok: &Tokenizer) {
    // "🦙" is not one token: its 4 bytes span several byte-level tokens.
    let ids = tok.encode("a🦙b", false, true).unwrap();
    assert!(ids.len() >= 3, "{ids:?}");
    let mut stream = TextStream::new(tok);
    let deltas: Vec<String> = ids.iter().map(|&id| stream.push(id).unwrap()).collect();
    assert_eq!(deltas.first().map(String::as_str), Some("a"));
    assert!(deltas.iter().any(String::is_empty), "{deltas:?}");
    assert_eq!(deltas.concat() + &stream.finish().unwrap(), "a🦙b");
    // An incomplete character at the end is flushed lossily by finish().
    let first_byte = ids[1];
    let mut stream = TextStream::new(tok);
    assert_eq!(stream.push(first_byte).unwrap(), "");
    assert_eq!(
        stream.finish().unwrap(),
        tok.decode(&[first_byte], false).unwrap()
    );
    // Skipping specials drops them from the stream.
    let mut stream = TextStream::with_skip_special(tok, true);
    assert_eq!(stream.push(128_000).unwrap(), "");
    assert_eq!(stream.push(9906).unwrap(), "Hello");
}

/// Writes a model dir with the fixture's tokenizer.json plus the given config files.
fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn tokenizer_config_and_config_json() {
    let template = "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}{{ eos_token }}{% endfor %}";
    let tc = serde_json::json!({
        "bos_token": "<|begin_of_text|>",
        "eos_token": {"content": "<|eot_id|>", "special": true},
        "add_bos_token": false,
        "chat_template": template,
    });
    let cfg =
        serde_json::json!({"vocab_size": 128_260, "pad_token_id": 128_004, "eos_token_id": 1});
    let dir = dir_with(&[
        ("tokenizer_config.json", &tc.to_string()),
        ("config.json", &cfg.to_string()),
    ]);
    let d = GgufTokenizerData::from_hf_dir(dir.path()).unwrap();
    assert_eq!(d.tokens.len(), 128_260);
    assert_eq!(d.tokens[128_257], "[PAD128257]");
    let types = d.token_types.as_ref().unwrap();
    assert_eq!(types[128_256..], [token_type::UNUSED; 4]);
    // tokenizer_config.json wins over config.json; config.json fills what is left.
    assert_eq!(d.bos_id, Some(128_000));
    assert_eq!(d.eos_id, Some(128_009));
    assert_eq!(d.padding_id, Some(128_004));
    assert_eq!(d.add_bos, Some(false));
    assert_eq!(d.chat_template.as_deref(), Some(template));

    let tok = Tokenizer::from_hf_dir(dir.path()).unwrap();
    assert_eq!(tok.eos_id(), Some(128_009));
    assert!(!tok.add_bos_default());
    assert_eq!(tok.chat_template(), Some(template));
    assert_eq!(tok.stop_ids(), [128_009, 128_001]);
}
