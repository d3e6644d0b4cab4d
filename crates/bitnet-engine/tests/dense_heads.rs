//! Embeddings and heads stored in BF16 and in ggml's dense block types (Q8_0, Q4_K, Q6_K;
//! bitnet.cpp and ik_llama.cpp recommend a Q6_K head) load and run as stored, each on its own
//! kernels. The tiny fixture's I2_S GGUF, its F16 embedding (the tied head) re-encoded in each
//! type, stays close to the F16 model (BF16 holds the same values: equal to F32 bit for bit). The encoders here are simple valid ones (not llama-quantize's
//! searches); the decoding is checked bit for bit against gguf-py in bitnet-formats.
//! `--head-type q6_k` and `q4_k` are checked against the blocks bitnet.cpp's own
//! `llama-quantize` wrote for the fixture (`i2s/model-i2_s-q6_k.gguf`, `-q4_k.gguf`).

mod common;

use std::path::{Path, PathBuf};

use bitnet_engine::weights::DenseStorage;
use bitnet_engine::{HeadType, LoadOptions, Model};
use bitnet_gguf::{GgmlType, GgufFile, GgufWriter, TensorSpec};
use common::{compare, fixture, read_greedy};
use half::{bf16, f16};

const EMBD: &str = "token_embd.weight";

/// ggml's `quantize_row_q8_0_ref`: `d = amax / 127`, `q = round(x / d)`.
fn encode_q8_0(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for b in x.chunks_exact(32) {
        let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(b.iter().map(|v| (v * id).round() as i8 as u8));
    }
    out
}

/// A valid Q6_K encoding: per sub-block of 16 an 8-bit scale, 6-bit quants in -32..=31.
fn encode_q6_k(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for b in x.chunks_exact(256) {
        let amax: Vec<f32> = b
            .chunks_exact(16)
            .map(|s| s.iter().fold(0f32, |m, v| m.max(v.abs())))
            .collect();
        let top = amax.iter().fold(0f32, |m, &v| m.max(v));
        let d = f16::from_f32(top / 31.0 / 127.0).to_f32();
        let scales: Vec<i8> = amax
            .iter()
            .map(|&a| {
                if d == 0.0 {
                    0
                } else {
                    (a / 31.0 / d).round().min(127.0) as i8
                }
            })
            .collect();
        let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
        for (i, &v) in b.iter().enumerate() {
            let step = d * f32::from(scales[i / 16]);
            let q = if step == 0.0 {
                0.0
            } else {
                (v / step).round().clamp(-32.0, 31.0)
            };
            let q = (q as i32 + 32) as u8;
            let (h, w) = (i / 128, i % 128);
            let (k, l) = (w / 32, w % 32);
            ql[64 * h + l + 32 * (k % 2)] |= (q & 0xF) << (4 * (k / 2));
            qh[32 * h + l] |= (q >> 4) << (2 * k);
        }
        out.extend_from_slice(&ql);
        out.extend_from_slice(&qh);
        out.extend(scales.iter().map(|&s| s as u8));
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    }
    out
}

