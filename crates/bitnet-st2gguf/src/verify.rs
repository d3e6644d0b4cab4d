//! `--verify`: reopens the written file with the GGUF reader and checks it against the
//! checkpoint, independently of the encoders: every planned key has its value, the tensor
//! list (names, order, dims, types) is the plan's, and every tensor *decodes* (with the
//! kernels' decoders, not by comparing re-encoded bytes) to the checkpoint's values: ternary
//! values equal, scales equal to the source scale rounded to the format's scale type, floats
//! equal to the source rounded to the stored type.

use std::path::Path;

use crate::ckpt::Checkpoint;
use crate::gguf::{GgmlType, GgufFile};
use bitnet_formats as formats;
use bitnet_formats::TernaryWeights;
use half::{bf16, f16};

use rayon::prelude::*;

use crate::error::{ConvertError, Result};
use crate::plan::{BATCH_BYTES, CHUNK_ELEMENTS, Plan, Planned, Source};
use crate::source::{RawFloat, read_dense, read_linear, read_norm};

/// `x` as stored in a float tensor of type `ty`, widened back to f32.
fn round_to(ty: GgmlType, x: f32) -> f32 {
    match ty {
        GgmlType::F16 => f16::from_f32(x).to_f32(),
        GgmlType::BF16 => bf16::from_f32(x).to_f32(),
        _ => x,
    }
}

/// Decodes a float tensor's bytes.
fn floats(ty: GgmlType, bytes: &[u8]) -> RawFloat<'_> {
    RawFloat { bytes, ty }
}

