//! Every outtype from `packed/` and `master/`, loaded by the engine and compared with the
//! engine loading the Hugging Face directory directly (bit-equal where every weight survives
//! exactly) and with transformers' reference logits (the fixture tolerances); and the
//! tokenizer written to GGUF builds the same tokenizer as the directory's.

mod common;

use std::path::Path;

use bitnet_engine::{LoadOptions, Model};
use common::*;

const OUTTYPES: [&str; 5] = ["i2_s", "tq2_0", "tq1_0", "f16", "f32"];

/// The reference prompts p0 and p1 of the fixture (token ids, see its README).
const PROMPTS: [&[u32]; 2] = [&PROMPT, &[1, 255, 3, 3, 3, 511, 0, 128, 77, 300, 301, 302]];

/// The model's logits at every position of each prompt (a fresh session per prompt).
fn logits(path: &Path) -> Vec<Vec<f32>> {
    let opts = LoadOptions {
        threads: 1,
        ..LoadOptions::default()
    };
    let model = Model::load(path, &opts).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    PROMPTS
        .iter()
        .map(|p| {
            let mut session = model.new_session();
            model.forward_all(&mut session, p).unwrap()
        })
        .collect()
}

/// Which conversions keep every weight bit-exact, so that the engine's logits equal those it
/// computes from the Hugging Face directory (with a bf16 embedding, which keeps the bf16
/// source exact):
/// - `packed/`: the bf16 `weight_scale` is exact in f32 (I2_S), in f16 (TQ2_0/TQ1_0 block
///   scales; bf16 values in f16's normal range are f16 values) and in `value*scale` f16/f32.
/// - `master/`: the absmean scale is an f32, exact in I2_S and f32; TQ*/f16 round it to f16.
fn exact(variant: &str, outtype: &str) -> bool {
    variant == "packed" || matches!(outtype, "i2_s" | "f32")
}

fn every_outtype(variant: &str) {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture(variant);
    let direct = logits(&src);
    let reference: Vec<Vec<f32>> = (0..PROMPTS.len())
        .map(|i| read_npy(&fixture(&format!("{variant}/ref/logits_p{i}.npy"))))
        .collect();
    for outtype in OUTTYPES {
        for embed in ["bf16", "default"] {
            let out = dir.path().join(format!("{variant}-{outtype}-{embed}.gguf"));
            let mut extra = vec!["--outtype", outtype, "--verify"];
            if embed != "default" {
                extra.extend(["--embed-type", embed]);
            }
            convert(&src, &out, &extra);
            let got = logits(&out);
            if embed == "bf16" && exact(variant, outtype) {
                assert_eq!(
                    got, direct,
                    "{variant} {outtype}: logits differ from the HF dir"
                );
            }
            for (p, got) in got.iter().enumerate() {
                let (d_direct, top1_direct) = compare(got, &direct[p]);
                let (d_ref, top1_ref) = compare(got, &reference[p]);
                eprintln!(
                    "{variant} {outtype} embed={embed} p{p}: vs HF dir max|d| {d_direct:.3e} top-1 {:.1}%; vs transformers max|d| {d_ref:.3} top-1 {:.1}%",
                    100.0 * top1_direct,
                    100.0 * top1_ref
                );
                // The fixture tolerances (fixtures/tiny-bitnet/README.md), per prompt.
                assert!(
                    d_ref < 1.0 && top1_ref >= 0.9,
                    "{variant} {outtype} embed={embed} p{p}: max|d| {d_ref}, top-1 {top1_ref} vs transformers"
                );
                assert!(
                    d_direct < 1.0 && top1_direct >= 0.9,
                    "{variant} {outtype} embed={embed} p{p}: max|d| {d_direct}, top-1 {top1_direct} vs HF dir"
                );
            }
        }
    }
}

#[test]
fn packed_every_outtype_matches_hf_dir() {
    every_outtype("packed");
}

#[test]
fn master_every_outtype_matches_hf_dir() {
    every_outtype("master");
}

#[test]
fn f32_embedding_is_exact_too() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.gguf");
    convert(
        &fixture("packed"),
        &out,
        &["--outtype", "tq2_0", "--embed-type", "f32", "--verify"],
    );
    assert_eq!(logits(&out), logits(&fixture("packed")));
}

#[test]
fn tokenizer_round_trips_through_gguf() {
    // The engine builds the same tokenizer from the GGUF as from the directory.
    let d = broken(|_| {}, |_| {});
    write_tiny_tokenizer(d.path());
    let out = tempfile::tempdir().unwrap();
    let gguf = out.path().join("tok.gguf");
    convert(d.path(), &gguf, &["--verify"]);
    let opts = LoadOptions {
        threads: 1,
        ..LoadOptions::default()
    };
    let model = Model::load(&gguf, &opts).unwrap();
    let from_gguf = model.tokenizer().expect("the GGUF has a tokenizer");
    let from_dir = bitnet_tokenizer::Tokenizer::from_hf_dir(d.path()).unwrap();
    for text in ["hello world", "abc zyx  ba\n<|end_of_text|>", "ünïcödé ✓"] {
        assert_eq!(
            from_gguf.encode(text, true, true).unwrap(),
            from_dir.encode(text, true, true).unwrap(),
            "{text:?}"
        );
    }
    assert_eq!(from_gguf.bos_id(), Some(510));
    assert_eq!(from_gguf.eos_id(), Some(511));
}
