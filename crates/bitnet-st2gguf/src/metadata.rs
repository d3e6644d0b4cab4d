//! GGUF metadata: the model shape under `<arch>.*`, the file description under `general.*`,
//! and the tokenizer under `tokenizer.*`.
//!
//! The key set and order mirror bitnet.cpp's own I2_S files (see
//! `fixtures/tiny-bitnet/i2s/README.md`), plus `<arch>.hidden_activation`, which BitNet-rs
//! reads (llama.cpp ignores keys it does not know), and `attention.key_length` /
//! `value_length` when `config.json` sets `head_dim` explicitly.

use std::path::Path;

use crate::ckpt::HfConfig;
use crate::gguf::{Array, Value};
use bitnet_tokenizer::GgufTokenizerData;

use crate::args::OutType;
use crate::error::{ConvertError, Result};

/// Model types this converter reads (`config.json` `model_type`).
pub const SUPPORTED_MODEL_TYPES: [&str; 1] = ["bitnet"];

/// The model's dimensions, checked for consistency before any shape is derived from them.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// Vocabulary size (rows of the embedding).
    pub vocab: usize,
    /// Hidden size.
    pub hidden: usize,
    /// FFN inner size.
    pub intermediate: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// Whether `config.json` gave `head_dim` explicitly.
    pub explicit_head_dim: bool,
    /// Whether the output head is the embedding.
    pub tied: bool,
}

impl Shape {
    /// Reads and checks the dimensions in `config.json`.
    pub fn from_config(cfg: &HfConfig, file: &Path) -> Result<Self> {
        let bad = |field: &'static str, reason: String| ConvertError::BadConfig {
            file: file.to_path_buf(),
            field,
            reason,
        };
        let fields = [
            ("vocab_size", cfg.vocab_size),
            ("hidden_size", cfg.hidden_size),
            ("intermediate_size", cfg.intermediate_size),
            ("num_hidden_layers", cfg.num_hidden_layers),
            ("num_attention_heads", cfg.num_attention_heads),
            ("num_key_value_heads", cfg.num_key_value_heads),
            ("max_position_embeddings", cfg.max_position_embeddings),
        ];
        for (field, v) in fields {
            if v == 0 {
                return Err(bad(field, "must be at least 1".to_string()));
            }
            // Every tensor size is a product of two of these: keep each product far from
            // overflow and from absurd allocations.
            if v > 1 << 24 {
                return Err(bad(field, format!("{v} is implausibly large")));
            }
        }
        let head_dim = match cfg.head_dim {
            Some(0) => return Err(bad("head_dim", "must be at least 1".to_string())),
            Some(d) => d,
            None => {
                if !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
                    return Err(bad(
                        "num_attention_heads",
                        format!(
                            "hidden_size {} is not a multiple of {} heads (and head_dim is not set)",
                            cfg.hidden_size, cfg.num_attention_heads
                        ),
                    ));
                }
                cfg.hidden_size / cfg.num_attention_heads
            }
        };
        if !cfg
            .num_attention_heads
            .is_multiple_of(cfg.num_key_value_heads)
        {
            return Err(bad(
                "num_key_value_heads",
                format!(
                    "{} attention heads are not a multiple of {} key/value heads",
                    cfg.num_attention_heads, cfg.num_key_value_heads
                ),
            ));
        }
        if head_dim % 2 != 0 || head_dim > 1 << 16 {
            return Err(bad(
                "head_dim",
                format!("{head_dim} must be even and at most 65536"),
            ));
        }
        if !(cfg.rms_norm_eps.is_finite() && cfg.rms_norm_eps >= 0.0) {
            return Err(bad(
                "rms_norm_eps",
                format!("{} must be finite and >= 0", cfg.rms_norm_eps),
            ));
        }
        if !(cfg.rope_theta.is_finite() && cfg.rope_theta > 0.0) {
            return Err(bad(
                "rope_theta",
                format!("{} must be finite and > 0", cfg.rope_theta),
            ));
        }
        Ok(Self {
            vocab: cfg.vocab_size,
            hidden: cfg.hidden_size,
            intermediate: cfg.intermediate_size,
            layers: cfg.num_hidden_layers,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim,
            explicit_head_dim: cfg.head_dim.is_some(),
            tied: cfg.tie_word_embeddings,
        })
    }

    /// Width of the query projection.
    pub fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Width of the key and value projections.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// The FFN activation name BitNet-rs reads from `<arch>.hidden_activation`.
