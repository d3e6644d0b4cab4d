//! Where the Hub and the cache are, read from the environment the way Python's
//! `huggingface_hub` reads it, so both tools share one cache and one login.

use std::path::{Path, PathBuf};

use crate::error::{HubError, Result};

/// The public Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How to reach the Hub and where to keep what it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Base URL (`HF_ENDPOINT`, default [`DEFAULT_ENDPOINT`]), no trailing `/`.
    pub endpoint: String,
    /// The hub cache (`HF_HUB_CACHE`, else `HF_HOME/hub`, else
    /// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// Bearer token (`HF_TOKEN`, else the file `HF_TOKEN_PATH` or `HF_HOME/token` that
    /// `huggingface-cli login` writes).
    pub token: Option<String>,
    /// Use the cache only (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether an environment value means "on", as huggingface_hub reads boolean variables.
pub fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "on" | "yes" | "true"
    )
}

impl Settings {
    /// The settings the environment gives.
    ///
    /// # Errors
    /// [`HubError::NoCacheDir`] when no cache directory can be named.
    pub fn from_env() -> Result<Self> {
        let hf_home = var("HF_HOME").map(PathBuf::from).or_else(|| {
            var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| dirs::home_dir().map(|h| h.join(".cache")))
                .map(|c| c.join("huggingface"))
        });
        let cache_dir = match var("HF_HUB_CACHE") {
            Some(c) => PathBuf::from(c),
            None => hf_home.as_ref().ok_or(HubError::NoCacheDir)?.join("hub"),
        };
        let token = var("HF_TOKEN").or_else(|| {
            let path = var("HF_TOKEN_PATH")
                .map(PathBuf::from)
                .or_else(|| hf_home.as_deref().map(|h| h.join("token")))?;
            read_token(&path)
        });
        Ok(Self {
            endpoint: var("HF_ENDPOINT")
                .unwrap_or_else(|| DEFAULT_ENDPOINT.into())
                .trim_end_matches('/')
                .to_string(),
            cache_dir,
            token,
            offline: var("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v)),
        })
    }
}

fn read_token(path: &Path) -> Option<String> {
    let t = std::fs::read_to_string(path).ok()?;
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}
