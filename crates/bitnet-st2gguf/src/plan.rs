//! What to write: the metadata and the ordered tensor list with every tensor's shape, storage
//! type and size, derived from the validated [`ModelConfig`] and the schema's layer table
//! before anything is read or written, so a shape that does not fit the requested type fails
//! up front.
//!
//! This module knows nothing about reading the checkpoint ([`crate::source`]) or encoding
//! ([`crate::encode`]); both depend on it, never the reverse.

use std::ops::Range;
use std::path::Path;

use bitnet_formats::{self as formats, FormatError};
use bitnet_schema::{BLOCK_ORDER, BlockTensor, HfConfig, Linear, ModelConfig, ModelTensor, Norm};
use bitnet_tokenizer::GgufTokenizerData;

use crate::args::{Args, EmbedType, OutType};
use crate::error::{ConvertError, Result};
use crate::gguf::{GgmlType, TensorSpec, Value};
use crate::metadata::{self, MetaInput};

/// Output bytes converted per parallel run of linears and norms ([`Plan::batches`]; a 2B4T
/// block is ~17 MiB as I2_S, ~260 MiB as f32).
pub const BATCH_BYTES: usize = 64 << 20;

/// Elements of the embedding or head converted (and verified) per step: bounds the memory
/// they take.
pub const CHUNK_ELEMENTS: usize = 1 << 20;

/// Where one GGUF tensor's data comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source {
    /// `model.embed_tokens.weight`.
    Embedding,
    /// `lm_head.weight` (only when not tied).
    Head,
    /// `model.norm.weight`.
    FinalNorm,
    /// A block's RMSNorm weight.
    Norm(usize, Norm),
    /// A block's ternary projection.
    Linear(usize, Linear),
}

impl Source {
    /// Whether the tensor is the embedding or the head: the largest tensors, converted in
    /// chunks rather than whole.
    pub fn is_dense(self) -> bool {
        matches!(self, Self::Embedding | Self::Head)
    }
}

/// One tensor of the output file.
#[derive(Debug, Clone)]
pub struct Planned {
    /// GGUF name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Checkpoint name it comes from (for messages).
    pub hf_name: String,
    /// Where its data comes from.
    pub source: Source,
    /// PyTorch shape `[rows, cols]` (`[len]` for vectors); GGUF dims are the reverse.
    pub shape: Vec<usize>,
    /// Storage type.
    pub ty: GgmlType,
    /// Data size in bytes.
    pub bytes: usize,
}

impl Planned {
    /// GGUF dims (ggml `ne` order: fastest first).
    pub fn dims(&self) -> Vec<u64> {
        self.shape.iter().rev().map(|&d| d as u64).collect()
    }

    /// The checkpoint tensors this one is read from (the weight and, for linears, its
    /// `weight_scale`), whose pages can be dropped once it is written.
    pub fn hf_sources(&self) -> [String; 2] {
        [self.hf_name.clone(), format!("{}_scale", self.hf_name)]
    }
}

/// What will be written.
pub struct Plan {
    /// Metadata key/value pairs in file order.
    pub metadata: Vec<(String, Value)>,
    /// Tensors in file order (bitnet.cpp's order).
    pub tensors: Vec<Planned>,
    /// Type of the linears.
    pub outtype: OutType,
}

impl Plan {
    /// The writer's tensor list.
    pub fn specs(&self) -> Vec<TensorSpec> {
        self.tensors
            .iter()
            .map(|t| TensorSpec {
                name: t.name.clone(),
                dims: t.dims(),
                ggml_type: t.ty,
            })
            .collect()
    }

    /// Total tensor data in bytes.
    pub fn total_bytes(&self) -> usize {
        self.tensors.iter().map(|t| t.bytes).sum()
    }

    /// The tensors in file order, cut into runs (index ranges into [`Self::tensors`]) that
    /// are converted in parallel and then written in order: the embedding and the head alone
    /// (they are streamed in chunks), the others in runs of at most `max_bytes` of output (a
    /// single larger tensor is a run of its own). This bounds what is held in memory at once
    /// to about `max_bytes` plus one decoded tensor per thread.
    pub fn batches(&self, max_bytes: usize) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (i, t) in self.tensors.iter().enumerate() {
            if i > start && (t.source.is_dense() || bytes + t.bytes > max_bytes) {
                out.push(start..i);
                (start, bytes) = (i, 0);
            }
            bytes += t.bytes;
            if t.source.is_dense() {
                out.push(i..i + 1);
                (start, bytes) = (i + 1, 0);
            }
        }
        if start < self.tensors.len() {
            out.push(start..self.tensors.len());
        }
        out
    }
}

/// Storage type of the linears in the GGUF file.
pub fn linear_type(outtype: OutType) -> GgmlType {
    match outtype {
        OutType::I2S => GgmlType::I2_S,
        OutType::Tq2_0 => GgmlType::TQ2_0,
        OutType::Tq1_0 => GgmlType::TQ1_0,
        OutType::F16 => GgmlType::F16,
        OutType::F32 => GgmlType::F32,
    }
}

fn embed_ggml_type(t: EmbedType) -> GgmlType {
    match t {
        EmbedType::F32 => GgmlType::F32,
        EmbedType::F16 => GgmlType::F16,
        EmbedType::Bf16 => GgmlType::BF16,
    }
}

/// Bytes per element of a float storage type (F32, F16, BF16).
pub fn float_size(ty: GgmlType) -> usize {
    match ty {
        GgmlType::F32 => 4,
        _ => 2,
    }
}

