//! Interop helper for `scripts/interop/gguf_interop.sh`, which checks this crate against the
//! Python `gguf` package (llama.cpp's reference reader and writer).
//!
//! `interop write FILE.gguf` writes a deterministic file with one key of every value type,
//! typed arrays, and F32, F16 and TQ2_0 tensors; `interop dump FILE.gguf` prints any GGUF's
//! metadata and its F32/F16 tensors as JSON for the script to compare.

use bitnet_formats::{self as formats, TernaryWeights};
use bitnet_gguf::{Array, GgmlType, GgufFile, GgufWriter, TensorSpec, Value};
use half::f16;
use serde_json::{Value as Json, json};

fn sample() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(2)
        .ok_or("usage: interop write FILE.gguf")?;
    let kv = |k: &str, v: Value| (k.to_string(), v);
    let meta = vec![
        kv("general.architecture", Value::String("interop".into())),
        kv("t.u8", Value::U8(200)),
        kv("t.i8", Value::I8(-100)),
        kv("t.u16", Value::U16(60000)),
        kv("t.i16", Value::I16(-30000)),
        kv("t.u32", Value::U32(4_000_000_000)),
        kv("t.i32", Value::I32(-2_000_000_000)),
        kv("t.f32", Value::F32(0.1)),
        kv("t.bool", Value::Bool(true)),
        kv("t.string", Value::String("héllo 🦀".into())),
        kv("t.u64", Value::U64(1 << 60)),
        kv("t.i64", Value::I64(-(1 << 60))),
        kv("t.f64", Value::F64(0.1)),
        kv("t.arr_i32", Value::Array(Array::I32(vec![-1, 0, 7]))),
        kv("t.arr_f32", Value::Array(Array::F32(vec![0.5, -1.25]))),
        kv(
            "t.arr_str",
            Value::Array(Array::String(vec!["a".into(), "Ġb".into()])),
        ),
        kv("t.arr_u8", Value::Array(Array::U8(vec![1, 2, 3]))),
    ];
    let f32_data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
    let f16_data: Vec<f16> = (0..16)
        .map(|i| f16::from_f32(i as f32 / 8.0 - 1.0))
        .collect();
    let ternary = TernaryWeights {
        rows: 2,
        cols: 256,
        values: (0..512).map(|i| ((i * 7 + i / 5) % 3) as i8 - 1).collect(),
        scale: 0.5,
    };
    let tq2 = formats::encode_tq2_0(&ternary)?;
    let spec = |name: &str, dims: &[u64], t| TensorSpec {
        name: name.into(),
        dims: dims.to_vec(),
        ggml_type: t,
    };
    let specs = vec![
        spec("w.f32", &[4, 3], GgmlType::F32),
        spec("w.f16", &[8, 2], GgmlType::F16),
        spec("w.tq2", &[256, 2], GgmlType::TQ2_0),
    ];
    let mut w = GgufWriter::create(&path, true, meta, specs)?;
    w.write_tensor("w.f32", bytemuck::cast_slice(&f32_data))?;
    let f16_bytes: Vec<u8> = f16_data.iter().flat_map(|x| x.to_le_bytes()).collect();
    w.write_tensor("w.f16", &f16_bytes)?;
    w.write_tensor("w.tq2", &tq2)?;
    w.finish()?;
    let expected = json!({
        "w.f32": f32_data,
        "w.f16": f16_data.iter().map(|x| x.to_f32()).collect::<Vec<_>>(),
        "w.tq2": ternary.values.iter().map(|&v| f32::from(v) * 0.5).collect::<Vec<_>>(),
    });
    println!("{expected}");
    Ok(())
}

fn value_json(v: &Value) -> Json {
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F32(x) => json!(x),
        Value::F64(x) => json!(x),
        Value::Bool(x) => json!(x),
        Value::String(x) => json!(x),
        Value::Array(a) => match a {
            Array::U8(v) => json!(v),
            Array::I8(v) => json!(v),
            Array::U16(v) => json!(v),
            Array::I16(v) => json!(v),
            Array::U32(v) => json!(v),
            Array::I32(v) => json!(v),
            Array::U64(v) => json!(v),
            Array::I64(v) => json!(v),
            Array::F32(v) => json!(v),
            Array::F64(v) => json!(v),
            Array::Bool(v) => json!(v),
            Array::String(v) => json!(v),
            Array::Array(_) => Json::Null,
        },
    }
}

fn dump() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(2)
        .ok_or("usage: interop dump FILE.gguf")?;
    let f = GgufFile::open(&path)?;
    let metadata: serde_json::Map<String, Json> = f
        .metadata()
        .iter()
        .map(|(k, v)| {
            let ty = match v {
                Value::Array(a) => format!("array:{}", a.element_type().name()),
                v => v.value_type().name().to_string(),
            };
            (k.clone(), json!({"type": ty, "value": value_json(v)}))
        })
        .collect();
    let mut tensors = serde_json::Map::new();
    for t in f.tensors() {
        let d = f.tensor_data(t);
        let values: Vec<f32> = match t.ggml_type {
            GgmlType::F32 => d
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            GgmlType::F16 => d
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            _ => continue,
        };
        tensors.insert(
            t.name.clone(),
            json!({"type": t.ggml_type.name(), "dims": t.dims, "values": values}),
        );
    }
    println!(
        "{}",
        json!({"version": f.version(), "alignment": f.alignment(), "metadata": metadata, "tensors": tensors})
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let r = match std::env::args().nth(1).as_deref() {
        Some("write") => sample(),
        Some("dump") => dump(),
        _ => Err("usage: interop write|dump FILE.gguf".into()),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("interop: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
