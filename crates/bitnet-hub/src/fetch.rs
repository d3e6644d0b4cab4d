//! [`Hub::fetch`]: a [`HubRef`] to a local GGUF file in the Hugging Face cache, downloading
//! (resumably, verified) or converting what is missing, or only looking in the cache offline.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use hf_hub::api::sync::{Api, ApiBuilder};
use hf_hub::{Cache, Repo};
use sha2::{Digest, Sha256};

use crate::error::{HubError, Result};
use crate::listing::{self, Plan, RepoListing, Sibling};
use crate::settings::Settings;
use crate::spec::HubRef;

/// The directory next to a repository's `snapshots/` where converted GGUFs are kept, one
/// sub-directory per commit (Python's huggingface_hub ignores it; deleting the repository's
/// cache folder deletes it too).
pub const CONVERTED_DIR: &str = "bitnet-rs";

/// Download retries after a dropped connection, each resuming where the last one stopped
/// (hf-hub waits 300 ms, then doubles, between attempts).
const RETRIES: usize = 3;

/// What [`Hub::fetch`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The GGUF file to load (a snapshot symlink or a converted file in the cache).
    pub path: PathBuf,
    /// The commit it comes from.
    pub commit: String,
    /// Files downloaded now (empty when everything was cached).
    pub downloaded: Vec<String>,
    /// Whether a safetensors checkpoint was converted to GGUF now.
    pub converted: bool,
    /// Set when the Hub could not be reached and the cached copy is used instead (as
    /// huggingface_hub falls back to its cache): why the Hub was not asked.
    pub unreachable: Option<String>,
}

/// A Hub client over one cache.
#[derive(Debug, Clone)]
pub struct Hub {
    settings: Settings,
    progress: bool,
}

