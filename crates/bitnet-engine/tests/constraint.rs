//! Constrained decoding on the embedded model's real tokenizer: token bytes spell the text,
//! the recognizer accepts every valid document byte by byte (property tests), and every
//! constrained generation parses and satisfies its schema.

use std::sync::Arc;

use bitnet_engine::{
    Decoder, FinishReason, GenerationParams, Grammar, LoadOptions, Model, ModelRef, SamplingParams,
    TokenConstraint,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn embedded() -> Model {
    Model::open(&ModelRef::Embedded, &LoadOptions::default()).unwrap()
}

/// The small schema the server's client check uses too.
fn person() -> Value {
    json!({
        "type": "object",
        "properties": {
            "age": {"type": "integer"},
            "name": {"type": "string", "maxLength": 12},
            "tags": {"type": "array", "items": {"enum": ["rust", "cpu", "llm"]}, "maxItems": 3}
        },
        "required": ["age", "name", "tags"],
        "additionalProperties": false
    })
}

/// Checks `v` against [`person`] (a hand-written validator of exactly that schema).
fn valid_person(v: &Value) -> Result<(), String> {
    let o = v.as_object().ok_or("not an object")?;
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort_unstable();
    if keys != ["age", "name", "tags"] {
        return Err(format!("keys {keys:?}"));
    }
    // JSON Schema's integer: a number without fraction (`-0` included, which serde_json
    // reads as a float).
    if !o["age"].as_f64().is_some_and(|f| f.fract() == 0.0) {
        return Err("age is not an integer".into());
    }
    let name = o["name"].as_str().ok_or("name is not a string")?;
    if name.chars().count() > 12 {
        return Err(format!("name {name:?} is longer than 12"));
    }
    let tags = o["tags"].as_array().ok_or("tags is not an array")?;
    if tags.len() > 3
        || !tags
            .iter()
            .all(|t| ["rust", "cpu", "llm"].contains(&t.as_str().unwrap_or("")))
    {
        return Err(format!("tags {tags:?}"));
    }
    Ok(())
}

/// Generates from `prompt` under `grammar`; returns the text and the finish reason.
fn generate(
    model: &Model,
    grammar: &Arc<Grammar>,
    prompt: &str,
    seed: u64,
    max_tokens: usize,
) -> (String, FinishReason) {
    let tok = model.tokenizer().unwrap();
    let prompt = tok.encode(prompt, true, false).unwrap();
    let params = GenerationParams {
        max_tokens,
        sampling: SamplingParams {
            temperature: 0.9,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed,
            ..SamplingParams::default()
        },
        stop_ids: tok.stop_ids(),
        ..GenerationParams::default()
    };
    let constraint = TokenConstraint::new(grammar, model.token_texts().unwrap());
    let mut d = Decoder::new(&params, model.config().vocab_size, Some(tok), &prompt)
        .unwrap()
        .with_constraint(constraint);
    let mut session = model.new_session();
    let mut next = d.sample(model.forward(&mut session, &prompt).unwrap());
    loop {
        let acc = d.accept(next, true).unwrap();
        if let Some(f) = acc.finish {
            return (d.text().to_string(), f);
        }
        next = d.sample(model.forward(&mut session, &[next]).unwrap());
    }
}

#[test]
fn token_bytes_spell_the_decoded_text() {
    let model = embedded();
    let tok = model.tokenizer().unwrap();
    let texts = model.token_texts().unwrap();
    assert_eq!(texts.len(), tok.vocab_size());
    for text in [
        "fn main() { let x = \"caf\u{e9}\"; }",
        "{\"name\": \"Ann\", \"age\": 42}\n  ok \u{1F600}",
    ] {
        let ids = tok.encode(text, false, false).unwrap();
        let bytes: Vec<u8> = ids.iter().flat_map(|&i| texts.get(i).to_vec()).collect();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            tok.decode(&ids, false).unwrap()
        );
    }
    for id in tok.stop_ids() {
        assert!(texts.get(id).is_empty(), "special token {id} has no text");
    }
}

