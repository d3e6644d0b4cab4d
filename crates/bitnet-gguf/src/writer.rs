//! The writer: streams tensors one at a time into a temporary file beside the output, then
//! fsyncs and renames it into place, so a crash or an error never leaves a half-written model
//! under the final name, and an existing output survives unless overwriting was asked for.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{GgufError, Result};
use crate::reader::{DEFAULT_ALIGNMENT, MAX_DIMS, MAX_NAME_BYTES};
use crate::types::GgmlType;
use crate::value::{Array, Value};

/// A tensor to be written: name, ggml dims (`ne`, fastest first: `[in, out]`), type.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Name (at most 63 bytes).
    pub name: String,
    /// ggml dims (at most 4).
    pub dims: Vec<u64>,
    /// Storage type.
    pub ggml_type: GgmlType,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_array_body(out: &mut Vec<u8>, a: &Array) {
    out.extend_from_slice(&a.element_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            $v.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()))
        };
    }
    match a {
        Array::U8(v) => out.extend_from_slice(v),
        Array::I8(v) => each!(v),
        Array::U16(v) => each!(v),
        Array::I16(v) => each!(v),
        Array::U32(v) => each!(v),
        Array::I32(v) => each!(v),
        Array::F32(v) => each!(v),
        Array::U64(v) => each!(v),
        Array::I64(v) => each!(v),
        Array::F64(v) => each!(v),
        Array::Bool(v) => v.iter().for_each(|&b| out.push(u8::from(b))),
        Array::String(v) => v.iter().for_each(|s| put_str(out, s)),
        Array::Array(v) => v.iter().for_each(|inner| put_array_body(out, inner)),
    }
}

/// Appends a value's type id and encoding.
fn put_value(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(&v.value_type().id().to_le_bytes());
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_str(out, s),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Array(a) => put_array_body(out, a),
    }
}

fn pad_len(n: usize, alignment: usize) -> usize {
    (alignment - n % alignment) % alignment
}

/// Encodes the header, metadata and tensor infos (padded to the alignment); returns the bytes
/// and each tensor's data size.
pub(crate) fn encode_header(
    metadata: &[(String, Value)],
    tensors: &[TensorSpec],
) -> Result<(Vec<u8>, Vec<usize>, usize)> {
    let tensor_err = |name: &str, reason: String| GgufError::Tensor {
        name: name.to_string(),
        reason,
    };
    let mut keys = HashSet::new();
    for (k, _) in metadata {
        if !keys.insert(k.as_str()) {
            return Err(GgufError::DuplicateKey {
                path: PathBuf::from("<writer>"),
                key: k.clone(),
            });
        }
    }
    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, Value::U32(a))) if *a != 0 && a.is_power_of_two() => *a as usize,
        Some((_, v)) => {
            return Err(GgufError::BadAlignment {
                path: PathBuf::from("<writer>"),
                found: format!("{v:?}"),
            });
        }
    };
    let mut head = Vec::new();
    head.extend_from_slice(b"GGUF");
    head.extend_from_slice(&3u32.to_le_bytes());
    head.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    head.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut head, k);
        put_value(&mut head, v);
    }
    let mut names = HashSet::new();
    let mut sizes = Vec::with_capacity(tensors.len());
    let mut offset = 0usize;
    for t in tensors {
        if t.name.len() >= MAX_NAME_BYTES {
            return Err(GgufError::NameTooLong {
                name: t.name.clone(),
                len: t.name.len(),
            });
        }
        if t.dims.len() > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                name: t.name.clone(),
                n_dims: t.dims.len() as u32,
            });
        }
        if !names.insert(t.name.as_str()) {
            return Err(tensor_err(&t.name, "declared twice".into()));
        }
        let size = t.ggml_type.tensor_bytes(&t.name, &t.dims)?;
        put_str(&mut head, &t.name);
        head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        t.dims
            .iter()
            .for_each(|d| head.extend_from_slice(&d.to_le_bytes()));
        head.extend_from_slice(&t.ggml_type.id().to_le_bytes());
        head.extend_from_slice(&(offset as u64).to_le_bytes());
        offset = offset
            .checked_add(size + pad_len(size, alignment))
            .ok_or_else(|| tensor_err(&t.name, "file size overflows".into()))?;
        sizes.push(size);
    }
    head.resize(head.len() + pad_len(head.len(), alignment), 0);
    Ok((head, sizes, alignment))
}

/// Writes a GGUF v3 file tensor by tensor, in the declared order, to a temporary file next to
/// the output; [`GgufWriter::finish`] syncs it and renames it into place. Dropping the writer
/// before `finish` removes the temporary file.
pub struct GgufWriter {
    out: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    overwrite: bool,
    specs: Vec<(TensorSpec, usize)>,
    alignment: usize,
    next: usize,
    /// Bytes written of the tensor begun with [`GgufWriter::begin_tensor`], if any.
    open: Option<usize>,
    done: bool,
}

impl std::fmt::Debug for GgufWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufWriter")
            .field("path", &self.path)
            .field("tensors", &self.specs.len())
            .field("written", &self.next)
            .finish_non_exhaustive()
    }
}

