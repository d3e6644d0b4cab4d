//! The whole forward pass on Burn tensors (`BurnModel`) against the engine's `forward_all`
//! on the tiny fixture model (`fixtures/tiny-bitnet/`), from a GGUF file and from Hugging
//! Face checkpoints: within 1e-4 without activation quantisation, the same argmax at every
//! position with it (W1.58A8).

use bitnet_burn::{BurnError, BurnModel, model_logits};
use bitnet_engine::{HeadType, LoadOptions, Model};
use bitnet_test_support::logits::argmax_rows;
use burn::backend::NdArray;
use std::path::{Path, PathBuf};

type B = NdArray<f32>;

/// `fixtures/tiny-bitnet/<rel>` in the repository.
fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny-bitnet")
        .join(rel)
}

/// The three reference prompts (p0, p1, p2) recorded with the fixture.
fn prompts() -> Vec<Vec<u32>> {
    let path = fixture("packed/ref/greedy.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["prompt"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

/// The GGUF source (bitnet.cpp's I2_S file) and two checkpoint sources (packed ternary
/// weights with bf16 scales; latent bf16 master weights ternarised at load).
fn sources() -> [PathBuf; 3] {
    [
        fixture("i2s/model-i2_s.gguf"),
        fixture("packed"),
        fixture("master"),
    ]
}

fn load(path: &Path, act_quant: bool, threads: usize, head_type: HeadType) -> Model {
    let opts = LoadOptions {
        threads,
        activation_quantization: act_quant,
        head_type,
        ..LoadOptions::default()
    };
    Model::load(path, &opts).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn engine_logits(model: &Model, tokens: &[u32]) -> Vec<f32> {
    model.forward_all(&mut model.new_session(), tokens).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Burn vs engine on every prompt; returns the largest max |d logit|.
fn compare(model: &Model, what: &str, check: impl Fn(usize, &[f32], &[f32])) -> f32 {
    let mut worst = 0f32;
    for (i, p) in prompts().iter().enumerate() {
        let want = engine_logits(model, p);
        let got = model_logits(model, p).unwrap();
        assert_eq!(got.len(), p.len() * model.config().vocab_size);
        let d = max_abs_diff(&got, &want);
        eprintln!("{what} p{i} ({} tokens): max |d logit| {d:e}", p.len());
        check(i, &got, &want);
        worst = worst.max(d);
    }
    worst
}

#[test]
fn without_activation_quantisation_equals_the_engine_to_1e4() {
    for path in sources() {
        let model = load(&path, false, 1, HeadType::Stored);
        let d = compare(&model, &path.display().to_string(), |_, _, _| {});
        assert!(d <= 1e-4, "{}: max |d logit| = {d}", path.display());
    }
}

#[test]
fn with_activation_quantisation_gives_the_engines_argmax_at_every_position() {
    for path in sources() {
        let model = load(&path, true, 1, HeadType::Stored);
        let vocab = model.config().vocab_size;
        compare(&model, &path.display().to_string(), |i, got, want| {
            assert_eq!(
                argmax_rows(got, vocab),
                argmax_rows(want, vocab),
                "{}: prompt {i}: argmax differs",
                path.display()
            );
        });
    }
}

#[test]
fn without_activation_quantisation_matches_transformers_to_1e4() {
    // The same bound the engine meets against transformers (`packed/ref_noactq/`).
    let model = load(&fixture("packed"), false, 1, HeadType::Stored);
    for (i, p) in prompts().iter().enumerate() {
        let path = fixture(&format!("packed/ref_noactq/logits_p{i}.npy"));
        let reference = bitnet_test_support::npy::read_f32(&path).1;
        let d = max_abs_diff(&model_logits(&model, p).unwrap(), &reference);
        eprintln!("packed vs transformers p{i}: max |d logit| {d:e}");
        assert!(d <= 1e-4, "prompt {i}: max |d logit| vs transformers = {d}");
    }
}

#[test]
fn q8_0_head_and_two_threads_follow_the_engine() {
    // The Q8_0 head quantises its input per block of 32 (round half away from zero), so a
    // last-bit difference in the final norm can move one input by a whole quantisation step
    // d = max|block| / 127 and the logits by d * |w|: measured 1.4e-2 on p2. So: the same
    // argmax everywhere, a bound of 0.05, and at most one position in eight off by > 1e-4.
    for (path, act_quant) in [
        (fixture("packed"), false),
        (fixture("i2s/model-i2_s.gguf"), true),
    ] {
        let model = load(&path, act_quant, 2, HeadType::Q8_0);
        let vocab = model.config().vocab_size;
        let what = format!(
            "{}, q8_0 head, 2 threads, act quant {act_quant}",
            path.display()
        );
        let d = compare(&model, &what, |i, got, want| {
            assert_eq!(
                argmax_rows(got, vocab),
                argmax_rows(want, vocab),
                "{what}: prompt {i}: argmax differs"
            );
            // A flip moves its whole row: count positions, not logits.
            let off = got
                .chunks_exact(vocab)
                .zip(want.chunks_exact(vocab))
                .filter(|(a, b)| max_abs_diff(a, b) > 1e-4)
                .count();
            let rows = got.len() / vocab;
            assert!(
                off * 8 <= rows,
                "{what}: prompt {i}: {off} of {rows} positions off by > 1e-4"
            );
        });
        assert!(d <= 0.05, "{what}: max |d logit| = {d}");
    }
}

#[test]
fn a_position_does_not_see_later_tokens() {
    // Causality: changing token 6 leaves rows 0..6 bit-identical (masked scores get weight
    // exactly 0 and every other step is per row at the same shapes) and changes row 6.
    let model = load(&fixture("packed"), false, 1, HeadType::Stored);
    let vocab = model.config().vocab_size;
    let a = prompts()[1].clone();
    let mut b = a.clone();
    b[6] = (b[6] + 1) % vocab as u32;
    let (la, lb) = (
        model_logits(&model, &a).unwrap(),
        model_logits(&model, &b).unwrap(),
    );
    assert_eq!(la[..6 * vocab], lb[..6 * vocab]);
    assert!(max_abs_diff(&la[6 * vocab..7 * vocab], &lb[6 * vocab..7 * vocab]) > 1e-3);
}

#[test]
fn bad_token_sequences_are_errors() {
    let model = load(&fixture("packed"), true, 1, HeadType::Stored);
    let burn = BurnModel::<B>::new(&model, &Default::default()).unwrap();
    let err = burn.logits(&[]).unwrap_err();
    assert!(matches!(err, BurnError::EmptyInput), "{err}");
    let err = burn.logits(&[1, 2, 512, 3]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "burn forward: token id 512 at position 2 is outside the vocabulary of 512"
    );
    let ctx = model.config().context_length;
    let err = burn.logits(&vec![1; ctx + 1]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "burn forward: {} tokens exceed the model's context of {ctx}",
            ctx + 1
        )
    );
}

/// A rescored head (Q4_K logits, the best recomputed from F16 rows) is not modelled on Burn:
/// refused with what to use instead; the plain Q4_K head runs.
#[test]
fn a_rescored_head_is_refused_by_name() {
    let path = fixture("i2s/model-i2_s.gguf");
    let model = load(&path, true, 1, HeadType::Q4KRescored);
    let err = BurnModel::<B>::new(&model, &Default::default())
        .err()
        .expect("refused");
    assert!(matches!(err, BurnError::RescoredHead), "{err}");
    assert!(err.to_string().contains("head type q4_k"), "{err}");
    let q4 = load(&path, true, 1, HeadType::Q4K);
    assert!(BurnModel::<B>::new(&q4, &Default::default()).is_ok());
}