#[test]
fn every_schema_constrained_generation_parses_and_validates() {
    let model = embedded();
    let grammar = Arc::new(Grammar::from_schema(&person()).unwrap());
    let mut complete = 0;
    for seed in 0..8 {
        let (text, finish) = generate(&model, &grammar, "A person as JSON:", seed, 160);
        eprintln!("seed {seed}: {finish:?} {text:?}");
        if finish == FinishReason::Length {
            // Cut by max_tokens (finish_reason "length"): still a valid prefix.
            let mut r = grammar.recognizer();
            assert!(r.feed_all(text.as_bytes()), "seed {seed}: {text:?}");
            continue;
        }
        assert_eq!(finish, FinishReason::StopToken, "seed {seed}");
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("seed {seed}: {e}: {text:?}"));
        valid_person(&v).unwrap_or_else(|e| panic!("seed {seed}: {e}: {text}"));
        complete += 1;
    }
    assert!(
        complete >= 6,
        "only {complete} of 8 generations completed in 120 tokens"
    );
}

#[test]
fn every_json_object_generation_parses() {
    let model = embedded();
    let grammar = Arc::new(Grammar::any_object());
    for seed in 0..4 {
        let (text, finish) = generate(&model, &grammar, "Config as JSON:", seed, 60);
        let mut r = grammar.recognizer();
        assert!(r.feed_all(text.as_bytes()), "seed {seed}: {text:?}");
        if finish == FinishReason::StopToken {
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}: {text:?}"));
            assert!(v.is_object());
        }
    }
}

#[test]
fn greedy_constrained_generation_is_reproducible() {
    let model = embedded();
    let grammar = Arc::new(Grammar::from_schema(&person()).unwrap());
    let a = generate(&model, &grammar, "{", 3, 40);
    let b = generate(&model, &grammar, "{", 3, 40);
    assert_eq!(a, b);
}

fn arb_json(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1_000_000_000i64..1_000_000_000).prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        "[ -~\u{e9}\u{4e2d}\u{1F600}\n\"\\\\]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\"]{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_person() -> impl Strategy<Value = Value> {
    (
        any::<i32>(),
        "[ -~\u{e9}\u{1F600}\\\\\"]{0,12}",
        prop::collection::vec(prop::sample::select(vec!["rust", "cpu", "llm"]), 0..=3),
    )
        .prop_map(|(age, name, tags)| json!({"age": age, "name": name, "tags": tags}))
}

fn accepts_complete(g: &Arc<Grammar>, text: &str) -> bool {
    let mut r = g.recognizer();
    text.bytes().all(|b| r.feed(Some(b))) && r.can_end()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_object_accepts_every_object_compact_and_pretty(m in prop::collection::btree_map("[a-z]{0,5}", arb_json(3), 0..5)) {
        let g = Arc::new(Grammar::any_object());
        let v = Value::Object(m.into_iter().collect());
        let compact = serde_json::to_string(&v).unwrap();
        prop_assert!(accepts_complete(&g, &compact), "{}", compact);
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        prop_assert!(accepts_complete(&g, &pretty), "{}", pretty);
    }

    #[test]
    fn the_schema_accepts_every_valid_document(v in arb_person()) {
        let g = Arc::new(Grammar::from_schema(&person()).unwrap());
        let text = serde_json::to_string(&v).unwrap();
        prop_assert!(accepts_complete(&g, &text), "{}", text);
    }

    /// Soundness: whatever the recognizer accepts as complete is a JSON object (mutations of
    /// valid documents: a byte deleted, replaced or inserted).
    #[test]
    fn what_is_accepted_parses(v in arb_json(2), at in any::<prop::sample::Index>(), b in prop::sample::select(b"{}[],:\"\\ 0-.eE1atn".to_vec()), op in 0..3u8) {
        let g = Arc::new(Grammar::any_object());
        let mut text = serde_json::to_vec(&json!({"k": v})).unwrap();
        let i = at.index(text.len());
        match op {
            0 => { text.remove(i); }
            1 => text[i] = b,
            _ => text.insert(i, b),
        }
        let mut r = g.recognizer();
        if text.iter().all(|&c| r.feed(Some(c))) && r.can_end() {
            let parsed: Result<Value, _> = serde_json::from_slice(&text);
            prop_assert!(parsed.as_ref().is_ok_and(Value::is_object), "{:?}", String::from_utf8_lossy(&text));
        }
    }
}
