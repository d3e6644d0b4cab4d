//! Encoding: a planned tensor's checkpoint data turned into the bytes the GGUF file stores
//! (ternary linears as I2_S / TQ2_0 / TQ1_0 or dequantised floats, norms as f32, the
//! embedding and head as F32 / F16 / BF16).
//!
//! Every function here is a pure function of its inputs, so the writer runs them on several
//! tensors (or several ranges of the embedding) in parallel and gets the same bytes as one
//! thread would; a failure reports the first bad element of the range it was given.

use std::path::Path;

use bitnet_formats::TernaryWeights;
use bitnet_formats::{self as formats, FormatError};
use half::{bf16, f16};
use rayon::prelude::*;

use crate::args::OutType;
use crate::ckpt::Checkpoint;
use crate::error::{ConvertError, Result};
use crate::gguf::GgmlType;
use crate::plan::{Planned, Source, float_size};
use crate::source::{RawFloat, read_linear, read_norm};

/// Elements `start..end` of a float tensor converted to `ty` (NaN/Inf refused; `name` and the
/// element index name the first bad value).
pub fn convert_range(
    name: &str,
    src: &RawFloat<'_>,
    start: usize,
    end: usize,
    ty: GgmlType,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity((end - start) * float_size(ty));
    for i in start..end {
        let x = src.get(i);
        if !x.is_finite() {
            return Err(ConvertError::NonFinite {
                tensor: name.to_string(),
                element: i,
            });
        }
        match ty {
            GgmlType::F32 => out.extend_from_slice(&x.to_le_bytes()),
            GgmlType::F16 => {
                let h = f16::from_f32(x);
                if h.is_infinite() {
                    return Err(ConvertError::Overflow {
                        tensor: name.to_string(),
                        element: i,
                        value: x,
                        ty: "F16",
                    });
                }
                out.extend_from_slice(&h.to_le_bytes())
            }
            // bf16 -> bf16 and f32 -> bf16 (round to nearest even); bf16 -> f32 -> bf16 is exact.
            _ => out.extend_from_slice(&bf16::from_f32(x).to_le_bytes()),
        }
    }
    Ok(out)
}

/// Elements per parallel piece of an embedding chunk: large enough that splitting costs
/// nothing measurable, small enough to spread a chunk over many threads.
const PIECE_ELEMENTS: usize = 1 << 16;

/// Elements `start..end` of a float tensor converted to `ty` on the current rayon pool, as
/// pieces in order (written one after the other they are [`convert_range`]'s bytes). The
/// error is that of the first bad element, as for one thread.
pub fn convert_range_par(
    name: &str,
    src: &RawFloat<'_>,
    start: usize,
    end: usize,
    ty: GgmlType,
) -> Result<Vec<Vec<u8>>> {
    (start..end)
        .step_by(PIECE_ELEMENTS)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|s| convert_range(name, src, s, (s + PIECE_ELEMENTS).min(end), ty))
        .collect::<Vec<_>>()
        .into_iter()
        .collect()
}

/// A linear's bytes in the output type.
pub fn encode_linear(t: &Planned, w: &TernaryWeights, outtype: OutType) -> Result<Vec<u8>> {
    let enc = |r: std::result::Result<Vec<u8>, FormatError>| {
        r.map_err(|source| ConvertError::Encode {
            tensor: t.name.clone(),
            outtype: outtype.name(),
            source,
        })
    };
    match outtype {
        OutType::I2S => enc(formats::encode_i2s(w)),
        OutType::Tq2_0 => enc(formats::encode_tq2_0(w)),
        OutType::Tq1_0 => enc(formats::encode_tq1_0(w)),
        // llama.cpp's converter writes BitNet linears dequantised; readers re-ternarise them
        // exactly because every non-zero magnitude is the same.
        OutType::F16 => {
            let s = w.scale;
            if f16::from_f32(s).is_infinite() {
                return Err(ConvertError::Overflow {
                    tensor: t.name.clone(),
                    element: 0,
                    value: s,
                    ty: "F16",
                });
            }
            Ok(w.values
                .iter()
                .flat_map(|&v| f16::from_f32(f32::from(v) * s).to_le_bytes())
                .collect())
        }
        OutType::F32 => {
            let s = w.scale;
            Ok(w.values
                .iter()
                .flat_map(|&v| (f32::from(v) * s).to_le_bytes())
                .collect())
        }
    }
}

/// A linear or norm read from the checkpoint and encoded whole (the embedding and head are
/// streamed in chunks instead, see [`convert_range_par`]).
pub fn encode_tensor(
    ckpt: &Checkpoint,
    dir: &Path,
    outtype: OutType,
    t: &Planned,
) -> Result<Vec<u8>> {
    match t.source {
        Source::Linear(..) => {
            let w = read_linear(ckpt, dir, t)?;
            encode_linear(t, &w, outtype)
        }
        Source::Norm(..) | Source::FinalNorm => {
            let v = read_norm(ckpt, dir, t)?;
            Ok(v.iter().flat_map(|x| x.to_le_bytes()).collect())
        }
        Source::Embedding | Source::Head => unreachable!("{} is converted in chunks", t.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_pieces_equal_one_range_and_report_the_first_bad_element() {
        let n = 3 * PIECE_ELEMENTS + 123;
        let mut values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 300.0).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        let src = RawFloat {
            bytes: &bytes,
            ty: GgmlType::F32,
        };
        for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
            let whole = convert_range("t", &src, 5, n, ty).unwrap();
            let pieces = convert_range_par("t", &src, 5, n, ty).unwrap();
            assert_eq!(pieces.concat(), whole, "{ty:?}");
        }
        values[PIECE_ELEMENTS + 7] = f32::NAN;
        values[2 * PIECE_ELEMENTS + 1] = f32::INFINITY;
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        let src = RawFloat {
            bytes: &bytes,
            ty: GgmlType::F32,
        };
        let e = convert_range_par("t", &src, 0, n, GgmlType::F16).unwrap_err();
        assert!(
            matches!(e, ConvertError::NonFinite { element, .. } if element == PIECE_ELEMENTS + 7),
            "{e}"
        );
    }
}
