//! Hugging Face BitNet checkpoints: `config.json`, memory-mapped safetensors (one file or an
//! index with shards) and the three linear layouts transformers writes, decoded to
//! [`TernaryWeights`]:
//!
//! - packed: U8 `[out/4, in]` holding four 2-bit codes per byte plus `weight_scale`
//!   (`autobitlinear` multiplies by it; `bitlinear` or no `linear_class` divides);
//! - unpacked: ternary values -1/0/+1 in any numeric dtype plus `weight_scale`;
//! - master: bf16/f16/f32 weights, ternarised by absmean exactly as transformers does online.
//!
//! Parsing of the safetensors header is the `safetensors` crate's (`read_metadata`: bounds,
//! offsets, overflow checks); this crate maps names to byte ranges and decodes values.

mod config;
mod decode;
mod error;
mod names;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub use bitnet_formats::TernaryWeights;
use bitnet_schema::ModelTensor;
use half::bf16;
use memmap2::Mmap;
pub use safetensors::Dtype;
use serde_json::Value as Json;

pub use config::{HfConfig, Quantization};
pub use decode::absmean_ternarize;
use decode::{floats, ternary_values, unpack};
pub use error::{CheckpointError, Result};
pub use names::{Linear, Norm};

/// Which of the three linear-weight layouts a checkpoint uses (read from `q_proj` of layer 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// U8 2-bit codes plus `weight_scale`.
    Packed,
    /// Ternary values plus `weight_scale`.
    Unpacked,
    /// Float master weights, ternarised at load.
    Master,
}

/// One tensor's header entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorMeta {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape (PyTorch order).
    pub shape: Vec<usize>,
    /// The safetensors file holding it.
    pub file: PathBuf,
    /// Index of the mapped file.
    file_index: usize,
    /// Absolute byte range in the mapped file.
    range: (usize, usize),
}

/// An embedding or head's values: bf16 as stored (what bf16 checkpoints hold; the engine
/// streams it as it is, at half the bytes of f32), any other float type widened to f32.
#[derive(Debug, Clone, PartialEq)]
pub enum DenseValues {
    /// Widened from F32 or F16.
    F32(Vec<f32>),
    /// As stored.
    BF16(Vec<bf16>),
}

impl DenseValues {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::BF16(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An opened checkpoint: config plus memory-mapped weights.
pub struct Checkpoint {
    dir: PathBuf,
    config: HfConfig,
    maps: Vec<Mmap>,
    tensors: BTreeMap<String, TensorMeta>,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Checkpoint {
    /// Opens `dir`: parses `config.json`, maps every safetensors file and reads its header.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(CheckpointError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(CheckpointError::MissingConfig { path: config_path });
        }
        let text = std::fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
        let config = HfConfig::parse(&config_path, &text)?;

        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(io_err(&index))?;
            let j: Json = serde_json::from_str(&text).map_err(|e| CheckpointError::Json {
                path: index.clone(),
                message: format!("invalid JSON: {e}"),
            })?;
            let map = j
                .get("weight_map")
                .and_then(Json::as_object)
                .ok_or_else(|| CheckpointError::Json {
                    path: index.clone(),
                    message: "no 'weight_map' object".into(),
                })?;
            let mut names: Vec<&str> = map.values().filter_map(Json::as_str).collect();
            names.sort_unstable();
            names.dedup();
            let mut files = Vec::new();
            for n in names {
                // Shard names are plain file names inside the directory.
                if n.contains('/') || n.contains('\\') || n.starts_with('.') {
                    return Err(CheckpointError::Json {
                        path: index.clone(),
                        message: format!("shard name '{n}' is not a file name in the directory"),
                    });
                }
                let p = dir.join(n);
                if !p.is_file() {
                    return Err(CheckpointError::MissingShard {
                        index: index.clone(),
                        shard: p,
                    });
                }
                files.push(p);
            }
            files
        } else {
            return Err(CheckpointError::MissingWeights {
                dir: dir.to_path_buf(),
            });
        };

        let mut maps = Vec::with_capacity(files.len());
        let mut tensors = BTreeMap::new();
        for (file_index, path) in files.iter().enumerate() {
            let f = std::fs::File::open(path).map_err(io_err(path))?;
            // SAFETY: the file is opened read-only and only read; the checkpoint is not expected
            // to change while it is converted (as for every mmap-based safetensors reader).
            let map = unsafe { Mmap::map(&f) }.map_err(io_err(path))?;
            let (n, meta) = safetensors::SafeTensors::read_metadata(&map).map_err(|e| {
                CheckpointError::Safetensors {
                    path: path.clone(),
                    message: e.to_string(),
                }
            })?;
            let base = 8 + n;
            for (name, info) in meta.tensors() {
                let range = (base + info.data_offsets.0, base + info.data_offsets.1);
                if tensors.contains_key(&name) {
                    return Err(CheckpointError::Safetensors {
                        path: path.clone(),
                        message: format!("tensor '{name}' appears in two shards"),
                    });
                }
                tensors.insert(
                    name.clone(),
                    TensorMeta {
                        name,
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                        file: path.clone(),
                        file_index,
                        range,
                    },
                );
            }
            maps.push(map);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            maps,
            tensors,
        })
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every tensor's header entry, by name.
    pub fn tensors(&self) -> impl Iterator<Item = &TensorMeta> {
        self.tensors.values()
    }

