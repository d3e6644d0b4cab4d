//! The load-time fast path from I2_S bytes into the kernels' layouts
//! (`formats::i2s_to_packed`: a copy for `i2s128`, a within-byte transcode for `i2s256`)
//! equals decoding and packing, and refuses what decoding refuses.

use bitnet_kernels::formats::{self, FormatError};
use bitnet_kernels::{PackedLayout, PackedTernary, TernaryWeights};
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
    fn i2s_bytes_are_the_packed_layout(rows in 1usize..9, blocks in 1usize..5, seed: u64, scale in 1e-3f32..10.0) {
        let w = ternary(rows, 128 * blocks, seed, scale);
        let b = formats::encode_i2s(&w).unwrap();
        let fast = formats::i2s_to_packed(&b, rows, 128 * blocks, PackedLayout::I2s128).unwrap().unwrap();
        prop_assert_eq!(fast, PackedTernary::pack_i2s128(&w));
    }

    #[test]
    fn i2s_bytes_transcode_to_the_512_bit_layout(rows in 1usize..9, pairs in 1usize..4, seed: u64, scale in 1e-3f32..10.0) {
        let cols = 256 * pairs;
        let w = ternary(rows, cols, seed, scale);
        let b = formats::encode_i2s(&w).unwrap();
        let fast = formats::i2s_to_packed(&b, rows, cols, PackedLayout::I2s256).unwrap().unwrap();
        prop_assert_eq!(fast.layout(), PackedLayout::I2s256);
        prop_assert_eq!(&fast, &PackedTernary::pack(&w, PackedLayout::I2s256));
        prop_assert_eq!(fast.unpack(), w);
    }
}

#[test]
fn layout_i2s256_puts_columns_where_its_doc_says() {
    // Column 256 + 64 * j + k of row 0 is byte 64 + k, bits 7-2j..6-2j.
    let cols = 512;
    for (j, k) in [(0, 0), (1, 5), (2, 63), (3, 31), (2, 32)] {
        let mut values = vec![0i8; cols];
        values[256 + 64 * j + k] = 1; // code 2
        let w = TernaryWeights {
            rows: 1,
            cols,
            values,
            scale: 1.0,
        };
        let p = PackedTernary::pack(&w, PackedLayout::I2s256);
        assert_eq!(p.row_bytes(), 128);
        assert_eq!(p.blocks(), 2);
        let expect_byte = (0x55u8 & !(3 << (6 - 2 * j))) | (2 << (6 - 2 * j));
        for (at, &byte) in p.row(0).iter().enumerate() {
            let want = if at == 64 + k { expect_byte } else { 0x55 };
            assert_eq!(byte, want, "byte {at} for column 256 + 64*{j} + {k}");
        }
    }
    // Rows are padded to 256 columns with code 1 (weight 0).
    let w = ternary(3, 300, 1, 1.0);
    let p = PackedTernary::pack(&w, PackedLayout::I2s256);
    assert_eq!((p.row_bytes(), p.blocks()), (128, 2));
    assert_eq!(p.unpack(), w);
    assert_eq!(p.code(2, 299), (w.values[2 * 300 + 299] + 1) as u8);
}

#[test]
fn i2s_fast_path_refuses_code_3_and_skips_unaligned_rows() {
    let w = ternary(2, 256, 7, 0.5);
    let mut b = formats::encode_i2s(&w).unwrap();
    b[70] |= 0b0000_1100; // element 256 + 32*2 + 6 of the flattened tensor gets code 3
    let e = formats::i2s_to_packed(&b, 2, 256, PackedLayout::I2s256).unwrap_err();
    assert!(
        matches!(
            e,
            FormatError::InvalidCode {
                code: 3,
                offset: 70,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        formats::decode_i2s(&b, 2, 256).unwrap_err().to_string(),
        e.to_string()
    );
    // 2 x 64 is a valid I2_S tensor but its rows do not start on block boundaries.
    let w = ternary(2, 64, 9, 0.5);
    let b = formats::encode_i2s(&w).unwrap();
    assert!(
        formats::i2s_to_packed(&b, 2, 64, PackedLayout::I2s128)
            .unwrap()
            .is_none()
    );
    // 2 x 128 rows start on I2_S blocks but are half an `i2s256` block: decode and pack.
    let w = ternary(2, 128, 9, 0.5);
    let b = formats::encode_i2s(&w).unwrap();
    assert!(
        formats::i2s_to_packed(&b, 2, 128, PackedLayout::I2s128)
            .unwrap()
            .is_some()
    );
    assert!(
        formats::i2s_to_packed(&b, 2, 128, PackedLayout::I2s256)
            .unwrap()
            .is_none()
    );
}

#[test]
fn matrices_moved_into_one_shared_buffer_keep_their_rows_and_results() {
    let kernels = bitnet_kernels::Kernels::new(2);
    let shapes = [(5, 512), (3, 256), (7, 1024), (1, 256)];
    let weights: Vec<TernaryWeights> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(r, c))| ternary(r, c, i as u64 + 1, 0.5 + i as f32))
        .collect();
    let mut packed: Vec<PackedTernary> = weights.iter().map(|w| kernels.pack(w)).collect();
    let before = packed.clone();
    let run = |p: &PackedTernary| {
        let q: Vec<i8> = (0..p.cols()).map(|c| (c % 7) as i8 - 3).collect();
        let mut y = vec![0f32; p.rows()];
        kernels.ternary_matmul(p, &q, &[0.25], 1, &mut y);
        y
    };
    PackedTernary::share_huge_pages(&mut packed.iter_mut().collect::<Vec<_>>(), 3);
    for ((after, before), w) in packed.iter().zip(&before).zip(&weights) {
        assert_eq!(after, before);
        assert_eq!(&after.unpack(), w);
        assert_eq!(run(after), run(before));
        // Each matrix starts on a cache line of the shared buffer.
        assert_eq!(after.row(0).as_ptr() as usize % 64, 0);
    }
    // Consecutive matrices lie in one buffer, in order.
    let (a, b) = (
        packed[0].row(0).as_ptr() as usize,
        packed[1].row(0).as_ptr() as usize,
    );
    assert_eq!(b - a, packed[0].size_bytes().next_multiple_of(64));
    PackedTernary::share_huge_pages(&mut [], 2);
}
