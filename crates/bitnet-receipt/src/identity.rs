//! The one model-identity rule: what a receipt says a model *is*, for every kind of
//! [`ModelRef`], whichever front end wrote it.
//!
//! - A **file** (a GGUF): the SHA-256 of its bytes (what `sha256sum` prints) and its size.
//! - A **checkpoint directory**: the files directly inside it (not in subdirectories;
//!   symlinks followed; hidden files included), sorted by file name in byte order, each fed
//!   to one SHA-256 as its name (UTF-8, lossy), a NUL byte, then its contents; the size is
//!   the sum of their sizes. Renaming, adding, removing or changing any file changes the hash.
//!   (This was `bitnet-cli`'s rule; the server's `sha256sum`-listing rule is gone, so one
//!   directory has one identity.)
//! - The **embedded** model: the SHA-256 and size of its GGUF bytes (equal to those of the
//!   `.gguf` file it was built from).
//! - A **synthetic** model: its preset and seed, which determine every weight; no hash.
//!
//! The identity also keeps the [`ModelRef`] (a path made absolute), so a verifier can load
//! the model again. In JSON it is the `ref` text: the absolute path, `embedded`, or
//! `synthetic:PRESET:SEED` (see [`model_ref_text`]).

use std::io::Read;
use std::path::{Path, PathBuf};

use bitnet_engine::ModelRef;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::IdentityError;

/// What a model is: how to load it again and, unless it is synthetic, the hash of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// The model: an absolute path, the embedded model, or a synthetic preset and seed.
    #[serde(rename = "ref", with = "model_ref_text")]
    pub model: ModelRef,
    /// Bytes hashed (a directory: the sum of its files); `None` for a synthetic model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// SHA-256, lower-case hex (see the module doc for directories); `None` for a synthetic
    /// model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl ModelIdentity {
    /// The identity of `model` by the rule in the module doc. Reads (and hashes) every byte
    /// of a file or directory, so a front end computes it once per model, not per request.
    pub fn of(model: &ModelRef) -> Result<Self, IdentityError> {
        match model {
            ModelRef::Path(p) => {
                let err = |source| IdentityError {
                    path: p.clone(),
                    source,
                };
                let abs = std::fs::canonicalize(p).map_err(err)?;
                if abs.to_str().is_none() {
                    return Err(err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the path is not valid UTF-8 (receipts record paths as text)",
                    )));
                }
                let (bytes, sha256) = hash_path(&abs)?;
                Ok(Self {
                    model: ModelRef::Path(abs),
                    bytes: Some(bytes),
                    sha256: Some(sha256),
                })
            }
            ModelRef::Embedded => {
                let bytes = bitnet_default_model::gguf_bytes();
                Ok(Self {
                    model: ModelRef::Embedded,
                    bytes: Some(bytes.len() as u64),
                    sha256: Some(sha256_hex(bytes)),
                })
            }
            ModelRef::Synthetic { .. } => Ok(Self {
                model: model.clone(),
                bytes: None,
                sha256: None,
            }),
        }
    }
}