    /// The layout of the linear weights (from layer 0's `q_proj`).
    pub fn layout(&self) -> Result<Layout> {
        let base = Linear::QProj.hf_base(0);
        let (meta, _) = self.raw_tensor(&format!("{base}.weight"))?;
        Ok(if meta.dtype == Dtype::U8 {
            Layout::Packed
        } else if self.tensors.contains_key(&format!("{base}.weight_scale")) {
            Layout::Unpacked
        } else {
            Layout::Master
        })
    }

    /// `model.embed_tokens.weight` as `[vocab, hidden]`, checked against the config: bf16 as
    /// stored, other float types widened to f32 ([`DenseValues`]).
    pub fn embedding(&self) -> Result<(Vec<usize>, DenseValues)> {
        self.matrix(ModelTensor::Embedding.hf_name())
    }

    /// `lm_head.weight` when the head is not tied (`tie_word_embeddings: false`), else `None`.
    pub fn lm_head(&self) -> Result<Option<(Vec<usize>, DenseValues)>> {
        if self.config.tie_word_embeddings {
            return Ok(None);
        }
        self.matrix(ModelTensor::Output.hf_name()).map(Some)
    }

    fn matrix(&self, name: &str) -> Result<(Vec<usize>, DenseValues)> {
        let (meta, bytes) = self.raw_tensor(name)?;
        let expected = [self.config.vocab_size, self.config.hidden_size];
        self.expect_shape(name, &meta.shape, &expected)?;
        let values = if meta.dtype == Dtype::BF16 {
            // Bytes as stored (a safetensors payload need not be 2-aligned).
            let v: Vec<bf16> = bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]))
                .collect();
            check_finite(name, v.iter().map(|x| x.to_f32()))?;
            DenseValues::BF16(v)
        } else {
            let (_, v) = self.tensor_f32(name)?;
            check_finite(name, v.iter().copied())?;
            DenseValues::F32(v)
        };
        Ok((meta.shape.clone(), values))
    }

    /// The parsed `config.json`.
    pub fn config(&self) -> &HfConfig {
        &self.config
    }

    /// A tensor's header entry and raw little-endian bytes (no copy).
    pub fn raw_tensor(&self, name: &str) -> Result<(&TensorMeta, &[u8])> {
        let meta = self
            .tensors
            .get(name)
            .ok_or_else(|| CheckpointError::MissingTensor { name: name.into() })?;
        // `read_metadata` checked that every range lies inside the file.
        let bytes = &self.maps[meta.file_index][meta.range.0..meta.range.1];
        Ok((meta, bytes))
    }

    /// Drops the pages of `len` bytes at byte `offset` of tensor `name` from this process's
    /// resident memory (they are re-read from the file if touched again), so converting a
    /// model does not leave the whole model resident. The caller must hold no slice of them.
    pub fn release(&self, name: &str, offset: usize, len: usize) {
        if let Some(meta) = self.tensors.get(name) {
            let start = meta.range.0 + offset.min(meta.range.1 - meta.range.0);
            let len = len.min(meta.range.1 - start);
            release_pages(&self.maps[meta.file_index], start, len);
        }
    }

    /// Byte size of tensor `name` (0 when absent).
    pub fn tensor_len(&self, name: &str) -> usize {
        self.tensors.get(name).map_or(0, |m| m.range.1 - m.range.0)
    }

    /// A float tensor (F32/F16/BF16) widened to f32.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let (meta, bytes) = self.raw_tensor(name)?;
        let v = floats(meta, bytes).ok_or_else(|| CheckpointError::Dtype {
            name: name.into(),
            dtype: meta.dtype,
            expected: "F32, F16 or BF16",
        })?;
        Ok((meta.shape.clone(), v))
    }

    fn expect_shape(&self, name: &str, shape: &[usize], expected: &[usize]) -> Result<()> {
        if shape != expected {
            return Err(CheckpointError::Shape {
                name: name.into(),
                expected: format!("{expected:?}"),
                found: shape.to_vec(),
            });
        }
        Ok(())
    }

    /// `[rows, cols]` of a projection, from the config (the schema's layer table).
    pub fn linear_shape(&self, which: Linear) -> (usize, usize) {
        which.shape(&self.config.dims())
    }

    /// A projection decoded to ternary values and one scale, from any of the three layouts:
    /// packed U8 `[out/4, in]` + `weight_scale`; unpacked ternary (any numeric dtype holding
    /// only -1/0/+1) + `weight_scale`; float master weights (absmean ternarisation).
    pub fn linear(&self, layer: usize, which: Linear) -> Result<TernaryWeights> {
        let base = which.hf_base(layer);
        let name = format!("{base}.weight");
        let (rows, cols) = self.linear_shape(which);
        let (meta, bytes) = self.raw_tensor(&name)?;
        let scale_name = format!("{base}.weight_scale");
        let has_scale = self.tensors.contains_key(&scale_name);
        if meta.dtype == Dtype::U8 {
            self.expect_shape(&name, &meta.shape, &[rows / 4, cols])?;
            if rows % 4 != 0 {
                return Err(CheckpointError::Shape {
                    name,
                    expected: format!("[{rows}/4, {cols}] (rows not a multiple of 4)"),
                    found: meta.shape.clone(),
                });
            }
            let scale = self.weight_scale(&scale_name)?;
            let values = unpack(&name, bytes, rows, cols)?;
            return Ok(TernaryWeights {
                rows,
                cols,
                values,
                scale,
            });
        }
        self.expect_shape(&name, &meta.shape, &[rows, cols])?;
        if has_scale {
            // Unpacked ternary: the stored values must be exactly -1, 0 or +1.
            let values = ternary_values(&name, meta, bytes)?;
            let scale = self.weight_scale(&scale_name)?;
            return Ok(TernaryWeights {
                rows,
                cols,
                values,
                scale,
            });
        }
        let w = floats(meta, bytes).ok_or_else(|| CheckpointError::Dtype {
            name: name.clone(),
            dtype: meta.dtype,
            expected: "U8 (packed), I8/float ternary with weight_scale, or F32/F16/BF16 master weights",
        })?;
        check_finite(&name, w.iter().copied())?;
        Ok(absmean_ternarize(&w, rows, cols))
    }

    /// The effective per-tensor scale from a `weight_scale` tensor (multiply or divide by
    /// `linear_class`).
    fn weight_scale(&self, name: &str) -> Result<f32> {
        let (shape, v) = self.tensor_f32(name)?;
        if v.len() != 1 {
            return Err(CheckpointError::Shape {
                name: name.into(),
                expected: "[1] or []".into(),
                found: shape,
            });
        }
        let s = v[0];
        if !s.is_finite() || s == 0.0 {
            return Err(CheckpointError::BadValue {
                name: name.into(),
                reason: format!("scale {s} is not a finite non-zero number"),
            });
        }
        Ok(if self.config.scale_multiplies() {
            s
        } else {
            1.0 / s
        })
    }

    /// A block's norm weight.
    pub fn norm(&self, layer: usize, which: Norm) -> Result<Vec<f32>> {
        self.vector_f32(&which.hf_weight(layer), which.len(&self.config.dims()))
    }

    /// `model.norm.weight`.
    pub fn final_norm(&self) -> Result<Vec<f32>> {
        self.vector_f32(ModelTensor::OutputNorm.hf_name(), self.config.hidden_size)
    }

    fn vector_f32(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let (shape, v) = self.tensor_f32(name)?;
        self.expect_shape(name, &shape, &[len])?;
        check_finite(name, v.iter().copied())?;
        Ok(v)
    }

    /// Checks that the tensors are exactly those of a BitNet model with this config: none
    /// missing, none unknown (rotary `inv_freq` buffers and a tied `lm_head` copy allowed).
    pub fn check_tensor_set(&self) -> Result<()> {
        let c = &self.config;
        // Every block has 11 tensors: a layer count the files cannot hold (2^24 from a
        // hostile config.json) is refused before a name table is built for it.
        let per_block = Norm::ALL.len() + Linear::ALL.len();
        let needed = c.num_hidden_layers.saturating_mul(per_block);
        if needed > self.tensors.len() {
            return Err(CheckpointError::TooFewTensors {
                layers: c.num_hidden_layers,
                needed,
                found: self.tensors.len(),
            });
        }
        let mut expected: HashMap<String, bool> = HashMap::new(); // name -> required
        expected.insert(ModelTensor::Embedding.hf_name().into(), true);
        expected.insert(ModelTensor::OutputNorm.hf_name().into(), true);
        expected.insert(ModelTensor::Output.hf_name().into(), !c.tie_word_embeddings);
        for l in 0..c.num_hidden_layers {
            for n in Norm::ALL {
                expected.insert(n.hf_weight(l), true);
            }
            for w in Linear::ALL {
                let base = w.hf_base(l);
                let packed = self
                    .tensors
                    .get(&format!("{base}.weight"))
                    .is_some_and(|m| m.dtype == Dtype::U8);
                expected.insert(format!("{base}.weight"), true);
                expected.insert(format!("{base}.weight_scale"), packed);
            }
        }
        let mut missing: Vec<&String> = expected
            .iter()
            .filter(|(n, req)| **req && !self.tensors.contains_key(*n))
            .map(|(n, _)| n)
            .collect();
        missing.sort();
        if let Some(name) = missing.first() {
            return Err(CheckpointError::MissingTensor {
                name: (*name).clone(),
            });
        }
        if let Some(meta) = self
            .tensors
            .values()
            .find(|m| !expected.contains_key(&m.name) && !m.name.ends_with("rotary_emb.inv_freq"))
        {
            return Err(CheckpointError::UnexpectedTensor {
                name: meta.name.clone(),
                file: meta.file.clone(),
            });
        }
        Ok(())
    }
}

/// Refuses NaN or infinite weights, naming the tensor and the first bad element: a NaN
/// norm or embedding loads and runs, and every logit after it is garbage.
fn check_finite(name: &str, values: impl IntoIterator<Item = f32>) -> Result<()> {
    match values.into_iter().enumerate().find(|(_, x)| !x.is_finite()) {
        Some((i, x)) => Err(CheckpointError::BadValue {
            name: name.into(),
            reason: format!("element {i} is {x} (NaN or infinite values are not weights)"),
        }),
        None => Ok(()),
    }
}

/// `madvise(MADV_DONTNEED)` on a read-only file mapping: the kernel drops the pages from the
/// process (they stay in the page cache and are re-read from the file on the next access).
/// Advisory: errors are ignored, and on non-Unix systems this does nothing.
fn release_pages(map: &Mmap, offset: usize, len: usize) {
    #[cfg(unix)]
    // SAFETY: the mapping is read-only and file-backed (`Mmap::map` of a file opened read-only),
    // so dropping pages loses nothing: a later read faults them in again with the same
    // contents. Callers release only ranges they hold no slice of.
    unsafe {
        let _ = map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len);
    }
    #[cfg(not(unix))]
    let _ = (map, offset, len);
}
