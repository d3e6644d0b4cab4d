//! Storage formats: round trips, byte layouts pinned by hand-built blocks, and errors for
//! malformed data (never panics).

use bitnet_formats::{self as formats, FormatError, TernaryWeights};
use half::f16;
use proptest::prelude::*;

fn ternary(rows: usize, cols: usize, seed: u64, scale: f32) -> TernaryWeights {
    let values = bitnet_test_support::data::ternary_values(rows * cols, seed);
    TernaryWeights {
        rows,
        cols,
        values,
        scale,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn i2s_round_trip(rows in 1usize..9, blocks in 1usize..5, seed: u64, scale in 1e-3f32..10.0) {
        // rows*cols must be a multiple of 128: cols = 128 * blocks.
        let w = ternary(rows, 128 * blocks, seed, scale);
        let b = formats::encode_i2s(&w).unwrap();
        prop_assert_eq!(b.len(), formats::i2s_size(rows, 128 * blocks));
        prop_assert_eq!(formats::decode_i2s(&b, rows, 128 * blocks).unwrap(), w);
    }

    #[test]
    fn tq_round_trip(rows in 1usize..6, blocks in 1usize..4, seed: u64, scale in 1e-3f32..10.0) {
        let cols = 256 * blocks;
        let mut w = ternary(rows, cols, seed, scale);
        w.scale = f16::from_f32(scale).to_f32(); // TQ stores d as f16
        let b2 = formats::encode_tq2_0(&w).unwrap();
        prop_assert_eq!(b2.len(), rows * blocks * 66);
        prop_assert_eq!(formats::decode_tq2_0(&b2, rows, cols).unwrap(), w.clone());
        let b1 = formats::encode_tq1_0(&w).unwrap();
        prop_assert_eq!(b1.len(), rows * blocks * 54);
        prop_assert_eq!(formats::decode_tq1_0(&b1, rows, cols).unwrap(), w);
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1200), rows in 0usize..6, cols in 0usize..600) {
        let _ = formats::decode_i2s(&bytes, rows, cols);
        let _ = formats::decode_tq2_0(&bytes, rows, cols);
        let _ = formats::decode_tq1_0(&bytes, rows, cols);
    }
}

#[test]
fn i2s_layout_by_hand() {
    // Element 128b + 32j + k sits in byte 32b + k, bits (7-2j):(6-2j); code = value + 1.
    let mut w = TernaryWeights {
        rows: 2,
        cols: 128,
        values: vec![0; 256],
        scale: 0.25,
    };
    w.values[0] = 1; // block 0, byte 0, bits 7:6 -> code 2
    w.values[32 + 1] = -1; // byte 1, bits 5:4 -> code 0
    w.values[128 + 96 + 31] = 1; // block 1, byte 31, bits 1:0 -> code 2
    let b = formats::encode_i2s(&w).unwrap();
    assert_eq!(b.len(), 64 + 32);
    assert_eq!(b[0], 0b10_01_01_01);
    assert_eq!(b[1], 0b01_00_01_01);
    assert_eq!(b[2], 0x55);
    assert_eq!(b[63], 0b01_01_01_10);
    assert_eq!(&b[64..68], &0.25f32.to_le_bytes());
    // Garbage in the 28 padding bytes is ignored.
    let mut g = b.clone();
    g[68..].fill(0xEE);
    assert_eq!(formats::decode_i2s(&g, 2, 128).unwrap(), w);
}

#[test]
fn tq2_0_layout_by_hand() {
    // Byte 32h + m holds element 128h + 32n + m in bits 2n..2n+1 (ggml quantize_row_tq2_0_ref).
    let mut w = TernaryWeights {
        rows: 1,
        cols: 256,
        values: vec![0; 256],
        scale: 0.5,
    };
    w.values[32 * 3 + 5] = 1; // h=0, n=3, m=5 -> byte 5 bits 7:6 = 2
    w.values[128 + 7] = -1; // h=1, n=0, m=7 -> byte 39 bits 1:0 = 0
    let b = formats::encode_tq2_0(&w).unwrap();
    assert_eq!(b[5], 0b10_01_01_01);
    assert_eq!(b[39], 0b01_01_01_00);
    assert_eq!(&b[64..66], &f16::from_f32(0.5).to_le_bytes());
}

#[test]
fn tq1_0_bytes_match_ggml_formula() {
    // All zeros: every byte holds trits 1,1,1,1,1 = 121 -> ceil(121*256/243) = 128;
    // qh holds 1,1,1,1 then *3 = 120 -> ceil(120*256/243) = 127.
    let w = TernaryWeights {
        rows: 1,
        cols: 256,
        values: vec![0; 256],
        scale: 1.0,
    };
    let b = formats::encode_tq1_0(&w).unwrap();
    assert!(b[..48].iter().all(|&x| x == 128), "{:?}", &b[..48]);
    assert!(b[48..52].iter().all(|&x| x == 127));
    // Element 0 is the most significant trit of byte 0: +1 -> trits 2,1,1,1,1 = 202 -> 213.
    let mut w2 = w.clone();
    w2.values[0] = 1;
    let b2 = formats::encode_tq1_0(&w2).unwrap();
    assert_eq!(b2[0], ((202u32 * 256).div_ceil(243)) as u8);
    assert_eq!(formats::decode_tq1_0(&b2, 1, 256).unwrap(), w2);
}

