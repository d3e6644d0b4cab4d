//! Small, synthetic tokenizers: the SentencePiece (`llama`) GGUF path as in the tiny-bitnet
//! I2_S fixture, the converter on a hand-made byte-level tokenizer.json, chat rendering and
//! error messages.

use bitnet_tokenizer::gguf::token_type::{BYTE, CONTROL, NORMAL, UNKNOWN, UNUSED, USER_DEFINED};
use bitnet_tokenizer::{
    BITNET_2B4T_CHAT_TEMPLATE, ChatMessage, ChatTemplate, GgufTokenizerData, TextStream, Tokenizer,
    TokenizerError, render_chat,
};

/// The tokenizer of `fixtures/tiny-bitnet/i2s/model-i2_s.gguf`: `<unk>` 0, `<s>` 1, `</s>` 2,
/// `<0x00>`..`<0xFF>` = 3..258, `<t259>`..`<t511>`, all scores 0.
fn tiny_spm() -> GgufTokenizerData {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![UNKNOWN, CONTROL, CONTROL];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(BYTE);
    }
    for i in 259..512 {
        tokens.push(format!("<t{i}>"));
        types.push(NORMAL);
    }
    GgufTokenizerData {
        model: "llama".into(),
        pre: Some("default".into()),
        scores: Some(vec![0.0; tokens.len()]),
        tokens,
        token_types: Some(types),
        bos_id: Some(1),
        eos_id: Some(2),
        unk_id: Some(0),
        add_bos: Some(true),
        add_eos: Some(false),
        ..Default::default()
    }
}

/// GGUF metadata values this test reads (a minimal reader: the real one lives in bitnet-gguf,
/// which this crate does not depend on).
#[derive(Debug, Clone, PartialEq)]
enum Meta {
    Int(i64),
    F32(f32),
    Bool(bool),
    Str(String),
    Arr(Vec<Meta>),
    Other,
}

fn read_gguf_metadata(bytes: &[u8]) -> std::collections::HashMap<String, Meta> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> &'a [u8] {
        let (head, tail) = b.split_at(n);
        *b = tail;
        head
    }
    fn u32_(b: &mut &[u8]) -> u32 {
        u32::from_le_bytes(take(b, 4).try_into().unwrap())
    }
    fn u64_(b: &mut &[u8]) -> u64 {
        u64::from_le_bytes(take(b, 8).try_into().unwrap())
    }
    fn string(b: &mut &[u8]) -> String {
        let n = usize::try_from(u64_(b)).unwrap();
        String::from_utf8(take(b, n).to_vec()).unwrap()
    }
    fn value(b: &mut &[u8], ty: u32) -> Meta {
        match ty {
            0 | 1 => Meta::Int(i64::from(take(b, 1)[0])),
            2 | 3 => Meta::Int(i64::from(u16::from_le_bytes(
                take(b, 2).try_into().unwrap(),
            ))),
            4 => Meta::Int(i64::from(u32_(b))),
            5 => Meta::Int(i64::from(u32_(b) as i32)),
            6 => Meta::F32(f32::from_bits(u32_(b))),
            7 => Meta::Bool(take(b, 1)[0] != 0),
            8 => Meta::Str(string(b)),
            9 => {
                let et = u32_(b);
                let n = u64_(b);
                Meta::Arr((0..n).map(|_| value(b, et)).collect())
            }
            10..=12 => {
                take(b, 8);
                Meta::Other
            }
            _ => panic!("GGUF value type {ty}"),
        }
    }
    let mut b = bytes;
    assert_eq!(take(&mut b, 4), b"GGUF");
    let _version = u32_(&mut b);
    let _tensors = u64_(&mut b);
    let n_kv = u64_(&mut b);
    (0..n_kv)
        .map(|_| {
            let key = string(&mut b);
            let ty = u32_(&mut b);
            (key, value(&mut b, ty))
        })
        .collect()
}

