//! Round trips through the writer and reader, and one file checked byte by byte.

use bitnet_gguf::{Array, GgmlType, GgufFile, GgufWriter, TensorSpec, Value, to_bytes};

fn every_value() -> Vec<(String, Value)> {
    let kv = |k: &str, v: Value| (k.to_string(), v);
    vec![
        kv("general.architecture", Value::String("test".into())),
        kv("u8", Value::U8(u8::MAX)),
        kv("i8", Value::I8(i8::MIN)),
        kv("u16", Value::U16(u16::MAX)),
        kv("i16", Value::I16(i16::MIN)),
        kv("u32", Value::U32(u32::MAX)),
        kv("i32", Value::I32(i32::MIN)),
        kv("f32", Value::F32(-0.0)),
        kv("f32.nan", Value::F32(f32::from_bits(0x7fc0_1234))),
        kv("bool.t", Value::Bool(true)),
        kv("bool.f", Value::Bool(false)),
        kv("string.empty", Value::String(String::new())),
        kv("string.utf8", Value::String("héllo ▁ 🦀".into())),
        kv("u64", Value::U64(u64::MAX)),
        kv("i64", Value::I64(i64::MIN)),
        kv("f64", Value::F64(std::f64::consts::PI)),
        kv("a.u8", Value::Array(Array::U8(vec![0, 1, 255]))),
        kv("a.i8", Value::Array(Array::I8(vec![-128, 127]))),
        kv("a.u16", Value::Array(Array::U16(vec![1, 65535]))),
        kv("a.i16", Value::Array(Array::I16(vec![-1, 2]))),
        kv("a.u32", Value::Array(Array::U32(vec![7, u32::MAX]))),
        kv("a.i32", Value::Array(Array::I32(vec![i32::MIN, 0]))),
        kv(
            "a.f32",
            Value::Array(Array::F32(vec![1.5, -2.25, f32::INFINITY])),
        ),
        kv("a.bool", Value::Array(Array::Bool(vec![true, false, true]))),
        kv(
            "a.string",
            Value::Array(Array::String(vec!["a".into(), String::new(), "ü".into()])),
        ),
        kv("a.u64", Value::Array(Array::U64(vec![u64::MAX]))),
        kv("a.i64", Value::Array(Array::I64(vec![i64::MIN, 5]))),
        kv("a.f64", Value::Array(Array::F64(vec![0.1, 1e300]))),
        kv("a.empty", Value::Array(Array::U32(vec![]))),
        kv(
            "a.nested",
            Value::Array(Array::Array(vec![
                Array::I32(vec![1, 2]),
                Array::String(vec!["x".into()]),
            ])),
        ),
    ]
}

/// Values compare by bits so NaN payloads and -0.0 count.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

fn tensors() -> Vec<(TensorSpec, Vec<u8>)> {
    let spec = |name: &str, dims: &[u64], t| TensorSpec {
        name: name.into(),
        dims: dims.to_vec(),
        ggml_type: t,
    };
    let bytes = |n: usize, seed: u8| (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
    vec![
        (spec("a.f32", &[3, 2], GgmlType::F32), bytes(24, 1)),
        (spec("b.f16", &[5], GgmlType::F16), bytes(10, 2)),
        (spec("c.i2s", &[128, 2], GgmlType::I2_S), bytes(64 + 32, 3)),
        (spec("d.tq2", &[256], GgmlType::TQ2_0), bytes(66, 4)),
        (
            spec("e.q4k", &[256, 1, 1, 1], GgmlType::Q4_K),
            bytes(144, 5),
        ),
    ]
}

#[test]
fn every_value_type_and_tensor_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rt.gguf");
    let meta = every_value();
    let ts = tensors();
    let mut w = GgufWriter::create(
        &path,
        false,
        meta.clone(),
        ts.iter().map(|(s, _)| s.clone()).collect(),
    )
    .unwrap();
    for (s, data) in &ts {
        w.write_tensor(&s.name, data).unwrap();
    }
    assert_eq!(w.finish().unwrap(), path);

    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.metadata().len(), meta.len());
    for ((k, v), (k2, v2)) in meta.iter().zip(f.metadata()) {
        assert_eq!(k, k2);
        assert!(same(v, v2), "{k}: wrote {v:?}, read {v2:?}");
    }
    for (s, data) in &ts {
        let t = f.tensor(&s.name).unwrap();
        assert_eq!(t.dims, s.dims);
        assert_eq!(t.ggml_type, s.ggml_type);
        assert_eq!(t.size_bytes, data.len());
        assert_eq!(t.offset % 32, 0);
        assert_eq!(f.tensor_data(t), &data[..]);
    }
    // Every tensor, the last included, is padded to the alignment.
    assert_eq!(f.file_size() % 32, 0);

    // The in-memory encoder writes the same bytes as the streaming writer.
    let pairs: Vec<(TensorSpec, &[u8])> = ts.iter().map(|(s, d)| (s.clone(), &d[..])).collect();
    let bytes = to_bytes(&meta, &pairs).unwrap();
    assert_eq!(bytes, std::fs::read(&path).unwrap());
    let g = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(g.tensors(), f.tensors());

    // Typed getters.
    assert_eq!(f.get_u32("u32").unwrap(), u32::MAX);
    assert_eq!(f.get_u64("u8").unwrap(), 255);
    assert_eq!(f.get_str("string.utf8").unwrap(), "héllo ▁ 🦀");
    assert_eq!(f.get_i32_array("a.u16").unwrap(), vec![1, 65535]);
    assert_eq!(f.get_string_array("a.string").unwrap().len(), 3);
    assert_eq!(f.architecture().unwrap(), "test");
    let e = f.get_u32("i32").unwrap_err().to_string();
    assert!(e.contains("'i32'") && e.contains("i32"), "{e}");
    let e = f.get_str("nope").unwrap_err().to_string();
    assert!(e.contains("missing metadata key 'nope'"), "{e}");
}

