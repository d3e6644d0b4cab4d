//! The reader: maps a file (or takes bytes), validates every header field against the bytes
//! that are actually there, and hands out zero-copy tensor views.
//!
//! Every count and length read from the header is checked against the bytes left before
//! anything is allocated from it, so a corrupt or hostile file costs at most its own size in
//! memory and never panics (the fuzz target in `fuzz/` exercises this).

use std::fs::File;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{GgufError, Result};
use crate::types::{GgmlType, element_count};
use crate::value::{Array, Value, ValueType};

/// Default data alignment (when `general.alignment` is absent).
pub const DEFAULT_ALIGNMENT: usize = 32;

/// ggml's GGML_MAX_NAME: names must be shorter (the C buffer holds a terminating NUL).
pub const MAX_NAME_BYTES: usize = 64;

/// ggml's GGML_MAX_DIMS.
pub const MAX_DIMS: usize = 4;

/// Nesting limit for arrays of arrays (the format allows them; nothing writes deep ones).
const MAX_ARRAY_DEPTH: usize = 4;

/// One tensor of an opened file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Name.
    pub name: String,
    /// ggml dims (`ne`, fastest-varying first: a `[out, in]` matrix is `[in, out]`).
    pub dims: Vec<u64>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Exact data size in bytes.
    pub size_bytes: usize,
    /// Absolute byte offset of the data in the file.
    pub(crate) start: usize,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        // Checked when the file was opened.
        self.dims.iter().map(|&d| d as usize).product()
    }

    /// Absolute byte offset of the data in the file.
    pub fn file_offset(&self) -> usize {
        self.start
    }
}

enum Bytes {
    Map(Mmap),
    Owned(Vec<u8>),
    Static(&'static [u8]),
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
            Bytes::Static(s) => s,
        }
    }
}

