//! `bitnet-hub`: resolves and fetches BitNet models from the Hugging Face Hub into the standard
//! Hugging Face cache, for both front ends (`bitnet-cli pull`, `-m hf:ORG/REPO[:FILE]` on the
//! CLI and the server). The engine stays network-free: a front end turns `hf:` into a local
//! path with [`Hub::fetch`] before `Model::open`.
//!
//! - [`spec`]: `ORG/REPO[:FILE]` and the `hf:` prefix;
//! - [`settings`]: `HF_ENDPOINT`, `HF_HUB_CACHE` / `HF_HOME`, `HF_TOKEN`, `HF_HUB_OFFLINE`, read
//!   as Python's `huggingface_hub` reads them;
//! - [`listing`]: the repository's files from the Hub API and which to download (the only
//!   `.gguf`, else the one named `*i2_s*`, else `:FILE` is required and the error lists them;
//!   no `.gguf` but `config.json` + `*.safetensors`: the checkpoint, converted on pull);
//! - [`fetch`]: [`Hub::fetch`], downloading, verifying and converting.
//!
//! # What hf-hub does and what is done here
//!
//! Downloads go through the `hf-hub` crate's blocking (`ureq`, rustls) API, version 0.4 (1.x is
//! async-only): it finds the file's commit and etag from the resolve endpoint (following the
//! Hub's redirect to its CDN), writes the standard layout (`models--ORG--REPO/blobs/<etag>`,
//! `snapshots/<commit>/<file>` as a relative symlink, `refs/main`), resumes a partial
//! `blobs/<etag>.part` with a `Range` request and retries a dropped connection from where it
//! stopped. Files pulled by Python's `huggingface_hub` are therefore found, and the other way
//! round. Gaps filled here:
//!
//! - **Verification**: hf-hub checks nothing. The size and (for LFS files, i.e. weights) the
//!   sha256 from the API listing are checked after the download; a mismatch removes the blob
//!   and its snapshot link, so nothing unverified stays in the cache.
//! - **The listing**: hf-hub's `RepoInfo` keeps file names only; the API's JSON with
//!   `blobs=true` (sizes, `lfs.sha256`) is read here, through hf-hub's request.
//! - **Environment**: hf-hub reads `HF_HOME` and `HF_ENDPOINT` only, and its default cache
//!   panics without a home directory; [`settings`] reads the full set.
//! - **Offline**: hf-hub has no offline mode; [`Hub::fetch`] looks in the cache only.
//! - **Partial downloads of Python**: Python names them `<etag>.incomplete`, hf-hub `.part`;
//!   an `.incomplete` one is renamed so that it resumes.
//! - **Progress**: hf-hub's indicatif bar is passed only when stderr is a terminal.

#![forbid(unsafe_code)]

pub mod error;
pub mod fetch;
pub mod listing;
pub mod settings;
pub mod spec;

pub use error::{HubError, Result};
pub use fetch::{Fetched, Hub};
pub use settings::Settings;
pub use spec::{HubRef, SCHEME};
