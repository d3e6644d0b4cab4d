//! Measures what constrained decoding costs per token on the embedded model: the same prompt
//! and seed generated free, under `json_object` and under a JSON Schema, alternating rounds so
//! machine noise hits all three alike. Prints tokens/s of the whole decode step (forward +
//! sampling) and the time per token spent in sampling and accepting alone.
//!
//! `cargo run --release -p bitnet-engine --example constraint_overhead [ROUNDS]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitnet_engine::{
    Decoder, GenerationParams, Grammar, LoadOptions, Model, ModelRef, SamplingParams,
    TokenConstraint, TokenTexts,
};
use rand::{Rng, SeedableRng};

fn run(model: &Model, grammar: Option<&Arc<Grammar>>, seed: u64) -> (usize, Duration, Duration) {
    let tok = model
        .tokenizer()
        .expect("the embedded model has a tokenizer");
    let prompt = tok.encode("A person as JSON:", true, false).unwrap();
    let params = GenerationParams {
        max_tokens: 160,
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
    let mut d = Decoder::new(&params, model.config().vocab_size, Some(tok), &prompt).unwrap();
    if let Some(g) = grammar {
        d = d.with_constraint(TokenConstraint::new(g, model.token_texts().unwrap()));
    }
    let mut session = model.new_session();
    let mut next = d.sample(model.forward(&mut session, &prompt).unwrap());
    let (mut total, mut sampling) = (Duration::ZERO, Duration::ZERO);
    loop {
        let t0 = Instant::now();
        let acc = d.accept(next, true).unwrap();
        let mut ts = t0.elapsed();
        if acc.finish.is_some() {
            total += ts;
            sampling += ts;
            return (d.tokens().len(), total, sampling);
        }
        let logits = model.forward(&mut session, &[next]).unwrap();
        let t1 = Instant::now();
        next = d.sample(logits);
        ts += t1.elapsed();
        total += t0.elapsed();
        sampling += ts;
    }
}

/// The masked draw's cost on a Llama-3-sized vocabulary (128256 synthetic tokens: random
/// words, with and without a leading space, punctuation runs, digits), at three states of the
/// schema's value, with random logits.
fn synthetic_vocab(grammar: &Arc<Grammar>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const PUNCT: &[u8] = b"{}[]:,\"\\ \n.;()=-_'";
    let mut tokens: Vec<Vec<u8>> = (0..128_000)
        .map(|i| {
            let len = rng.random_range(1..=8);
            let pool = if i % 10 == 0 { PUNCT } else { ALPHA };
            let mut t: Vec<u8> = (0..len)
                .map(|_| pool[rng.random_range(0..pool.len())])
                .collect();
            if i % 3 == 0 {
                t.insert(0, b' ');
            }
            t
        })
        .collect();
    // Every single byte is a token too (as in byte-level BPE).
    tokens.extend((0..=255u8).map(|b| vec![b]));
    let texts = Arc::new(TokenTexts::from_bytes(&tokens));
    let logits: Vec<f32> = (0..tokens.len())
        .map(|_| rng.random_range(-10.0..10.0))
        .collect();
    for (name, prefix) in [
        ("start", ""),
        ("after a key (expects ':')", "{\"age\""),
        ("inside a string", "{\"age\": 1, \"name\": \"ab"),
    ] {
        let mut c = TokenConstraint::new(grammar, Arc::clone(&texts));
        for b in prefix.bytes() {
            let id = tokens.iter().position(|t| t == &[b]).map(|i| i as u32);
            match id {
                Some(id) => c.accept(id),
                None => panic!("no single-byte token for {b}"),
            }
        }
        let n = 20;
        let t = Instant::now();
        let mut allowed = 0;
        for _ in 0..n {
            let m = c.mask(&logits, &[], 0, 0.9).expect("some token allowed");
            allowed = m.iter().filter(|l| l.is_finite()).count();
        }
        println!(
            "128k synthetic vocab, {name:28}: masked draw {:8.1} us ({allowed} tokens allowed)",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}

fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let model = Model::open(&ModelRef::Embedded, &LoadOptions::default()).unwrap();
    let t = Instant::now();
    let texts = model.token_texts().unwrap();
    println!(
        "token table: {} tokens in {:.1} ms",
        texts.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "age": {"type": "integer"},
            "name": {"type": "string", "maxLength": 12},
            "tags": {"type": "array", "items": {"enum": ["rust", "cpu", "llm"]}, "maxItems": 3}
        },
        "required": ["age", "name", "tags"],
        "additionalProperties": false
    });
    synthetic_vocab(&Arc::new(Grammar::from_schema(&schema).unwrap()));
    let modes: [(&str, Option<Arc<Grammar>>); 3] = [
        ("free", None),
        ("json_object", Some(Arc::new(Grammar::any_object()))),
        (
            "json_schema",
            Some(Arc::new(Grammar::from_schema(&schema).unwrap())),
        ),
    ];
    let mut sums = [(0usize, Duration::ZERO, Duration::ZERO); 3];
    for round in 0..rounds {
        for (i, (_, g)) in modes.iter().enumerate() {
            let (n, total, sampling) = run(&model, g.as_ref(), round);
            sums[i].0 += n;
            sums[i].1 += total;
            sums[i].2 += sampling;
        }
    }
    println!("{rounds} rounds, alternating; decode steps after the prompt:");
    for ((name, _), (n, total, sampling)) in modes.iter().zip(sums) {
        println!(
            "{name:12} {n:5} tokens  {:8.1} tokens/s  sampling+accept {:7.1} us/token",
            n as f64 / total.as_secs_f64(),
            sampling.as_secs_f64() * 1e6 / n as f64
        );
    }
}
