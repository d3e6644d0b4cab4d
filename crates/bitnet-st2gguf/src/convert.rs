//! The conversion: a plan (metadata and the ordered tensor list, all derived from
//! `config.json` and checked before anything is written), then the tensors streamed one at a
//! time from the memory-mapped safetensors into the GGUF writer.
//!
//! Only one tensor is held in memory at a time (its ternary values or its converted floats),
//! so peak memory is about the largest tensor (the embedding), not the model.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::ckpt::{Checkpoint, Dtype, Linear, Norm};
use crate::gguf::{GgmlType, GgufWriter, TensorSpec, Value};
use bitnet_formats::TernaryWeights;
use bitnet_formats::{self as formats, FormatError};
use bitnet_tokenizer::GgufTokenizerData;
use half::{bf16, f16};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{Args, EmbedType, OutType};
use crate::error::{ConvertError, Result};
use crate::metadata::{self, MetaInput, SUPPORTED_MODEL_TYPES, Shape};

/// The seven ternary projections of a block: which checkpoint linear, its GGUF name and its
/// Hugging Face module path (for error messages).
pub const LINEARS: [(Linear, &str, &str); 7] = [
    (Linear::QProj, "attn_q", "self_attn.q_proj"),
    (Linear::KProj, "attn_k", "self_attn.k_proj"),
    (Linear::VProj, "attn_v", "self_attn.v_proj"),
    (Linear::OProj, "attn_output", "self_attn.o_proj"),
    (Linear::GateProj, "ffn_gate", "mlp.gate_proj"),
    (Linear::UpProj, "ffn_up", "mlp.up_proj"),
    (Linear::DownProj, "ffn_down", "mlp.down_proj"),
];

/// Hugging Face name of the token embedding.
pub const HF_EMBEDDING: &str = "model.embed_tokens.weight";
/// Hugging Face name of an untied output head.
pub const HF_LM_HEAD: &str = "lm_head.weight";

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

fn ckpt_err(dir: &Path) -> impl Fn(crate::ckpt::CheckpointError) -> ConvertError + '_ {
    move |source| ConvertError::Checkpoint {
        dir: dir.to_path_buf(),
        source,
    }
}

