//! GGUF v3 writing (streamed, temporary file + fsync + rename) and reading (for `--verify`).
//!
//! This mirrors the announced `bitnet-gguf` API (`GgufWriter::create/write_tensor/finish`,
//! `GgufFile::open/get/tensors/tensor_data`, `Value`, `Array`, `GgmlType`) so the converter
//! can switch to that crate by changing its imports; it exists because that crate had not
//! landed when the converter had to ship. No crate on crates.io writes GGUF with the
//! bitnet.cpp I2_S type, which is why this is written by hand.
//!
//! Layout (little-endian): magic `GGUF`, version 3, tensor count u64, key count u64; keys
//! (string, type u32, value); tensor infos (name, n_dims u32, dims u64[], type u32, offset
//! u64 relative to the data section); padding to `general.alignment` (32); tensor data, each
//! tensor padded to 32 bytes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

/// Data alignment (GGUF default, what llama.cpp and bitnet.cpp write).
pub const ALIGNMENT: usize = 32;

/// Why a GGUF file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// An OS error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The output exists and overwriting was not requested.
    #[error("{path} exists")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Tensors were written out of order, with the wrong size, or not at all.
    #[error("tensor '{name}': {reason}")]
    Tensor {
        /// The tensor.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The file is not valid GGUF.
    #[error("{path}: malformed GGUF at byte {offset}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: usize,
        /// What.
        reason: String,
    },
}

type Result<T> = std::result::Result<T, GgufError>;

/// ggml tensor types the converter writes.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float (id 0).
    F32,
    /// 16-bit IEEE float (id 1).
    F16,
    /// bfloat16 (id 30).
    BF16,
    /// ggml TQ1_0 (id 34).
    TQ1_0,
    /// ggml TQ2_0 (id 35).
    TQ2_0,
    /// bitnet.cpp I2_S (id 36).
    I2_S,
    /// Any other id (read only).
    Other(u32),
}

impl GgmlType {
    /// The GGUF type id.
    pub fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::BF16 => 30,
            Self::TQ1_0 => 34,
            Self::TQ2_0 => 35,
            Self::I2_S => 36,
            Self::Other(id) => id,
        }
    }

    fn from_id(id: u32) -> Self {
        match id {
            0 => Self::F32,
            1 => Self::F16,
            30 => Self::BF16,
            34 => Self::TQ1_0,
            35 => Self::TQ2_0,
            36 => Self::I2_S,
            other => Self::Other(other),
        }
    }

    /// Data bytes of a tensor with ggml dims `dims` (`ne`, fastest first), if known.
    pub fn tensor_bytes(self, dims: &[u64]) -> Option<usize> {
        let n = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(usize::try_from(d).ok()?))?;
        match self {
            Self::F32 => n.checked_mul(4),
            Self::F16 | Self::BF16 => n.checked_mul(2),
            Self::TQ1_0 => Some(n / 256 * 54),
            Self::TQ2_0 => Some(n / 256 * 66),
            Self::I2_S => Some(n / 4 + 32),
            Self::Other(_) => None,
        }
    }
}

/// An array metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    /// Strings.
    String(Vec<String>),
    /// i32 values.
    I32(Vec<i32>),
    /// f32 values.
    F32(Vec<f32>),
    /// u32 values.
    U32(Vec<u32>),
    /// Other element types (kept as raw scalars when read).
    Other(Vec<Value>),
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// u8.
    U8(u8),
    /// i8.
    I8(i8),
    /// u16.
    U16(u16),
    /// i16.
    I16(i16),
    /// u32.
    U32(u32),
    /// i32.
    I32(i32),
    /// f32.
    F32(f32),
    /// bool.
    Bool(bool),
    /// string.
    String(String),
    /// array.
    Array(Array),
    /// u64.
    U64(u64),
    /// i64.
    I64(i64),
    /// f64.
    F64(f64),
}

