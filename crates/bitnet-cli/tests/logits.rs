//! `logits`: the .npy equals the engine's `forward_all` exactly and transformers' within the
//! fixture's documented tolerance.

use bitnet_engine::{LoadOptions, Model};

use crate::util::{cli, id_list, packed, read_npy, reference_greedy, stdout_of};

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn cli_logits(extra: &[&str]) -> (Vec<usize>, Vec<f32>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("logits.npy");
    let (prompt, _) = reference_greedy(0);
    let mut args = vec![
        "logits".to_string(),
        "-m".into(),
        packed().display().to_string(),
        "--tokens".into(),
        id_list(&prompt),
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
