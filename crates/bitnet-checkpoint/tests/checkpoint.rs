//! Opening the tiny-bitnet fixture in its three layouts (packed and master from the fixture,
//! unpacked built from packed in a temp dir), decoding every linear against transformers'
//! `scales.json`, and every error naming the tensor or file at fault.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bitnet_checkpoint::{
    Checkpoint, CheckpointError, DenseValues, Dtype, Layout, Linear, Norm, absmean_ternarize,
};
use half::bf16;
use safetensors::tensor::TensorView;

/// A checkpoint's tensors: name, dtype, shape, bytes.
type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny-bitnet")
        .join(rel)
}

fn read_tensors(file: &Path) -> Tensors {
    let bytes = std::fs::read(file).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut t: Tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

fn write_safetensors(path: &Path, tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None::<HashMap<String, String>>, path).unwrap();
}

fn config(variant: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture(&format!("{variant}/config.json"))).unwrap())
        .unwrap()
}

/// A checkpoint directory with these tensors and this config.
fn checkpoint_dir(tensors: &Tensors, config: &serde_json::Value) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write_safetensors(&d.path().join("model.safetensors"), tensors);
    std::fs::write(d.path().join("config.json"), config.to_string()).unwrap();
    d
}

/// `packed/` with its tensors passed through `edit`.
fn edited_packed(edit: impl FnOnce(&mut Tensors)) -> tempfile::TempDir {
    let mut t = read_tensors(&fixture("packed/model.safetensors"));
    edit(&mut t);
    checkpoint_dir(&t, &config("packed"))
}

fn tensor_mut<'a>(t: &'a mut Tensors, name: &str) -> &'a mut (String, Dtype, Vec<usize>, Vec<u8>) {
    t.iter_mut()
        .find(|x| x.0 == name)
        .unwrap_or_else(|| panic!("{name}"))
}

/// `packed/` rewritten in the unpacked layout: I8 values -1/0/+1 `[out, in]` plus the same
/// bf16 `weight_scale`.
fn unpacked_tensors() -> Tensors {
    let packed = Checkpoint::open(fixture("packed")).unwrap();
    let mut t = read_tensors(&fixture("packed/model.safetensors"));
    for l in 0..4 {
        for which in Linear::ALL {
            let w = packed.linear(l, which).unwrap();
            let x = tensor_mut(
                &mut t,
                &format!("model.layers.{l}.{}.weight", which.hf_path()),
            );
            x.1 = Dtype::I8;
            x.2 = vec![w.rows, w.cols];
            x.3 = w.values.iter().map(|&v| v as u8).collect();
        }
    }
    t
}

fn scales() -> serde_json::Map<String, serde_json::Value> {
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("scales.json")).unwrap()).unwrap();
    j.as_object().unwrap().clone()
}

fn layer_linear(key: &str) -> (usize, Linear) {
    // model.layers.L.self_attn.q_proj
    let parts: Vec<&str> = key.split('.').collect();
    let layer = parts[2].parse().unwrap();
    let path = format!("{}.{}", parts[3], parts[4]);
    let which = Linear::ALL
        .into_iter()
        .find(|w| w.hf_path() == path)
        .unwrap();
    (layer, which)
}

fn frac_nonzero(values: &[i8]) -> f64 {
    values.iter().filter(|&&v| v != 0).count() as f64 / values.len() as f64
}