/// A valid Q4_K encoding: per sub-block of 32 a 6-bit scale and min, 4-bit quants.
fn encode_q4_k(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for b in x.chunks_exact(256) {
        let (mut range, mut neg_min) = ([0f32; 8], [0f32; 8]);
        for (j, s) in b.chunks_exact(32).enumerate() {
            let lo = s.iter().fold(0f32, |m, &v| m.min(v));
            let hi = s.iter().fold(f32::MIN, |m, &v| m.max(v));
            (range[j], neg_min[j]) = (hi - lo, -lo);
        }
        let d = f16::from_f32(range.iter().fold(0f32, |m, &v| m.max(v)) / 15.0 / 63.0).to_f32();
        let dmin = f16::from_f32(neg_min.iter().fold(0f32, |m, &v| m.max(v)) / 63.0).to_f32();
        let six = |v: f32, unit: f32| {
            if unit == 0.0 {
                0
            } else {
                (v / unit).ceil().min(63.0) as u8
            }
        };
        let sc: Vec<u8> = range.iter().map(|&r| six(r / 15.0, d)).collect();
        let mn: Vec<u8> = neg_min.iter().map(|&m| six(m, dmin)).collect();
        let mut scales = [0u8; 12];
        for j in 0..8 {
            if j < 4 {
                scales[j] = sc[j];
                scales[j + 4] = mn[j];
            } else {
                scales[j + 4] = (sc[j] & 0xF) | ((mn[j] & 0xF) << 4);
                scales[j - 4] |= (sc[j] >> 4) << 6;
                scales[j] |= (mn[j] >> 4) << 6;
            }
        }
        let mut qs = [0u8; 128];
        for (i, &v) in b.iter().enumerate() {
            let j = i / 32;
            let step = d * f32::from(sc[j]);
            let q = if step == 0.0 {
                0
            } else {
                ((v + dmin * f32::from(mn[j])) / step)
                    .round()
                    .clamp(0.0, 15.0) as u8
            };
            qs[32 * (j / 2) + i % 32] |= q << (4 * (j % 2));
        }
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend_from_slice(&f16::from_f32(dmin).to_le_bytes());
        out.extend_from_slice(&scales);
        out.extend_from_slice(&qs);
    }
    out
}

/// The I2_S fixture with its embedding re-encoded as `ty` by `encode`.
fn with_embedding(dir: &Path, ty: GgmlType, encode: fn(&[f32]) -> Vec<u8>) -> PathBuf {
    let src = GgufFile::open(fixture("i2s/model-i2_s.gguf")).unwrap();
    assert!(
        src.tensor("output.weight").is_none(),
        "the fixture's head is tied"
    );
    let specs = src
        .tensors()
        .iter()
        .map(|t| TensorSpec {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ggml_type: if t.name == EMBD { ty } else { t.ggml_type },
        })
        .collect();
    let path = dir.join(format!("model-{}.gguf", ty.name()));
    let mut w = GgufWriter::create(&path, true, src.metadata().to_vec(), specs).unwrap();
    for t in src.tensors() {
        let data = src.tensor_data(t);
        if t.name == EMBD {
            assert_eq!(t.ggml_type, GgmlType::F16);
            let x: Vec<f32> = data
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect();
            w.write_tensor(&t.name, &encode(&x)).unwrap();
        } else {
            w.write_tensor(&t.name, data).unwrap();
        }
    }
    w.finish().unwrap()
}

fn load(path: &Path, head_type: HeadType) -> Model {
    load_with(path, head_type, true)
}