/// Checks a whole file; the first difference is the error.
pub fn verify(path: &Path, ckpt: &Checkpoint, dir: &Path, plan: &Plan) -> Result<()> {
    let fail = |what: String| ConvertError::Verify {
        path: path.to_path_buf(),
        what,
    };
    let file = GgufFile::open(path).map_err(|source| ConvertError::Gguf {
        action: "reopening",
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    for (key, want) in &plan.metadata {
        match file.get(key) {
            None => return Err(fail(format!("key '{key}' is missing"))),
            Some(got) if got != want => {
                return Err(fail(format!("key '{key}' is {got:?}, expected {want:?}")));
            }
            Some(_) => {}
        }
    }
    let infos = file.tensors();
    if infos.len() != plan.tensors.len() {
        return Err(fail(format!(
            "{} tensors, expected {}",
            infos.len(),
            plan.tensors.len()
        )));
    }
    for (info, t) in infos.iter().zip(&plan.tensors) {
        if info.name != t.name || info.dims != t.dims() || info.ggml_type != t.ty {
            return Err(fail(format!(
                "tensor '{}' {:?} {:?}, expected '{}' {:?} {:?}",
                info.name,
                info.dims,
                info.ggml_type,
                t.name,
                t.dims(),
                t.ty
            )));
        }
        let len = file.tensor_data(info).len();
        if !t.source.is_dense() && len != t.bytes {
            return Err(fail(format!(
                "tensor '{}' has {len} bytes, expected {}",
                t.name, t.bytes
            )));
        }
    }
    let report = |t: &Planned, e: Mismatch| match e {
        Mismatch::Convert(e) => e,
        Mismatch::Differs(what) => fail(format!("tensor '{}': {what}", t.name)),
    };
    // The writer's runs: checked in parallel, reported in file order.
    for range in plan.batches(BATCH_BYTES) {
        let (infos, tensors) = (&infos[range.clone()], &plan.tensors[range]);
        if let ([info], [t]) = (infos, tensors)
            && t.source.is_dense()
        {
            check_dense_chunked(&file, info, ckpt, dir, t).map_err(|e| report(t, e))?;
            continue;
        }
        let results: Vec<std::result::Result<(), Mismatch>> = infos
            .par_iter()
            .zip(tensors)
            .map(|(info, t)| {
                let result = check_tensor(ckpt, dir, plan, t, file.tensor_data(info));
                // Checked: drop both sides' pages so verifying keeps memory as low as
                // converting.
                file.release(info);
                for name in t.hf_sources() {
                    ckpt.release(&name, 0, ckpt.tensor_len(&name));
                }
                result
            })
            .collect();
        for (t, result) in tensors.iter().zip(results) {
            result.map_err(|e| report(t, e))?;
        }
    }
    Ok(())
}

/// The embedding or head, compared chunk by chunk with each chunk's pages released after use
/// on both sides, so `--verify` never has the largest tensor resident.
fn check_dense_chunked(
    file: &GgufFile,
    info: &crate::gguf::TensorInfo,
    ckpt: &Checkpoint,
    dir: &Path,
    t: &Planned,
) -> std::result::Result<(), Mismatch> {
    let (n, src_size) = {
        let src = read_dense(ckpt, dir, t)?;
        (src.len(), src.bytes.len() / src.len().max(1))
    };
    let out_size = t.bytes / n.max(1);
    if out_size * n != t.bytes {
        return Err(Mismatch::Differs(format!(
            "{} bytes for {n} elements",
            t.bytes
        )));
    }
    for start in (0..n).step_by(CHUNK_ELEMENTS) {
        let end = (start + CHUNK_ELEMENTS).min(n);
        {
            let src = read_dense(ckpt, dir, t)?;
            let data = file.tensor_data(info);
            let got = floats(t.ty, &data[start * out_size..end * out_size]);
            if let Err(Mismatch::Differs(what)) =
                compare_floats(end - start, |i| round_to(t.ty, src.get(start + i)), &got)
            {
                return Err(Mismatch::Differs(format!(
                    "in elements {start}..{end}: {what}"
                )));
            }
        }
        file.release_range(info, start * out_size, (end - start) * out_size);
        ckpt.release(&t.hf_name, start * src_size, (end - start) * src_size);
    }
    Ok(())
}

enum Mismatch {
    Convert(ConvertError),
    Differs(String),
}

impl From<ConvertError> for Mismatch {
    fn from(e: ConvertError) -> Self {
        Self::Convert(e)
    }
}

fn check_tensor(
    ckpt: &Checkpoint,
    dir: &Path,
    plan: &Plan,
    t: &Planned,
    data: &[u8],
) -> std::result::Result<(), Mismatch> {
    match t.source {
        Source::Linear(..) => {
            let src = read_linear(ckpt, dir, t)?;
            check_linear(t, &src, data)
        }
        Source::Norm(..) | Source::FinalNorm => {
            let src = read_norm(ckpt, dir, t)?;
            let got = floats(t.ty, data);
            compare_floats(src.len(), |i| src[i], &got)
        }
        Source::Embedding | Source::Head => {
            let src = read_dense(ckpt, dir, t)?;
            let got = floats(t.ty, data);
            compare_floats(src.len(), |i| round_to(t.ty, src.get(i)), &got)
        }
    }
    .map_err(|e| {
        // Keep the plan's type in the message: it tells which rounding was expected.
        match e {
            Mismatch::Differs(s) => Mismatch::Differs(format!(
                "{s} (stored as {:?}, outtype {})",
                t.ty,
                plan.outtype.name()
            )),
            other => other,
        }
    })
}

fn compare_floats(
    n: usize,
    want: impl Fn(usize) -> f32,
    got: &RawFloat<'_>,
) -> std::result::Result<(), Mismatch> {
    if got.len() != n {
        return Err(Mismatch::Differs(format!(
            "{} elements, expected {n}",
            got.len()
        )));
    }
    for i in 0..n {
        let (w, g) = (want(i), got.get(i));
        if w.to_bits() != g.to_bits() {
            return Err(Mismatch::Differs(format!(
                "element {i} is {g}, expected {w}"
            )));
        }
    }
    Ok(())
}

fn check_linear(
    t: &Planned,
    src: &TernaryWeights,
    data: &[u8],
) -> std::result::Result<(), Mismatch> {
    let (rows, cols) = (src.rows, src.cols);
    let decoded = match t.ty {
        GgmlType::I2_S => formats::decode_i2s(data, rows, cols),
        GgmlType::TQ2_0 => formats::decode_tq2_0(data, rows, cols),
        GgmlType::TQ1_0 => formats::decode_tq1_0(data, rows, cols),
        _ => {
            // Dequantised floats: each is value * scale rounded to the stored type.
            let got = floats(t.ty, data);
            return compare_floats(
                src.values.len(),
                |i| round_to(t.ty, f32::from(src.values[i]) * src.scale),
                &got,
            );
        }
    }
    .map_err(|e| Mismatch::Differs(format!("does not decode: {e}")))?;
    if let Some(i) = (0..src.values.len()).find(|&i| decoded.values[i] != src.values[i]) {
        return Err(Mismatch::Differs(format!(
            "element {i} (row {}, col {}) decodes to {}, expected {}",
            i / cols,
            i % cols,
            decoded.values[i],
            src.values[i]
        )));
    }
    // I2_S stores the scale in f32, the ggml formats in f16.
    let want_scale = match t.ty {
        GgmlType::I2_S => src.scale,
        _ => round_to(GgmlType::F16, src.scale),
    };
    let all_zero = src.values.iter().all(|&v| v == 0);
    if !all_zero && decoded.scale.to_bits() != want_scale.to_bits() {
        return Err(Mismatch::Differs(format!(
            "scale {} , expected {want_scale}",
            decoded.scale
        )));
    }
    Ok(())
}