/// The I2_S fixture's real tokenizer metadata equals [`tiny_spm`].
#[test]
fn i2s_fixture_metadata_is_tiny_spm() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny-bitnet/i2s/model-i2_s.gguf");
    let meta = read_gguf_metadata(&std::fs::read(path).unwrap());
    let s = |k: &str| match &meta[k] {
        Meta::Str(s) => s.clone(),
        m => panic!("{k}: {m:?}"),
    };
    let id = |k: &str| match &meta[k] {
        Meta::Int(i) => Some(u32::try_from(*i).unwrap()),
        m => panic!("{k}: {m:?}"),
    };
    let b = |k: &str| match &meta[k] {
        Meta::Bool(v) => Some(*v),
        m => panic!("{k}: {m:?}"),
    };
    let arr = |k: &str| match &meta[k] {
        Meta::Arr(a) => a.clone(),
        m => panic!("{k}: {m:?}"),
    };
    let data = GgufTokenizerData {
        model: s("tokenizer.ggml.model"),
        pre: Some(s("tokenizer.ggml.pre")),
        tokens: arr("tokenizer.ggml.tokens")
            .into_iter()
            .map(|m| match m {
                Meta::Str(s) => s,
                m => panic!("{m:?}"),
            })
            .collect(),
        token_types: Some(
            arr("tokenizer.ggml.token_type")
                .into_iter()
                .map(|m| match m {
                    Meta::Int(i) => i32::try_from(i).unwrap(),
                    m => panic!("{m:?}"),
                })
                .collect(),
        ),
        scores: Some(
            arr("tokenizer.ggml.scores")
                .into_iter()
                .map(|m| match m {
                    Meta::F32(f) => f,
                    m => panic!("{m:?}"),
                })
                .collect(),
        ),
        bos_id: id("tokenizer.ggml.bos_token_id"),
        eos_id: id("tokenizer.ggml.eos_token_id"),
        unk_id: id("tokenizer.ggml.unknown_token_id"),
        add_bos: b("tokenizer.ggml.add_bos_token"),
        add_eos: b("tokenizer.ggml.add_eos_token"),
        ..Default::default()
    };
    assert_eq!(data, tiny_spm());
    let tok = Tokenizer::from_gguf(&data).unwrap();
    assert_eq!(tok.encode("Hi", true, true).unwrap()[0], 1);
}

fn byte_id(b: u8) -> u32 {
    3 + u32::from(b)
}

