//! `pull`, and `hf:ORG/REPO[:FILE]` wherever a model path is taken: both go through
//! `bitnet-hub` (download into the Hugging Face cache, or the cache only when offline) and
//! leave a local path, so everything after this point (loading, receipts) sees a file.

use std::path::PathBuf;

use anyhow::Result;
use bitnet_hub::{Fetched, Hub, HubRef};

use crate::args::{Command, PullArgs};

/// A client configured by the environment and `--offline`, with progress bars on a terminal.
fn hub(offline: bool) -> Result<Hub> {
    Ok(Hub::from_env()?.with_offline(offline).with_progress(true))
}

/// Says on stderr what was fetched (nothing when it all came from the cache).
fn report(r: &HubRef, f: &Fetched) {
    if let Some(why) = &f.unreachable {
        bitnet_app::logging::warning(
            "bitnet-cli",
            &format!(
                "the Hugging Face Hub could not be reached ({why}); using the cached {r} (commit {})",
                f.commit
            ),
        );
    }
    if !f.downloaded.is_empty() {
        bitnet_app::logging::notice(
            "bitnet-cli",
            &format!(
                "bitnet-cli: downloaded {} from {} (commit {})",
                f.downloaded.join(", "),
                r.repo,
                f.commit
            ),
        );
    }
    if f.converted {
        bitnet_app::logging::notice(
            "bitnet-cli",
            &format!("bitnet-cli: converted {} to {}", r.repo, f.path.display()),
        );
    }
}

/// `pull`: prints the local GGUF path on stdout.
pub fn run(args: PullArgs, offline: bool) -> Result<()> {
    let spec = args
        .repo
        .strip_prefix(bitnet_hub::SCHEME)
        .unwrap_or(&args.repo);
    let r = HubRef::parse(spec)?;
    let f = hub(offline)?.fetch(&r)?;
    report(&r, &f);
    if f.downloaded.is_empty() && !f.converted && f.unreachable.is_none() {
        bitnet_app::logging::notice(
            "bitnet-cli",
            &format!("bitnet-cli: {r} is up to date in the Hugging Face cache"),
        );
    }
    println!("{}", f.path.display());
    Ok(())
}

/// Replaces an `hf:` model value by the local file it is fetched to.
fn resolve(path: &mut PathBuf, offline: bool) -> Result<()> {
    let Some(r) = path.to_str().and_then(HubRef::from_model_arg) else {
        return Ok(());
    };
    let r = r?;
    let f = hub(offline)?.fetch(&r)?;
    report(&r, &f);
    tracing::info!(model = %r, path = %f.path.display(), "hf: model resolved");
    *path = f.path;
    Ok(())
}

fn resolve_opt(path: &mut Option<PathBuf>, offline: bool) -> Result<()> {
    path.as_mut().map_or(Ok(()), |p| resolve(p, offline))
}

/// Turns every `hf:` model of the command into its local path before the command runs.
pub fn resolve_models(command: &mut Command, offline: bool) -> Result<()> {
    match command {
        Command::Run(a) => resolve(&mut a.model.model, offline),
        Command::Chat(a) => resolve(&mut a.model.model, offline),
        Command::Perplexity(a) => resolve(&mut a.model.model, offline),
        Command::Logits(a) => resolve(&mut a.model.model, offline),
        Command::Inspect(a) => resolve(&mut a.file, offline),
        Command::Tokenize(a) => resolve(&mut a.model, offline),
        Command::Detokenize(a) => resolve(&mut a.model, offline),
        Command::Bench(a) => resolve_opt(&mut a.model, offline),
        Command::VerifyReceipt(a) => resolve_opt(&mut a.model, offline),
        Command::Completions(_) | Command::Man | Command::Pull(_) => Ok(()),
    }
}
