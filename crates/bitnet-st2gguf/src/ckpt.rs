//! Reading a Hugging Face BitNet checkpoint directory: `config.json`, the memory-mapped
//! safetensors (one file or an index with shards), and the three linear layouts decoded to
//! [`TernaryWeights`].
//!
//! This mirrors the announced `bitnet-checkpoint` API (`Checkpoint::open`, `config`,
//! `raw_tensor`, `linear`, `norm`, `final_norm`, `check_tensor_set`) so the converter can
//! switch to that crate by changing its imports; it exists because that crate had not landed
//! when the converter had to ship. Parsing of the safetensors header is the `safetensors`
//! crate's (`read_metadata`: bounds, offsets, overflow checks); this module only maps names to
//! byte ranges and decodes values.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bitnet_kernels::TernaryWeights;
use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::Dtype;
use serde_json::Value as Json;

/// Why a checkpoint cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The input path is not a directory.
    #[error("{path} is not a directory (expected a Hugging Face checkpoint directory)")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// `config.json` is absent.
    #[error("{path} is missing")]
    MissingConfig {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// Neither `model.safetensors` nor `model.safetensors.index.json` exists.
    #[error("{dir} has neither model.safetensors nor model.safetensors.index.json")]
    MissingWeights {
        /// The directory.
        dir: PathBuf,
    },
    /// A file could not be read or mapped.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON file is malformed or a field has the wrong type.
    #[error("{path}: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A safetensors header is invalid.
    #[error("{path}: invalid safetensors file: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The safetensors crate's message.
        message: String,
    },
    /// A tensor the config implies is absent.
    #[error("missing tensor '{name}'")]
    MissingTensor {
        /// The tensor name.
        name: String,
    },
    /// A tensor no BitNet model has.
    #[error("unexpected tensor '{name}' in {file} (not part of a BitNet model with this config)")]
    UnexpectedTensor {
        /// The tensor name.
        name: String,
        /// The file holding it.
        file: PathBuf,
    },
    /// A tensor has the wrong shape.
    #[error("tensor '{name}': shape {found:?}, expected {expected}")]
    Shape {
        /// The tensor name.
        name: String,
        /// Expected shape, described.
        expected: String,
        /// Shape found.
        found: Vec<usize>,
    },
    /// A tensor has a dtype this layout does not use.
    #[error("tensor '{name}': unsupported dtype {dtype:?} ({expected})")]
    Dtype {
        /// The tensor name.
        name: String,
        /// Its dtype.
        dtype: Dtype,
        /// What is accepted.
        expected: &'static str,
    },
    /// A value is not what the layout allows (non-ternary, code 3, NaN scale).
    #[error("tensor '{name}': {reason}")]
    BadValue {
        /// The tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

type Result<T> = std::result::Result<T, CheckpointError>;

/// `quantization_config` of `config.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Quantization {
    /// `quant_method` (`bitnet`).
    pub quant_method: Option<String>,
    /// `linear_class`: `autobitlinear` multiplies by `weight_scale`, `bitlinear` (or absent)
    /// divides.
    pub linear_class: Option<String>,
    /// `quantization_mode` (`offline` packed, `online` master).
    pub quantization_mode: Option<String>,
}

/// The fields of `config.json` the converter uses.
#[derive(Debug, Clone, PartialEq)]
pub struct HfConfig {
    /// `model_type`.
    pub model_type: String,
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `intermediate_size`.
    pub intermediate_size: usize,
    /// `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// `num_attention_heads`.
    pub num_attention_heads: usize,
    /// `num_key_value_heads` (default: `num_attention_heads`).
    pub num_key_value_heads: usize,
    /// `head_dim` when given.
    pub head_dim: Option<usize>,
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `max_position_embeddings`.
    pub max_position_embeddings: usize,
    /// `rms_norm_eps`.
    pub rms_norm_eps: f32,
    /// `rope_theta` (default 10000).
    pub rope_theta: f32,
    /// `hidden_act`.
    pub hidden_act: String,
    /// `tie_word_embeddings` (default true for BitNet).
    pub tie_word_embeddings: bool,
    /// `bos_token_id`.
    pub bos_token_id: Option<u32>,
    /// `eos_token_id` (a number or a list).
    pub eos_token_ids: Vec<u32>,
    /// `torch_dtype` / `dtype`.
    pub dtype: Option<String>,
    /// `quantization_config`.
    pub quantization: Option<Quantization>,
}

