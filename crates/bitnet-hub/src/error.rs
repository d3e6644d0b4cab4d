//! What can go wrong resolving or fetching a model, each error naming the repository, file or
//! setting involved.

use std::path::PathBuf;

/// A failed resolution or download.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// `ORG/REPO[:FILE]` was malformed.
    #[error("'{spec}' is not a Hugging Face model: expected ORG/REPO or ORG/REPO:FILE ({why})")]
    BadSpec {
        /// What was given.
        spec: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The Hub answered that the repository does not exist (or is private or gated and no
    /// token with access was sent).
    #[error(
        "Hugging Face repository '{repo}' not found at {endpoint} (HTTP {status}); if it is private or gated, set HF_TOKEN to a token with access"
    )]
    RepoNotFound {
        /// The repository id.
        repo: String,
        /// The Hub's base URL (HF_ENDPOINT).
        endpoint: String,
        /// The HTTP status.
        status: u16,
    },
    /// The Hub refused the token (or wants one).
    #[error(
        "access to Hugging Face repository '{repo}' refused (HTTP {status}): accept its terms on the Hub and set HF_TOKEN"
    )]
    Unauthorized {
        /// The repository id.
        repo: String,
        /// The HTTP status.
        status: u16,
    },
    /// The Hub could not be reached (network, DNS, connection refused) and nothing usable is
    /// cached.
    #[error(
        "cannot reach the Hugging Face Hub at {url}: {message} (HF_ENDPOINT names another Hub; models pulled before are used from the cache)"
    )]
    Unreachable {
        /// The URL requested.
        url: String,
        /// The transport error.
        message: String,
    },
    /// Any other HTTP failure.
    #[error(
        "request to {url} failed: {message} (HF_HUB_OFFLINE=1 or --offline uses the cache only)"
    )]
    Http {
        /// The URL requested.
        url: String,
        /// The status or transport error.
        message: String,
    },
    /// The Hub's answer could not be read.
    #[error("unexpected answer from {url}: {message}")]
    BadResponse {
        /// The URL requested.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// `:FILE` names no file of the repository.
    #[error("repository '{repo}' has no file '{file}'; its .gguf files: {}", list_or_none(.ggufs))]
    NoSuchFile {
        /// The repository id.
        repo: String,
        /// The file asked for.
        file: String,
        /// The repository's GGUF files.
        ggufs: Vec<String>,
    },
    /// Several GGUF files and none preferred: the user must pick one.
    #[error(
        "repository '{repo}' has {} .gguf files; pick one with {repo}:FILE: {}", .ggufs.len(), .ggufs.join(", ")
    )]
    AmbiguousGguf {
        /// The repository id.
        repo: String,
        /// Its GGUF files.
        ggufs: Vec<String>,
    },
    /// Neither a GGUF nor a safetensors checkpoint.
    #[error(
        "repository '{repo}' has no .gguf file and no safetensors checkpoint (config.json + *.safetensors); its files: {}", list_or_none(.files)
    )]
    NoModel {
        /// The repository id.
        repo: String,
        /// Its files.
        files: Vec<String>,
    },
    /// A downloaded file's sha256 is not the Hub's; the file was removed from the cache.
    #[error(
        "{repo}/{file}: downloaded sha256 {actual} does not match the Hub's {expected}; the download was removed from the cache, run the command again"
    )]
    HashMismatch {
        /// The repository id.
        repo: String,
        /// The file.
        file: String,
        /// The Hub's sha256 (LFS metadata).
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// A downloaded file's size is not the Hub's; the file was removed from the cache.
    #[error(
        "{repo}/{file}: downloaded {actual} bytes but the Hub lists {expected}; the download was removed from the cache, run the command again"
    )]
    SizeMismatch {
        /// The repository id.
        repo: String,
        /// The file.
        file: String,
        /// The Hub's size.
        expected: u64,
        /// What arrived.
        actual: u64,
    },
    /// Offline and the model is not in the cache.
    #[error(
        "hf:{spec} is not in the Hugging Face cache at {} and offline mode is on (HF_HUB_OFFLINE / --offline): run `bitnet-cli pull {spec}` while online", .cache.display()
    )]
    NotCached {
        /// The model asked for.
        spec: String,
        /// The cache directory searched.
        cache: PathBuf,
    },
    /// hf-hub's download failed.
    #[error("downloading {repo}/{file} from {endpoint} failed (run again to resume)")]
    Download {
        /// The repository id.
        repo: String,
        /// The file.
        file: String,
        /// The Hub's base URL.
        endpoint: String,
        /// The cause.
        #[source]
        source: Box<hf_hub::api::sync::ApiError>,
    },
    /// A cache file or directory could not be read or written.
    #[error("{}: {action}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Converting a safetensors-only repository to GGUF failed.
    #[error("converting {repo} (safetensors) to GGUF in {} failed", .output.display())]
    Convert {
        /// The repository id.
        repo: String,
        /// The GGUF being written.
        output: PathBuf,
        /// The converter's error.
        #[source]
        source: Box<bitnet_st2gguf::error::ConvertError>,
    },
    /// The converter refused the arguments built for it (a bug: they are fixed).
    #[error("the converter refused its arguments: {message}")]
    ConvertArgs {
        /// clap's message.
        message: String,
    },
    /// No cache directory: neither HF_HUB_CACHE, HF_HOME nor a home directory is known.
    #[error(
        "no Hugging Face cache directory: set HF_HUB_CACHE or HF_HOME (no home directory found)"
    )]
    NoCacheDir,
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl HubError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

/// Results of this crate.
pub type Result<T, E = HubError> = std::result::Result<T, E>;
