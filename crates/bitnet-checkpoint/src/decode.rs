//! Decoding of the stored values: float widening, the packed 2-bit layout, unpacked ternary
//! values and absmean ternarisation of master weights.

use bitnet_formats::TernaryWeights;
use half::{bf16, f16};
use safetensors::Dtype;

use crate::TensorMeta;
use crate::error::{CheckpointError, Result};

/// Float tensor bytes widened to f32, or `None` for a non-float dtype.
pub(crate) fn floats(meta: &TensorMeta, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match meta.dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// Unpacks the 2B4T layout: bits `2i..2i+1` of byte `[r, c]` hold the code of output row
/// `i * (rows/4) + r`; value = code - 1 (code 3 is invalid).
pub(crate) fn unpack(name: &str, bytes: &[u8], rows: usize, cols: usize) -> Result<Vec<i8>> {
    let r4 = rows / 4;
    let mut values = vec![0i8; rows * cols];
    for r in 0..r4 {
        for c in 0..cols {
            let byte = bytes[r * cols + c];
            for i in 0..4 {
                let code = (byte >> (2 * i)) & 3;
                if code == 3 {
                    return Err(CheckpointError::BadValue {
                        name: name.into(),
                        reason: format!("invalid 2-bit code 3 at byte [{r}, {c}] (bits {})", 2 * i),
                    });
                }
                values[(i * r4 + r) * cols + c] = code as i8 - 1;
            }
        }
    }
    Ok(values)
}

/// Unpacked ternary values from any numeric dtype; anything but -1/0/+1 is an error.
pub(crate) fn ternary_values(name: &str, meta: &TensorMeta, bytes: &[u8]) -> Result<Vec<i8>> {
    let as_f32: Vec<f32> = match meta.dtype {
        Dtype::I8 => bytes.iter().map(|&b| f32::from(b as i8)).collect(),
        Dtype::I16 => bytes
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])))
            .collect(),
        Dtype::I32 => bytes
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
            .collect(),
        _ => floats(meta, bytes).ok_or_else(|| CheckpointError::Dtype {
            name: name.into(),
            dtype: meta.dtype,
            expected: "I8, I16, I32, F32, F16 or BF16 for unpacked ternary weights",
        })?,
    };
    as_f32
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if x == -1.0 || x == 0.0 || x == 1.0 {
                Ok(x as i8)
            } else {
                Err(CheckpointError::BadValue {
                    name: name.into(),
                    reason: format!(
                        "element {i} is {x}, not -1, 0 or +1 (unpacked ternary layout)"
                    ),
                })
            }
        })
        .collect()
}

/// transformers' online quantisation: `s = max(mean|W|, 1e-5)`,
/// `values = clamp(round(W / s), -1, 1)` with torch's round-half-to-even, effective weight `values * s` (scale kept in f32).
pub fn absmean_ternarize(w: &[f32], rows: usize, cols: usize) -> TernaryWeights {
    let mean = (w.iter().map(|x| f64::from(x.abs())).sum::<f64>() / w.len().max(1) as f64) as f32;
    let s = mean.max(1e-5);
    let values = w
        .iter()
        .map(|&x| (x / s).round_ties_even().clamp(-1.0, 1.0) as i8)
        .collect();
    TernaryWeights {
        rows,
        cols,
        values,
        scale: s,
    }
}