#[test]
fn spm_placeholder_vocab_uses_byte_fallback() {
    let tok = Tokenizer::from_gguf(&tiny_spm()).unwrap();
    assert_eq!(tok.vocab_size(), 512);
    assert_eq!((tok.bos_id(), tok.eos_id()), (Some(1), Some(2)));
    assert!(tok.add_bos_default());
    assert_eq!(tok.stop_ids(), [2]);
    // No piece is a character, so text becomes byte tokens; "▁" (E2 96 81) is prepended and
    // spaces become "▁", as llama.cpp's SentencePiece tokenizer does.
    let sp = [0xE2, 0x96, 0x81].map(byte_id);
    let hi = [b'H', b'i'].map(byte_id);
    assert_eq!(
        tok.encode("Hi", false, true).unwrap(),
        [&sp[..], &hi].concat()
    );
    assert_eq!(
        tok.encode("Hi", true, true).unwrap(),
        [&[1][..], &sp, &hi].concat()
    );
    assert_eq!(
        tok.encode("a b", false, true).unwrap(),
        [&sp[..], &[byte_id(b'a')], &sp, &[byte_id(b'b')]].concat()
    );
    // A special token's text is the token; the text after it gets its own "▁".
    assert_eq!(
        tok.encode("<s>Hi", false, true).unwrap(),
        [&[1][..], &sp, &hi].concat()
    );
    let plain = tok.encode("<s>", false, false).unwrap();
    assert_eq!(plain.len(), 6);
    assert_eq!(tok.encode("", false, true).unwrap(), Vec::<u32>::new());

    // Byte tokens decode to their bytes, joined into UTF-8.
    assert_eq!(tok.decode(&hi, false).unwrap(), "Hi");
    assert_eq!(tok.decode(&[0xC3, 0xA9].map(byte_id), false).unwrap(), "é");
    assert_eq!(tok.decode(&[0xFF].map(byte_id), false).unwrap(), "\u{FFFD}");
    // The prepended "▁" is a byte sequence here (not the ▁ piece), so it decodes as "▁".
    assert_eq!(
        tok.decode(&tok.encode("Hi", false, true).unwrap(), false)
            .unwrap(),
        "▁Hi"
    );
    assert_eq!(
        tok.decode(&[1, byte_id(b'H'), 2], false).unwrap(),
        "<s>H</s>"
    );
    assert_eq!(tok.decode(&[1, byte_id(b'H'), 2], true).unwrap(), "H");
    assert_eq!(tok.decode(&[300, 0], false).unwrap(), "<t300><unk>");
    assert_eq!(tok.id_to_token(300).as_deref(), Some("<t300>"));
    assert_eq!(tok.token_to_id("<0x41>"), Some(byte_id(b'A')));

    // A character split over byte tokens is held back by the stream until complete.
    let mut stream = TextStream::new(&tok);
    assert_eq!(stream.push(byte_id(b'H')).unwrap(), "H");
    assert_eq!(stream.push(0xC3 + 3).unwrap(), "");
    assert_eq!(stream.push(0xA9 + 3).unwrap(), "é");
    assert_eq!(stream.finish().unwrap(), "");

    // Invalid bytes forever: held back, then emitted past 64 held tokens; nothing is lost.
    let junk = vec![byte_id(0x80); 100];
    let mut stream = TextStream::new(&tok);
    let deltas: Vec<String> = junk.iter().map(|&id| stream.push(id).unwrap()).collect();
    assert_eq!(deltas[..64].concat(), "");
    assert!(!deltas[64].is_empty());
    let all = deltas.concat() + &stream.finish().unwrap();
    assert_eq!(all, tok.decode(&junk, false).unwrap());
    assert_eq!(all, "\u{FFFD}".repeat(100));
}

/// A SentencePiece vocabulary with real pieces: merges follow the scores.
#[test]
fn spm_merges_follow_scores() {
    let pieces: &[(&str, f32, i32)] = &[
        ("<unk>", 0.0, UNKNOWN),
        ("<s>", 0.0, CONTROL),
        ("</s>", 0.0, CONTROL),
        ("\u{2581}", -1.0, NORMAL),
        ("a", -2.0, NORMAL),
        ("b", -3.0, NORMAL),
        ("ab", -4.0, NORMAL),
        ("\u{2581}a", -5.0, NORMAL),
        ("\u{2581}ab", -6.0, NORMAL),
        ("<tool>", 0.0, USER_DEFINED),
    ];
    let data = GgufTokenizerData {
        model: "llama".into(),
        tokens: pieces.iter().map(|p| p.0.to_owned()).collect(),
        scores: Some(pieces.iter().map(|p| p.1).collect()),
        token_types: Some(pieces.iter().map(|p| p.2).collect()),
        bos_id: Some(1),
        eos_id: Some(2),
        unk_id: Some(0),
        ..Default::default()
    };
    let tok = Tokenizer::from_gguf(&data).unwrap();
    // "▁ab": "ab" (-4) beats "▁a" (-5), then "▁" + "ab" makes "▁ab".
    assert_eq!(tok.encode("ab", false, true).unwrap(), [8]);
    // "▁b▁a": "▁b" is no piece; "▁a" is.
    assert_eq!(tok.encode("b a", false, true).unwrap(), [3, 5, 7]);
    // Unknown characters (no byte tokens here) become one fused <unk>.
    assert_eq!(tok.encode("azz", false, true).unwrap(), [7, 0]);
    // User-defined tokens are matched even when specials are not parsed.
    assert_eq!(tok.encode("a<tool>a", false, false).unwrap(), [7, 9, 7]);
    assert_eq!(tok.decode(&[8], false).unwrap(), "ab");
    assert_eq!(tok.decode(&[4, 7, 6], false).unwrap(), "a aab");
    assert_eq!(tok.decode(&[1, 8, 2], true).unwrap(), "ab");
}