fn open_err(dir: &Path) -> String {
    match Checkpoint::open(dir) {
        Ok(_) => panic!("{} opened", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn assert_names(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "error {e:?} does not name {p:?}");
    }
}

#[test]
fn layouts_are_detected() {
    let packed = Checkpoint::open(fixture("packed")).unwrap();
    assert_eq!(packed.layout().unwrap(), Layout::Packed);
    let master = Checkpoint::open(fixture("master")).unwrap();
    assert_eq!(master.layout().unwrap(), Layout::Master);
    let d = checkpoint_dir(&unpacked_tensors(), &config("packed"));
    let unpacked = Checkpoint::open(d.path()).unwrap();
    assert_eq!(unpacked.layout().unwrap(), Layout::Unpacked);
    for c in [&packed, &master, &unpacked] {
        c.check_tensor_set().unwrap();
    }
    assert_eq!(packed.dir(), fixture("packed"));
    // 4 layers x (7 linears + 7 scales + 4 norms) + embedding + final norm.
    assert_eq!(packed.tensors().count(), 4 * 18 + 2);
    assert_eq!(master.tensors().count(), 4 * 11 + 2);
}

/// Packed: the stored bf16 scale exactly and transformers' fraction of non-zero codes, for
/// all 28 linears; unpacked decodes to the same weights.
#[test]
fn packed_and_unpacked_match_scales_json() {
    let packed = Checkpoint::open(fixture("packed")).unwrap();
    let d = checkpoint_dir(&unpacked_tensors(), &config("packed"));
    let unpacked = Checkpoint::open(d.path()).unwrap();
    let scales = scales();
    assert_eq!(scales.len(), 28);
    for (key, want) in &scales {
        let (l, which) = layer_linear(key);
        let w = packed.linear(l, which).unwrap();
        assert_eq!((w.rows, w.cols), packed.linear_shape(which), "{key}");
        assert_eq!(
            w.scale,
            want["scale_stored"].as_f64().unwrap() as f32,
            "{key}"
        );
        assert_eq!(
            frac_nonzero(&w.values),
            want["frac_nonzero"].as_f64().unwrap(),
            "{key}"
        );
        assert!(w.values.iter().all(|v| (-1..=1).contains(v)));
        assert_eq!(unpacked.linear(l, which).unwrap(), w, "{key}");
    }
}

/// Master: absmean gives transformers' f32 scale (to the last bit of summation order) and
/// exactly its non-zero fraction; the ternary values equal those transformers packed.
#[test]
fn master_absmean_matches_scales_json() {
    let master = Checkpoint::open(fixture("master")).unwrap();
    let packed = Checkpoint::open(fixture("packed")).unwrap();
    let mut worst = 0f32;
    for (key, want) in &scales() {
        let (l, which) = layer_linear(key);
        let w = master.linear(l, which).unwrap();
        let want_scale = want["scale_fp32"].as_f64().unwrap() as f32;
        let rel = ((w.scale - want_scale) / want_scale).abs();
        worst = worst.max(rel);
        assert!(rel <= 2e-7, "{key}: {} vs {want_scale}", w.scale);
        assert_eq!(
            frac_nonzero(&w.values),
            want["frac_nonzero"].as_f64().unwrap(),
            "{key}"
        );
        assert_eq!(w.values, packed.linear(l, which).unwrap().values, "{key}");
        // The public function on the raw weights gives the same result.
        let (shape, raw) = master.tensor_f32(&format!("{key}.weight")).unwrap();
        assert_eq!(absmean_ternarize(&raw, shape[0], shape[1]), w, "{key}");
    }
    eprintln!("master: worst relative scale difference vs transformers {worst:.2e}");
}

#[test]
fn absmean_rounds_half_to_even() {
    // mean |w| = 1: w/s = w; torch.round(0.5) = 0, round(1.5) = 2 -> clamped to 1.
    let w = [0.5, -0.5, 1.5, -1.5, 0.0, 2.0];
    let t = absmean_ternarize(&w, 2, 3);
    assert_eq!(t.scale, 1.0);
    assert_eq!(t.values, [0, 0, 1, -1, 0, 1]);
    assert_eq!((t.rows, t.cols), (2, 3));
    // All zero: the scale is clamped to 1e-5, every value 0.
    let t = absmean_ternarize(&[0.0; 4], 1, 4);
    assert_eq!((t.scale, t.values), (1e-5, vec![0; 4]));
}

#[test]
fn dense_tensors_and_norms() {
    let c = Checkpoint::open(fixture("packed")).unwrap();
    let (shape, e) = c.embedding().unwrap();
    assert_eq!((shape, e.len()), (vec![512, 256], 512 * 256));
    // The fixture's bf16 embedding is kept as stored: its raw bytes.
    let (_, raw) = c.raw_tensor("model.embed_tokens.weight").unwrap();
    let stored: Vec<bf16> = raw
        .chunks_exact(2)
        .map(|b| bf16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(e, DenseValues::BF16(stored));
    assert!(c.lm_head().unwrap().is_none(), "tied");
    assert_eq!(c.final_norm().unwrap().len(), 256);
    for (which, len) in [
        (Norm::Input, 256),
        (Norm::PostAttention, 256),
        (Norm::AttnSub, 256),
        (Norm::FfnSub, 512),
    ] {
        assert_eq!(c.norm(3, which).unwrap().len(), len, "{which:?}");
    }
    // bf16 widened exactly: the raw bytes' high halves.
    let (meta, raw) = c.raw_tensor("model.norm.weight").unwrap();
    assert_eq!(meta.dtype, Dtype::BF16);
    assert_eq!(c.tensor_len("model.norm.weight"), 512);
    let first = f32::from_bits(u32::from(u16::from_le_bytes([raw[0], raw[1]])) << 16);
    assert_eq!(c.final_norm().unwrap()[0], first);
    assert_eq!(c.tensor_len("no.such.tensor"), 0);
    // Releasing pages loses nothing: the data reads back the same.
    let before = c.embedding().unwrap();
    c.release("model.embed_tokens.weight", 0, usize::MAX);
    assert_eq!(c.embedding().unwrap(), before);
}

#[test]
fn untied_head_is_read() {
    let mut t = read_tensors(&fixture("packed/model.safetensors"));
    let e = tensor_mut(&mut t, "model.embed_tokens.weight").clone();
    t.push(("lm_head.weight".into(), e.1, e.2, e.3));
    let mut cfg = config("packed");
    cfg["tie_word_embeddings"] = false.into();
    let d = checkpoint_dir(&t, &cfg);
    let c = Checkpoint::open(d.path()).unwrap();
    c.check_tensor_set().unwrap();
    assert_eq!(c.lm_head().unwrap().unwrap(), c.embedding().unwrap());
}

#[test]
fn bitlinear_divides_by_the_scale() {
    let mut cfg = config("packed");
    cfg["quantization_config"]["linear_class"] = "bitlinear".into();
    let d = checkpoint_dir(&read_tensors(&fixture("packed/model.safetensors")), &cfg);
    let c = Checkpoint::open(d.path()).unwrap();
    let stored = scales()["model.layers.0.self_attn.q_proj"]["scale_stored"]
        .as_f64()
        .unwrap() as f32;
    assert_eq!(c.linear(0, Linear::QProj).unwrap().scale, 1.0 / stored);
}

#[test]
fn error_not_a_directory_missing_config_missing_weights() {
    let file = fixture("packed/config.json");
    assert_names(
        &open_err(&file),
        &["packed/config.json", "is not a directory"],
    );

    let d = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("packed/model.safetensors"),
        d.path().join("model.safetensors"),
    )
    .unwrap();
    let e = Checkpoint::open(d.path()).err().unwrap();
    assert!(matches!(e, CheckpointError::MissingConfig { .. }), "{e}");
    assert_names(
        &e.to_string(),
        &[
            &d.path().join("config.json").display().to_string(),
            "missing",
        ],
    );

    let d = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("packed/config.json"), d.path().join("config.json")).unwrap();
    let e = Checkpoint::open(d.path()).err().unwrap();
    assert!(matches!(e, CheckpointError::MissingWeights { .. }), "{e}");
    assert_names(
        &e.to_string(),
        &[
            &d.path().display().to_string(),
            "neither model.safetensors nor model.safetensors.index.json",
        ],
    );
}