/// With `act_quant` false the activations stay f32 (no int8 rounding), so logit differences
/// measure the weights' error alone: on this tiny random model the int8 rounding of the
/// activations turns any small change of the embedding into jumps of whole steps.
fn load_with(path: &Path, head_type: HeadType, act_quant: bool) -> Model {
    let opts = LoadOptions {
        threads: 1,
        head_type,
        activation_quantization: act_quant,
        ..LoadOptions::default()
    };
    Model::load(path, &opts).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn logits(model: &Model, tokens: &[u32]) -> Vec<f32> {
    let mut s = model.new_session();
    model.forward_all(&mut s, tokens).unwrap()
}

/// Worst max |d logit|, relative rms error and top-1 agreement of the model at `path`
/// against the F16 fixture over the fixture's prompts, both with f32 activations.
fn against_f16(path: &Path) -> (f32, f32, f64) {
    let model = load_with(path, HeadType::Stored, false);
    let f16_model = load_with(&fixture("i2s/model-i2_s.gguf"), HeadType::Stored, false);
    let vocab = f16_model.config().vocab_size;
    let rms = |v: &[f32]| (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
    let (mut max, mut rel, mut top1) = (0f32, 0f32, 1f64);
    for p in read_greedy(&fixture("packed/ref")) {
        let (a, b) = (logits(&model, &p.prompt), logits(&f16_model, &p.prompt));
        let (m, t) = compare(&a, &b, vocab);
        let diff: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
        (max, rel, top1) = (max.max(m), rel.max(rms(&diff) / rms(&b)), top1.min(t));
    }
    (max, rel, top1)
}

#[test]
fn a_q8_0_embedding_is_taken_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = with_embedding(dir.path(), GgmlType::Q8_0, encode_q8_0);
    let q8_file = load(&path, HeadType::Stored);
    // `--head-type q8_0` quantises the F16 head with ggml's steps: the same blocks.
    let f16_as_q8 = load(&fixture("i2s/model-i2_s.gguf"), HeadType::Q8_0);
    assert_eq!(q8_file.weights().head.type_name(), "Q8_0");
    assert!(q8_file.weights().tied);
    let (DenseStorage::Q8_0(a), DenseStorage::Q8_0(b)) = (
        q8_file.weights().head.storage(),
        f16_as_q8.weights().head.storage(),
    ) else {
        panic!("Q8_0 heads expected");
    };
    assert_eq!(a, b);
    // `--head-type q8_0` of a Q8_0 file keeps it.
    let again = load(&path, HeadType::Q8_0);
    let DenseStorage::Q8_0(c) = again.weights().head.storage() else {
        panic!("Q8_0 head expected");
    };
    assert_eq!(a, c);
    let (max, rel, top1) = against_f16(&path);
    eprintln!("Q8_0 embedding vs F16: max |d| {max:.4}, rel rms {rel:.4}, top-1 {top1:.3}");
    // Measured: max |d logit| 0.36, relative rms 1.6 %, top-1 92 %.
    assert!(rel < 0.03 && top1 >= 0.85, "{max} {rel} {top1}");
}

fn encode_bf16(x: &[f32]) -> Vec<u8> {
    x.iter()
        .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
        .collect()
}

fn encode_f32(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A bf16 checkpoint's embedding (`bitnet-st2gguf --embed-type bf16`) runs as stored (copied
/// into memory of the model's own), on the bf16 kernels: the logits equal those of the same values stored as
/// F32 bit for bit (the kernels' contract), for one token and batches, on 1 and 2 threads.
/// The fixture's F16 values came from the bf16 checkpoint, so the BF16 file holds the
/// checkpoint's own values; `--head-type q6_k` of it writes the blocks it writes from F16.
#[test]
fn a_bf16_embedding_is_taken_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let bf16_path = with_embedding(dir.path(), GgmlType::BF16, encode_bf16);
    let f32_path = with_embedding(dir.path(), GgmlType::F32, encode_f32);
    let f16_path = fixture("i2s/model-i2_s.gguf");
    let f16_bytes = tensor_bytes(&f16_path, EMBD);
    let as_bf16: Vec<u8> = f16_bytes
        .chunks_exact(2)
        .flat_map(|b| bf16::from_f32(f16::from_le_bytes([b[0], b[1]]).to_f32()).to_le_bytes())
        .collect();
    assert_eq!(tensor_bytes(&bf16_path, EMBD), as_bf16);
    for threads in [1, 2] {
        let load = |path: &Path, head_type| {
            let opts = LoadOptions {
                threads,
                head_type,
                ..LoadOptions::default()
            };
            Model::load(path, &opts).unwrap()
        };
        let bf16_model = load(&bf16_path, HeadType::Stored);
        let f32_model = load(&f32_path, HeadType::Stored);
        let head = &bf16_model.weights().head;
        assert_eq!(head.type_name(), "BF16");
        assert!(head.is_float());
        assert_eq!(head.size_bytes(), head.rows() * head.cols() * 2);
        assert!(matches!(head.storage(), DenseStorage::BF16(_)));
        assert_eq!(f32_model.weights().head.type_name(), "F32");
        for p in read_greedy(&fixture("packed/ref")) {
            let (a, b) = (
                logits(&bf16_model, &p.prompt),
                logits(&f32_model, &p.prompt),
            );
            assert_eq!(bits(&a), bits(&b), "{threads} threads");
            let (a, b) = (
                logits(&bf16_model, &p.prompt[..1]),
                logits(&f32_model, &p.prompt[..1]),
            );
            assert_eq!(bits(&a), bits(&b), "{threads} threads, one token");
        }
        if threads == 1 {
            let (from_bf16, from_f16) = (
                load(&bf16_path, HeadType::Q6K),
                load(&f16_path, HeadType::Q6K),
            );
            let (DenseStorage::Q6K(a), DenseStorage::Q6K(b)) = (
                from_bf16.weights().head.storage(),
                from_f16.weights().head.storage(),
            ) else {
                panic!("Q6_K heads expected");
            };
            assert_eq!(a.blocks(), b.blocks());
        }
    }
}

/// A NaN in a BF16 embedding is refused, naming the tensor and the element.
#[test]
fn a_non_finite_bf16_value_is_named() {
    fn poisoned(x: &[f32]) -> Vec<u8> {
        let mut x = x.to_vec();
        x[5] = f32::NAN;
        encode_bf16(&x)
    }
    let dir = tempfile::tempdir().unwrap();
    let path = with_embedding(dir.path(), GgmlType::BF16, poisoned);
    let err = Model::load(&path, &LoadOptions::default())
        .err()
        .expect("refused");
    let msg = bitnet_app_chain(&err);
    assert!(
        msg.contains("token_embd.weight") && msg.contains("element 5 is NaN"),
        "{msg}"
    );
}

/// The bytes of tensor `name` in the GGUF at `path`.
fn tensor_bytes(path: &Path, name: &str) -> Vec<u8> {
    let file = GgufFile::open(path).unwrap();
    let info = file.tensors().iter().find(|t| t.name == name).unwrap();
    file.tensor_data(info).to_vec()
}

/// The head's K-quant blocks as bytes, and the format's name.
fn kquant_head(model: &Model) -> (&'static str, &[u8]) {
    match model.weights().head.storage() {
        DenseStorage::Q6K(m) => ("Q6_K", bytemuck::cast_slice(m.blocks())),
        DenseStorage::Q4K(m) => ("Q4_K", bytemuck::cast_slice(m.blocks())),
        other => panic!("a K-quant head expected, got {other:?}"),
    }
}

/// An embedding (the tied head) stored as the K-quant `ty` is used as stored, by that
/// format's kernels: the file's blocks, `--head-type` of the same format keeps them, and the
/// logits stay near the F16 model's (the closeness of ...`against_f16`, returned).
fn k_embedding_is_taken_as_stored(
    ty: GgmlType,
    head_type: HeadType,
    encode: fn(&[f32]) -> Vec<u8>,
) -> (f32, f32, f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = with_embedding(dir.path(), ty, encode);
    let model = load(&path, HeadType::Stored);
    assert!(model.weights().tied);
    assert_eq!(model.weights().head.type_name(), ty.name());
    let (format, blocks) = kquant_head(&model);
    assert_eq!(format, ty.name());
    assert_eq!(blocks, tensor_bytes(&path, EMBD));
    assert_eq!(model.weights().head.size_bytes(), blocks.len());
    let again = load(&path, head_type);
    assert_eq!(kquant_head(&again), (format, blocks));
    let (max, rel, top1) = against_f16(&path);
    eprintln!("{format} embedding vs F16: max |d| {max:.4}, rel rms {rel:.4}, top-1 {top1:.3}");
    (max, rel, top1)
}

#[test]
fn a_q6_k_embedding_is_taken_as_stored() {
    let (max, rel, top1) =
        k_embedding_is_taken_as_stored(GgmlType::Q6_K, HeadType::Q6K, encode_q6_k);
    // Measured: max |d logit| 1.05, relative rms 5.8 %, top-1 84 % (this test's plain absmax
    // encoder; llama-quantize's blocks below come out alike).
    assert!(rel < 0.1 && top1 >= 0.75, "{max} {rel} {top1}");
}

/// Q4_K's step is four times Q6_K's, and the tied head's error goes straight into the
/// logits of this random model: the bounds are loose; the exact blocks are the check.
#[test]
fn a_q4_k_embedding_is_taken_as_stored() {
    let (max, rel, top1) =
        k_embedding_is_taken_as_stored(GgmlType::Q4_K, HeadType::Q4K, encode_q4_k);
    // Measured: max |d logit| 4.4, relative rms 23 %, top-1 38 % (this test's plain encoder;
    // Q6_K 5.8 %, Q8_0 1.6 %: the error scales with the step, ~16 : 4 : 1).
    assert!(rel < 0.35 && top1 >= 0.25, "{max} {rel} {top1}");
}

/// `--head-type` `head_type` quantises the F16 head with ggml's `quantize_row_*_ref`: exactly
/// the blocks bitnet.cpp's `llama-quantize --token-embedding-type` wrote for the fixture in
/// `file`. That file runs as stored (its embedding lookups decode the format too), close to
/// F16 (the closeness of `against_f16`, returned).
fn head_type_writes_the_blocks_llama_quantize_writes(
    file: &str,
    head_type: HeadType,
) -> (f32, f32, f64) {
    let theirs = fixture(file);
    let file_model = load(&theirs, HeadType::Stored);
    let ours = load(&fixture("i2s/model-i2_s.gguf"), head_type);
    let ((format, a), (file_format, b)) = (kquant_head(&ours), kquant_head(&file_model));
    assert_eq!(format, file_format);
    let block = b.len() / 512;
    let differing = a
        .chunks(block)
        .zip(b.chunks(block))
        .filter(|(x, y)| x != y)
        .count();
    assert_eq!(
        differing, 0,
        "{differing} of 512 {format} blocks differ from llama-quantize's"
    );
    assert_eq!(b, tensor_bytes(&theirs, EMBD));
    let (max, rel, top1) = against_f16(&theirs);
    eprintln!(
        "llama-quantize's {format} vs F16: max |d| {max:.4}, rel rms {rel:.4}, top-1 {top1:.3}"
    );
    (max, rel, top1)
}

#[test]
fn q6_k_head_type_writes_the_blocks_llama_quantize_writes() {
    let (max, rel, top1) = head_type_writes_the_blocks_llama_quantize_writes(
        "i2s/model-i2_s-q6_k.gguf",
        HeadType::Q6K,
    );
    // Measured: max |d logit| 1.20, relative rms 6.1 %, top-1 83 % (the embedding's values
    // are random, so a 6-bit step is a large part of every logit).
    assert!(rel < 0.1 && top1 >= 0.75, "{max} {rel} {top1}");
}

#[test]
fn q4_k_head_type_writes_the_blocks_llama_quantize_writes() {
    let (max, rel, top1) = head_type_writes_the_blocks_llama_quantize_writes(
        "i2s/model-i2_s-q4_k.gguf",
        HeadType::Q4K,
    );
    // Measured: max |d logit| 5.6, relative rms 24 %, top-1 67 %.
    assert!(rel < 0.35 && top1 >= 0.5, "{max} {rel} {top1}");
}

#[test]
fn a_non_finite_block_scale_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = with_embedding(dir.path(), GgmlType::Q6_K, |x| {
        let mut b = encode_q6_k(x);
        b[210 + 208..210 + 210].copy_from_slice(&f16::INFINITY.to_le_bytes());
        b
    });
    let err = Model::load(&path, &LoadOptions::default())
        .err()
        .expect("refused");
    let msg = bitnet_app_chain(&err);
    assert!(
        msg.contains(EMBD) && msg.contains("418") && msg.contains("Q6_K"),
        "{msg}"
    );
}

