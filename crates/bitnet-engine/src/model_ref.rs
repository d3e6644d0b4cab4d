//! [`ModelRef`]: the one way both front ends name a model, and [`Model::open`] to load it.
//!
//! The CLI and the server accept the same three kinds of model (a path, the embedded model,
//! random weights of a preset's shapes); naming them with one type means one load path and one
//! identity rule for receipts (the run-record layer hashes a `ModelRef`, never a front end's
//! own notion of it).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use bitnet_gguf::GgufFile;

use crate::error::{EngineError, Result};
use crate::model::{LoadOptions, Model, ModelSource};

/// A model to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A GGUF file or a Hugging Face checkpoint directory.
    Path(PathBuf),
    /// The model embedded in the binaries (`bitnet-default-model`), parsed in place.
    Embedded,
    /// Random ternary weights with the shapes of a [`crate::synthetic::preset`].
    Synthetic {
        /// Preset name (`2b4t`, `3b`, `700m`, `tiny`).
        preset: String,
        /// Seed of the random weights.
        seed: u64,
    },
}

impl ModelRef {
    /// A synthetic model, checking the preset name.
    pub fn synthetic(preset: &str, seed: u64) -> Result<Self> {
        if crate::synthetic::preset(preset).is_none() {
            return Err(EngineError::UnknownPreset {
                name: preset.to_string(),
                known: crate::synthetic::PRESETS.join(", "),
            });
        }
        Ok(Self::Synthetic {
            preset: preset.to_string(),
            seed,
        })
    }

    /// What kind of source this is once loaded (a path is resolved to GGUF or checkpoint by
    /// what it is on disk).
    pub fn source(&self) -> ModelSource {
        match self {
            Self::Path(p) if p.is_dir() => ModelSource::HuggingFace,
            Self::Path(_) | Self::Embedded => ModelSource::Gguf,
            Self::Synthetic { .. } => ModelSource::Synthetic,
        }
    }

    /// A short name for logs and the served model id: the file name, the embedded model's
    /// name, or `synthetic-<preset>`.
    pub fn name(&self) -> String {
        match self {
            Self::Path(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string()),
            Self::Embedded => bitnet_default_model::NAME.to_string(),
            Self::Synthetic { preset, .. } => format!("synthetic-{preset}"),
        }
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(p) => write!(f, "{}", p.display()),
            Self::Embedded => f.write_str(bitnet_default_model::PSEUDO_PATH),
            Self::Synthetic { preset, seed } => write!(f, "<synthetic:{preset}:seed={seed}>"),
        }
    }
}

impl Model {
    /// Loads the model `r` names without ever mapping its file: what a long-running server
    /// wants. A GGUF file is read into memory with `read` (no `mmap`, so a file truncated or
    /// overwritten while it loads is a parse error, never SIGBUS, as it could be while
    /// [`Self::open`] maps it). After either load no weight refers to the file (ternary
    /// weights are repacked, the head copied into pages of its own), so the file's bytes are
    /// freed and the model cannot change under the process. A checkpoint directory is copied
    /// into owned weights at load too. llama.cpp keeps its model mapped by default: a file
    /// changed under it can crash it with SIGBUS.
    ///
    /// # Errors
    /// As [`Self::open`], or the file cannot be read.
    pub fn open_in_memory(r: &ModelRef, opts: &LoadOptions) -> Result<Self> {
        match r {
            ModelRef::Path(p) if !p.is_dir() => {
                if !p.is_file() {
                    return Err(EngineError::NotAModel { path: p.clone() });
                }
                let bytes = std::fs::read(p).map_err(|source| EngineError::Io {
                    path: p.clone(),
                    source,
                })?;
                let file = Arc::new(GgufFile::from_bytes_named(bytes, p.clone())?);
                Self::from_gguf_file(file, opts)
            }
            _ => Self::open(r, opts),
        }
    }

    /// Loads the model `r` names.
    pub fn open(r: &ModelRef, opts: &LoadOptions) -> Result<Self> {
        match r {
            ModelRef::Path(p) => Self::load(p, opts),
            ModelRef::Embedded => {
                let file = GgufFile::from_static(
                    bitnet_default_model::gguf_bytes(),
                    bitnet_default_model::PSEUDO_PATH,
                )?;
                Self::from_gguf_file(Arc::new(file), opts)
            }
            ModelRef::Synthetic { preset, seed } => {
                let config =
                    crate::synthetic::preset(preset).ok_or_else(|| EngineError::UnknownPreset {
                        name: preset.clone(),
                        known: crate::synthetic::PRESETS.join(", "),
                    })?;
                Self::synthetic(config, *seed, opts)
            }
        }
    }
}
