//! `inspect`: a GGUF file's header, metadata and tensor table, as text or JSON. It reads any
//! GGUF (llama.cpp, bitnet.cpp, ours): nothing here depends on the architecture. Arrays longer
//! than [`SUMMARY_ITEMS`] are summarised (the count and the first items) unless `--full`.

use std::io::Write;

use anyhow::Result;
use bitnet_gguf::{GgufFile, Value};
use serde_json::{Value as Json, json};

use crate::args::InspectArgs;
use crate::common;

/// Arrays up to this length are shown in full.
const SUMMARY_ITEMS: usize = 8;

/// An array's element type name and its items as JSON.
fn array_items(value: &Value) -> Option<(&'static str, Vec<Json>)> {
    let Value::Array(arr) = value else {
        return None;
    };
    Some(array_json(arr))
}

/// Scalar values as JSON; arrays go through [`array_items`].
fn scalar_json(value: &Value) -> Json {
    match value {
        Value::U8(v) => json!(v),
        Value::I8(v) => json!(v),
        Value::U16(v) => json!(v),
        Value::I16(v) => json!(v),
        Value::U32(v) => json!(v),
        Value::I32(v) => json!(v),
        Value::U64(v) => json!(v),
        Value::I64(v) => json!(v),
        Value::F32(v) => json!(v),
        Value::F64(v) => json!(v),
        Value::Bool(v) => json!(v),
        Value::String(v) => json!(v),
        Value::Array(_) => Json::Null,
    }
}

fn array_json(arr: &bitnet_gguf::Array) -> (&'static str, Vec<Json>) {
    use bitnet_gguf::Array as A;
    fn all<T: serde::Serialize>(v: &[T]) -> Vec<Json> {
        v.iter().map(|x| json!(x)).collect()
    }
    match arr {
        A::U8(v) => ("u8", all(v)),
        A::I8(v) => ("i8", all(v)),
        A::U16(v) => ("u16", all(v)),
        A::I16(v) => ("i16", all(v)),
        A::U32(v) => ("u32", all(v)),
        A::I32(v) => ("i32", all(v)),
        A::U64(v) => ("u64", all(v)),
        A::I64(v) => ("i64", all(v)),
        A::F32(v) => ("f32", all(v)),
        A::F64(v) => ("f64", all(v)),
        A::Bool(v) => ("bool", all(v)),
        A::String(v) => ("string", all(v)),
        A::Array(v) => (
            "array",
            v.iter().map(|a| Json::Array(array_json(a).1)).collect(),
        ),
    }
}

/// A metadata value as JSON: scalars as themselves, short arrays as arrays, long ones as
/// `{"type": "array", "element_type", "len", "first": [...]}`.
fn value_json(value: &Value, full: bool) -> Json {
    match array_items(value) {
        None => scalar_json(value),
        Some((_, items)) if full || items.len() <= SUMMARY_ITEMS => Json::Array(items),
        Some((ty, items)) => json!({
            "type": "array",
            "element_type": ty,
            "len": items.len(),
            "first": items[..SUMMARY_ITEMS].to_vec(),
        }),
    }
}

/// A metadata value as one line of text: long arrays as `[N strings: a, b, c, ...]`.
fn value_text(value: &Value, full: bool) -> String {
    match array_items(value) {
        None => match value {
            Value::String(s) => {
                let shown: String = s.chars().take(120).collect();
                if shown.len() < s.len() {
                    format!("{:?}... ({} bytes)", shown, s.len())
                } else {
                    format!("{s:?}")
                }
            }
            _ => scalar_json(value).to_string(),
        },
        Some((ty, items)) => {
            let n = items.len();
            let shown: Vec<String> = items
                .iter()
                .take(if full { n } else { SUMMARY_ITEMS.min(n) })
                .map(Json::to_string)
                .collect();
            if full || n <= SUMMARY_ITEMS {
                format!("[{}]", shown.join(", "))
            } else {
                let plural = if ty == "string" {
                    "strings".to_string()
                } else {
                    ty.to_string()
                };
                format!("[{n} {plural}: {}, ...]", shown.join(", "))
            }
        }
    }
}

/// Prints the file's contents.
pub fn run(args: InspectArgs) -> Result<()> {
    common::require_regular_file(&args.file)?;
    let file = GgufFile::open(&args.file)?;
    let tensor_bytes: u64 = file.tensors().iter().map(|t| t.size_bytes as u64).sum();
    let mut out = std::io::stdout().lock();
    if args.json {
        let metadata: serde_json::Map<String, Json> = file
            .metadata()
            .iter()
            .map(|(k, v)| (k.clone(), value_json(v, args.full)))
            .collect();
        let tensors: Vec<Json> = file
            .tensors()
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "type": t.ggml_type.name(),
                    "shape": t.dims,
                    "bytes": t.size_bytes,
                    "offset": t.offset,
                })
            })
            .collect();
        let value = json!({
            "file": args.file.display().to_string(),
            "version": file.version(),
            "alignment": file.alignment(),
            "metadata": metadata,
            "tensors": tensors,
            "tensor_bytes": tensor_bytes,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        writeln!(
            out,
            "{}: GGUF v{}, alignment {}, {} metadata keys, {} tensors, {} of tensor data",
            args.file.display(),
            file.version(),
            file.alignment(),
            file.metadata().len(),
            file.tensors().len(),
            common::human_bytes(tensor_bytes),
        )?;
        writeln!(out, "\nmetadata:")?;
        let key_width = file
            .metadata()
            .iter()
            .map(|(k, _)| k.len())
            .max()
            .unwrap_or(0);
        for (k, v) in file.metadata() {
            writeln!(out, "  {k:<key_width$} = {}", value_text(v, args.full))?;
        }
        writeln!(out, "\ntensors:")?;
        let name_width = file
            .tensors()
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            out,
            "  {:<name_width$}  {:<8}  {:<20}  {:>12}  {:>12}",
            "name", "type", "shape", "bytes", "offset"
        )?;
        for t in file.tensors() {
            let shape = format!("{:?}", t.dims);
            writeln!(
                out,
                "  {:<name_width$}  {:<8}  {:<20}  {:>12}  {:>12}",
                t.name,
                t.ggml_type.name(),
                shape,
                t.size_bytes,
                t.offset
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