/// The error and its causes on one line.
fn bitnet_app_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[test]
fn other_block_types_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = with_embedding(dir.path(), GgmlType::Q5_K, |x| {
        vec![0u8; x.len() / 256 * 176]
    });
    let err = Model::load(&path, &LoadOptions::default())
        .err()
        .expect("refused");
    let msg = bitnet_app_chain(&err);
    assert!(
        msg.contains(EMBD) && msg.contains("Q5_K") && msg.contains("Q6_K"),
        "{msg}"
    );
}

/// The index of the largest value (the first of equals).
fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

/// `--head-type q4_k_rescored`: the Q4_K head's logits with their best 32 per position
/// replaced by the F16 head's own, bit for bit (the same kernel on the same rows), so the
/// greedy token is F16's wherever F16's is among them; every other logit stays Q4_K's. The
/// fixture's prompts, activations quantised as the model runs (the layers below the head are
/// the same in all three models).
#[test]
fn the_rescored_head_has_the_f16_logits_at_its_best_32() {
    for threads in [1, 2] {
        rescored_head_on(&fixture("i2s/model-i2_s.gguf"), threads);
    }
}

/// The same with a BF16 head: its top 32 are the BF16 head's own logits.
#[test]
fn the_rescored_head_rescores_with_bf16_rows() {
    let dir = tempfile::tempdir().unwrap();
    rescored_head_on(&with_embedding(dir.path(), GgmlType::BF16, encode_bf16), 2);
}