/// SHA-256 of bytes in memory, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Size and SHA-256 of a model file or checkpoint directory (the rule in the module doc).
pub fn hash_path(path: &Path) -> Result<(u64, String), IdentityError> {
    let err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| IdentityError { path: p, source }
    };
    let mut hasher = Sha256::new();
    let meta = std::fs::metadata(path).map_err(err(path))?;
    if !meta.is_dir() {
        let total = hash_file_into(path, &mut hasher)?;
        return Ok((total, hex(&hasher.finalize())));
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(path).map_err(err(path))? {
        let p = entry.map_err(err(path))?.path();
        if p.is_file() {
            files.push(p);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let mut total = 0u64;
    for file in files {
        if let Some(name) = file.file_name() {
            hasher.update(name.to_string_lossy().as_bytes());
            hasher.update([0u8]);
        }
        total += hash_file_into(&file, &mut hasher)?;
    }
    Ok((total, hex(&hasher.finalize())))
}

fn hash_file_into(path: &Path, hasher: &mut Sha256) -> Result<u64, IdentityError> {
    let err = |source| IdentityError {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The text form of a [`ModelRef`] in receipts: a path as is, `embedded`, or
/// `synthetic:PRESET:SEED`.
///
/// Receipts record absolute paths ([`ModelIdentity::of`] canonicalises them), which never
/// read as `embedded` or start with `synthetic:`, so the form is unambiguous. Paths must be
/// UTF-8 to be written.
pub mod model_ref_text {
    use std::path::PathBuf;

    use bitnet_engine::ModelRef;
    use serde::{Deserialize, Deserializer, Serializer};

    /// The text of the embedded model.
    pub const EMBEDDED: &str = "embedded";
    /// The prefix of a synthetic model.
    pub const SYNTHETIC_PREFIX: &str = "synthetic:";

    /// `r` as text; `None` for a path that is not UTF-8.
    pub fn to_text(r: &ModelRef) -> Option<String> {
        match r {
            ModelRef::Path(p) => p.to_str().map(str::to_string),
            ModelRef::Embedded => Some(EMBEDDED.to_string()),
            ModelRef::Synthetic { preset, seed } => {
                Some(format!("{SYNTHETIC_PREFIX}{preset}:{seed}"))
            }
        }
    }

    /// Parses the text form; the message says what is wrong.
    pub fn from_text(s: &str) -> Result<ModelRef, String> {
        if s == EMBEDDED {
            return Ok(ModelRef::Embedded);
        }
        if let Some(rest) = s.strip_prefix(SYNTHETIC_PREFIX) {
            let (preset, seed) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("'{s}' is not synthetic:PRESET:SEED"))?;
            let seed: u64 = seed
                .parse()
                .map_err(|_| format!("'{s}': the seed '{seed}' is not an unsigned integer"))?;
            return ModelRef::synthetic(preset, seed).map_err(|e| e.to_string());
        }
        if s.is_empty() {
            return Err("the model reference is empty".into());
        }
        Ok(ModelRef::Path(PathBuf::from(s)))
    }

    /// Serde: writes [`to_text`].
    pub fn serialize<S: Serializer>(r: &ModelRef, s: S) -> Result<S::Ok, S::Error> {
        match to_text(r) {
            Some(text) => s.serialize_str(&text),
            None => Err(serde::ser::Error::custom(format!(
                "model path {r} is not valid UTF-8"
            ))),
        }
    }

    /// Serde: reads [`from_text`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ModelRef, D::Error> {
        let text = String::deserialize(d)?;
        from_text(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_hashes_as_sha256sum() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        let id = ModelIdentity::of(&ModelRef::Path(p.clone())).unwrap();
        assert_eq!(id.bytes, Some(3));
        assert_eq!(
            id.sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(id.model, ModelRef::Path(std::fs::canonicalize(&p).unwrap()));
    }

    #[test]
    fn a_directory_hashes_names_nul_and_contents_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.json"), b"{}").unwrap();
        std::fs::write(dir.path().join("a.bin"), b"xyz").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("ignored"), b"!").unwrap();
        let (bytes, sha) = hash_path(dir.path()).unwrap();
        assert_eq!(bytes, 5);
        assert_eq!(sha, sha256_hex(b"a.bin\0xyzb.json\0{}"));
        // Renaming a file changes the identity even with the same bytes.
        std::fs::rename(dir.path().join("b.json"), dir.path().join("c.json")).unwrap();
        assert_ne!(hash_path(dir.path()).unwrap().1, sha);
    }

    #[test]
    fn embedded_and_synthetic_identities() {
        let e = ModelIdentity::of(&ModelRef::Embedded).unwrap();
        let bytes = bitnet_default_model::gguf_bytes();
        assert_eq!(e.bytes, Some(bytes.len() as u64));
        assert_eq!(e.sha256, Some(sha256_hex(bytes)));
        let s = ModelIdentity::of(&ModelRef::synthetic("tiny", 7).unwrap()).unwrap();
        assert_eq!((s.bytes, s.sha256), (None, None));
        assert_eq!(
            model_ref_text::to_text(&s.model).unwrap(),
            "synthetic:tiny:7"
        );
    }

    #[test]
    fn a_missing_path_is_named() {
        let err = ModelIdentity::of(&ModelRef::Path("/no/such/model.gguf".into())).unwrap_err();
        assert_eq!(err.path, Path::new("/no/such/model.gguf"));
        assert_eq!(err.source.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(err.to_string(), "/no/such/model.gguf: hashing the model");
    }

    #[test]
    fn ref_text_round_trips_and_names_errors() {
        use model_ref_text::{from_text, to_text};
        for r in [
            ModelRef::Path("/m/model.gguf".into()),
            ModelRef::Embedded,
            ModelRef::synthetic("2b4t", 42).unwrap(),
        ] {
            assert_eq!(from_text(&to_text(&r).unwrap()).unwrap(), r);
        }
        assert!(
            from_text("synthetic:tiny")
                .unwrap_err()
                .contains("synthetic:PRESET:SEED")
        );
        assert!(
            from_text("synthetic:tiny:x")
                .unwrap_err()
                .contains("seed 'x'")
        );
        assert!(from_text("synthetic:nope:1").unwrap_err().contains("nope"));
        assert!(from_text("").is_err());
    }
}