/// A parsed GGUF file; tensor data stays in the mapping and is borrowed on demand.
pub struct GgufFile {
    bytes: Bytes,
    path: PathBuf,
    version: u32,
    alignment: usize,
    data_offset: usize,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// Bounds-checked little-endian cursor.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let available = self.remaining();
        match usize::try_from(n) {
            Ok(n) if n <= available => {
                let s = &self.buf[self.pos..self.pos + n];
                self.pos += n;
                Ok(s)
            }
            _ => Err(GgufError::Truncated {
                path: self.path.to_path_buf(),
                offset: self.pos,
                what: what(),
                needed: n,
                available,
            }),
        }
    }

    fn arr<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }

    /// A count of items each at least `min_size` bytes, checked against the bytes left.
    fn count(&mut self, min_size: usize, what: &dyn Fn() -> String) -> Result<usize> {
        let offset = self.pos;
        let n = self.u64(what)?;
        let fits = (n as u128) * (min_size as u128) <= self.remaining() as u128;
        if !fits {
            return Err(GgufError::CountTooLarge {
                path: self.path.to_path_buf(),
                offset,
                what: what(),
                count: n,
            });
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let len = self.u64(what)?;
        let offset = self.pos;
        let s = self.take(len, what)?;
        String::from_utf8(s.to_vec()).map_err(|_| GgufError::InvalidUtf8 {
            path: self.path.to_path_buf(),
            offset,
            what: what(),
        })
    }

    fn value(&mut self, key: &str, ty: u32, depth: usize) -> Result<Value> {
        let ty = ValueType::from_id(ty).ok_or_else(|| GgufError::UnknownValueType {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            id: ty,
        })?;
        let what = || format!("value of key '{key}'");
        Ok(match ty {
            ValueType::U8 => Value::U8(self.arr::<1>(&what)?[0]),
            ValueType::I8 => Value::I8(self.arr::<1>(&what)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.arr(&what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.arr(&what)?)),
            ValueType::U32 => Value::U32(self.u32(&what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.arr(&what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.arr(&what)?)),
            ValueType::Bool => Value::Bool(self.arr::<1>(&what)?[0] != 0),
            ValueType::String => Value::String(self.string(&what)?),
            ValueType::U64 => Value::U64(self.u64(&what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.arr(&what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.arr(&what)?)),
            ValueType::Array => Value::Array(self.array(key, depth)?),
        })
    }

    fn array(&mut self, key: &str, depth: usize) -> Result<Array> {
        let what = || format!("array of key '{key}'");
        if depth >= MAX_ARRAY_DEPTH {
            return Err(GgufError::UnknownValueType {
                path: self.path.to_path_buf(),
                key: key.to_string(),
                id: ValueType::Array.id(),
            });
        }
        let ety_id = self.u32(&what)?;
        let ety = ValueType::from_id(ety_id).ok_or_else(|| GgufError::UnknownValueType {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            id: ety_id,
        })?;
        let n = self.count(ety.min_encoded_size(), &|| {
            format!("array element (key '{key}')")
        })?;
        macro_rules! fixed {
            ($variant:ident, $t:ty, $size:literal) => {{
                let raw = self.take((n * $size) as u64, &what)?;
                Array::$variant(
                    raw.chunks_exact($size)
                        .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                        .collect(),
                )
            }};
        }
        Ok(match ety {
            ValueType::U8 => Array::U8(self.take(n as u64, &what)?.to_vec()),
            ValueType::I8 => Array::I8(
                self.take(n as u64, &what)?
                    .iter()
                    .map(|&b| b as i8)
                    .collect(),
            ),
            ValueType::Bool => Array::Bool(
                self.take(n as u64, &what)?
                    .iter()
                    .map(|&b| b != 0)
                    .collect(),
            ),
            ValueType::U16 => fixed!(U16, u16, 2),
            ValueType::I16 => fixed!(I16, i16, 2),
            ValueType::U32 => fixed!(U32, u32, 4),
            ValueType::I32 => fixed!(I32, i32, 4),
            ValueType::F32 => fixed!(F32, f32, 4),
            ValueType::U64 => fixed!(U64, u64, 8),
            ValueType::I64 => fixed!(I64, i64, 8),
            ValueType::F64 => fixed!(F64, f64, 8),
            ValueType::String => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.string(&what)?);
                }
                Array::String(v)
            }
            ValueType::Array => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.array(key, depth + 1)?);
                }
                Array::Array(v)
            }
        })
    }
}