fn rescored_head_on(path: &Path, threads: usize) {
    let load = |head_type| {
        let opts = LoadOptions {
            threads,
            head_type,
            ..LoadOptions::default()
        };
        Model::load(path, &opts).unwrap()
    };
    let f16_model = load(HeadType::Stored);
    let q4 = load(HeadType::Q4K);
    let rescored = load(HeadType::Q4KRescored);
    assert_eq!(rescored.weights().head.type_name(), "Q4_K");
    assert!(rescored.weights().rescore.is_some() && q4.weights().rescore.is_none());
    // The head streams the Q4_K blocks plus 32 F16 rows.
    assert_eq!(
        rescored.weights().bytes_per_token(),
        q4.weights().bytes_per_token() + 32 * 256 * 2
    );
    let vocab = f16_model.config().vocab_size;
    let (mut positions, mut greedy_equal) = (0, 0);
    for p in read_greedy(&fixture("packed/ref")) {
        let exact = logits(&f16_model, &p.prompt);
        let plain = logits(&q4, &p.prompt);
        let got = logits(&rescored, &p.prompt);
        for ((e, q), g) in exact
            .chunks(vocab)
            .zip(plain.chunks(vocab))
            .zip(got.chunks(vocab))
        {
            let mut order: Vec<usize> = (0..vocab).collect();
            order.sort_by(|&a, &b| q[b].total_cmp(&q[a]).then(a.cmp(&b)));
            let top = &order[..32];
            for i in 0..vocab {
                let want = if top.contains(&i) { e[i] } else { q[i] };
                assert_eq!(
                    g[i].to_bits(),
                    want.to_bits(),
                    "{threads} threads: logit {i}"
                );
            }
            positions += 1;
            greedy_equal += usize::from(argmax(g) == argmax(e));
        }
    }
    // On this random model F16's best is always among Q4_K's best 32 (of 512).
    assert_eq!(greedy_equal, positions);
}

/// The rescored head needs float rows to rescore with: a Q6_K-head file is refused, naming
/// the head type and the file's.
#[test]
fn the_rescored_head_is_refused_for_a_quantised_head() {
    let opts = LoadOptions {
        threads: 1,
        head_type: HeadType::Q4KRescored,
        ..LoadOptions::default()
    };
    let err = Model::load(&fixture("i2s/model-i2_s-q6_k.gguf"), &opts)
        .err()
        .expect("refused");
    let msg = bitnet_app_chain(&err);
    assert!(
        msg.contains("q4_k_rescored") && msg.contains("Q6_K") && msg.contains("use q4_k"),
        "{msg}"
    );
}
