//! A repository's file list as the Hub's API gives it (`GET
//! {endpoint}/api/models/{repo}/revision/main?blobs=true`: the commit and every file with its
//! size and, for LFS files, the sha256), and the choice of what to download from it.

use serde::Deserialize;

use crate::error::{HubError, Result};

/// The API's answer (only the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct RepoListing {
    /// The commit `main` points at.
    pub sha: String,
    /// The files.
    #[serde(default)]
    pub siblings: Vec<Sibling>,
}

/// One file of the repository.
#[derive(Debug, Clone, Deserialize)]
pub struct Sibling {
    /// Its path in the repository.
    pub rfilename: String,
    /// Its size in bytes (with `blobs=true`).
    #[serde(default)]
    pub size: Option<u64>,
    /// LFS metadata: large files (weights) are stored in LFS, with a sha256.
    #[serde(default)]
    pub lfs: Option<Lfs>,
}

/// A file's LFS pointer: what the downloaded bytes must hash to.
#[derive(Debug, Clone, Deserialize)]
pub struct Lfs {
    /// Lower-case hex sha256 of the content.
    pub sha256: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
}

impl Sibling {
    /// The size the download must have, if the Hub says.
    pub fn expected_size(&self) -> Option<u64> {
        self.lfs.as_ref().and_then(|l| l.size).or(self.size)
    }
}

/// What a model reference needs from a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// One GGUF file, used as is.
    Gguf(String),
    /// A safetensors checkpoint: these files, converted to GGUF after download.
    Safetensors(Vec<String>),
}

/// Files of a checkpoint directory besides the weights that the converter reads.
const CHECKPOINT_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.safetensors.index.json",
];

/// Whether `name` is a GGUF file.
pub fn is_gguf(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".gguf")
}

/// The GGUF to use among `ggufs`: the only one, or the only one named like bitnet.cpp's I2_S
/// export (`*i2_s*`, what BitNet-rs runs natively); `None` when that leaves no single choice.
pub fn pick_gguf(ggufs: &[String]) -> Option<&String> {
    if let [only] = ggufs {
        return Some(only);
    }
    let mut i2s = ggufs
        .iter()
        .filter(|f| f.to_ascii_lowercase().contains("i2_s"));
    match (i2s.next(), i2s.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// Chooses what to download for `file` (or the whole repository) from its file names.
///
/// # Errors
/// [`HubError::NoSuchFile`], [`HubError::AmbiguousGguf`] (listing the GGUFs) or
/// [`HubError::NoModel`].
pub fn plan(repo: &str, file: Option<&str>, names: &[String]) -> Result<Plan> {
    let ggufs: Vec<String> = names.iter().filter(|n| is_gguf(n)).cloned().collect();
    if let Some(file) = file {
        if !names.iter().any(|n| n == file) {
            return Err(HubError::NoSuchFile {
                repo: repo.into(),
                file: file.into(),
                ggufs,
            });
        }
        return Ok(Plan::Gguf(file.to_string()));
    }
    if !ggufs.is_empty() {
        return match pick_gguf(&ggufs) {
            Some(f) => Ok(Plan::Gguf(f.clone())),
            None => Err(HubError::AmbiguousGguf {
                repo: repo.into(),
                ggufs,
            }),
        };
    }
    let has_config = names.iter().any(|n| n == "config.json");
    let weights: Vec<&String> = names
        .iter()
        .filter(|n| !n.contains('/') && n.ends_with(".safetensors"))
        .collect();
    if !has_config || weights.is_empty() {
        return Err(HubError::NoModel {
            repo: repo.into(),
            files: names.to_vec(),
        });
    }
    let files = names
        .iter()
        .filter(|n| CHECKPOINT_FILES.contains(&n.as_str()) || weights.contains(n))
        .cloned()
        .collect();
    Ok(Plan::Safetensors(files))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prefers_the_i2s_gguf() {
        let n = names(&["README.md", "ggml-model-i2_s.gguf", "ggml-model-f16.gguf"]);
        assert_eq!(
            plan("o/r", None, &n).unwrap(),
            Plan::Gguf("ggml-model-i2_s.gguf".into())
        );
    }

    #[test]
    fn two_plain_ggufs_are_listed() {
        let n = names(&["a-f16.gguf", "a-tq2_0.gguf"]);
        let e = plan("o/r", None, &n).unwrap_err().to_string();
        assert!(e.contains("a-f16.gguf, a-tq2_0.gguf"), "{e}");
        assert!(e.contains("o/r:FILE"), "{e}");
        assert_eq!(
            plan("o/r", Some("a-f16.gguf"), &n).unwrap(),
            Plan::Gguf("a-f16.gguf".into())
        );
        let e = plan("o/r", Some("b.gguf"), &n).unwrap_err().to_string();
        assert!(
            e.contains("no file 'b.gguf'") && e.contains("a-f16.gguf"),
            "{e}"
        );
    }

    #[test]
    fn safetensors_checkpoint_files() {
        let n = names(&[
            ".gitattributes",
            "README.md",
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ]);
        assert_eq!(
            plan("o/r", None, &n).unwrap(),
            Plan::Safetensors(names(&[
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer_config.json"
            ]))
        );
        let e = plan("o/r", None, &names(&["README.md"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no .gguf file") && e.contains("README.md"),
            "{e}"
        );
    }
}