/// A tensor to be written: name, ggml dims (`ne`, fastest first: `[in, out]`), type.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Name.
    pub name: String,
    /// ggml dims.
    pub dims: Vec<u64>,
    /// Storage type.
    pub ggml_type: GgmlType,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    let ty = |out: &mut Vec<u8>, t: u32| out.extend_from_slice(&t.to_le_bytes());
    match v {
        Value::U8(x) => {
            ty(out, 0);
            out.push(*x)
        }
        Value::I8(x) => {
            ty(out, 1);
            out.push(*x as u8)
        }
        Value::U16(x) => {
            ty(out, 2);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::I16(x) => {
            ty(out, 3);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::U32(x) => {
            ty(out, 4);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::I32(x) => {
            ty(out, 5);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::F32(x) => {
            ty(out, 6);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::Bool(x) => {
            ty(out, 7);
            out.push(u8::from(*x))
        }
        Value::String(s) => {
            ty(out, 8);
            put_str(out, s)
        }
        Value::U64(x) => {
            ty(out, 10);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::I64(x) => {
            ty(out, 11);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::F64(x) => {
            ty(out, 12);
            out.extend_from_slice(&x.to_le_bytes())
        }
        Value::Array(a) => {
            ty(out, 9);
            match a {
                Array::String(v) => {
                    ty(out, 8);
                    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    v.iter().for_each(|s| put_str(out, s));
                }
                Array::I32(v) => {
                    ty(out, 5);
                    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    v.iter()
                        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
                }
                Array::U32(v) => {
                    ty(out, 4);
                    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    v.iter()
                        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
                }
                Array::F32(v) => {
                    ty(out, 6);
                    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    v.iter()
                        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
                }
                Array::Other(_) => unreachable!("the converter never writes Array::Other"),
            }
        }
    }
}

fn pad_len(n: usize) -> usize {
    (ALIGNMENT - n % ALIGNMENT) % ALIGNMENT
}

/// Writes a GGUF file tensor by tensor, in the declared order, to a temporary file next to
/// the output; [`GgufWriter::finish`] syncs it and renames it into place.
pub struct GgufWriter {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    overwrite: bool,
    specs: Vec<(TensorSpec, usize)>,
    next: usize,
    /// Bytes written of the tensor begun with [`GgufWriter::begin_tensor`], if any.
    open: Option<usize>,
    done: bool,
}

impl GgufWriter {
    /// Creates the temporary file and writes the header, metadata and tensor infos.
    pub fn create(
        path: &Path,
        overwrite: bool,
        metadata: Vec<(String, Value)>,
        tensors: Vec<TensorSpec>,
    ) -> Result<Self> {
        if !overwrite && path.exists() {
            return Err(GgufError::Exists {
                path: path.to_path_buf(),
            });
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out.gguf".into());
        let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
        let io = |source| GgufError::Io {
            path: tmp.clone(),
            source,
        };
        let mut head = Vec::new();
        head.extend_from_slice(b"GGUF");
        head.extend_from_slice(&3u32.to_le_bytes());
        head.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        for (k, v) in &metadata {
            put_str(&mut head, k);
            put_value(&mut head, v);
        }
        let mut specs = Vec::with_capacity(tensors.len());
        let mut offset = 0usize;
        for t in tensors {
            let size = t
                .ggml_type
                .tensor_bytes(&t.dims)
                .ok_or_else(|| GgufError::Tensor {
                    name: t.name.clone(),
                    reason: format!("cannot size type {:?} with dims {:?}", t.ggml_type, t.dims),
                })?;
            put_str(&mut head, &t.name);
            head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            t.dims
                .iter()
                .for_each(|d| head.extend_from_slice(&d.to_le_bytes()));
            head.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            head.extend_from_slice(&(offset as u64).to_le_bytes());
            offset += size + pad_len(size);
            specs.push((t, size));
        }
        head.resize(head.len() + pad_len(head.len()), 0);
        let file = File::create(&tmp).map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&head).map_err(io)?;
        Ok(Self {
            out,
            tmp,
            path: path.to_path_buf(),
            overwrite,
            specs,
            next: 0,
            open: None,
            done: false,
        })
    }

    /// Appends the next tensor's data; it must be the next declared tensor, of its exact size.
    pub fn write_tensor(&mut self, name: &str, data: &[u8]) -> Result<()> {
        self.begin_tensor(name)?;
        self.write_chunk(data)?;
        self.end_tensor()
    }

    /// Starts the next declared tensor, whose data then comes in pieces through
    /// [`GgufWriter::write_chunk`] (so a large tensor never has to be held whole in memory).
    pub fn begin_tensor(&mut self, name: &str) -> Result<()> {
        let expected = match (self.open, self.specs.get(self.next)) {
            (Some(_), _) => Some("the previous tensor is not finished".to_string()),
            (None, None) => Some("more tensors written than declared".to_string()),
            (None, Some((spec, _))) if spec.name != name => {
                Some(format!("expected '{}' next", spec.name))
            }
            _ => None,
        };
        if let Some(reason) = expected {
            return Err(GgufError::Tensor {
                name: name.into(),
                reason,
            });
        }
        self.open = Some(0);
        Ok(())
    }

    /// Appends data to the tensor begun with [`GgufWriter::begin_tensor`].
    pub fn write_chunk(&mut self, data: &[u8]) -> Result<()> {
        let (name, size) = self.current();
        let written = match self.open {
            Some(w) if w + data.len() <= size => w,
            _ => {
                return Err(GgufError::Tensor {
                    name,
                    reason: format!("data beyond its {size} bytes, or no tensor begun"),
                });
            }
        };
        self.out.write_all(data).map_err(|source| GgufError::Io {
            path: self.tmp.clone(),
            source,
        })?;
        self.open = Some(written + data.len());
        Ok(())
    }

    /// Finishes the current tensor: checks its size and pads to the alignment.
    pub fn end_tensor(&mut self) -> Result<()> {
        let (name, size) = self.current();
        if self.open != Some(size) {
            return Err(GgufError::Tensor {
                name,
                reason: format!("{:?} bytes written, expected {size}", self.open),
            });
        }
        let pad = pad_len(size);
        self.out
            .write_all(&[0u8; ALIGNMENT][..pad])
            .map_err(|source| GgufError::Io {
                path: self.tmp.clone(),
                source,
            })?;
        self.open = None;
        self.next += 1;
        Ok(())
    }

    /// Name and size of the tensor being written (or next to be).
    fn current(&self) -> (String, usize) {
        match self.specs.get(self.next) {
            Some((spec, size)) => (spec.name.clone(), *size),
            None => ("<none>".to_string(), 0),
        }
    }

    /// The final output path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, fsyncs and renames the file into place; returns the final path.
    pub fn finish(mut self) -> Result<PathBuf> {
        if self.next != self.specs.len() {
            return Err(GgufError::Tensor {
                name: self.specs[self.next].0.name.clone(),
                reason: "declared but never written".into(),
            });
        }
        let tmp = self.tmp.clone();
        let io = |source| GgufError::Io {
            path: tmp.clone(),
            source,
        };
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_all().map_err(io)?;
        if !self.overwrite && self.path.exists() {
            return Err(GgufError::Exists {
                path: self.path.clone(),
            });
        }
        std::fs::rename(&self.tmp, &self.path).map_err(|source| GgufError::Io {
            path: self.path.clone(),
            source,
        })?;
        self.done = true;
        Ok(self.path.clone())
    }
}

impl Drop for GgufWriter {
    /// A conversion that fails or is abandoned leaves no temporary file behind.
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// One tensor of an opened file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Name.
    pub name: String,
    /// ggml dims (fastest first).
    pub dims: Vec<u64>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Absolute byte range in the file.
    range: (usize, usize),
}

/// A GGUF file opened for reading (memory-mapped).
pub struct GgufFile {
    map: Mmap,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
}

/// Bounds-checked cursor over the mapped bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn err(&self, reason: impl Into<String>) -> GgufError {
        GgufError::Malformed {
            path: self.path.to_path_buf(),
            offset: self.pos,
            reason: reason.into(),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err(format!("{n} bytes past the end of the file")))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn len(&mut self) -> Result<usize> {
        let n = self.u64()?;
        // Every element takes at least one byte: a count beyond the remaining bytes is corrupt.
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.buf.len() - self.pos)
            .ok_or_else(|| self.err(format!("count {n} exceeds the file")))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.len()?;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }
    fn scalar(&mut self, ty: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.arr::<1>()?[0]),
            1 => Value::I8(self.arr::<1>()?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.arr()?)),
            3 => Value::I16(i16::from_le_bytes(self.arr()?)),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(i32::from_le_bytes(self.arr()?)),
            6 => Value::F32(f32::from_le_bytes(self.arr()?)),
            7 => Value::Bool(self.arr::<1>()?[0] != 0),
            8 => Value::String(self.string()?),
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.arr()?)),
            12 => Value::F64(f64::from_le_bytes(self.arr()?)),
            other => return Err(self.err(format!("unknown value type {other}"))),
        })
    }
    fn value(&mut self, ty: u32) -> Result<Value> {
        if ty != 9 {
            return self.scalar(ty);
        }
        let ety = self.u32()?;
        let n = self.len()?;
        let mut items = Vec::with_capacity(n.min(1 << 20));
        for _ in 0..n {
            if ety == 9 {
                return Err(self.err("nested arrays are not supported"));
            }
            items.push(self.scalar(ety)?);
        }
        let all = |f: fn(&Value) -> bool| items.iter().all(f);
        Ok(Value::Array(match ety {
            8 if all(|v| matches!(v, Value::String(_))) => Array::String(
                items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
            ),
            5 => Array::I32(
                items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::I32(x) => Some(x),
                        _ => None,
                    })
                    .collect(),
            ),
            4 => Array::U32(
                items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::U32(x) => Some(x),
                        _ => None,
                    })
                    .collect(),
            ),
            6 => Array::F32(
                items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::F32(x) => Some(x),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => Array::Other(items),
        }))
    }
}

