//! [`HfConfig`]: the fields of a Hugging Face `config.json` a BitNet model needs, with
//! transformers' defaults and every spelling transformers versions write (`rope_theta` or
//! `rope_parameters.rope_theta`, `torch_dtype` or `dtype`, `eos_token_id` as a number or a
//! list).
//!
//! This is the Hugging Face spelling of the hyper-parameters, so it lives with the schema:
//! the checkpoint reader parses it, [`crate::ModelConfig::from_hf`] turns it into the one
//! validated config, and nothing depends on the checkpoint reader to know what a field means.

use std::path::Path;

use serde_json::Value as Json;

use crate::error::{Result, SchemaError};
use crate::layers::Dims;

/// `config.json` `model_type` values that describe a BitNet b1.58 model.
pub const SUPPORTED_MODEL_TYPES: [&str; 1] = ["bitnet"];

/// `quantization_config.linear_class` values transformers writes for BitNet (compared
/// case-insensitively). Anything else is refused: the class decides whether `weight_scale`
/// multiplies or divides, so guessing would silently load different weights.
pub const KNOWN_LINEAR_CLASSES: [&str; 2] = ["bitlinear", "autobitlinear"];

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

/// The fields of `config.json` the engine and the converter use.
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

/// `quantization_config.linear_class`: absent or null, or one of [`KNOWN_LINEAR_CLASSES`].
fn linear_class(q: &Json) -> std::result::Result<Option<String>, String> {
    match q.get("linear_class") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(class))
            if KNOWN_LINEAR_CLASSES
                .iter()
                .any(|k| k.eq_ignore_ascii_case(class)) =>
        {
            Ok(Some(class.clone()))
        }
        Some(v) => Err(format!(
            "field 'quantization_config.linear_class' is {v}, not a known linear class \
             (known: {}); it decides whether weight_scale multiplies or divides",
            KNOWN_LINEAR_CLASSES.join(", ")
        )),
    }
}

impl HfConfig {
    /// Parses `config.json` text; `path` names the file in errors.
    ///
    /// # Errors
    /// [`SchemaError::Json`] naming the file and the field that is missing or mistyped.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let err = |message: String| SchemaError::Json {
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
        let token_id = |key: &str, v: &Json| {
            id(v).ok_or_else(|| err(format!("field '{key}' is not a token id: {v}")))
        };
        let bos_token_id = match j.get("bos_token_id") {
            None | Some(Json::Null) => None,
            Some(v) => Some(token_id("bos_token_id", v)?),
        };
        let eos_token_ids = match j.get("eos_token_id") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(list)) => list
                .iter()
                .map(|v| token_id("eos_token_id", v))
                .collect::<Result<_>>()?,
            Some(v) => vec![token_id("eos_token_id", v)?],
        };
        let quantization = match j.get("quantization_config") {
            None | Some(Json::Null) => None,
            Some(q) => Some(Quantization {
                quant_method: q
                    .get("quant_method")
                    .and_then(Json::as_str)
                    .map(str::to_owned),
                linear_class: linear_class(q).map_err(err)?,
                quantization_mode: q
                    .get("quantization_mode")
                    .and_then(Json::as_str)
                    .map(str::to_owned),
            }),
        };
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
            // transformers >= 4.56 moved it to `rope_parameters.rope_theta`.
            rope_theta: match j.get("rope_parameters").and_then(|p| p.get("rope_theta")) {
                Some(v) => v.as_f64().map(|x| x as f32).ok_or_else(|| {
                    err(format!(
                        "field 'rope_parameters.rope_theta' is not a number: {v}"
                    ))
                })?,
                None => f32_of("rope_theta", 10_000.0)?,
            },
            hidden_act: str_of("hidden_act").unwrap_or_else(|| "relu2".to_owned()),
            tie_word_embeddings: j
                .get("tie_word_embeddings")
                .and_then(Json::as_bool)
                .unwrap_or(true),
            bos_token_id,
            eos_token_ids,
            dtype: str_of("torch_dtype").or_else(|| str_of("dtype")),
            quantization,
        })
    }

    /// Per-head dimension: `head_dim`, else `hidden_size / num_attention_heads`.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The widths of the tensor shapes ([`crate::layers`]), computed without overflow so that
    /// a reader can derive expected shapes before the config is validated (an absurd value
    /// gives a shape no tensor has, a shape error, not a panic).
    pub fn dims(&self) -> Dims {
        let hd = self.head_dim();
        Dims {
            hidden: self.hidden_size,
            q_dim: self.num_attention_heads.saturating_mul(hd),
            kv_dim: self.num_key_value_heads.saturating_mul(hd),
            intermediate: self.intermediate_size,
        }
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