/// GPT-2's byte → character table (`bytes_to_unicode`).
fn byte_chars() -> Vec<char> {
    let mut bytes: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars = bytes.clone();
    let mut n = 0;
    for b in 0..256 {
        if !bytes.contains(&b) {
            bytes.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    let mut table = vec!['\0'; 256];
    for (b, c) in bytes.iter().zip(&chars) {
        table[*b as usize] = char::from_u32(*c).unwrap();
    }
    table
}

/// A byte-level BPE tokenizer.json with the Llama-3 pre-tokenizer, holes after its ids and
/// special, non-special and special-looking added tokens.
fn synthetic_dir() -> tempfile::TempDir {
    let table = byte_chars();
    let mut vocab = serde_json::Map::new();
    for (b, c) in table.iter().enumerate() {
        vocab.insert(c.to_string(), b.into());
    }
    vocab.insert("he".into(), 256.into());
    vocab.insert("\u{120}t".into(), 257.into());
    let added = |id: u32, content: &str, special: bool| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": special})
    };
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [
            added(258, "<|begin_of_text|>", true),
            added(259, "<|eot_id|>", true),
            added(260, "<custom>", false),
            added(261, "<|looks|>", false),
        ],
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": bitnet_tokenizer::LLAMA3_SPLIT_REGEX},
             "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [258],
                "tokens": ["<|begin_of_text|>"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
            "byte_fallback": false, "ignore_merges": true,
            "vocab": vocab, "merges": [["h", "e"], ["\u{120}", "t"]]}
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), json.to_string()).unwrap();
    // The model's embedding is larger than the tokenizer: ids 262 and 263 are holes.
    std::fs::write(dir.path().join("config.json"), r#"{"vocab_size": 264}"#).unwrap();
    dir
}

#[test]
fn converter_types_holes_and_added_tokens() {
    let dir = synthetic_dir();
    let d = GgufTokenizerData::from_hf_dir(dir.path()).unwrap();
    assert_eq!(d.pre.as_deref(), Some("llama-bpe"));
    assert_eq!(d.tokens.len(), 264);
    assert_eq!(d.tokens[32], "\u{120}");
    assert_eq!(d.tokens[260], "<custom>");
    assert_eq!(d.tokens[262], "[PAD262]");
    let types = d.token_types.as_ref().unwrap();
    assert_eq!(types[..258], [NORMAL; 258]);
    // `<|looks|>` is not marked special but looks it, so llama.cpp makes it a control token.
    assert_eq!(types[258..262], [CONTROL, CONTROL, USER_DEFINED, CONTROL]);
    assert_eq!(types[262..], [UNUSED; 2]);
    assert_eq!(
        d.merges.as_deref(),
        Some(&["h e".to_owned(), "\u{120} t".to_owned()][..])
    );
    assert_eq!((d.bos_id, d.add_bos), (Some(258), Some(true)));

    let from_json = Tokenizer::from_hf_dir(dir.path()).unwrap();
    let from_gguf = Tokenizer::from_gguf(&d).unwrap();
    for tok in [&from_json, &from_gguf] {
        let t = u32::from(b't');
        assert_eq!(tok.encode(" the", false, true).unwrap(), [257, 256]);
        assert_eq!(
            tok.encode("the<custom>the", false, false).unwrap(),
            [t, 256, 260, t, 256]
        );
        assert_eq!(tok.encode("<|eot_id|>", true, true).unwrap(), [258, 259]);
        let plain = tok.encode("<|eot_id|>", false, false).unwrap();
        assert!(
            plain.len() > 1 && plain.iter().all(|&id| id < 258),
            "{plain:?}"
        );
        assert_eq!(tok.decode(&plain, false).unwrap(), "<|eot_id|>");
        assert_eq!(
            tok.decode(&[258, 257, 256, 260], true).unwrap(),
            " the<custom>"
        );
    }
    assert!(from_gguf.decode(&[262], false).unwrap() == "[PAD262]");
    assert!(from_json.decode(&[262], false).is_err());
}