/// A file spelled out byte by byte: one u32 key and one 2-element F32 tensor.
#[test]
fn hand_checked_bytes() {
    #[rustfmt::skip]
    let expected: Vec<u8> = [
        &b"GGUF"[..],
        &[3, 0, 0, 0],                       // version 3
        &[1, 0, 0, 0, 0, 0, 0, 0],           // 1 tensor
        &[1, 0, 0, 0, 0, 0, 0, 0],           // 1 key
        &[1, 0, 0, 0, 0, 0, 0, 0], b"k",     // key "k"
        &[4, 0, 0, 0],                       // type u32
        &[42, 0, 0, 0],                      // 42
        &[1, 0, 0, 0, 0, 0, 0, 0], b"t",     // tensor "t"
        &[1, 0, 0, 0],                       // 1 dim
        &[2, 0, 0, 0, 0, 0, 0, 0],           // ne0 = 2
        &[0, 0, 0, 0],                       // F32
        &[0, 0, 0, 0, 0, 0, 0, 0],           // offset 0
        &[0; 22],                            // 74 header bytes, padded to 96
        &1.0f32.to_le_bytes(), &(-2.0f32).to_le_bytes(),
        &[0; 24],                            // data padded to 32
    ]
    .concat();
    assert_eq!(expected.len(), 128);
    let meta = vec![("k".to_string(), Value::U32(42))];
    let data: Vec<u8> = [1.0f32, -2.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let spec = TensorSpec {
        name: "t".into(),
        dims: vec![2],
        ggml_type: GgmlType::F32,
    };
    assert_eq!(to_bytes(&meta, &[(spec, &data)]).unwrap(), expected);
    let f = GgufFile::from_bytes(expected).unwrap();
    assert_eq!(f.data_offset(), 96);
    assert_eq!(f.get_u32("k").unwrap(), 42);
    assert_eq!(f.tensor_bytes("t").unwrap(), &data[..]);
}

#[test]
fn the_bitnet_cpp_fixture_reads_with_exact_i2s_sizes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny-bitnet/i2s/model-i2_s.gguf");
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.architecture().unwrap(), "bitnet-b1.58");
    let i2s: Vec<_> = f
        .tensors()
        .iter()
        .filter(|t| t.ggml_type == GgmlType::I2_S)
        .collect();
    assert!(!i2s.is_empty());
    for t in &i2s {
        assert_eq!(t.size_bytes, t.n_elements() / 4 + 32, "{}", t.name);
        let scale = f32::from_le_bytes(
            f.tensor_data(t)[t.n_elements() / 4..][..4]
                .try_into()
                .unwrap(),
        );
        assert!(
            scale.is_finite() && scale > 0.0,
            "{}: scale {scale}",
            t.name
        );
    }
    let end = f
        .tensors()
        .iter()
        .map(|t| t.file_offset() + t.size_bytes)
        .max()
        .unwrap();
    assert!(end <= f.file_size());
    assert_eq!(
        f.get_string_array("tokenizer.ggml.tokens").unwrap().len(),
        512
    );
}