#[test]
fn error_missing_tensor() {
    let name = "model.layers.2.mlp.up_proj.weight";
    let d = edited_packed(|t| t.retain(|x| x.0 != name));
    let c = Checkpoint::open(d.path()).unwrap();
    assert_names(
        &c.check_tensor_set().unwrap_err().to_string(),
        &["missing tensor", name],
    );
    assert_names(
        &c.linear(2, Linear::UpProj).unwrap_err().to_string(),
        &[name],
    );
    // A packed weight without its scale.
    let scale = "model.layers.1.self_attn.k_proj.weight_scale";
    let d = edited_packed(|t| t.retain(|x| x.0 != scale));
    let c = Checkpoint::open(d.path()).unwrap();
    assert_names(&c.check_tensor_set().unwrap_err().to_string(), &[scale]);
    assert_names(
        &c.linear(1, Linear::KProj).unwrap_err().to_string(),
        &[scale],
    );
}

#[test]
fn error_unexpected_tensor_names_tensor_and_file() {
    let d = edited_packed(|t| {
        t.push((
            "model.layers.9.extra.weight".into(),
            Dtype::F32,
            vec![1],
            vec![0; 4],
        ))
    });
    let c = Checkpoint::open(d.path()).unwrap();
    assert_names(
        &c.check_tensor_set().unwrap_err().to_string(),
        &["model.layers.9.extra.weight", "model.safetensors"],
    );
}

/// How a reader of one tensor is called.
type Read = fn(&Checkpoint) -> Result<(), CheckpointError>;

