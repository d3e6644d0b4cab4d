//! Shared helpers for the engine's integration tests: fixture paths, `.npy` reading, and the
//! reference data recorded from Hugging Face transformers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `fixtures/tiny-bitnet/<rel>` in the repository.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tiny-bitnet")
        .join(rel)
}

/// Reads a float32 C-order `.npy` file: returns (shape, data).
pub fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..6],
        b"\x93NUMPY",
        "{}: not a .npy file",
        path.display()
    );
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape_src = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape_src
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data: Vec<f32> = bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>());
    (shape, data)
}

/// One prompt of a reference `greedy.json`.
pub struct RefPrompt {
    pub prompt: Vec<u32>,
    pub greedy: Vec<u32>,
    pub margins: Vec<f32>,
}

/// Reads `<dir>/greedy.json`.
pub fn read_greedy(dir: &Path) -> Vec<RefPrompt> {
    let path = dir.join("greedy.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let ids = |x: &serde_json::Value| -> Vec<u32> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as u32)
            .collect()
    };
    v["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| RefPrompt {
            prompt: ids(&p["prompt"]),
            greedy: ids(&p["greedy"]),
            margins: p["top2_margins"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect()
}

/// max |a - b| and the fraction of rows (of width `vocab`) whose argmax agrees.
pub fn compare(a: &[f32], b: &[f32], vocab: usize) -> (f32, f64) {
    assert_eq!(a.len(), b.len());
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let rows = a.len() / vocab;
    let agree = (0..rows)
        .filter(|&r| {
            argmax(&a[r * vocab..(r + 1) * vocab]) == argmax(&b[r * vocab..(r + 1) * vocab])
        })
        .count();
    (max, agree as f64 / rows as f64)
}

pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}