fn activation_name(hidden_act: &str, file: &Path) -> Result<&'static str> {
    match hidden_act.to_ascii_lowercase().as_str() {
        "relu2" | "relu_squared" | "squared_relu" => Ok("relu2"),
        "silu" | "swish" => Ok("silu"),
        "gelu" | "gelu_pytorch_tanh" | "gelu_new" => Ok("gelu"),
        other => Err(ConvertError::BadConfig {
            file: file.to_path_buf(),
            field: "hidden_act",
            reason: format!("unknown activation '{other}' (known: relu2, silu, gelu)"),
        }),
    }
}

/// Everything `build` needs besides the config.
pub struct MetaInput<'a> {
    /// `general.architecture`.
    pub arch: &'a str,
    /// `general.name`.
    pub name: &'a str,
    /// Storage type of the linears (`general.file_type`).
    pub outtype: OutType,
    /// The checked dimensions.
    pub shape: &'a Shape,
    /// The tokenizer, when the checkpoint has one.
    pub tokenizer: Option<&'a GgufTokenizerData>,
    /// `config.json`, for error messages.
    pub config_file: &'a Path,
}

fn u32_of(v: usize, key: &str, file: &Path) -> Result<Value> {
    u32::try_from(v)
        .map(Value::U32)
        .map_err(|_| ConvertError::BadConfig {
            file: file.to_path_buf(),
            field: "dimensions",
            reason: format!("{key} = {v} does not fit in u32"),
        })
}

/// All metadata key/value pairs, in the order bitnet.cpp writes them.
pub fn build(cfg: &HfConfig, input: &MetaInput<'_>) -> Result<Vec<(String, Value)>> {
    let file = input.config_file;
    let s = input.shape;
    let arch = input.arch;
    let k = |key: &str| format!("{arch}.{key}");
    let mut m: Vec<(String, Value)> = vec![
        (
            "general.architecture".into(),
            Value::String(arch.to_string()),
        ),
        ("general.name".into(), Value::String(input.name.to_string())),
        (k("vocab_size"), u32_of(s.vocab, "vocab_size", file)?),
        (
            k("context_length"),
            u32_of(cfg.max_position_embeddings, "context_length", file)?,
        ),
        (
            k("embedding_length"),
            u32_of(s.hidden, "embedding_length", file)?,
        ),
        (k("block_count"), u32_of(s.layers, "block_count", file)?),
        (
            k("feed_forward_length"),
            u32_of(s.intermediate, "feed_forward_length", file)?,
        ),
        (
            k("rope.dimension_count"),
            u32_of(s.head_dim, "rope.dimension_count", file)?,
        ),
        (
            k("attention.head_count"),
            u32_of(s.heads, "head_count", file)?,
        ),
        (
            k("attention.head_count_kv"),
            u32_of(s.kv_heads, "head_count_kv", file)?,
        ),
        (
            k("attention.layer_norm_rms_epsilon"),
            Value::F32(cfg.rms_norm_eps),
        ),
        (k("rope.freq_base"), Value::F32(cfg.rope_theta)),
    ];
    if s.explicit_head_dim {
        m.push((
            k("attention.key_length"),
            u32_of(s.head_dim, "key_length", file)?,
        ));
        m.push((
            k("attention.value_length"),
            u32_of(s.head_dim, "value_length", file)?,
        ));
    }
    m.push((
        k("hidden_activation"),
        Value::String(activation_name(&cfg.hidden_act, file)?.to_string()),
    ));
    m.push((
        "general.file_type".into(),
        Value::U32(input.outtype.file_type()),
    ));
    if let Some(t) = input.tokenizer {
        tokenizer_keys(t, cfg, &mut m);
    } else {
        // Without a tokenizer the ids still matter to generation (BOS, stop tokens).
        if let Some(bos) = cfg.bos_token_id {
            m.push(("tokenizer.ggml.bos_token_id".into(), Value::U32(bos)));
        }
        if let Some(&eos) = cfg.eos_token_ids.first() {
            m.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(eos)));
        }
    }
    m.push(("general.quantization_version".into(), Value::U32(2)));
    Ok(m)
}