/// The temporary file a writer of `path` run by process `pid` writes (`.<name>.<pid>.tmp`
/// beside it).
fn temp_path_for(path: &Path, file_name: &str, pid: u32) -> PathBuf {
    path.with_file_name(format!(".{file_name}.{pid}.tmp"))
}

/// The temporary file [`GgufWriter::create`] of `path` writes in this process, known before
/// it exists: a signal handler can be told about it before the file is created, so no
/// signal finds the file there but unregistered.
pub fn temp_path(path: &Path) -> PathBuf {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out.gguf".into());
    temp_path_for(path, &file_name, std::process::id())
}

/// Temporary files beside `output` left by writers of it whose process no longer runs (a
/// conversion killed with SIGKILL, or by a power loss), with the dead process's id: what a
/// new run names and removes. Liveness is read from `/proc`; where there is none, nothing is
/// reported (a running writer's file must never be taken for stale).
pub fn stale_temp_files(output: &Path) -> Vec<(PathBuf, u32)> {
    let proc = Path::new("/proc/self");
    let (Some(name), Some(dir)) = (output.file_name(), output.parent()) else {
        return Vec::new();
    };
    if !proc.exists() {
        return Vec::new();
    }
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut stale: Vec<(PathBuf, u32)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let pid: u32 = file
                .strip_prefix(&prefix)?
                .strip_suffix(".tmp")?
                .parse()
                .ok()?;
            let alive =
                pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists();
            (!alive && e.file_type().is_ok_and(|t| t.is_file())).then(|| (e.path(), pid))
        })
        .collect();
    stale.sort();
    stale
}

impl GgufWriter {
    /// The temporary file being written (renamed to the output by [`Self::finish`]): what a
    /// signal handler removes when the process is interrupted, since `Drop` does not run then.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Validates the declaration, creates the temporary file and writes the header, metadata
    /// and tensor infos. Fails with [`GgufError::Exists`] if `path` exists and `overwrite` is
    /// false.
    pub fn create(
        path: impl AsRef<Path>,
        overwrite: bool,
        metadata: Vec<(String, Value)>,
        tensors: Vec<TensorSpec>,
    ) -> Result<Self> {
        let path = path.as_ref();
        if !overwrite && path.exists() {
            return Err(GgufError::Exists {
                path: path.to_path_buf(),
            });
        }
        let (head, sizes, alignment) = encode_header(&metadata, &tensors)?;
        let tmp = temp_path(path);
        let io = |source| GgufError::Io {
            path: tmp.clone(),
            source,
        };
        let file = File::create(&tmp).map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let written = out.write_all(&head);
        let mut writer = Self {
            out,
            tmp: tmp.clone(),
            path: path.to_path_buf(),
            overwrite,
            specs: tensors.into_iter().zip(sizes).collect(),
            alignment,
            next: 0,
            open: None,
            done: false,
        };
        // On error the writer drops here and removes the temporary file.
        written.map_err(|source| GgufError::Io { path: tmp, source })?;
        writer.open = None;
        Ok(writer)
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
        let problem = match (self.open, self.specs.get(self.next)) {
            (Some(_), _) => Some("the previous tensor is not finished".to_string()),
            (None, None) => Some("more tensors written than declared".to_string()),
            (None, Some((spec, _))) if spec.name != name => Some(format!(
                "written out of order: expected '{}' next",
                spec.name
            )),
            _ => None,
        };
        if let Some(reason) = problem {
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
            Some(w) => {
                return Err(GgufError::Tensor {
                    name,
                    reason: format!("{} bytes given, but only {size} declared", w + data.len()),
                });
            }
            None => {
                return Err(GgufError::Tensor {
                    name,
                    reason: "data written before begin_tensor".into(),
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
                reason: format!("{} bytes written, {size} declared", self.open.unwrap_or(0)),
            });
        }
        let pad = pad_len(size, self.alignment);
        let zeros = vec![0u8; pad];
        self.out.write_all(&zeros).map_err(|source| GgufError::Io {
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
        if let Some((spec, _)) = self.specs.get(self.next) {
            return Err(GgufError::Tensor {
                name: spec.name.clone(),
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
        // Make the rename itself durable.
        #[cfg(unix)]
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.done = true;
        Ok(self.path.clone())
    }
}

impl Drop for GgufWriter {
    /// A write that fails or is abandoned leaves no temporary file behind.
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Encodes a whole GGUF file in memory (small files: tests, fixtures, fuzz seeds).
pub fn to_bytes(metadata: &[(String, Value)], tensors: &[(TensorSpec, &[u8])]) -> Result<Vec<u8>> {
    let specs: Vec<TensorSpec> = tensors.iter().map(|(s, _)| s.clone()).collect();
    let (mut out, sizes, alignment) = encode_header(metadata, &specs)?;
    for ((spec, data), size) in tensors.iter().zip(sizes) {
        if data.len() != size {
            return Err(GgufError::Tensor {
                name: spec.name.clone(),
                reason: format!("{} bytes given, {size} declared", data.len()),
            });
        }
        out.extend_from_slice(data);
        out.resize(out.len() + pad_len(size, alignment), 0);
    }
    Ok(out)
}