#[test]
fn errors_name_the_problem() {
    let w = ternary(2, 256, 1, 0.5);
    let i2s = formats::encode_i2s(&w).unwrap();
    // Wrong size.
    let e = formats::decode_i2s(&i2s[..i2s.len() - 1], 2, 256).unwrap_err();
    assert!(
        matches!(
            e,
            FormatError::Size {
                expected: 160,
                actual: 159,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("I2_S") && e.to_string().contains("160"),
        "{e}"
    );
    // Shape not a multiple of the block.
    assert!(matches!(
        formats::decode_i2s(&i2s, 1, 100),
        Err(FormatError::Shape { .. })
    ));
    // Code 3.
    let mut bad = i2s.clone();
    bad[10] = 0xFF;
    let e = formats::decode_i2s(&bad, 2, 256).unwrap_err();
    assert!(
        matches!(
            e,
            FormatError::InvalidCode {
                offset: 10,
                code: 3,
                element: 10,
                ..
            }
        ),
        "{e}"
    );
    // Non-finite scale.
    let mut bad = i2s.clone();
    bad[128..132].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(matches!(
        formats::decode_i2s(&bad, 2, 256),
        Err(FormatError::NonFiniteScale { offset: 128, .. })
    ));
    // Overflowing shape.
    assert!(matches!(
        formats::decode_i2s(&i2s, usize::MAX, 2),
        Err(FormatError::Overflow { .. })
    ));
    assert!(matches!(
        formats::decode_tq1_0(&i2s, usize::MAX, 256),
        Err(FormatError::Overflow { .. })
    ));

    // TQ: differing block scales are an error, all-zero blocks are fine.
    let mut tq = formats::encode_tq2_0(&w).unwrap();
    tq[66 + 64..66 + 66].copy_from_slice(&f16::from_f32(0.75).to_le_bytes());
    let e = formats::decode_tq2_0(&tq, 2, 256).unwrap_err();
    assert!(
        matches!(
            e,
            FormatError::ScaleMismatch {
                block: 1,
                offset: 130,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("per-block scales differ"), "{e}");
    tq[66 + 64..66 + 66].copy_from_slice(&[0, 0]);
    assert_eq!(formats::decode_tq2_0(&tq, 2, 256).unwrap().scale, 0.5);
    let mut tq1 = formats::encode_tq1_0(&w).unwrap();
    tq1[52..54].copy_from_slice(&f16::from_f32(2.0).to_le_bytes());
    assert!(matches!(
        formats::decode_tq1_0(&tq1, 2, 256),
        Err(FormatError::ScaleMismatch { block: 1, .. })
    ));
    // cols must be a multiple of 256 for ggml formats.
    assert!(matches!(
        formats::decode_tq2_0(&tq, 1, 128),
        Err(FormatError::Shape { .. })
    ));
    assert!(matches!(
        formats::encode_tq1_0(&ternary(1, 128, 0, 1.0)),
        Err(FormatError::Shape { .. })
    ));

    // Encoding non-ternary values or a wrong value count.
    let mut bad = w.clone();
    bad.values[7] = 2;
    assert!(matches!(
        formats::encode_i2s(&bad),
        Err(FormatError::InvalidValue {
            element: 7,
            value: 2,
            ..
        })
    ));
    assert!(matches!(
        formats::encode_tq2_0(&bad),
        Err(FormatError::InvalidValue { .. })
    ));
    bad.values.pop();
    assert!(matches!(
        formats::encode_i2s(&bad),
        Err(FormatError::ValuesLen { .. })
    ));
}

#[test]
fn blocks_are_typed_views_of_any_byte_slice() {
    let mut w = ternary(2, 256, 3, 0.5);
    w.scale = f16::from_f32(0.5).to_f32();
    let i2s = formats::encode_i2s(&w).unwrap();
    let tq2 = formats::encode_tq2_0(&w).unwrap();
    let tq1 = formats::encode_tq1_0(&w).unwrap();
    // Every block has alignment 1: a tensor at an odd offset of a buffer (a memory map, a
    // sub-slice) decodes exactly like one at offset 0.
    let shifted = |b: &[u8]| [&[0xAAu8][..], b].concat();
    assert_eq!(formats::decode_i2s(&shifted(&i2s)[1..], 2, 256).unwrap(), w);
    assert_eq!(
        formats::decode_tq2_0(&shifted(&tq2)[1..], 2, 256).unwrap(),
        w
    );
    assert_eq!(
        formats::decode_tq1_0(&shifted(&tq1)[1..], 2, 256).unwrap(),
        w
    );

    // The typed fields are the bytes the layouts describe.
    let t = formats::parse_i2s(&i2s, 2, 256).unwrap();
    assert_eq!(t.blocks.len(), 4);
    assert_eq!(t.scale, w.scale);
    for (b, block) in t.blocks.iter().enumerate() {
        for i in 0..formats::I2S_BLOCK {
            assert_eq!(block.code(i) as i8 - 1, w.values[b * 128 + i]);
        }
    }
    let blocks: &[formats::BlockTq2_0] = bytemuck::cast_slice(&tq2);
    assert_eq!(blocks.len(), 2);
    assert!(blocks.iter().all(|b| b.d() == f16::from_f32(0.5)));
    assert_eq!(blocks[1].code(255) as i8 - 1, w.values[511]);
    let blocks: &[formats::BlockTq1_0] = bytemuck::cast_slice(&tq1);
    let mut values = [0i8; 256];
    blocks[1].decode(&mut values);
    assert_eq!(values[..], w.values[256..]);
    assert_eq!(blocks[0].d(), f16::from_f32(0.5));
}