impl HfConfig {
    fn parse(path: &Path, text: &str) -> Result<Self> {
        let err = |message: String| CheckpointError::Json {
            path: path.to_path_buf(),
            message,
        };
        let j: Json = serde_json::from_str(text).map_err(|e| err(format!("invalid JSON: {e}")))?;
        let usize_of = |key: &str| -> Result<Option<usize>> {
            match j.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|v| usize::try_from(v).ok())
                    .map(Some)
                    .ok_or_else(|| {
                        err(format!("field '{key}' is not a non-negative integer: {v}"))
                    }),
            }
        };
        let req = |key: &str| -> Result<usize> {
            usize_of(key)?.ok_or_else(|| err(format!("required field '{key}' is missing")))
        };
        let f32_of = |key: &str, default: f32| -> Result<f32> {
            match j.get(key) {
                None | Some(Json::Null) => Ok(default),
                Some(v) => v
                    .as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| err(format!("field '{key}' is not a number: {v}"))),
            }
        };
        let str_of = |key: &str| j.get(key).and_then(Json::as_str).map(str::to_owned);
        let id = |v: &Json| v.as_u64().and_then(|x| u32::try_from(x).ok());
        let model_type = str_of("model_type")
            .ok_or_else(|| err("required field 'model_type' is missing".into()))?;
        let heads = req("num_attention_heads")?;
        let eos_token_ids = match j.get("eos_token_id") {
            Some(Json::Array(list)) => list.iter().filter_map(id).collect(),
            Some(v) => id(v).into_iter().collect(),
            None => Vec::new(),
        };
        let quantization = j.get("quantization_config").map(|q| Quantization {
            quant_method: q
                .get("quant_method")
                .and_then(Json::as_str)
                .map(str::to_owned),
            linear_class: q
                .get("linear_class")
                .and_then(Json::as_str)
                .map(str::to_owned),
            quantization_mode: q
                .get("quantization_mode")
                .and_then(Json::as_str)
                .map(str::to_owned),
        });
        Ok(Self {
            model_type,
            hidden_size: req("hidden_size")?,
            intermediate_size: req("intermediate_size")?,
            num_hidden_layers: req("num_hidden_layers")?,
            num_attention_heads: heads,
            num_key_value_heads: usize_of("num_key_value_heads")?.unwrap_or(heads),
            head_dim: usize_of("head_dim")?,
            vocab_size: req("vocab_size")?,
            max_position_embeddings: usize_of("max_position_embeddings")?.unwrap_or(4096),
            rms_norm_eps: f32_of("rms_norm_eps", 1e-5)?,
            rope_theta: f32_of("rope_theta", 10_000.0)?,
            hidden_act: str_of("hidden_act").unwrap_or_else(|| "relu2".to_owned()),
            tie_word_embeddings: j
                .get("tie_word_embeddings")
                .and_then(Json::as_bool)
                .unwrap_or(true),
            bos_token_id: j.get("bos_token_id").and_then(id),
            eos_token_ids,
            dtype: str_of("torch_dtype").or_else(|| str_of("dtype")),
            quantization,
        })
    }

    /// Whether packed/unpacked ternary weights multiply by `weight_scale` (`autobitlinear`)
    /// rather than divide (`bitlinear` or no `linear_class`).
    pub fn scale_multiplies(&self) -> bool {
        self.quantization
            .as_ref()
            .and_then(|q| q.linear_class.as_deref())
            .is_some_and(|c| c.eq_ignore_ascii_case("autobitlinear"))
    }
}

/// The ternary projections of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linear {
    /// `self_attn.q_proj`.
    QProj,
    /// `self_attn.k_proj`.
    KProj,
    /// `self_attn.v_proj`.
    VProj,
    /// `self_attn.o_proj`.
    OProj,
    /// `mlp.gate_proj`.
    GateProj,
    /// `mlp.up_proj`.
    UpProj,
    /// `mlp.down_proj`.
    DownProj,
}

