//! [`ModelConfig`]: the hyper-parameters of a BitNet b1.58 model, read from GGUF metadata or
//! a Hugging Face `config.json`, written back as GGUF metadata, and checked by one
//! [`ModelConfig::validate`].
//!
//! Every path in and out goes through the same checks: the engine loading a GGUF file or a
//! checkpoint directory and the converter writing a GGUF file all call `validate`, so a file
//! the converter writes is one the engine loads, and a checkpoint the engine loads is one the
//! converter converts. A failed check names the hyper-parameter in the spelling of where it
//! came from ([`Param`]: GGUF key, `config.json` field, or struct field).
//!
//! GGUF keys and their defaults follow llama.cpp (`<arch>.context_length`,
//! `<arch>.rope.freq_base` defaulting to 10000, `head_count_kv` to `head_count`, ...), with one
//! deliberate difference: the FFN activation. Upstream llama.cpp runs the `bitnet-b1.58`
//! 2B4T model with SiLU, which gives perplexity ~100 instead of ~17; the model was trained with
//! ReLU², so that is the default for `bitnet-b1.58` and `bitnet-25`, and a
//! `<arch>.hidden_activation` key (our converter writes it) overrides it.

use bitnet_gguf::{GgufFile, Value};

use crate::activation::Activation;
use crate::error::{Result, SchemaError};
use crate::hf::{HfConfig, SUPPORTED_MODEL_TYPES};
use crate::keys;
use crate::layers::{Dims, Linear, ModelTensor};
pub use crate::param::Param;

/// The architectures the engine runs (`general.architecture`): the converter writes only
/// these.
pub const SUPPORTED_ARCHITECTURES: [&str; 3] = ["bitnet-b1.58", "bitnet-25", "bitnet"];

/// The architecture the converter writes and a checkpoint directory is loaded as.
pub const DEFAULT_ARCHITECTURE: &str = "bitnet-b1.58";

/// Largest count accepted for any dimension: far above any real model, low enough that every
/// tensor size (a product of two dimensions) stays far from overflow and absurd allocations.
const MAX_DIM: usize = 1 << 24;
/// Largest hidden size accepted (the activation buffers are sized from it per token).
const MAX_HIDDEN: usize = 1 << 20;
/// Largest head size accepted.
const MAX_HEAD_DIM: usize = 1 << 16;
/// Largest number of transformer blocks accepted: the deepest published LLMs have ~130, and
/// every block costs a name table entry, a KV cache slice and eleven tensors, so a count from a
/// hostile header (2^24, 2^40) is refused here rather than sizing anything.
pub const MAX_LAYERS: usize = 1 << 12;
/// Largest context (positions) accepted from a file: 16 M, far above any trained context.
/// Nothing is sized by the model's context alone (sessions and the RoPE table are sized by
/// what a request can use), so this only bounds arithmetic.
pub const MAX_CONTEXT: usize = 1 << 24;

fn invalid(param: Param, reason: impl Into<String>) -> SchemaError {
    SchemaError::Invalid {
        param,
        reason: reason.into(),
    }
}

/// Hyper-parameters of a BitNet b1.58 model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Architecture name (`bitnet-b1.58`, `bitnet-25`, `bitnet`).
    pub architecture: String,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Hidden size (`embedding_length`).
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub n_kv_heads: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// FFN intermediate size.
    pub intermediate_size: usize,
    /// Trained context length.
    pub context_length: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f32,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// Dimensions rotated by RoPE (the whole head unless the file says otherwise).
    pub rope_dim: usize,
    /// FFN activation.
    pub activation: Activation,
}

impl ModelConfig {
    /// Default activation for an architecture when the file does not name one: llama.cpp's
    /// `bitnet` (the 1bitLLM models) uses SiLU, BitNet b1.58 2B4T was trained with ReLU².
    pub fn default_activation(arch: &str) -> Activation {
        match arch {
            "bitnet" => Activation::Silu,
            _ => Activation::Relu2,
        }
    }