/// llama.cpp's token type for padding entries (`UNUSED`).
const TOKEN_TYPE_UNUSED: i32 = 5;

/// Makes the token list exactly `vocab` long: checkpoints often have more embedding rows than
/// tokens (rounded up for speed), and llama.cpp wants one token per row. The extra entries
/// are `[PAD<id>]` of type `UNUSED`, as llama.cpp's converter writes them. More tokens than
/// rows is an error: those ids would index past the embedding.
pub fn fit_tokenizer(t: &mut GgufTokenizerData, vocab: usize, file: &Path) -> Result<usize> {
    let n = t.tokens.len();
    if n > vocab {
        return Err(ConvertError::TokenizerVocab {
            file: file.to_path_buf(),
            tokens: n,
            vocab,
        });
    }
    for id in n..vocab {
        t.tokens.push(format!("[PAD{id}]"));
        if let Some(types) = &mut t.token_types {
            types.push(TOKEN_TYPE_UNUSED);
        }
        if let Some(scores) = &mut t.scores {
            scores.push(0.0);
        }
    }
    Ok(vocab - n)
}

/// `tokenizer.ggml.*` and `tokenizer.chat_template`, as llama.cpp's converter writes them for
/// a BPE (`gpt2`) vocabulary. Ids missing from the tokenizer files fall back to `config.json`.
fn tokenizer_keys(t: &GgufTokenizerData, cfg: &HfConfig, m: &mut Vec<(String, Value)>) {
    let key = |k: &str| format!("tokenizer.ggml.{k}");
    m.push((key("model"), Value::String(t.model.clone())));
    if let Some(pre) = &t.pre {
        m.push((key("pre"), Value::String(pre.clone())));
    }
    m.push((key("tokens"), Value::Array(Array::String(t.tokens.clone()))));
    if let Some(scores) = &t.scores {
        m.push((key("scores"), Value::Array(Array::F32(scores.clone()))));
    }
    if let Some(types) = &t.token_types {
        m.push((key("token_type"), Value::Array(Array::I32(types.clone()))));
    }
    if let Some(merges) = &t.merges {
        m.push((key("merges"), Value::Array(Array::String(merges.clone()))));
    }
    let ids = [
        ("bos_token_id", t.bos_id.or(cfg.bos_token_id)),
        (
            "eos_token_id",
            t.eos_id.or(cfg.eos_token_ids.first().copied()),
        ),
        ("eot_token_id", t.eot_id),
        ("unknown_token_id", t.unk_id),
        ("padding_token_id", t.padding_id),
    ];
    for (k, id) in ids {
        if let Some(id) = id {
            m.push((key(k), Value::U32(id)));
        }
    }
    if let Some(add_bos) = t.add_bos {
        m.push((key("add_bos_token"), Value::Bool(add_bos)));
    }
    if let Some(add_eos) = t.add_eos {
        m.push((key("add_eos_token"), Value::Bool(add_eos)));
    }
    if let Some(tpl) = &t.chat_template {
        m.push(("tokenizer.chat_template".into(), Value::String(tpl.clone())));
    }
}