#[test]
fn error_wrong_shape() {
    // The same bytes under another shape, so only the shape check can catch it.
    let cases: [(&str, Vec<usize>, &str, Read); 3] = [
        (
            "model.layers.1.self_attn.q_proj.weight",
            vec![128, 128],
            "[64, 256]",
            |c| c.linear(1, Linear::QProj).map(drop),
        ),
        (
            "model.layers.3.mlp.ffn_sub_norm.weight",
            vec![2, 256],
            "[512]",
            |c| c.norm(3, Norm::FfnSub).map(drop),
        ),
        (
            "model.embed_tokens.weight",
            vec![256, 512],
            "[512, 256]",
            |c| c.embedding().map(drop),
        ),
    ];
    for (name, shape, expected, read) in cases {
        let found = format!("{shape:?}");
        let d = edited_packed(|t| tensor_mut(t, name).2 = shape);
        let c = Checkpoint::open(d.path()).unwrap();
        assert_names(
            &read(&c).unwrap_err().to_string(),
            &[name, &found, expected],
        );
    }
}

#[test]
fn error_code_3_in_packed_bytes() {
    let name = "model.layers.0.self_attn.k_proj.weight";
    // Byte [1, 5]: bits 4..5 set to code 3 (the other codes stay valid).
    let d = edited_packed(|t| {
        let x = tensor_mut(t, name);
        let cols = x.2[1];
        let i = cols + 5; // row 1, column 5
        x.3[i] = (x.3[i] & !0b11_0000) | 0b11_0000;
    });
    let c = Checkpoint::open(d.path()).unwrap();
    assert_names(
        &c.linear(0, Linear::KProj).unwrap_err().to_string(),
        &[name, "invalid 2-bit code 3 at byte [1, 5] (bits 4)"],
    );
}

#[test]
fn error_non_ternary_unpacked_value() {
    let name = "model.layers.1.mlp.gate_proj.weight";
    let mut t = unpacked_tensors();
    tensor_mut(&mut t, name).3[77] = 2;
    let d = checkpoint_dir(&t, &config("packed"));
    let c = Checkpoint::open(d.path()).unwrap();
    assert_names(
        &c.linear(1, Linear::GateProj).unwrap_err().to_string(),
        &[name, "element 77 is 2, not -1, 0 or +1"],
    );
}

#[test]
fn error_nan_or_zero_scale() {
    let name = "model.layers.2.self_attn.v_proj.weight_scale";
    for (bits, shown) in [(0x7fc0u16, "NaN"), (0, "scale 0"), (0x7f80, "inf")] {
        let d = edited_packed(|t| tensor_mut(t, name).3 = bits.to_le_bytes().to_vec());
        let c = Checkpoint::open(d.path()).unwrap();
        assert_names(
            &c.linear(2, Linear::VProj).unwrap_err().to_string(),
            &[name, shown, "not a finite non-zero number"],
        );
    }
}

#[test]
fn error_nan_master_weight_and_bad_dtype() {
    let name = "model.layers.3.mlp.down_proj.weight";
    let mut t = read_tensors(&fixture("master/model.safetensors"));
    tensor_mut(&mut t, name).3[20..22].copy_from_slice(&0x7fc0u16.to_le_bytes());
    let d = checkpoint_dir(&t, &config("master"));
    let c = Checkpoint::open(d.path()).unwrap();
    assert_names(
        &c.linear(3, Linear::DownProj).unwrap_err().to_string(),
        &[name, "element 10 is NaN"],
    );
    // An integer master weight (no scale) has no meaning.
    let mut t = read_tensors(&fixture("master/model.safetensors"));
    let x = tensor_mut(&mut t, name);
    x.1 = Dtype::I16;
    let d = checkpoint_dir(&t, &config("master"));
    let c = Checkpoint::open(d.path()).unwrap();
    assert_names(
        &c.linear(3, Linear::DownProj).unwrap_err().to_string(),
        &[name, "I16"],
    );
}

#[test]
fn error_corrupt_safetensors_names_file() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("packed/config.json"), d.path().join("config.json")).unwrap();
    let mut bytes = std::fs::read(fixture("packed/model.safetensors")).unwrap();
    bytes.truncate(bytes.len() - 1);
    std::fs::write(d.path().join("model.safetensors"), &bytes).unwrap();
    assert_names(
        &open_err(d.path()),
        &["model.safetensors", "invalid safetensors file"],
    );
}

/// Splits `packed/` into two shards with an index.
fn sharded(
    index_edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> tempfile::TempDir {
    let t = read_tensors(&fixture("packed/model.safetensors"));
    let d = tempfile::tempdir().unwrap();
    let mut map = serde_json::Map::new();
    for (i, part) in t.chunks(t.len() / 2 + 1).enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", i + 1);
        write_safetensors(&d.path().join(&file), part);
        for x in part {
            map.insert(x.0.clone(), file.clone().into());
        }
    }
    index_edit(&mut map);
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        d.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    std::fs::copy(fixture("packed/config.json"), d.path().join("config.json")).unwrap();
    d
}

