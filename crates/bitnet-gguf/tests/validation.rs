//! Every malformed input the reader must refuse gets its own error naming the problem, and no
//! input makes it panic.

use bitnet_gguf::{GgmlType, GgufError, GgufFile, GgufWriter, TensorSpec, Value, to_bytes};

fn spec(name: &str, dims: &[u64], t: GgmlType) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        dims: dims.to_vec(),
        ggml_type: t,
    }
}

/// A valid file with two F32 tensors "a" (2 elements) and "b" (4 elements).
fn valid() -> Vec<u8> {
    let meta = vec![
        (
            "general.architecture".to_string(),
            Value::String("x".into()),
        ),
        ("n".to_string(), Value::U32(7)),
    ];
    let a = [0u8; 8];
    let b = [1u8; 16];
    to_bytes(
        &meta,
        &[
            (spec("a", &[2], GgmlType::F32), &a[..]),
            (spec("b", &[4], GgmlType::F32), &b[..]),
        ],
    )
    .unwrap()
}

/// Little-endian header builder for hand-made broken files.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(n_tensors: u64, n_kv: u64) -> Self {
        let mut r = Raw::default();
        r.bytes(b"GGUF").u32(3).u64(n_tensors).u64(n_kv);
        r
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    fn pad_and_data(&mut self, data: usize) -> Vec<u8> {
        let mut v = self.0.clone();
        v.resize(v.len().div_ceil(32) * 32 + data, 0);
        v
    }
}

fn err(bytes: Vec<u8>) -> GgufError {
    GgufFile::from_bytes(bytes).expect_err("must be refused")
}