impl GgufFile {
    /// Memory-maps and validates a GGUF v2/v3 file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        if file.metadata().map_err(io)?.is_dir() {
            return Err(io(std::io::Error::other("is a directory, not a GGUF file")));
        }
        // SAFETY: the mapping is read-only. As with every mmap-based loader (llama.cpp's
        // included), another process truncating the file while it is mapped is outside what
        // this program can guard against; nothing here writes through the mapping.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        Self::parse(Bytes::Map(map), path.to_path_buf())
    }

    /// Parses a GGUF file held in memory (tests, embedded models).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::parse(Bytes::Owned(bytes), PathBuf::from("<memory>"))
    }

    /// Like [`GgufFile::from_bytes`], naming the source in errors.
    pub fn from_bytes_named(bytes: Vec<u8>, name: impl Into<PathBuf>) -> Result<Self> {
        Self::parse(Bytes::Owned(bytes), name.into())
    }

    /// Parses GGUF bytes that live for the whole program (a model embedded with
    /// `include_bytes!`), in place: nothing is copied.
    pub fn from_static(bytes: &'static [u8], name: impl Into<PathBuf>) -> Result<Self> {
        Self::parse(Bytes::Static(bytes), name.into())
    }

    fn parse(bytes: Bytes, path: PathBuf) -> Result<Self> {
        let buf: &[u8] = &bytes;
        let mut c = Cursor {
            buf,
            pos: 0,
            path: &path,
        };
        let magic = c.take(4, &|| "magic".into())?;
        if magic != b"GGUF" {
            return Err(GgufError::BadMagic {
                path: path.clone(),
                found: String::from_utf8_lossy(magic).into_owned(),
            });
        }
        let version = c.u32(&|| "version".into())?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion {
                path: path.clone(),
                version,
            });
        }
        // A tensor info is at least name length (8) + n_dims (4) + type (4) + offset (8).
        let n_tensors = c.count(24, &|| "tensor".into())?;
        // A key-value pair is at least key length (8) + type (4) + one byte.
        let n_kv = c.count(13, &|| "metadata key".into())?;

        let mut metadata: Vec<(String, Value)> = Vec::with_capacity(n_kv);
        let mut seen_keys = std::collections::HashSet::with_capacity(n_kv);
        for i in 0..n_kv {
            let key = c.string(&|| format!("metadata key #{i}"))?;
            let ty = c.u32(&|| format!("type of key '{key}'"))?;
            let value = c.value(&key, ty, 0)?;
            if !seen_keys.insert(key.clone()) {
                return Err(GgufError::DuplicateKey {
                    path: path.clone(),
                    key,
                });
            }
            metadata.push((key, value));
        }

        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, Value::U32(a))) if *a != 0 && a.is_power_of_two() => *a as usize,
            Some((_, v)) => {
                return Err(GgufError::BadAlignment {
                    path: path.clone(),
                    found: format!("{v:?}"),
                });
            }
        };

        let mut raw = Vec::with_capacity(n_tensors);
        let mut seen_names = std::collections::HashSet::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = c.string(&|| format!("tensor name #{i}"))?;
            if name.len() >= MAX_NAME_BYTES {
                return Err(GgufError::NameTooLong {
                    len: name.len(),
                    name,
                });
            }
            let n_dims = c.u32(&|| format!("dim count of tensor '{name}'"))?;
            if n_dims as usize > MAX_DIMS {
                return Err(GgufError::TooManyDims { name, n_dims });
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(c.u64(&|| format!("dims of tensor '{name}'"))?);
            }
            let type_id = c.u32(&|| format!("type of tensor '{name}'"))?;
            let offset = c.u64(&|| format!("offset of tensor '{name}'"))?;
            if !seen_names.insert(name.clone()) {
                return Err(GgufError::DuplicateTensor {
                    path: path.clone(),
                    name,
                });
            }
            let ggml_type =
                GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
                    name: name.clone(),
                    id: type_id,
                })?;
            element_count(&name, &dims)?;
            let size_bytes = ggml_type.tensor_bytes(&name, &dims)?;
            if offset % alignment as u64 != 0 {
                return Err(GgufError::MisalignedTensor {
                    path: path.clone(),
                    name,
                    offset,
                    alignment,
                });
            }
            raw.push((name, dims, ggml_type, offset, size_bytes));
        }

        // The data section starts at the next multiple of the alignment after the header.
        let header_end = c.pos;
        let data_offset = header_end.div_ceil(alignment) * alignment;
        let file_size = buf.len();
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, dims, ggml_type, offset, size_bytes) in raw {
            let start = (data_offset as u64).checked_add(offset);
            let end = start.and_then(|s| s.checked_add(size_bytes as u64));
            match (start, end) {
                (Some(s), Some(e)) if e <= file_size as u64 => tensors.push(TensorInfo {
                    name,
                    dims,
                    ggml_type,
                    offset,
                    size_bytes,
                    start: s as usize,
                }),
                _ => {
                    return Err(GgufError::DataPastEnd {
                        path: path.clone(),
                        name,
                        start: start.unwrap_or(u64::MAX),
                        size: size_bytes,
                        file_size,
                    });
                }
            }
        }

        // Overlap: sort by start and compare neighbours (zero-sized tensors overlap nothing).
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_by_key(|&i| tensors[i].start);
        for pair in order.windows(2) {
            let (a, b) = (&tensors[pair[0]], &tensors[pair[1]]);
            if a.size_bytes > 0 && b.size_bytes > 0 && a.start + a.size_bytes > b.start {
                return Err(GgufError::OverlappingTensors {
                    path: path.clone(),
                    name: b.name.clone(),
                    other: a.name.clone(),
                });
            }
        }

        Ok(Self {
            bytes,
            path,
            version,
            alignment,
            data_offset,
            metadata,
            tensors,
        })
    }

    /// The path the file was opened from (`<memory>` for bytes).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data alignment in bytes.
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Absolute offset of the data section.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// File size in bytes.
    pub fn file_size(&self) -> usize {
        self.bytes.len()
    }

    /// All metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            path: self.path.clone(),
            key: key.to_string(),
        })
    }

    fn wrong(&self, key: &str, expected: &'static str, v: &Value) -> GgufError {
        GgufError::WrongType {
            path: self.path.clone(),
            key: key.to_string(),
            expected,
            found: v.type_description(),
        }
    }

    /// An integer key that fits a u32 (any integer type is accepted, as llama.cpp's files vary).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.require(key)?;
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| self.wrong(key, "an unsigned 32-bit integer", v))
    }

    /// A non-negative integer key.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_u64()
            .ok_or_else(|| self.wrong(key, "a non-negative integer", v))
    }

    /// A float key (f32, or f64 narrowed).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        match v {
            Value::F32(x) => Ok(*x),
            Value::F64(x) => Ok(*x as f32),
            _ => Err(self.wrong(key, "a float", v)),
        }
    }

    /// A bool key.
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        let v = self.require(key)?;
        v.as_bool().ok_or_else(|| self.wrong(key, "a bool", v))
    }

    /// A string key.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| self.wrong(key, "a string", v))
    }

    /// A string-array key.
    pub fn get_string_array(&self, key: &str) -> Result<&[String]> {
        let v = self.require(key)?;
        v.as_array()
            .and_then(Array::as_strings)
            .ok_or_else(|| self.wrong(key, "an array of strings", v))
    }

    /// A numeric-array key as f32.
    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        let v = self.require(key)?;
        v.as_array()
            .and_then(Array::iter_f32)
            .ok_or_else(|| self.wrong(key, "an array of numbers", v))
    }

    /// An integer-array key as i32 (every value must fit).
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>> {
        let v = self.require(key)?;
        v.as_array()
            .and_then(Array::iter_i64)
            .and_then(|xs| xs.into_iter().map(|x| i32::try_from(x).ok()).collect())
            .ok_or_else(|| self.wrong(key, "an array of 32-bit integers", v))
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str> {
        self.get_str("general.architecture")
    }

    /// The tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A tensor's data bytes (zero-copy; bounds were checked at open).
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        &self.bytes[info.start..info.start + info.size_bytes]
    }

    /// A tensor's data by name.
    pub fn tensor_bytes(&self, name: &str) -> Option<&[u8]> {
        self.tensor(name).map(|t| self.tensor_data(t))
    }

    /// Drops `len` bytes at `offset` of a tensor from this process's resident memory once the
    /// caller is done with them (streaming verification of files larger than RAM). The pages
    /// stay in the page cache and are faulted in again on the next access. Advisory: does
    /// nothing for in-memory files or on non-Unix systems.
    pub fn release_range(&self, info: &TensorInfo, offset: usize, len: usize) {
        let offset = offset.min(info.size_bytes);
        let len = len.min(info.size_bytes - offset);
        #[cfg(unix)]
        if let Bytes::Map(map) = &self.bytes {
            // SAFETY: the mapping is read-only and file-backed, so MADV_DONTNEED loses
            // nothing: the next read faults the same contents back in from the file.
            unsafe {
                let _ = map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    info.start + offset,
                    len,
                );
            }
        }
        #[cfg(not(unix))]
        let _ = (offset, len);
    }

    /// [`GgufFile::release_range`] over the whole tensor.
    pub fn release(&self, info: &TensorInfo) {
        self.release_range(info, 0, info.size_bytes);
    }
}