/// Data size of a `rows x cols` linear stored as `outtype`, or why it cannot be stored so.
fn linear_size(name: &str, outtype: OutType, rows: usize, cols: usize) -> Result<usize> {
    let shape_err = |e: FormatError| match e {
        FormatError::Shape { reason, .. } => ConvertError::BlockShape {
            tensor: name.to_string(),
            rows,
            cols,
            outtype: outtype.name(),
            reason,
        },
        other => ConvertError::Encode {
            tensor: name.to_string(),
            outtype: outtype.name(),
            source: other,
        },
    };
    match outtype {
        OutType::I2S => {
            if !(rows * cols).is_multiple_of(formats::I2S_BLOCK) {
                return Err(ConvertError::BlockShape {
                    tensor: name.to_string(),
                    rows,
                    cols,
                    outtype: outtype.name(),
                    reason: "rows*cols must be a multiple of 128 (the I2_S block)",
                });
            }
            Ok(formats::i2s_size(rows, cols))
        }
        OutType::Tq2_0 => formats::tq2_0_size(rows, cols).map_err(shape_err),
        OutType::Tq1_0 => formats::tq1_0_size(rows, cols).map_err(shape_err),
        OutType::F16 => Ok(rows * cols * 2),
        OutType::F32 => Ok(rows * cols * 4),
    }
}

/// Builds the plan for `cfg` (validated, with `--arch` applied) and the checkpoint's
/// `config.json` `hf` (head tying, fallback token ids): every tensor's name, shape and type
/// from the schema's layer table, and the metadata; fails before anything is written if a
/// shape does not fit the requested type.
pub fn plan(
    cfg: &ModelConfig,
    hf: &HfConfig,
    input: &Path,
    args: &Args,
    tokenizer: Option<&GgufTokenizerData>,
) -> Result<Plan> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => default_name(input),
    };
    let metadata = metadata::build(
        cfg,
        &MetaInput {
            name: &name,
            outtype: args.outtype,
            tokenizer,
            hf,
            dir: input,
        },
    )?;

    let embed_ty = embed_ggml_type(args.embed_type.unwrap_or(args.outtype.default_embed_type()));
    let lin_ty = linear_type(args.outtype);
    let dims = cfg.dims();
    let dense = |which: ModelTensor, source, shape: Vec<usize>, ty| Planned {
        name: which.gguf_name().to_string(),
        hf_name: which.hf_name().to_string(),
        source,
        bytes: shape.iter().product::<usize>() * float_size(ty),
        shape,
        ty,
    };
    let (vocab, h) = (cfg.vocab_size, cfg.hidden_size);
    let mut tensors = Vec::with_capacity(3 + BLOCK_ORDER.len() * cfg.n_layers);
    tensors.push(dense(
        ModelTensor::Embedding,
        Source::Embedding,
        vec![vocab, h],
        embed_ty,
    ));
    for l in 0..cfg.n_layers {
        for t in BLOCK_ORDER {
            tensors.push(match t {
                BlockTensor::Norm(n) => Planned {
                    name: n.gguf_weight(l),
                    hf_name: n.hf_weight(l),
                    source: Source::Norm(l, n),
                    shape: vec![n.len(&dims)],
                    ty: GgmlType::F32,
                    bytes: n.len(&dims) * 4,
                },
                BlockTensor::Linear(w) => {
                    let (rows, cols) = w.shape(&dims);
                    let name = format!("{}.weight", w.gguf_base(l));
                    let bytes = linear_size(&name, args.outtype, rows, cols)?;
                    Planned {
                        name,
                        hf_name: format!("{}.weight", w.hf_base(l)),
                        source: Source::Linear(l, w),
                        shape: vec![rows, cols],
                        ty: lin_ty,
                        bytes,
                    }
                }
            });
        }
    }
    tensors.push(dense(
        ModelTensor::OutputNorm,
        Source::FinalNorm,
        vec![h],
        GgmlType::F32,
    ));
    if !hf.tie_word_embeddings {
        tensors.push(dense(
            ModelTensor::Output,
            Source::Head,
            vec![vocab, h],
            embed_ty,
        ));
    }
    Ok(Plan {
        metadata,
        tensors,
        outtype: args.outtype,
    })
}

/// `general.name` when `--name` is not given: the checkpoint directory's name.
fn default_name(input: &Path) -> String {
    let dir = input.canonicalize().unwrap_or_else(|_| input.to_path_buf());
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "bitnet".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(source: Source, bytes: usize) -> Planned {
        Planned {
            name: String::new(),
            hf_name: String::new(),
            source,
            shape: vec![bytes],
            ty: GgmlType::F32,
            bytes,
        }
    }

    #[test]
    fn batches_cover_every_tensor_in_order_within_the_bound() {
        let lin = |l| Source::Linear(l, Linear::QProj);
        let tensors = vec![
            planned(Source::Embedding, 1000),
            planned(lin(0), 40),
            planned(lin(0), 40),
            planned(lin(0), 40),
            planned(lin(1), 200),
            planned(lin(1), 10),
            planned(Source::FinalNorm, 10),
            planned(Source::Head, 1000),
        ];
        let plan = Plan {
            metadata: Vec::new(),
            tensors,
            outtype: OutType::I2S,
        };
        let sizes: Vec<Vec<usize>> = plan
            .batches(100)
            .into_iter()
            .map(|r| plan.tensors[r].iter().map(|t| t.bytes).collect())
            .collect();
        assert_eq!(
            sizes,
            [
                vec![1000],
                vec![40, 40],
                vec![40],
                vec![200],
                vec![10, 10],
                vec![1000]
            ]
        );
    }
}