impl Linear {
    /// Every projection, in forward order.
    pub const ALL: [Linear; 7] = [
        Self::QProj,
        Self::KProj,
        Self::VProj,
        Self::OProj,
        Self::GateProj,
        Self::UpProj,
        Self::DownProj,
    ];

    /// Module path inside a block.
    pub fn hf_path(self) -> &'static str {
        match self {
            Self::QProj => "self_attn.q_proj",
            Self::KProj => "self_attn.k_proj",
            Self::VProj => "self_attn.v_proj",
            Self::OProj => "self_attn.o_proj",
            Self::GateProj => "mlp.gate_proj",
            Self::UpProj => "mlp.up_proj",
            Self::DownProj => "mlp.down_proj",
        }
    }
}

/// The RMSNorms of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    /// `input_layernorm`.
    Input,
    /// `post_attention_layernorm`.
    PostAttention,
    /// `self_attn.attn_sub_norm`.
    AttnSub,
    /// `mlp.ffn_sub_norm`.
    FfnSub,
}

impl Norm {
    /// Every norm of a block.
    pub const ALL: [Norm; 4] = [
        Self::Input,
        Self::PostAttention,
        Self::AttnSub,
        Self::FfnSub,
    ];

    /// Module path inside a block.
    pub fn hf_path(self) -> &'static str {
        match self {
            Self::Input => "input_layernorm",
            Self::PostAttention => "post_attention_layernorm",
            Self::AttnSub => "self_attn.attn_sub_norm",
            Self::FfnSub => "mlp.ffn_sub_norm",
        }
    }
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

