//! Keeping the output from harming the input or the disk: an output path that is one of the
//! input files is refused (by file identity, so `--force`, `..` components, symlinks and hard
//! links do not get around it), a temporary output is removed when SIGINT, SIGTERM or SIGHUP
//! ends the conversion (`Drop` does not run then), and temporary files of a run killed with
//! SIGKILL are named and removed by the next run writing the same output.
//!
//! The signal handler is process-wide, so the binary installs it ([`install_signal_cleanup`]);
//! a conversion only registers its temporary file ([`TempRegistration`]), which is harmless
//! when no handler is installed (tests and other tools driving [`crate::convert::run`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{ConvertError, Result};

/// The temporary file being written, for the signal handler.
static TEMP_FILE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Exit status after a signal ended the conversion (128 + SIGINT, as shells report it).
pub const INTERRUPTED_EXIT: i32 = 130;

/// Installs the handler that removes the registered temporary file and exits with
/// [`INTERRUPTED_EXIT`] on SIGINT, SIGTERM or SIGHUP (`ctrlc` with its `termination`
/// feature). Call once, from `main`.
///
/// # Errors
/// If a handler is already installed or the OS refuses it.
pub fn install_signal_cleanup() -> std::result::Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| {
        let tmp = TEMP_FILE.lock().unwrap_or_else(|p| p.into_inner()).take();
        // Registered before it was created: only a file that was there was removed.
        if let Some(tmp) = tmp.filter(|t| std::fs::remove_file(t).is_ok()) {
            bitnet_app::logging::notice(
                "bitnet-st2gguf",
                &format!(
                    "bitnet-st2gguf: interrupted; removed the temporary file {}",
                    tmp.display()
                ),
            );
        } else {
            bitnet_app::logging::notice("bitnet-st2gguf", "bitnet-st2gguf: interrupted");
        }
        std::process::exit(INTERRUPTED_EXIT);
    })
}

/// The temporary file of a running conversion, known to the signal handler while this lives.
pub struct TempRegistration(());

impl TempRegistration {
    /// Registers `tmp` (the writer's temporary file) for removal on a signal.
    pub fn new(tmp: &Path) -> Self {
        *TEMP_FILE.lock().unwrap_or_else(|p| p.into_inner()) = Some(tmp.to_path_buf());
        Self(())
    }
}

impl Drop for TempRegistration {
    /// The file was renamed into place or removed by the writer: nothing left to clean.
    fn drop(&mut self) {
        *TEMP_FILE.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Refuses an `output` that is the same file as any file of the checkpoint directory `input`
/// (config, safetensors shards, tokenizer files, ...): with `--force` the converter would
/// replace the model it reads. Compared by device and inode on Unix (hard links and symlinks
/// included), by canonical path elsewhere. An output that does not exist yet is no input.
///
/// # Errors
/// [`ConvertError::OutputIsInput`] naming both paths.
pub fn check_not_input(input: &Path, output: &Path) -> Result<()> {
    let Ok(out_meta) = std::fs::metadata(output) else {
        return Ok(());
    };
    let Ok(entries) = std::fs::read_dir(input) else {
        return Ok(()); // The checkpoint reader reports an unreadable input.
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_file() && same_file(&path, &meta, output, &out_meta) {
            return Err(ConvertError::OutputIsInput {
                output: output.to_path_buf(),
                input: path,
            });
        }
    }
    Ok(())
}

#[cfg(unix)]
fn same_file(_: &Path, a: &std::fs::Metadata, _: &Path, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(a: &Path, _: &std::fs::Metadata, b: &Path, _: &std::fs::Metadata) -> bool {
    matches!(
        (std::fs::canonicalize(a), std::fs::canonicalize(b)),
        (Ok(a), Ok(b)) if a == b
    )
}

/// Removes the temporary files of earlier runs writing `output` that were killed before they
/// could (see [`bitnet_gguf::stale_temp_files`]), naming each on stderr unless `quiet`.
pub fn remove_stale_temp_files(output: &Path, quiet: bool) {
    for (path, pid) in bitnet_gguf::stale_temp_files(output) {
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        match std::fs::remove_file(&path) {
            Ok(()) if !quiet => bitnet_app::logging::notice(
                "bitnet-st2gguf",
                &format!(
                    "info: removed {} ({:.1} MiB), the temporary output of an interrupted run (process {pid})",
                    path.display(),
                    size as f64 / (1 << 20) as f64
                ),
            ),
            Ok(()) => {}
            Err(e) => bitnet_app::logging::warning(
                "bitnet-st2gguf",
                &format!(
                    "cannot remove {}, the temporary output of an interrupted run (process {pid}): {e}",
                    path.display()
                ),
            ),
        }
    }
}
