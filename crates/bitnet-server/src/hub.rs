//! `--model hf:ORG/REPO[:FILE]`: the model is fetched from the Hugging Face Hub into its
//! cache (or found there when offline) by `bitnet-hub` before the server starts, and the
//! arguments then name the local file, so the rest of the server (and the engine, which knows
//! no network) sees a path as for any other model.

use bitnet_hub::{Fetched, Hub, HubError, HubRef};

use crate::config::Args;

/// Replaces an `hf:` `--model` by its local path in the cache, and serves it under `ORG/REPO`
/// unless `--model-name` says otherwise. Returns what was fetched (`None` for a path).
///
/// # Errors
/// A malformed reference, the Hub's errors (missing repository, failed or corrupted
/// download), or offline and not cached: each naming the repository.
pub fn resolve_model(args: &mut Args) -> Result<Option<Fetched>, HubError> {
    let Some(r) = args
        .model
        .as_deref()
        .and_then(|p| p.to_str())
        .and_then(HubRef::from_model_arg)
    else {
        return Ok(None);
    };
    let r = r?;
    let fetched = Hub::from_env()?
        .with_offline(args.offline)
        .with_progress(true)
        .fetch(&r)?;
    if let Some(why) = &fetched.unreachable {
        tracing::warn!(model = %r, commit = %fetched.commit, reason = %why, "the Hugging Face Hub could not be reached; serving the cached copy");
    }
    if !fetched.downloaded.is_empty() {
        tracing::info!(repo = %r.repo, files = %fetched.downloaded.join(", "), commit = %fetched.commit, "downloaded from the Hugging Face Hub");
    }
    if fetched.converted {
        tracing::info!(repo = %r.repo, path = %fetched.path.display(), "converted the safetensors checkpoint to GGUF");
    }
    tracing::info!(model = %r, path = %fetched.path.display(), "hf: model resolved");
    args.model = Some(fetched.path.clone());
    if args.model_name.is_none() {
        args.model_name = Some(r.repo.clone());
    }
    Ok(Some(fetched))
}