/// An opened checkpoint: config plus memory-mapped weights.
pub struct Checkpoint {
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
    pub fn open(dir: &Path) -> Result<Self> {
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
                    return Err(CheckpointError::MissingWeights { dir: p });
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
            config,
            maps,
            tensors,
        })
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

    /// `[rows, cols]` of a projection, from the config.
    pub fn linear_shape(&self, which: Linear) -> (usize, usize) {
        let c = &self.config;
        let hd = c
            .head_dim
            .unwrap_or(c.hidden_size / c.num_attention_heads.max(1));
        let (h, q, kv, i) = (
            c.hidden_size,
            c.num_attention_heads * hd,
            c.num_key_value_heads * hd,
            c.intermediate_size,
        );
        match which {
            Linear::QProj => (q, h),
            Linear::KProj | Linear::VProj => (kv, h),
            Linear::OProj => (h, q),
            Linear::GateProj | Linear::UpProj => (i, h),
            Linear::DownProj => (h, i),
        }
    }

    /// A projection decoded to ternary values and one scale, from any of the three layouts:
    /// packed U8 `[out/4, in]` + `weight_scale`; unpacked ternary (any numeric dtype holding
    /// only -1/0/+1) + `weight_scale`; float master weights (absmean ternarisation).
    pub fn linear(&self, layer: usize, which: Linear) -> Result<TernaryWeights> {
        let base = format!("model.layers.{layer}.{}", which.hf_path());
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
        if let Some(i) = w.iter().position(|x| !x.is_finite()) {
            return Err(CheckpointError::BadValue {
                name,
                reason: format!("element {i} is {}", w[i]),
            });
        }
        Ok(absmean_ternarize(&w, rows, cols))
    }

    /// The effective per-tensor scale from a `weight_scale` tensor (multiply or divide by
    /// `linear_class`).
    fn weight_scale(&self, name: &str) -> Result<f32> {
        let (meta, bytes) = self.raw_tensor(name)?;
        let v = floats(meta, bytes).ok_or_else(|| CheckpointError::Dtype {
            name: name.into(),
            dtype: meta.dtype,
            expected: "F32, F16 or BF16",
        })?;
        if v.len() != 1 {
            return Err(CheckpointError::Shape {
                name: name.into(),
                expected: "[1] or []".into(),
                found: meta.shape.clone(),
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
        let name = format!("model.layers.{layer}.{}.weight", which.hf_path());
        Ok(self.tensor_f32(&name)?.1)
    }

    /// `model.norm.weight`.
    pub fn final_norm(&self) -> Result<Vec<f32>> {
        Ok(self.tensor_f32("model.norm.weight")?.1)
    }

    /// Checks that the tensors are exactly those of a BitNet model with this config: none
    /// missing, none unknown (rotary `inv_freq` buffers and a tied `lm_head` copy allowed).
    pub fn check_tensor_set(&self) -> Result<()> {
        let c = &self.config;
        let mut expected: HashMap<String, bool> = HashMap::new(); // name -> required
        expected.insert("model.embed_tokens.weight".into(), true);
        expected.insert("model.norm.weight".into(), true);
        expected.insert("lm_head.weight".into(), !c.tie_word_embeddings);
        for l in 0..c.num_hidden_layers {
            for n in Norm::ALL {
                expected.insert(format!("model.layers.{l}.{}.weight", n.hf_path()), true);
            }
            for w in Linear::ALL {
                let base = format!("model.layers.{l}.{}", w.hf_path());
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

/// `madvise(MADV_DONTNEED)` on a read-only file mapping: the kernel drops the pages from the
/// process (they stay in the page cache and are re-read from the file on the next access).
/// Advisory: errors are ignored, and on non-Unix systems this does nothing.
pub fn release_pages(map: &Mmap, offset: usize, len: usize) {
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

/// Float tensor bytes widened to f32, or `None` for a non-float dtype.
fn floats(meta: &TensorMeta, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match meta.dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// Unpacks the 2B4T layout: bits `2i..2i+1` of byte `[r, c]` hold the code of output row
/// `i * (rows/4) + r`; value = code - 1 (code 3 is invalid).
fn unpack(name: &str, bytes: &[u8], rows: usize, cols: usize) -> Result<Vec<i8>> {
    let r4 = rows / 4;
    let mut values = vec![0i8; rows * cols];
    for r in 0..r4 {
        for c in 0..cols {
            let byte = bytes[r * cols + c];
            for i in 0..4 {
                let code = (byte >> (2 * i)) & 3;
                if code == 3 {
                    return Err(CheckpointError::BadValue {
                        name: name.into(),
                        reason: format!("invalid 2-bit code 3 at byte [{r}, {c}] (bits {})", 2 * i),
                    });
                }
                values[(i * r4 + r) * cols + c] = code as i8 - 1;
            }
        }
    }
    Ok(values)
}

/// Unpacked ternary values from any numeric dtype; anything but -1/0/+1 is an error.
fn ternary_values(name: &str, meta: &TensorMeta, bytes: &[u8]) -> Result<Vec<i8>> {
    let as_f32: Vec<f32> = match meta.dtype {
        Dtype::I8 => bytes.iter().map(|&b| f32::from(b as i8)).collect(),
        Dtype::I16 => bytes
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])))
            .collect(),
        Dtype::I32 => bytes
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
            .collect(),
        _ => floats(meta, bytes).ok_or_else(|| CheckpointError::Dtype {
            name: name.into(),
            dtype: meta.dtype,
            expected: "I8, I16, I32, F32, F16 or BF16 for unpacked ternary weights",
        })?,
    };
    as_f32
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if x == -1.0 || x == 0.0 || x == 1.0 {
                Ok(x as i8)
            } else {
                Err(CheckpointError::BadValue {
                    name: name.into(),
                    reason: format!(
                        "element {i} is {x}, not -1, 0 or +1 (unpacked ternary layout)"
                    ),
                })
            }
        })
        .collect()
}

/// transformers' online quantisation: `s = max(mean|W|, 1e-5)`,
/// `values = clamp(round(W / s), -1, 1)`, effective weight `values * s` (scale kept in f32).
pub fn absmean_ternarize(w: &[f32], rows: usize, cols: usize) -> TernaryWeights {
    let mean = (w.iter().map(|x| f64::from(x.abs())).sum::<f64>() / w.len().max(1) as f64) as f32;
    let s = mean.max(1e-5);
    let values = w
        .iter()
        .map(|&x| (x / s).round().clamp(-1.0, 1.0) as i8)
        .collect();
    TernaryWeights {
        rows,
        cols,
        values,
        scale: s,
    }
}
