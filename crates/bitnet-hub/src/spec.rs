//! `ORG/REPO[:FILE]`: how a user names a model on the Hub, and the `hf:` prefix that marks it
//! where a path is expected (`-m hf:ORG/REPO`).

use std::fmt;

use crate::error::{HubError, Result};

/// The prefix that makes a `--model` value a Hub reference instead of a path.
pub const SCHEME: &str = "hf:";

/// A model on the Hub: a repository and, optionally, the file in it to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRef {
    /// `ORG/REPO`.
    pub repo: String,
    /// The file (a `.gguf`), when the repository has several.
    pub file: Option<String>,
}

impl HubRef {
    /// Parses `ORG/REPO` or `ORG/REPO:FILE` (without the `hf:` prefix).
    ///
    /// # Errors
    /// [`HubError::BadSpec`] naming what is wrong.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |why| HubError::BadSpec {
            spec: spec.to_string(),
            why,
        };
        let (repo, file) = match spec.split_once(':') {
            Some((r, f)) => (r, Some(f)),
            None => (spec, None),
        };
        let Some((org, name)) = repo.split_once('/') else {
            return Err(bad("no '/' between organisation and repository"));
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !valid(org) || !valid(name) {
            return Err(bad(
                "organisation and repository are letters, digits, '-', '_' and '.'",
            ));
        }
        let file = match file {
            None => None,
            Some(f)
                if f.is_empty()
                    || f.starts_with('/')
                    || f.split('/').any(|c| c.is_empty() || c == "." || c == "..") =>
            {
                return Err(bad("FILE must be a relative path inside the repository"));
            }
            Some(f) => Some(f.to_string()),
        };
        Ok(Self {
            repo: repo.to_string(),
            file,
        })
    }

    /// The reference in a `--model` value, if it starts with `hf:`; `None` for a path.
    ///
    /// # Errors
    /// [`HubError::BadSpec`] when it starts with `hf:` but is malformed.
    pub fn from_model_arg(value: &str) -> Option<Result<Self>> {
        value.strip_prefix(SCHEME).map(Self::parse)
    }
}

impl fmt::Display for HubRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{}:{file}", self.repo),
            None => f.write_str(&self.repo),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repo_and_file() {
        let r = HubRef::parse("microsoft/bitnet-b1.58-2B-4T-gguf").unwrap();
        assert_eq!(r.repo, "microsoft/bitnet-b1.58-2B-4T-gguf");
        assert_eq!(r.file, None);
        let r = HubRef::parse("org/repo:sub/ggml-model-i2_s.gguf").unwrap();
        assert_eq!(r.file.as_deref(), Some("sub/ggml-model-i2_s.gguf"));
        assert_eq!(r.to_string(), "org/repo:sub/ggml-model-i2_s.gguf");
        assert!(HubRef::from_model_arg("model.gguf").is_none());
        assert_eq!(
            HubRef::from_model_arg("hf:a/b").unwrap().unwrap().repo,
            "a/b"
        );
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "repo",
            "/repo",
            "a/",
            "a/b/c",
            "a/b:",
            "a/b:../x",
            "a/b:/etc/passwd",
            "a b/c",
        ] {
            let e = HubRef::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