#[test]
fn sharded_checkpoint_reads_like_one_file() {
    let d = sharded(|_| {});
    let c = Checkpoint::open(d.path()).unwrap();
    let one = Checkpoint::open(fixture("packed")).unwrap();
    c.check_tensor_set().unwrap();
    assert_eq!(c.tensors().count(), one.tensors().count());
    let files: std::collections::BTreeSet<_> = c.tensors().map(|m| m.file.clone()).collect();
    assert_eq!(files.len(), 2);
    for l in 0..4 {
        for which in Linear::ALL {
            assert_eq!(c.linear(l, which).unwrap(), one.linear(l, which).unwrap());
        }
    }
    assert_eq!(c.embedding().unwrap(), one.embedding().unwrap());
}

#[test]
fn error_sharded_index_to_missing_shard() {
    let d = sharded(|m| {
        m.insert(
            "model.norm.weight".into(),
            "model-00003-of-00002.safetensors".into(),
        );
    });
    let e = Checkpoint::open(d.path()).err().unwrap();
    assert!(matches!(e, CheckpointError::MissingShard { .. }), "{e}");
    assert_names(
        &e.to_string(),
        &[
            "model.safetensors.index.json",
            "shard",
            "model-00003-of-00002.safetensors",
            "missing",
        ],
    );
    // Shard names must be plain file names in the directory.
    let d = sharded(|m| {
        m.insert("model.norm.weight".into(), "../model.safetensors".into());
    });
    assert_names(
        &open_err(d.path()),
        &["model.safetensors.index.json", "'../model.safetensors'"],
    );
    // No weight_map at all.
    let d = sharded(|_| {});
    std::fs::write(d.path().join("model.safetensors.index.json"), "{}").unwrap();
    assert_names(
        &open_err(d.path()),
        &["model.safetensors.index.json", "no 'weight_map' object"],
    );
}

#[test]
fn error_tensor_in_two_shards() {
    let d = sharded(|_| {});
    // Put a tensor of shard 1 into shard 2 as well.
    let first = read_tensors(&d.path().join("model-00001-of-00002.safetensors"));
    let mut second = read_tensors(&d.path().join("model-00002-of-00002.safetensors"));
    second.push(first[0].clone());
    write_safetensors(&d.path().join("model-00002-of-00002.safetensors"), &second);
    assert_names(
        &open_err(d.path()),
        &[
            "model-00002-of-00002.safetensors",
            &first[0].0,
            "two shards",
        ],
    );
}

/// Writes NaN (as the tensor's dtype) over element 3 of a float tensor.
fn poison_nan(t: &mut Tensors, name: &str) {
    let x = tensor_mut(t, name);
    match x.1 {
        Dtype::F32 => x.3[12..16].copy_from_slice(&f32::NAN.to_le_bytes()),
        Dtype::BF16 | Dtype::F16 => x.3[6..8].copy_from_slice(&0x7fc0u16.to_le_bytes()),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn error_nan_final_norm_and_block_norm() {
    for name in [
        "model.norm.weight",
        "model.layers.1.post_attention_layernorm.weight",
    ] {
        let d = edited_packed(|t| poison_nan(t, name));
        let c = Checkpoint::open(d.path()).unwrap();
        let e = if name == "model.norm.weight" {
            c.final_norm().unwrap_err()
        } else {
            c.norm(1, Norm::PostAttention).unwrap_err()
        };
        assert_names(&e.to_string(), &[name, "element 3 is NaN"]);
    }
}

#[test]
fn error_layer_count_the_checkpoint_cannot_hold() {
    let mut cfg = config("packed");
    cfg["num_hidden_layers"] = (1u64 << 24).into();
    let t = read_tensors(&fixture("packed/model.safetensors"));
    let d = checkpoint_dir(&t, &cfg);
    let c = Checkpoint::open(d.path()).unwrap();
    let e = c.check_tensor_set().unwrap_err();
    assert!(matches!(e, CheckpointError::TooFewTensors { .. }), "{e}");
    assert_names(&e.to_string(), &["num_hidden_layers", "16777216 layers"]);
}

#[test]
fn error_unknown_linear_class() {
    let mut cfg = config("packed");
    cfg["quantization_config"]["linear_class"] = "superlinear".into();
    let t = read_tensors(&fixture("packed/model.safetensors"));
    let d = checkpoint_dir(&t, &cfg);
    assert_names(
        &open_err(d.path()),
        &[
            "config.json",
            "linear_class",
            "superlinear",
            "bitlinear, autobitlinear",
        ],
    );
}