fn msgs(pairs: &[(&str, &str)]) -> Vec<ChatMessage> {
    pairs
        .iter()
        .map(|(r, c)| ChatMessage::new(*r, *c))
        .collect()
}

#[test]
fn chat_fallback_is_the_2b4t_format() {
    let bos = "<|begin_of_text|>";
    let eos = "<|eot_id|>";
    let one = msgs(&[("user", "hi")]);
    let want = "<|begin_of_text|>User: hi<|eot_id|>Assistant: ";
    assert_eq!(render_chat(None, &one, true, bos, eos).unwrap(), want);
    assert_eq!(
        render_chat(Some(BITNET_2B4T_CHAT_TEMPLATE), &one, true, bos, eos).unwrap(),
        want
    );
    let many = msgs(&[
        ("system", "Be terse."),
        ("user", "  hi  "),
        ("assistant", "Hello!"),
    ]);
    assert_eq!(
        render_chat(None, &many, false, bos, eos).unwrap(),
        "<|begin_of_text|>System: Be terse.<|eot_id|>User: hi<|eot_id|>Assistant: Hello!<|eot_id|>"
    );
    assert_eq!(
        render_chat(None, &[], true, bos, eos).unwrap(),
        "Assistant: "
    );
    let compiled = ChatTemplate::bitnet_2b4t();
    assert_eq!(compiled.render(&one, true, bos, eos).unwrap(), want);
    assert_eq!(
        compiled.render(&many, false, bos, eos).unwrap(),
        render_chat(None, &many, false, bos, eos).unwrap()
    );
    assert!(ChatTemplate::new("{% if %}").is_err());
}

