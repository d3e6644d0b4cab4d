//! Reading the checkpoint's tensors for a planned output tensor: ternary linears decoded by
//! `bitnet-checkpoint`, norms as f32, and the embedding and head as raw float bytes (never
//! copied whole), each checked against the plan's shape and for NaN, infinities and zero
//! scales. Used by the writer ([`crate::convert`]) and by `--verify` ([`crate::verify`]).

use std::path::Path;

use bitnet_formats::TernaryWeights;
use half::{bf16, f16};

use crate::ckpt::{Checkpoint, CheckpointError, Dtype};
use crate::error::{ConvertError, Result};
use crate::gguf::GgmlType;
use crate::plan::{Planned, Source, float_size};

/// Wraps a checkpoint error with the checkpoint directory.
pub fn ckpt_err(dir: &Path) -> impl Fn(CheckpointError) -> ConvertError + '_ {
    move |source| ConvertError::Checkpoint {
        dir: dir.to_path_buf(),
        source,
    }
}

/// Reads one ternary linear and checks its shape and scale.
pub fn read_linear(ckpt: &Checkpoint, dir: &Path, t: &Planned) -> Result<TernaryWeights> {
    let Source::Linear(layer, which) = t.source else {
        unreachable!("read_linear called for {}", t.name)
    };
    let w = ckpt.linear(layer, which).map_err(ckpt_err(dir))?;
    if [w.rows, w.cols] != [t.shape[0], t.shape[1]] {
        return Err(ConvertError::ShapeMismatch {
            tensor: t.hf_name.clone(),
            expected: t.shape.clone(),
            found: vec![w.rows, w.cols],
        });
    }
    if !w.scale.is_finite() || w.scale == 0.0 {
        return Err(ConvertError::BadScale {
            tensor: format!("{}_scale", t.hf_name),
            scale: w.scale,
        });
    }
    Ok(w)
}

/// Reads one norm vector and checks its length and values.
pub fn read_norm(ckpt: &Checkpoint, dir: &Path, t: &Planned) -> Result<Vec<f32>> {
    let v = match t.source {
        Source::Norm(layer, which) => ckpt.norm(layer, which),
        Source::FinalNorm => ckpt.final_norm(),
        _ => unreachable!("read_norm called for {}", t.name),
    }
    .map_err(ckpt_err(dir))?;
    if v.len() != t.shape[0] {
        return Err(ConvertError::ShapeMismatch {
            tensor: t.hf_name.clone(),
            expected: t.shape.clone(),
            found: vec![v.len()],
        });
    }
    match v.iter().position(|x| !x.is_finite()) {
        Some(element) => Err(ConvertError::NonFinite {
            tensor: t.hf_name.clone(),
            element,
        }),
        None => Ok(v),
    }
}

/// A float source tensor's raw bytes and element type, shape-checked.
pub struct RawFloat<'a> {
    /// Little-endian element bytes.
    pub bytes: &'a [u8],
    /// Element type.
    pub ty: GgmlType,
}

impl RawFloat<'_> {
    /// Element `i` widened to f32.
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        match self.ty {
            GgmlType::F32 => {
                let b = &self.bytes[4 * i..4 * i + 4];
                f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
            GgmlType::F16 => {
                f16::from_le_bytes([self.bytes[2 * i], self.bytes[2 * i + 1]]).to_f32()
            }
            _ => bf16::from_le_bytes([self.bytes[2 * i], self.bytes[2 * i + 1]]).to_f32(),
        }
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.bytes.len() / float_size(self.ty)
    }
}

/// The raw bytes of the embedding or head, checked against the planned shape.
pub fn read_dense<'a>(ckpt: &'a Checkpoint, dir: &Path, t: &Planned) -> Result<RawFloat<'a>> {
    let (meta, bytes) = ckpt.raw_tensor(&t.hf_name).map_err(ckpt_err(dir))?;
    if meta.shape != t.shape {
        return Err(ConvertError::ShapeMismatch {
            tensor: t.hf_name.clone(),
            expected: t.shape.clone(),
            found: meta.shape.clone(),
        });
    }
    let ty = match meta.dtype {
        Dtype::F32 => GgmlType::F32,
        Dtype::F16 => GgmlType::F16,
        Dtype::BF16 => GgmlType::BF16,
        other => {
            return Err(ConvertError::UnsupportedDtype {
                tensor: t.hf_name.clone(),
                dtype: format!("{other:?}"),
                expected: "F32, F16 or BF16",
            });
        }
    };
    let raw = RawFloat { bytes, ty };
    let n = t.shape.iter().product::<usize>();
    if raw.len() != n || bytes.len() % float_size(ty) != 0 {
        return Err(ConvertError::ShapeMismatch {
            tensor: t.hf_name.clone(),
            expected: t.shape.clone(),
            found: vec![bytes.len() / float_size(ty)],
        });
    }
    Ok(raw)
}