impl Hub {
    /// A client with these settings, no progress bars.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            progress: false,
        }
    }

    /// A client configured by the environment (see [`Settings::from_env`]).
    ///
    /// # Errors
    /// [`HubError::NoCacheDir`].
    pub fn from_env() -> Result<Self> {
        Settings::from_env().map(Self::new)
    }

    /// Progress bars on stderr while downloading and converting, when stderr is a terminal.
    #[must_use]
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on && std::io::stderr().is_terminal();
        self
    }

    /// Uses the cache only (as `HF_HUB_OFFLINE=1`) when `on`.
    #[must_use]
    pub fn with_offline(mut self, on: bool) -> Self {
        self.settings.offline |= on;
        self
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The cache folder of `repo` (`models--ORG--REPO`).
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.settings
            .cache_dir
            .join(Repo::model(repo.to_string()).folder_name())
    }

    /// The local GGUF for `r`: downloaded into the cache if missing (or converted, for a
    /// safetensors-only repository), or found in the cache when offline.
    ///
    /// # Errors
    /// Every [`HubError`]: the repository or file does not exist, a download failed or did
    /// not match the Hub's sha256, or offline and not cached.
    pub fn fetch(&self, r: &HubRef) -> Result<Fetched> {
        if self.settings.offline {
            return self.cached(r);
        }
        let api = self.api()?;
        let listing = match self.list(&api, r) {
            Ok(l) => l,
            // No answer at all (no network, DNS, refused): what is cached still serves.
            Err(HubError::Unreachable { url, message }) => {
                return match self.cached(r) {
                    Ok(mut f) => {
                        f.unreachable = Some(format!("{url}: {message}"));
                        Ok(f)
                    }
                    Err(_) => Err(HubError::Unreachable { url, message }),
                };
            }
            Err(e) => return Err(e),
        };
        let names: Vec<String> = listing
            .siblings
            .iter()
            .map(|s| s.rfilename.clone())
            .collect();
        let mut fetched = Fetched {
            path: PathBuf::new(),
            commit: listing.sha.clone(),
            downloaded: Vec::new(),
            converted: false,
            unreachable: None,
        };
        match listing::plan(&r.repo, r.file.as_deref(), &names)? {
            Plan::Gguf(file) => {
                let (path, downloaded) = self.download(&api, r, &listing, &file)?;
                if downloaded {
                    fetched.downloaded.push(file);
                }
                fetched.path = path;
            }
            Plan::Safetensors(files) => {
                let mut config = PathBuf::new();
                for file in files {
                    let (path, downloaded) = self.download(&api, r, &listing, &file)?;
                    if file == "config.json" {
                        config = path;
                    }
                    if downloaded {
                        fetched.downloaded.push(file);
                    }
                }
                let snapshot = config.parent().map(Path::to_path_buf).unwrap_or_default();
                let (path, converted) = self.convert(r, &snapshot, &listing.sha)?;
                fetched.path = path;
                fetched.converted = converted;
            }
        }
        Ok(fetched)
    }

    /// hf-hub's client for these settings. Its own environment reading is not used: it knows
    /// `HF_HOME` only (not `HF_HUB_CACHE`, `HF_TOKEN` or `XDG_CACHE_HOME`) and its default
    /// cache panics without a home directory.
    fn api(&self) -> Result<Api> {
        ApiBuilder::from_cache(Cache::new(self.settings.cache_dir.clone()))
            .with_endpoint(self.settings.endpoint.clone())
            .with_token(self.settings.token.clone())
            .with_progress(false)
            .with_retries(RETRIES)
            .with_user_agent("bitnet-rs", env!("CARGO_PKG_VERSION"))
            .build()
            .map_err(|e| HubError::Http {
                url: self.settings.endpoint.clone(),
                message: e.to_string(),
            })
    }

    /// The repository's commit and files, with sizes and LFS sha256s (`blobs=true`; hf-hub's
    /// `RepoInfo` drops them, so the JSON is read here).
    fn list(&self, api: &Api, r: &HubRef) -> Result<RepoListing> {
        let request = api
            .model(r.repo.clone())
            .info_request()
            .query("blobs", "true");
        let url = request.url().to_string();
        let response = request.call().map_err(|e| match e {
            ureq::Error::Status(status @ (401 | 404), _) => HubError::RepoNotFound {
                repo: r.repo.clone(),
                endpoint: self.settings.endpoint.clone(),
                status,
            },
            ureq::Error::Status(status @ 403, _) => HubError::Unauthorized {
                repo: r.repo.clone(),
                status,
            },
            ureq::Error::Status(status, resp) => HubError::Http {
                url: url.clone(),
                message: format!("HTTP {status} {}", resp.status_text()),
            },
            ureq::Error::Transport(t) => {
                // ureq's message starts with the URL, which the error names already.
                let message = t.to_string();
                let message = message
                    .strip_prefix(&format!("{url}: "))
                    .unwrap_or(&message)
                    .to_string();
                HubError::Unreachable {
                    url: url.clone(),
                    message,
                }
            }
        })?;
        response
            .into_json::<RepoListing>()
            .map_err(|e| HubError::BadResponse {
                url,
                message: e.to_string(),
            })
    }

    /// `file` of the listing's commit in the cache: already there, or downloaded by hf-hub
    /// (resuming a partial download) and checked. Returns the snapshot path and whether it
    /// was downloaded now.
    fn download(
        &self,
        api: &Api,
        r: &HubRef,
        listing: &RepoListing,
        file: &str,
    ) -> Result<(PathBuf, bool)> {
        let repo_dir = self.repo_dir(&r.repo);
        let pointer = repo_dir.join("snapshots").join(&listing.sha).join(file);
        let cache = Cache::new(self.settings.cache_dir.clone());
        let cache_repo = cache.model(r.repo.clone());
        if pointer.exists() {
            // Cached (by us or by Python's huggingface_hub): keep `refs/main` current.
            cache_repo
                .create_ref(&listing.sha)
                .map_err(HubError::io("writing the ref", repo_dir.join("refs/main")))?;
            return Ok((pointer, false));
        }
        let sibling = listing.siblings.iter().find(|s| s.rfilename == file);
        let blobs = repo_dir.join("blobs");
        if let Some(s) = sibling
            && let Some(lfs) = &s.lfs
        {
            prepare_partial(&blobs, &lfs.sha256, s.expected_size())?;
        }
        let repo = api.model(r.repo.clone());
        let result = if self.progress {
            repo.download_with_progress(file, indicatif::ProgressBar::new(0))
        } else {
            repo.download_with_progress(file, ())
        };
        let path = result.map_err(|source| HubError::Download {
            repo: r.repo.clone(),
            file: file.to_string(),
            endpoint: self.settings.endpoint.clone(),
            source: Box::new(source),
        })?;
        let blob = std::fs::canonicalize(&path).map_err(HubError::io("resolving", &path))?;
        // hf-hub leaves its lock file (`<blob>.lock`) next to the blob; nothing else uses it.
        let _ = std::fs::remove_file(blob.with_extension("lock"));
        if let Some(s) = sibling
            && let Err(e) = verify(&r.repo, s, &blob)
        {
            // Nothing unverified stays in the cache: the blob and the snapshot link go.
            let _ = std::fs::remove_file(&blob);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok((path, true))
    }

    /// The GGUF converted from the checkpoint in `snapshot` (commit `commit`), converting it
    /// now if it is not there yet. Returns the path and whether it was converted now.
    fn convert(&self, r: &HubRef, snapshot: &Path, commit: &str) -> Result<(PathBuf, bool)> {
        let name = r.repo.rsplit('/').next().unwrap_or(&r.repo);
        let out_dir = self.repo_dir(&r.repo).join(CONVERTED_DIR).join(commit);
        let out = out_dir.join(format!("{name}-i2_s.gguf"));
        if out.is_file() {
            return Ok((out, false));
        }
        std::fs::create_dir_all(&out_dir).map_err(HubError::io("creating", &out_dir))?;
        let convert_err = |source| HubError::Convert {
            repo: r.repo.clone(),
            output: out.clone(),
            source: Box::new(source),
        };
        let mut argv: Vec<std::ffi::OsString> = vec![
            "bitnet-st2gguf".into(),
            "--input".into(),
            snapshot.into(),
            "--output".into(),
            out.clone().into(),
            "--name".into(),
            r.repo.clone().into(),
        ];
        if !self.progress {
            argv.push("--quiet".into());
        }
        // Through the converter's own command line, so that its defaults (and any option it
        // gains) apply exactly as for `bitnet-st2gguf DIR -o FILE`.
        let args =
            <bitnet_st2gguf::args::Args as clap::Parser>::try_parse_from(argv).map_err(|e| {
                HubError::ConvertArgs {
                    message: e.to_string(),
                }
            })?;
        bitnet_st2gguf::convert::run(&args).map_err(convert_err)?;
        Ok((out, true))
    }

    /// Offline: the GGUF for `r` in the cache (converting a cached checkpoint if needed).
    fn cached(&self, r: &HubRef) -> Result<Fetched> {
        let not_cached = || HubError::NotCached {
            spec: r.to_string(),
            cache: self.settings.cache_dir.clone(),
        };
        let repo_dir = self.repo_dir(&r.repo);
        let commit = std::fs::read_to_string(repo_dir.join("refs/main"))
            .map(|s| s.trim().to_string())
            .map_err(|_| not_cached())?;
        let snapshot = repo_dir.join("snapshots").join(&commit);
        let mut names = Vec::new();
        list_files(&snapshot, "", &mut names);
        names.sort();
        let plan = match listing::plan(&r.repo, r.file.as_deref(), &names) {
            Ok(p) => p,
            Err(HubError::NoSuchFile { .. } | HubError::NoModel { .. }) => {
                return Err(not_cached());
            }
            Err(e) => return Err(e),
        };
        let (path, converted) = match plan {
            Plan::Gguf(file) => (snapshot.join(file), false),
            Plan::Safetensors(_) => self.convert(r, &snapshot, &commit)?,
        };
        Ok(Fetched {
            path,
            commit,
            downloaded: Vec::new(),
            converted,
            unreachable: None,
        })
    }
}