fn gguf_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl Fn(crate::gguf::GgufError) -> ConvertError + 'a {
    move |source| ConvertError::Gguf {
        action,
        path: path.to_path_buf(),
        source: Box::new(source),
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

fn float_size(ty: GgmlType) -> usize {
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

/// Builds the plan: checks `config.json`, derives every tensor's shape and type, and fails
/// before anything is written if a shape does not fit the requested type.
pub fn plan(
    ckpt: &Checkpoint,
    input: &Path,
    args: &Args,
    tokenizer: Option<&GgufTokenizerData>,
) -> Result<Plan> {
    let cfg = ckpt.config();
    let config_file = input.join("config.json");
    if !SUPPORTED_MODEL_TYPES.contains(&cfg.model_type.as_str()) {
        return Err(ConvertError::UnknownModelType {
            file: config_file,
            model_type: cfg.model_type.clone(),
            supported: SUPPORTED_MODEL_TYPES.join(", "),
        });
    }
    let shape = Shape::from_config(cfg, &config_file)?;
    let name = match &args.name {
        Some(n) => n.clone(),
        None => default_name(input),
    };
    let metadata = metadata::build(
        cfg,
        &MetaInput {
            arch: &args.arch,
            name: &name,
            outtype: args.outtype,
            shape: &shape,
            tokenizer,
            config_file: &config_file,
        },
    )?;

    let embed_ty = embed_ggml_type(args.embed_type.unwrap_or(args.outtype.default_embed_type()));
    let lin_ty = linear_type(args.outtype);
    let (h, q, kv, i) = (
        shape.hidden,
        shape.q_dim(),
        shape.kv_dim(),
        shape.intermediate,
    );
    let mut tensors = Vec::with_capacity(3 + 11 * shape.layers);
    let dense = |name: &str, hf: &str, source, rows: usize, cols: usize, ty| Planned {
        name: name.to_string(),
        hf_name: hf.to_string(),
        source,
        shape: if rows == 0 {
            vec![cols]
        } else {
            vec![rows, cols]
        },
        ty,
        bytes: rows.max(1) * cols * float_size(ty),
    };
    tensors.push(dense(
        "token_embd.weight",
        HF_EMBEDDING,
        Source::Embedding,
        shape.vocab,
        h,
        embed_ty,
    ));
    for l in 0..shape.layers {
        let norm = |gguf: &str, hf: &str, which, len| {
            dense(
                &format!("blk.{l}.{gguf}.weight"),
                &format!("model.layers.{l}.{hf}.weight"),
                Source::Norm(l, which),
                0,
                len,
                GgmlType::F32,
            )
        };
        let linear = |idx: usize, rows: usize, cols: usize| -> Result<Planned> {
            let (which, gguf, hf) = LINEARS[idx];
            let name = format!("blk.{l}.{gguf}.weight");
            let bytes = linear_size(&name, args.outtype, rows, cols)?;
            Ok(Planned {
                name,
                hf_name: format!("model.layers.{l}.{hf}.weight"),
                source: Source::Linear(l, which),
                shape: vec![rows, cols],
                ty: lin_ty,
                bytes,
            })
        };
        tensors.push(norm("attn_norm", "input_layernorm", Norm::Input, h));
        tensors.push(linear(0, q, h)?);
        tensors.push(linear(1, kv, h)?);
        tensors.push(linear(2, kv, h)?);
        tensors.push(norm(
            "attn_sub_norm",
            "self_attn.attn_sub_norm",
            Norm::AttnSub,
            q,
        ));
        tensors.push(linear(3, h, q)?);
        tensors.push(norm(
            "ffn_norm",
            "post_attention_layernorm",
            Norm::PostAttention,
            h,
        ));
        tensors.push(linear(4, i, h)?);
        tensors.push(linear(5, i, h)?);
        tensors.push(norm("ffn_sub_norm", "mlp.ffn_sub_norm", Norm::FfnSub, i));
        tensors.push(linear(6, h, i)?);
    }
    tensors.push(dense(
        "output_norm.weight",
        "model.norm.weight",
        Source::FinalNorm,
        0,
        h,
        GgmlType::F32,
    ));
    if !shape.tied {
        tensors.push(dense(
            "output.weight",
            HF_LM_HEAD,
            Source::Head,
            shape.vocab,
            h,
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
    check_finite(&t.hf_name, &v)?;
    Ok(v)
}

fn check_finite(name: &str, v: &[f32]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(element) => Err(ConvertError::NonFinite {
            tensor: name.to_string(),
            element,
        }),
        None => Ok(()),
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

/// Elements `start..end` of a float tensor converted to `ty` (NaN/Inf refused).
fn convert_range(
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

/// Elements converted per step for the embedding and head: bounds the memory they take.
const CHUNK_ELEMENTS: usize = 1 << 20;

/// Converts one planned tensor and writes it; then drops its source pages from memory.
fn write_one(
    ckpt: &Checkpoint,
    dir: &Path,
    plan: &Plan,
    t: &Planned,
    writer: &mut GgufWriter,
    pb: &ProgressBar,
) -> Result<()> {
    let out = writer_path(writer);
    let werr = |source| ConvertError::Gguf {
        action: "writing",
        path: out.clone(),
        source: Box::new(source),
    };
    match t.source {
        Source::Linear(..) => {
            let w = read_linear(ckpt, dir, t)?;
            let bytes = encode_linear(t, &w, plan.outtype)?;
            writer.write_tensor(&t.name, &bytes).map_err(werr)?;
            pb.inc(bytes.len() as u64);
            for name in [t.hf_name.clone(), format!("{}_scale", t.hf_name)] {
                ckpt.release(&name, 0, ckpt.tensor_len(&name));
            }
        }
        Source::Norm(..) | Source::FinalNorm => {
            let v = read_norm(ckpt, dir, t)?;
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            writer.write_tensor(&t.name, &bytes).map_err(werr)?;
            pb.inc(bytes.len() as u64);
        }
        Source::Embedding | Source::Head => {
            // The largest tensor: converted and written in chunks, each chunk's source pages
            // released after use, so neither the source nor the output is ever whole in memory.
            let (n, src_size) = {
                let raw = read_dense(ckpt, dir, t)?;
                (raw.len(), float_size(raw.ty))
            };
            writer.begin_tensor(&t.name).map_err(werr)?;
            for start in (0..n).step_by(CHUNK_ELEMENTS) {
                let end = (start + CHUNK_ELEMENTS).min(n);
                let bytes = {
                    let raw = read_dense(ckpt, dir, t)?;
                    convert_range(&t.hf_name, &raw, start, end, t.ty)?
                };
                writer.write_chunk(&bytes).map_err(werr)?;
                ckpt.release(&t.hf_name, start * src_size, (end - start) * src_size);
                pb.inc(bytes.len() as u64);
            }
            writer.end_tensor().map_err(werr)?;
        }
    }
    Ok(())
}

fn writer_path(w: &GgufWriter) -> PathBuf {
    w.path().to_path_buf()
}

fn info(quiet: bool, msg: std::fmt::Arguments<'_>) {
    if !quiet {
        eprintln!("info: {msg}");
    }
}

fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {bytes}/{total_bytes} ({eta}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb
}

/// Runs the whole conversion described by `args`.
pub fn run(args: &Args) -> Result<PathBuf> {
    let started = Instant::now();
    let dir = args.input.as_path();
    if args.output.exists() && !args.force {
        return Err(ConvertError::OutputExists {
            path: args.output.clone(),
        });
    }
    let ckpt = Checkpoint::open(dir).map_err(ckpt_err(dir))?;
    // Refuse unknown model types before the tensor-set check, whose message would be
    // confusing for a non-BitNet model.
    let cfg = ckpt.config();
    if !SUPPORTED_MODEL_TYPES.contains(&cfg.model_type.as_str()) {
        return Err(ConvertError::UnknownModelType {
            file: dir.join("config.json"),
            model_type: cfg.model_type.clone(),
            supported: SUPPORTED_MODEL_TYPES.join(", "),
        });
    }
    ckpt.check_tensor_set().map_err(ckpt_err(dir))?;

    let tokenizer = if dir.join("tokenizer.json").is_file() {
        let mut t =
            GgufTokenizerData::from_hf_dir(dir).map_err(|source| ConvertError::Tokenizer {
                dir: dir.to_path_buf(),
                source,
            })?;
        let padded = metadata::fit_tokenizer(&mut t, cfg.vocab_size, &dir.join("tokenizer.json"))?;
        if padded > 0 {
            info(
                args.quiet,
                format_args!(
                    "tokenizer has {} tokens for {} embedding rows: padding with {padded} unused [PAD<id>] tokens",
                    t.tokens.len() - padded,
                    cfg.vocab_size
                ),
            );
        }
        Some(t)
    } else {
        info(
            args.quiet,
            format_args!(
                "{} has no tokenizer.json: writing no tokenizer (feed token ids)",
                dir.display()
            ),
        );
        None
    };

    let plan = plan(&ckpt, dir, args, tokenizer.as_ref())?;
    let specs = plan
        .tensors
        .iter()
        .map(|t| TensorSpec {
            name: t.name.clone(),
            dims: t.dims(),
            ggml_type: t.ty,
        })
        .collect();
    let out = args.output.as_path();
    let mut writer = GgufWriter::create(out, args.force, plan.metadata.clone(), specs)
        .map_err(gguf_err("creating", out))?;

    let total: usize = plan.tensors.iter().map(|t| t.bytes).sum();
    let pb = progress_bar(total as u64, args.quiet);
    for t in &plan.tensors {
        pb.set_message(t.name.clone());
        write_one(&ckpt, dir, &plan, t, &mut writer, &pb)?;
    }
    pb.finish_and_clear();
    let path = writer.finish().map_err(gguf_err("writing", out))?;

    if args.verify {
        crate::verify::verify(&path, &ckpt, dir, &plan)?;
    }
    if !args.quiet {
        eprintln!(
            "wrote {} ({} tensors, {:.1} MiB of tensor data, {}{}) in {:.1} s",
            path.display(),
            plan.tensors.len(),
            total as f64 / (1 << 20) as f64,
            args.outtype.name(),
            if args.verify { ", verified" } else { "" },
            started.elapsed().as_secs_f64()
        );
    }
    Ok(path)
}
