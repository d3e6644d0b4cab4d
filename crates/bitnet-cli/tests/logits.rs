//! `logits`: the .npy equals the engine's `forward_all` exactly and transformers' within the
//! fixture's documented tolerance; `--backend burn` (the forward pass on Burn tensors) equals
//! `--backend engine` within 1e-4 without activation quantisation and gives the same argmax
//! at every position with it.

use bitnet_test_support::logits::argmax_rows;
use std::path::Path;

use bitnet_engine::{LoadOptions, Model};

use crate::util::{assert_error, cli, i2s, id_list, packed, read_npy, reference_greedy, stdout_of};

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn cli_logits(extra: &[&str]) -> (Vec<usize>, Vec<f32>) {
    cli_logits_of(&packed(), &reference_greedy(0).0, extra)
}

fn cli_logits_of(model: &Path, prompt: &[u32], extra: &[&str]) -> (Vec<usize>, Vec<f32>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("logits.npy");
    let mut args = vec![
        "logits".to_string(),
        "-m".into(),
        model.display().to_string(),
        "--tokens".into(),
        id_list(prompt),
        "--out".into(),
        out.display().to_string(),
        "--threads".into(),
        "1".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    stdout_of(&mut cli(args));
    read_npy(&out)
}

#[test]
fn logits_equal_the_engine_and_match_transformers() {
    let (shape, data) = cli_logits(&[]);
    assert_eq!(shape, [8, 512]);

    let (prompt, _) = reference_greedy(0);
    let opts = LoadOptions {
        threads: 1,
        ..LoadOptions::default()
    };
    let model = Model::load(&packed(), &opts).unwrap();
    let mut session = model.new_session();
    let engine = model.forward_all(&mut session, &prompt).unwrap();
    assert_eq!(
        data, engine,
        "CLI logits differ from the engine's forward_all"
    );

    let (ref_shape, reference) = read_npy(&packed().join("ref/logits_p0.npy"));
    assert_eq!(ref_shape, [8, 512]);
    let d = max_abs_diff(&data, &reference);
    assert!(d < 1.0, "max |d logit| vs transformers = {d}");
}

#[test]
fn logits_without_activation_quantisation_match_reference_closely() {
    let (_, data) = cli_logits(&["--no-act-quant"]);
    let (_, reference) = read_npy(&packed().join("ref_noactq/logits_p0.npy"));
    let d = max_abs_diff(&data, &reference);
    assert!(
        d <= 1e-4,
        "max |d logit| vs transformers (no act quant) = {d}"
    );
}

#[test]
fn burn_backend_equals_engine_backend() {
    for model in [packed(), i2s()] {
        for p in 0..3 {
            let (prompt, _) = reference_greedy(p);
            let what = format!("{} p{p}", model.display());

            let (shape, engine) = cli_logits_of(&model, &prompt, &["--no-act-quant"]);
            let burn_args = ["--no-act-quant", "--backend", "burn"];
            let (burn_shape, burn) = cli_logits_of(&model, &prompt, &burn_args);
            assert_eq!(burn_shape, shape, "{what}");
            assert_eq!(shape, [prompt.len(), 512], "{what}");
            let d = max_abs_diff(&burn, &engine);
            assert!(d <= 1e-4, "{what}: max |d logit| without act quant = {d}");

            let (_, engine) = cli_logits_of(&model, &prompt, &["--backend", "engine"]);
            let (_, burn) = cli_logits_of(&model, &prompt, &["--backend", "burn"]);
            assert_eq!(
                argmax_rows(&burn, 512),
                argmax_rows(&engine, 512),
                "{what}: argmax differs with act quant"
            );
        }
    }
}

#[test]
fn burn_backend_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("logits.npy");
    let base = |tokens: &str, backend: &str| {
        let mut cmd = cli(["logits", "-m", i2s().to_str().unwrap(), "--tokens", tokens]);
        cmd.args(["--out", out.to_str().unwrap(), "--backend", backend]);
        cmd
    };
    assert_error(
        &mut base("1,600", "burn"),
        1,
        "burn forward: token id 600 at position 1 is outside the vocabulary of 512",
    );
    assert_error(
        base("1,2", "burn").args(["--kv-type", "f16"]),
        1,
        "--kv-type f16 applies to --backend engine only",
    );
    assert_error(
        &mut base("1,2", "tpu"),
        2,
        "invalid value 'tpu' for '--backend <BACKEND>'",
    );
    assert!(!out.exists(), "no output file on errors");
}