#[test]
fn chat_templates_render_like_transformers() {
    let llama3 = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
    assert_eq!(
        render_chat(
            Some(llama3),
            &msgs(&[("user", "Hi!")]),
            true,
            "<|begin_of_text|>",
            ""
        )
        .unwrap(),
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
    // trim_blocks and lstrip_blocks, as transformers sets them.
    let blocks = "{% for m in messages %}\n  {% if m.role == 'user' %}\n{{ m.content }}\n  {% endif %}\n{% endfor %}";
    assert_eq!(
        render_chat(
            Some(blocks),
            &msgs(&[("user", "a"), ("assistant", "b")]),
            false,
            "",
            ""
        )
        .unwrap(),
        "a\n"
    );
    let strict = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversations must start with a user message') }}{% endif %}ok{{ eos_token }}";
    assert_eq!(
        render_chat(Some(strict), &msgs(&[("user", "x")]), false, "", "</s>").unwrap(),
        "ok</s>"
    );
    let err = render_chat(Some(strict), &msgs(&[("assistant", "x")]), false, "", "").unwrap_err();
    assert!(matches!(err, TokenizerError::ChatTemplate(_)));
    assert!(
        err.to_string()
            .contains("Conversations must start with a user message"),
        "{err}"
    );
    // Python methods and tojson, which real templates use.
    let py = "{% for m in messages %}{{ m['content'].strip().upper() }}{% if m.role.startswith('us') %}{{ m | tojson }}{% endif %}{% endfor %}";
    assert_eq!(
        render_chat(Some(py), &msgs(&[("user", " hé ")]), false, "", "").unwrap(),
        r#"HÉ{"role": "user", "content": " hé "}"#
    );
    let tools = "{{ messages | tojson(indent=2) }}|{{ '<a&b>' | tojson }}";
    assert_eq!(
        render_chat(Some(tools), &msgs(&[("user", "x")]), false, "", "").unwrap(),
        "[\n  {\n    \"role\": \"user\",\n    \"content\": \"x\"\n  }\n]|\"<a&b>\""
    );
    let err = render_chat(Some("{% for %}"), &[], false, "", "").unwrap_err();
    assert!(err.to_string().starts_with("chat template: "), "{err}");
}

#[test]
fn gguf_errors_name_the_field() {
    let err = |d: &GgufTokenizerData| Tokenizer::from_gguf(d).unwrap_err().to_string();
    let mut d = tiny_spm();
    d.model = "bert".into();
    assert_eq!(
        err(&d),
        "unsupported tokenizer.ggml.model \"bert\" (supported: \"gpt2\", \"llama\")"
    );

    let gpt2 = GgufTokenizerData {
        model: "gpt2".into(),
        tokens: vec!["a".into(), "b".into(), "ab".into()],
        merges: Some(vec!["a b".into()]),
        ..Default::default()
    };
    let tok = Tokenizer::from_gguf(&gpt2).unwrap();
    assert_eq!(tok.encode("ab", false, true).unwrap(), [2]);
    assert!(!tok.add_bos_default());
    assert!(matches!(
        tok.encode("ab", true, true),
        Err(TokenizerError::NoBosToken)
    ));

    let mut d = gpt2.clone();
    d.pre = Some("qwen2".into());
    assert!(err(&d).starts_with("unsupported tokenizer.ggml.pre \"qwen2\""));
    let mut d = gpt2.clone();
    d.merges = None;
    assert!(err(&d).starts_with("invalid tokenizer.ggml.merges: missing"));
    let mut d = gpt2.clone();
    d.merges = Some(vec!["a c".into()]);
    assert!(
        err(&d).starts_with("invalid tokenizer.ggml.merges:"),
        "{}",
        err(&d)
    );
    let mut d = gpt2.clone();
    d.merges = Some(vec!["ab".into()]);
    assert_eq!(
        err(&d),
        "invalid tokenizer.ggml.merges: merge 0 \"ab\" has no space"
    );
    let mut d = gpt2.clone();
    d.token_types = Some(vec![1, 1]);
    assert_eq!(
        err(&d),
        "invalid tokenizer.ggml.token_type: 2 entries for 3 tokens"
    );
    let mut d = gpt2.clone();
    d.bos_id = Some(3);
    assert_eq!(
        err(&d),
        "invalid tokenizer.ggml.bos_token_id: id 3 but the vocabulary has 3 tokens"
    );
    let mut d = gpt2.clone();
    d.tokens.push("a".into());
    assert_eq!(
        err(&d),
        "invalid tokenizer.ggml.tokens: token \"a\" appears twice, at ids 0 and 3"
    );
    let mut d = gpt2;
    d.tokens.clear();
    assert_eq!(
        err(&d),
        "invalid tokenizer.ggml.tokens: the vocabulary is empty"
    );
}
#[test]
fn malformed_tokenizer_json_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, "{\"model\": ").unwrap();
    let err = Tokenizer::from_file(&path).unwrap_err().to_string();
    assert!(err.starts_with(&path.display().to_string()), "{err}");
    assert!(err.contains("not a valid tokenizer.json"), "{err}");
    let err = GgufTokenizerData::from_hf_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&path.display().to_string()), "{err}");

    let missing = dir.path().join("nope").join("tokenizer.json");
    let err = Tokenizer::from_file(&missing).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cannot read {}", missing.display())),
        "{err}"
    );

    let dir = synthetic_dir();
    std::fs::write(dir.path().join("tokenizer_config.json"), "{oops").unwrap();
    let err = Tokenizer::from_hf_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("tokenizer_config.json: invalid JSON"), "{err}");
}