#[test]
fn bad_magic_and_version() {
    let mut b = valid();
    b[..4].copy_from_slice(b"GGML");
    let e = err(b);
    assert!(matches!(e, GgufError::BadMagic { .. }), "{e}");
    assert!(e.to_string().contains("not a GGUF file"));
    let mut b = valid();
    b[4..8].copy_from_slice(&4u32.to_le_bytes());
    let e = err(b);
    assert!(
        matches!(e, GgufError::UnsupportedVersion { version: 4, .. }),
        "{e}"
    );
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    let b = valid();
    for cut in 0..b.len() {
        // A cut may only succeed when it removes nothing but the padding after the last
        // tensor: every tensor must still lie inside the bytes that are left.
        if let Ok(f) = GgufFile::from_bytes(b[..cut].to_vec()) {
            let end = f
                .tensors()
                .iter()
                .map(|t| t.file_offset() + t.size_bytes)
                .max()
                .unwrap();
            assert!(end <= cut, "cut at {cut} accepted with data up to {end}");
        }
    }
    let e = err(b[..10].to_vec());
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn counts_and_lengths_beyond_the_file() {
    let e = err(Raw::header(u64::MAX, 0).pad_and_data(0));
    assert!(matches!(e, GgufError::CountTooLarge { .. }), "{e}");
    let e = err(Raw::header(0, 1 << 40).pad_and_data(0));
    assert!(matches!(e, GgufError::CountTooLarge { .. }), "{e}");
    let mut r = Raw::header(0, 1);
    r.u64(u64::MAX - 3); // key length
    let e = err(r.pad_and_data(64));
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    // An array claiming 2^40 u32 elements.
    let mut r = Raw::header(0, 1);
    r.str("arr").u32(9).u32(4).u64(1 << 40);
    let e = err(r.pad_and_data(0));
    assert!(matches!(e, GgufError::CountTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("arr"), "{e}");
}

#[test]
fn duplicate_keys_and_tensor_names() {
    let mut r = Raw::header(0, 2);
    r.str("k").u32(4).u32(1).str("k").u32(4).u32(2);
    let e = err(r.pad_and_data(0));
    assert!(
        matches!(&e, GgufError::DuplicateKey { key, .. } if key == "k"),
        "{e}"
    );
    let mut r = Raw::header(2, 0);
    r.tensor("t", &[8], 0, 0).tensor("t", &[8], 0, 32);
    let e = err(r.pad_and_data(64));
    assert!(
        matches!(&e, GgufError::DuplicateTensor { name, .. } if name == "t"),
        "{e}"
    );
}

#[test]
fn long_names_many_dims_overflow_and_unknown_types() {
    let long = "n".repeat(64);
    let mut r = Raw::header(1, 0);
    r.tensor(&long, &[8], 0, 0);
    let e = err(r.pad_and_data(32));
    assert!(matches!(e, GgufError::NameTooLong { len: 64, .. }), "{e}");

    let mut r = Raw::header(1, 0);
    r.tensor("t5", &[1, 1, 1, 1, 1], 0, 0);
    let e = err(r.pad_and_data(32));
    assert!(
        matches!(&e, GgufError::TooManyDims { name, n_dims: 5 } if name == "t5"),
        "{e}"
    );

    let mut r = Raw::header(1, 0);
    r.tensor("big", &[u64::MAX / 2, 4], 0, 0);
    let e = err(r.pad_and_data(32));
    assert!(
        matches!(&e, GgufError::ElementOverflow { name, .. } if name == "big"),
        "{e}"
    );

    let mut r = Raw::header(1, 0);
    r.tensor("odd", &[8], 37, 0);
    let e = err(r.pad_and_data(32));
    assert!(
        matches!(&e, GgufError::UnknownTensorType { name, id: 37 } if name == "odd"),
        "{e}"
    );

    let mut r = Raw::header(0, 1);
    r.str("k").u32(13);
    let e = err(r.pad_and_data(0));
    assert!(
        matches!(&e, GgufError::UnknownValueType { key, id: 13, .. } if key == "k"),
        "{e}"
    );
}

#[test]
fn misaligned_overlapping_and_out_of_bounds_data() {
    let mut r = Raw::header(1, 0);
    r.tensor("m", &[2], 0, 4);
    let e = err(r.pad_and_data(64));
    assert!(
        matches!(&e, GgufError::MisalignedTensor { name, offset: 4, .. } if name == "m"),
        "{e}"
    );

    let mut r = Raw::header(2, 0);
    r.tensor("x", &[16], 0, 0).tensor("y", &[8], 0, 32);
    let e = err(r.pad_and_data(128));
    assert!(matches!(e, GgufError::OverlappingTensors { .. }), "{e}");
    assert!(
        e.to_string().contains("'x'") || e.to_string().contains("'y'"),
        "{e}"
    );

    let mut r = Raw::header(1, 0);
    r.tensor("p", &[64], 0, 0);
    let e = err(r.pad_and_data(100));
    assert!(
        matches!(&e, GgufError::DataPastEnd { name, .. } if name == "p"),
        "{e}"
    );

    let mut r = Raw::header(1, 0);
    r.tensor("far", &[1], 0, u64::MAX - 31);
    let e = err(r.pad_and_data(32));
    assert!(
        matches!(&e, GgufError::DataPastEnd { name, .. } if name == "far"),
        "{e}"
    );
}

#[test]
fn alignment_must_be_a_power_of_two() {
    for bad in [Value::U32(0), Value::U32(48), Value::U64(32)] {
        let mut r = Raw::header(0, 1);
        r.str("general.alignment");
        match bad {
            Value::U32(v) => r.u32(4).u32(v),
            Value::U64(v) => r.u32(10).u64(v),
            _ => unreachable!(),
        };
        let e = err(r.pad_and_data(0));
        assert!(matches!(e, GgufError::BadAlignment { .. }), "{e}");
    }
    let mut r = Raw::header(1, 1);
    r.str("general.alignment")
        .u32(4)
        .u32(64)
        .tensor("t", &[4], 0, 64);
    let mut b = r.0.clone();
    // 90 header bytes: the data section starts at 128, the tensor at 128 + 64.
    b.resize(128 + 64 + 16, 0);
    let f = GgufFile::from_bytes(b).unwrap();
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset(), 128);
    assert_eq!(f.tensor("t").unwrap().file_offset(), 192);
}

#[test]
fn writer_refuses_misuse_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.gguf");
    let specs = || {
        vec![
            spec("a", &[2], GgmlType::F32),
            spec("b", &[2], GgmlType::F32),
        ]
    };
    let temps = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count()
    };

    let mut w = GgufWriter::create(&path, false, vec![], specs()).unwrap();
    let e = w.write_tensor("b", &[0; 8]).unwrap_err();
    assert!(e.to_string().contains("expected 'a' next"), "{e}");
    let e = w.write_tensor("a", &[0; 4]).unwrap_err();
    assert!(e.to_string().contains("4 bytes written, 8 declared"), "{e}");
    drop(w);
    assert_eq!(temps(), 0);
    assert!(!path.exists());

    let mut w = GgufWriter::create(&path, false, vec![], specs()).unwrap();
    w.write_tensor("a", &[0; 8]).unwrap();
    let e = w.finish().unwrap_err();
    assert!(
        e.to_string().contains("'b'") && e.to_string().contains("never written"),
        "{e}"
    );
    assert_eq!(temps(), 0);

    std::fs::write(&path, b"keep me").unwrap();
    let e = GgufWriter::create(&path, false, vec![], specs()).unwrap_err();
    assert!(matches!(e, GgufError::Exists { .. }), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");

    let e = GgufWriter::create(
        &path,
        true,
        vec![],
        vec![spec(&"x".repeat(64), &[2], GgmlType::F32)],
    )
    .err()
    .unwrap();
    assert!(matches!(e, GgufError::NameTooLong { .. }), "{e}");
    let e = GgufWriter::create(&path, true, vec![], vec![spec("q", &[100], GgmlType::Q4_0)])
        .err()
        .unwrap();
    assert!(matches!(e, GgufError::BadShape { .. }), "{e}");
    assert!(e.to_string().contains("'q'"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    assert_eq!(temps(), 0);
}
