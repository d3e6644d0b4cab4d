//! The dense block formats decode bit for bit as gguf-py (llama.cpp's Python package) does:
//! random blocks (random quants, scales and mins; finite f16 scales of both signs over 2^-14
//! to 2^4) and the values `gguf.quants.dequantize` gave for them, written by
//! `scripts/fixtures/dense_ggml.py`.

use bitnet_formats::{DenseBlocks, decode_row};

fn check(kind: DenseBlocks, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dense_ggml");
    let blocks = std::fs::read(dir.join(format!("{name}.blocks"))).unwrap();
    let want: Vec<f32> = std::fs::read(dir.join(format!("{name}.f32")))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let n_blocks = blocks.len() / kind.block_bytes();
    assert!(n_blocks >= 8, "{name}: {n_blocks} blocks");
    assert_eq!(want.len(), n_blocks * kind.block_values());
    // As rows of three blocks, the way a tensor is read.
    let cols = 3 * kind.block_values();
    let row_bytes = kind.row_bytes(n_blocks / 3, cols).unwrap();
    let mut got = vec![0f32; cols];
    for (r, (row, want)) in blocks
        .chunks_exact(row_bytes)
        .zip(want.chunks_exact(cols))
        .enumerate()
    {
        decode_row(kind, row, &mut got);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{name} row {r} value {i}: {g} vs gguf-py's {w}"
            );
        }
    }
}

#[test]
fn q8_0_equals_gguf_py() {
    check(DenseBlocks::Q8_0, "q8_0");
}

#[test]
fn q4_k_equals_gguf_py() {
    check(DenseBlocks::Q4K, "q4_k");
}

#[test]
fn q6_k_equals_gguf_py() {
    check(DenseBlocks::Q6K, "q6_k");
}