impl GgufFile {
    /// Maps and parses a GGUF v2/v3 file.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let f = File::open(path).map_err(io)?;
        // SAFETY: read-only mapping of a file this process just wrote (or the caller names);
        // it is only read.
        let map = unsafe { Mmap::map(&f) }.map_err(io)?;
        let (metadata, tensors) = {
            let mut c = Cursor {
                buf: &map,
                pos: 0,
                path,
            };
            if c.take(4)? != b"GGUF" {
                return Err(c.err("not a GGUF file (bad magic)"));
            }
            let version = c.u32()?;
            if !(2..=3).contains(&version) {
                return Err(c.err(format!("unsupported GGUF version {version}")));
            }
            let n_tensors = c.len()?;
            let n_kv = c.len()?;
            let mut metadata = Vec::with_capacity(n_kv.min(1 << 16));
            for _ in 0..n_kv {
                let k = c.string()?;
                let ty = c.u32()?;
                let v = c.value(ty)?;
                metadata.push((k, v));
            }
            let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
                Some((_, Value::U32(a))) if *a > 0 => *a as usize,
                _ => ALIGNMENT,
            };
            let mut raw = Vec::with_capacity(n_tensors.min(1 << 16));
            for _ in 0..n_tensors {
                let name = c.string()?;
                let nd = c.u32()?;
                if nd > 4 {
                    return Err(c.err(format!("tensor '{name}' has {nd} dims (max 4)")));
                }
                let dims = (0..nd).map(|_| c.u64()).collect::<Result<Vec<_>>>()?;
                let ggml_type = GgmlType::from_id(c.u32()?);
                let offset = c.u64()?;
                raw.push((name, dims, ggml_type, offset));
            }
            let data_start = c.pos + (alignment - c.pos % alignment) % alignment;
            let mut tensors = Vec::with_capacity(raw.len());
            for (name, dims, ggml_type, offset) in raw {
                let size = ggml_type.tensor_bytes(&dims);
                let range = size
                    .and_then(|s| {
                        let start = data_start.checked_add(usize::try_from(offset).ok()?)?;
                        Some((start, start.checked_add(s)?))
                    })
                    .filter(|&(_, end)| end <= map.len())
                    .ok_or_else(|| c.err(format!("tensor '{name}' data lies outside the file")))?;
                tensors.push(TensorInfo {
                    name,
                    dims,
                    ggml_type,
                    range,
                });
            }
            (metadata, tensors)
        };
        Ok(Self {
            map,
            metadata,
            tensors,
        })
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// A tensor's data bytes.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        &self.map[info.range.0..info.range.1]
    }

    /// Drops a tensor's pages from this process's resident memory once it has been checked
    /// (see [`crate::ckpt::release_pages`]); the caller must hold no slice of it.
    pub fn release(&self, info: &TensorInfo) {
        self.release_range(info, 0, info.range.1 - info.range.0);
    }

    /// Like [`GgufFile::release`], for `len` bytes at byte `offset` of the tensor.
    pub fn release_range(&self, info: &TensorInfo, offset: usize, len: usize) {
        let size = info.range.1 - info.range.0;
        let offset = offset.min(size);
        crate::ckpt::release_pages(&self.map, info.range.0 + offset, len.min(size - offset));
    }
}