/// Readies the partial download of blob `sha256` for hf-hub's resumption: one Python's
/// huggingface_hub left (`blobs/<sha256>.incomplete`) is handed over under hf-hub's name
/// (`.part`) unless hf-hub has its own; a partial file that is already `size` bytes or more
/// (interrupted between the last byte and the rename) is removed, because hf-hub would ask
/// for the range after its end, fail, and fail the same way on every later run.
fn prepare_partial(blobs: &Path, sha256: &str, size: Option<u64>) -> Result<()> {
    let incomplete = blobs.join(format!("{sha256}.incomplete"));
    let part = blobs.join(format!("{sha256}.part"));
    if incomplete.is_file() && !part.exists() {
        std::fs::rename(&incomplete, &part).map_err(HubError::io("renaming", &incomplete))?;
    }
    if let (Some(size), Ok(meta)) = (size, std::fs::metadata(&part))
        && meta.len() >= size
    {
        std::fs::remove_file(&part).map_err(HubError::io("removing", &part))?;
    }
    Ok(())
}

/// Checks a downloaded blob against the listing: its size, and its sha256 for LFS files
/// (the Hub's only content hash; small non-LFS files have a git sha1 only).
fn verify(repo: &str, s: &Sibling, blob: &Path) -> Result<()> {
    let len = std::fs::metadata(blob)
        .map_err(HubError::io("reading", blob))?
        .len();
    if let Some(expected) = s.expected_size()
        && expected != len
    {
        return Err(HubError::SizeMismatch {
            repo: repo.into(),
            file: s.rfilename.clone(),
            expected,
            actual: len,
        });
    }
    if let Some(lfs) = &s.lfs {
        let actual = sha256_file(blob)?;
        if !actual.eq_ignore_ascii_case(&lfs.sha256) {
            return Err(HubError::HashMismatch {
                repo: repo.into(),
                file: s.rfilename.clone(),
                expected: lfs.sha256.clone(),
                actual,
            });
        }
    }
    Ok(())
}

/// Lower-case hex sha256 of a file, read in 1 MiB pieces.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(HubError::io("opening", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(HubError::io("reading", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Every file under `dir` as a `/`-separated path relative to it.
fn list_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = e.path();
        if path.is_dir() {
            list_files(&path, &rel, out);
        } else if path.exists() {
            out.push(rel);
        }
    }
}
