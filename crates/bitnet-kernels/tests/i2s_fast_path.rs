//! The load-time fast path from I2_S bytes into the kernels' layout
//! (`formats::i2s_to_packed`) equals decoding and packing, and refuses what decoding refuses.

use bitnet_kernels::formats::{self, FormatError};
use bitnet_kernels::{PackedTernary, TernaryWeights};
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
        let fast = formats::i2s_to_packed(&b, rows, 128 * blocks).unwrap().unwrap();
        prop_assert_eq!(fast, PackedTernary::pack_i2s128(&w));
    }
}

#[test]
fn i2s_fast_path_refuses_code_3_and_skips_unaligned_rows() {
    let w = ternary(2, 256, 7, 0.5);
    let mut b = formats::encode_i2s(&w).unwrap();
    b[70] |= 0b0000_1100; // element 256 + 32*2 + 6 of the flattened tensor gets code 3
    let e = formats::i2s_to_packed(&b, 2, 256).unwrap_err();
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
    assert!(formats::i2s_to_packed(&b, 2, 64).unwrap().is_none());
}