    /// Width of the query projection (`n_heads * head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Width of the key and value projections (`n_kv_heads * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Query heads per key/value head (grouped-query attention; `validate` checks that
    /// `n_kv_heads` divides `n_heads`).
    pub fn group(&self) -> usize {
        self.n_heads / self.n_kv_heads.max(1)
    }

    /// The widths every tensor shape is made of (see [`crate::layers`]).
    pub fn dims(&self) -> Dims {
        Dims {
            hidden: self.hidden_size,
            q_dim: self.q_dim(),
            kv_dim: self.kv_dim(),
            intermediate: self.intermediate_size,
        }
    }

    /// `(rows, cols)` of a block's seven ternary linears, in forward order (q, k, v, o, gate,
    /// up, down): what one decoded token multiplies per layer.
    pub fn layer_linear_shapes(&self) -> [(usize, usize); 7] {
        let d = self.dims();
        Linear::ALL.map(|l| l.shape(&d))
    }

    /// Checks every invariant the engine and the converter rely on: a supported
    /// architecture, non-zero and plausibly sized dimensions (so no tensor size overflows and
    /// every value fits the GGUF u32 keys), whole key/value head groups, RoPE within the head,
    /// and finite epsilon and RoPE base.
    ///
    /// # Errors
    /// [`SchemaError::Invalid`] naming the first field that is wrong.
    pub fn validate(&self) -> Result<()> {
        if !SUPPORTED_ARCHITECTURES.contains(&self.architecture.as_str()) {
            return Err(SchemaError::UnsupportedArchitecture {
                arch: self.architecture.clone(),
                supported: SUPPORTED_ARCHITECTURES.join(", "),
            });
        }
        let counts = [
            (Param::VocabSize, self.vocab_size, MAX_DIM),
            (Param::HiddenSize, self.hidden_size, MAX_HIDDEN),
            (Param::Layers, self.n_layers, MAX_LAYERS),
            (Param::Heads, self.n_heads, MAX_DIM),
            (Param::KvHeads, self.n_kv_heads, MAX_DIM),
            (Param::HeadDim, self.head_dim, MAX_HEAD_DIM),
            (Param::IntermediateSize, self.intermediate_size, MAX_DIM),
            (Param::ContextLength, self.context_length, MAX_CONTEXT),
        ];
        for (param, v, max) in counts {
            if v == 0 {
                return Err(invalid(param, "must be at least 1"));
            }
            if v > max {
                return Err(invalid(
                    param,
                    format!("{v} is implausibly large (at most {max})"),
                ));
            }
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(invalid(
                Param::KvHeads,
                format!(
                    "{} query heads are not a multiple of {} key/value heads",
                    self.n_heads, self.n_kv_heads
                ),
            ));
        }
        if self.q_dim() > MAX_DIM {
            return Err(invalid(
                Param::HeadDim,
                format!(
                    "{} heads of {} make an implausibly large query width",
                    self.n_heads, self.head_dim
                ),
            ));
        }
        if self.rope_dim > self.head_dim || !self.rope_dim.is_multiple_of(2) {
            return Err(invalid(
                Param::RopeDim,
                format!(
                    "{} must be even and at most the head size {}",
                    self.rope_dim, self.head_dim
                ),
            ));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps >= 0.0) {
            return Err(invalid(
                Param::RmsNormEps,
                format!("{} must be finite and >= 0", self.rms_norm_eps),
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(invalid(
                Param::RopeTheta,
                format!("{} must be finite and > 0", self.rope_theta),
            ));
        }
        Ok(())
    }

    /// Reads the hyper-parameters from GGUF metadata (`general.architecture` and the
    /// `<arch>.*` keys), applying llama.cpp's defaults, then [`Self::validate`]s them.
    ///
    /// # Errors
    /// A missing or mistyped key ([`SchemaError::Gguf`]), an unsupported architecture, or a
    /// value that fails validation ([`SchemaError::Metadata`] naming the key).
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let arch = file.architecture()?.to_string();
        if !SUPPORTED_ARCHITECTURES.contains(&arch.as_str()) {
            return Err(SchemaError::UnsupportedArchitecture {
                arch,
                supported: SUPPORTED_ARCHITECTURES.join(", "),
            });
        }
        let key = |p: Param| p.gguf_key(&arch);
        let bad = |p: Param, reason: String| SchemaError::Metadata {
            key: key(p),
            reason,
        };
        let required = |p: Param| -> Result<usize> {
            read_usize(file, &key(p))?.ok_or_else(|| bad(p, "required key is missing".into()))
        };
        let hidden_size = required(Param::HiddenSize)?;
        let n_layers = required(Param::Layers)?;
        let n_heads = uniform_usize(file, &key(Param::Heads))?
            .ok_or_else(|| bad(Param::Heads, "required key is missing".into()))?;
        let n_kv_heads = uniform_usize(file, &key(Param::KvHeads))?.unwrap_or(n_heads);
        let intermediate_size = uniform_usize(file, &key(Param::IntermediateSize))?
            .ok_or_else(|| bad(Param::IntermediateSize, "required key is missing".into()))?;
        let context_length = required(Param::ContextLength)?;
        let rms_norm_eps = file.get_f32(&key(Param::RmsNormEps))?;
        let rope_theta = match file.get(&key(Param::RopeTheta)) {
            Some(_) => file.get_f32(&key(Param::RopeTheta))?,
            None => 10_000.0,
        };
        if n_heads == 0 {
            return Err(bad(Param::Heads, "must be at least 1".into()));
        }
        let head_dim = match read_usize(file, &key(Param::HeadDim))? {
            Some(d) => d,
            None => default_head_dim(hidden_size, n_heads).ok_or_else(|| {
                bad(
                    Param::Heads,
                    format!(
                        "{} {hidden_size} is not a multiple of {n_heads} heads (and {} is not set)",
                        key(Param::HiddenSize),
                        key(Param::HeadDim)
                    ),
                )
            })?,
        };
        let rope_dim = read_usize(file, &key(Param::RopeDim))?.unwrap_or(head_dim);
        let vocab_size = match read_usize(file, &key(Param::VocabSize))? {
            Some(v) => v,
            None => match file.tensor(ModelTensor::Embedding.gguf_name()) {
                Some(t) if t.dims.len() == 2 => usize::try_from(t.dims[1]).unwrap_or(usize::MAX),
                _ => file.get_string_array(crate::tokenizer::keys::TOKENS)?.len(),
            },
        };
        let activation = match file.get(&key(Param::Activation)) {
            Some(_) => {
                let name = file.get_str(&key(Param::Activation))?;
                Activation::from_name(name).ok_or_else(|| {
                    bad(
                        Param::Activation,
                        format!(
                            "unknown activation '{name}' (known: {})",
                            Activation::known_names()
                        ),
                    )
                })?
            }
            None => Self::default_activation(&arch),
        };
        let config = Self {
            architecture: arch.clone(),
            vocab_size,
            hidden_size,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            intermediate_size,
            context_length,
            rms_norm_eps,
            rope_theta,
            rope_dim,
            activation,
        };
        config.validate().map_err(|e| e.in_gguf(&arch))?;
        Ok(config)
    }

    /// The `<arch>.*` model keys, in the order bitnet.cpp writes them, followed by
    /// `attention.key_length`/`value_length` when the head size is not the default
    /// `embedding_length / head_count`, and `hidden_activation`. [`Self::from_gguf`] reads
    /// exactly this back. The file-level `general.*` keys and the tokenizer are the writer's.
    ///
    /// # Errors
    /// If the config does not [`Self::validate`] (so every value fits its u32 key).
    pub fn to_gguf(&self) -> Result<Vec<(String, Value)>> {
        self.validate()?;
        let key = |p: Param| p.gguf_key(&self.architecture);
        // validate() bounds every count by MAX_DIM < u32::MAX.
        let u32_of = |v: usize| Value::U32(u32::try_from(v).unwrap_or(u32::MAX));
        let mut m = vec![
            (key(Param::VocabSize), u32_of(self.vocab_size)),
            (key(Param::ContextLength), u32_of(self.context_length)),
            (key(Param::HiddenSize), u32_of(self.hidden_size)),
            (key(Param::Layers), u32_of(self.n_layers)),
            (key(Param::IntermediateSize), u32_of(self.intermediate_size)),
            (key(Param::RopeDim), u32_of(self.rope_dim)),
            (key(Param::Heads), u32_of(self.n_heads)),
            (key(Param::KvHeads), u32_of(self.n_kv_heads)),
            (key(Param::RmsNormEps), Value::F32(self.rms_norm_eps)),
            (key(Param::RopeTheta), Value::F32(self.rope_theta)),
        ];
        if default_head_dim(self.hidden_size, self.n_heads) != Some(self.head_dim) {
            m.push((key(Param::HeadDim), u32_of(self.head_dim)));
            m.push((
                keys::arch_key(&self.architecture, keys::VALUE_LENGTH),
                u32_of(self.head_dim),
            ));
        }
        m.push((
            key(Param::Activation),
            Value::String(self.activation.name().to_string()),
        ));
        Ok(m)
    }

    /// The hyper-parameters of a Hugging Face checkpoint (architecture
    /// [`DEFAULT_ARCHITECTURE`], RoPE over the whole head), then [`Self::validate`]d.
    ///
    /// # Errors
    /// A `model_type` that is not BitNet, an unknown `hidden_act`, or a value that fails
    /// validation ([`SchemaError::Config`] naming the `config.json` field).
    pub fn from_hf(cfg: &HfConfig) -> Result<Self> {
        if !SUPPORTED_MODEL_TYPES.contains(&cfg.model_type.as_str()) {
            return Err(SchemaError::UnsupportedModelType {
                model_type: cfg.model_type.clone(),
                supported: SUPPORTED_MODEL_TYPES.join(", "),
            });
        }
        let bad = |field: &'static str, reason: String| SchemaError::Config { field, reason };
        let activation = Activation::from_name(&cfg.hidden_act).ok_or_else(|| {
            bad(
                "hidden_act",
                format!(
                    "unknown activation '{}' (known: {})",
                    cfg.hidden_act,
                    Activation::known_names()
                ),
            )
        })?;
        if cfg.num_attention_heads == 0 {
            return Err(bad("num_attention_heads", "must be at least 1".into()));
        }
        let head_dim = match cfg.head_dim {
            Some(d) => d,
            None => default_head_dim(cfg.hidden_size, cfg.num_attention_heads).ok_or_else(|| {
                bad(
                    "num_attention_heads",
                    format!(
                        "hidden_size {} is not a multiple of {} heads (and head_dim is not set)",
                        cfg.hidden_size, cfg.num_attention_heads
                    ),
                )
            })?,
        };
        let config = Self {
            architecture: DEFAULT_ARCHITECTURE.to_string(),
            vocab_size: cfg.vocab_size,
            hidden_size: cfg.hidden_size,
            n_layers: cfg.num_hidden_layers,
            n_heads: cfg.num_attention_heads,
            n_kv_heads: cfg.num_key_value_heads,
            head_dim,
            intermediate_size: cfg.intermediate_size,
            context_length: cfg.max_position_embeddings,
            rms_norm_eps: cfg.rms_norm_eps,
            rope_theta: cfg.rope_theta,
            rope_dim: head_dim,
            activation,
        };
        config.validate().map_err(SchemaError::in_hf)?;
        Ok(config)
    }
}

/// The distinct `(rows, cols)` shapes of `cfg`'s ternary linears, in forward order of first
/// use: what a kernel tuner measures (2B4T has four: q/o, k/v, gate/up, down).
pub fn linear_shapes(cfg: &ModelConfig) -> Vec<(usize, usize)> {
    let mut shapes = Vec::with_capacity(Linear::ALL.len());
    for s in cfg.layer_linear_shapes() {
        if !shapes.contains(&s) {
            shapes.push(s);
        }
    }
    shapes
}

/// `hidden / heads` when it divides evenly (the head size a reader assumes when none is given).
fn default_head_dim(hidden: usize, heads: usize) -> Option<usize> {
    (heads != 0 && hidden.is_multiple_of(heads)).then(|| hidden / heads)
}

/// An optional integer key as `usize`.
fn read_usize(file: &GgufFile, key: &str) -> Result<Option<usize>> {
    if file.get(key).is_none() {
        return Ok(None);
    }
    let v = file.get_u64(key)?;
    usize::try_from(v)
        .map(Some)
        .map_err(|_| SchemaError::Metadata {
            key: key.to_string(),
            reason: format!("{v} does not fit in memory on this machine"),
        })
}

/// Reads a per-layer count that llama.cpp accepts as a scalar or an array; arrays must hold one
/// value for every layer (BitNet-rs does not run models whose layers differ in shape).
fn uniform_usize(file: &GgufFile, key: &str) -> Result<Option<usize>> {
    let bad = |reason: &str| SchemaError::Metadata {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    match file.get(key) {
        None => Ok(None),
        Some(Value::Array(a)) => {
            let values = a
                .iter_u64()
                .ok_or_else(|| bad("expected an array of integers"))?;
            let first = *values.first().ok_or_else(|| bad("empty array"))?;
            if values.iter().any(|&v| v != first) {
                return Err(bad("layers with different sizes are not supported"));
            }
            usize::try_from(first)
                .map(Some)
                .map_err(|_| bad("value does not fit in memory on this machine"))
        }
        Some(_) => read_usize(file, key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    fn gguf(meta: Vec<(String, Value)>) -> GgufFile {
        GgufFile::from_bytes(bitnet_gguf::to_bytes(&meta, &[]).unwrap()).unwrap()
    }

    fn with_arch(cfg: &ModelConfig) -> Vec<(String, Value)> {
        let mut m = vec![(
            keys::ARCHITECTURE.to_string(),
            Value::String(cfg.architecture.clone()),
        )];
        m.extend(cfg.to_gguf().unwrap());
        m
    }

    #[test]
    fn every_preset_round_trips_through_gguf() {
        for name in presets::PRESETS {
            let cfg = presets::preset(name).unwrap();
            cfg.validate().unwrap();
            assert_eq!(ModelConfig::from_gguf(&gguf(with_arch(&cfg))).unwrap(), cfg);
        }
    }

    #[test]
    fn explicit_head_dim_is_written_only_when_not_the_default() {
        let mut cfg = presets::preset("tiny").unwrap();
        let has_key_length = |c: &ModelConfig| {
            c.to_gguf()
                .unwrap()
                .iter()
                .any(|(k, _)| k.ends_with(keys::KEY_LENGTH))
        };
        assert!(!has_key_length(&cfg));
        cfg.head_dim = 32;
        cfg.rope_dim = 32;
        assert!(has_key_length(&cfg));
        assert_eq!(ModelConfig::from_gguf(&gguf(with_arch(&cfg))).unwrap(), cfg);
    }

    #[test]
    fn every_activation_round_trips_through_gguf() {
        for act in Activation::ALL {
            for arch in SUPPORTED_ARCHITECTURES {
                let cfg = ModelConfig {
                    architecture: arch.to_string(),
                    activation: act,
                    ..presets::preset("tiny").unwrap()
                };
                assert_eq!(ModelConfig::from_gguf(&gguf(with_arch(&cfg))).unwrap(), cfg);
            }
        }
    }

    #[test]
    fn gguf_errors_name_the_key() {
        let cfg = presets::preset("tiny").unwrap();
        let set = |key: &str, v: Value| {
            let mut m = with_arch(&cfg);
            m.iter_mut().find(|(k, _)| k == key).unwrap().1 = v;
            ModelConfig::from_gguf(&gguf(m)).unwrap_err().to_string()
        };
        let e = set("bitnet-b1.58.attention.head_count_kv", Value::U32(3));
        assert!(
            e.contains("metadata key 'bitnet-b1.58.attention.head_count_kv'")
                && e.contains("not a multiple of 3"),
            "{e}"
        );
        let e = set(
            "bitnet-b1.58.hidden_activation",
            Value::String("tanh".into()),
        );
        assert!(
            e.contains("unknown activation 'tanh'") && e.contains("relu^2"),
            "{e}"
        );
        let e = set("bitnet-b1.58.rope.freq_base", Value::F32(f32::NAN));
        assert!(e.contains("'bitnet-b1.58.rope.freq_base'"), "{e}");
        let e = set("general.architecture", Value::String("llama".into()));
        assert!(e.contains("unsupported architecture 'llama'"), "{e}");
        let mut m = with_arch(&cfg);
        m.retain(|(k, _)| k != "bitnet-b1.58.block_count");
        let e = ModelConfig::from_gguf(&gguf(m)).unwrap_err().to_string();
        assert!(
            e.contains("bitnet-b1.58.block_count") && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn per_layer_arrays_must_be_uniform() {
        let cfg = presets::preset("tiny").unwrap();
        let set = |v: Value| {
            let mut m = with_arch(&cfg);
            m.iter_mut()
                .find(|(k, _)| k == "bitnet-b1.58.feed_forward_length")
                .unwrap()
                .1 = v;
            ModelConfig::from_gguf(&gguf(m))
        };
        let same = Value::Array(bitnet_gguf::Array::U32(vec![512; 4]));
        assert_eq!(set(same).unwrap(), cfg);
        let differ = Value::Array(bitnet_gguf::Array::U32(vec![512, 256, 512, 512]));
        let e = set(differ).unwrap_err().to_string();
        assert!(e.contains("different sizes"), "{e}");
    }

    #[test]
    fn hostile_counts_in_gguf_are_refused_naming_the_key() {
        let cfg = presets::preset("tiny").unwrap();
        let set = |key: &str, v: Value| {
            let mut m = with_arch(&cfg);
            m.iter_mut().find(|(k, _)| k == key).unwrap().1 = v;
            ModelConfig::from_gguf(&gguf(m)).unwrap_err().to_string()
        };
        for v in [1u64 << 24, 1 << 40, 1 << 62] {
            let e = set("bitnet-b1.58.block_count", Value::U64(v));
            assert!(
                e.contains("'bitnet-b1.58.block_count'") && e.contains("implausibly large"),
                "{v}: {e}"
            );
        }
        let e = set("bitnet-b1.58.context_length", Value::U64(1 << 40));
        assert!(e.contains("'bitnet-b1.58.context_length'"), "{e}");
    }

    #[test]
    fn validate_names_the_field() {
        let base = presets::preset("tiny").unwrap();
        let e = |c: ModelConfig| c.validate().unwrap_err().to_string();
        assert!(
            e(ModelConfig {
                n_layers: 0,
                ..base.clone()
            })
            .contains("'n_layers': must be at least 1")
        );
        assert!(
            e(ModelConfig {
                rope_dim: 63,
                ..base.clone()
            })
            .contains("'rope_dim'")
        );
        assert!(
            e(ModelConfig {
                vocab_size: 1 << 30,
                ..base.clone()
            })
            .contains("implausibly large")
        );
        assert!(
            e(ModelConfig {
                architecture: "llama".into(),
                ..base
            })
            .contains("unsupported architecture 'llama'")
        );
    }

    #[test]
    fn distinct_linear_shapes_of_2b4t() {
        let cfg = presets::preset("2b4t").unwrap();
        assert_eq!(
            linear_shapes(&cfg),
            [(2560, 2560), (640, 2560), (6912, 2560), (2560, 6912)]
        );
        assert_eq!(cfg.layer_linear_shapes()[3], (2560, 2560));
    }
}
