//! One policy for every file a binary writes (`--json-out`, `--receipt`, `logits --out`, the
//! converter's GGUF, ...), checked before any work starts:
//!
//! - the parent directory must exist and be a directory (a typo in a directory name fails in
//!   milliseconds, not after an hour of conversion or generation);
//! - the path must not be a directory, and an existing file is replaced only with `--force`;
//! - the bytes go to a temporary file in the same directory that is renamed over the target
//!   once complete, so a failed or interrupted write never leaves half a file under the name.
//!
//! [`OutputPath::check`] does the first two at start-up; [`OutputPath::write`] the last.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why an output path was refused or could not be written. Every variant names the flag and
/// the path, so the message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The directory the file would go into does not exist (or is not a directory).
    #[error("{flag} {path}: the directory {dir} does not exist")]
    NoDirectory {
        /// The flag that named the path (`--json-out`).
        flag: &'static str,
        /// The path given.
        path: PathBuf,
        /// Its parent directory.
        dir: PathBuf,
    },
    /// The path is an existing directory.
    #[error("{flag} {path}: is a directory")]
    IsDirectory {
        /// The flag.
        flag: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// The file exists and `--force` was not given.
    #[error("{flag} {path}: the file exists (add --force to replace it)")]
    Exists {
        /// The flag.
        flag: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// Writing failed.
    #[error("{flag} {path}: cannot write")]
    Write {
        /// The flag.
        flag: &'static str,
        /// The path.
        path: PathBuf,
        /// The io error.
        #[source]
        source: std::io::Error,
    },
}

/// An output file that passed the start-up checks (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPath {
    path: PathBuf,
    flag: &'static str,
}

impl OutputPath {
    /// Checks `path` (named by `flag`, e.g. `"--receipt"`) as the module doc says, replacing
    /// an existing file only when `force`.
    ///
    /// # Errors
    /// [`OutputError::NoDirectory`], [`OutputError::IsDirectory`] or [`OutputError::Exists`].
    pub fn check(path: &Path, flag: &'static str, force: bool) -> Result<Self, OutputError> {
        let dir = parent_dir(path);
        if !dir.is_dir() {
            return Err(OutputError::NoDirectory {
                flag,
                path: path.to_path_buf(),
                dir: dir.to_path_buf(),
            });
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => Err(OutputError::IsDirectory {
                flag,
                path: path.to_path_buf(),
            }),
            Ok(_) if !force => Err(OutputError::Exists {
                flag,
                path: path.to_path_buf(),
            }),
            _ => Ok(Self {
                path: path.to_path_buf(),
                flag,
            }),
        }
    }

    /// Checks an optional path (see [`OutputPath::check`]).
    ///
    /// # Errors
    /// As [`OutputPath::check`].
    pub fn check_opt(
        path: Option<&Path>,
        flag: &'static str,
        force: bool,
    ) -> Result<Option<Self>, OutputError> {
        path.map(|p| Self::check(p, flag, force)).transpose()
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The flag that named it.
    pub fn flag(&self) -> &'static str {
        self.flag
    }

    /// Writes `bytes` through a temporary file in the same directory renamed over the path.
    ///
    /// # Errors
    /// [`OutputError::Write`] naming the flag and path.
    pub fn write(&self, bytes: &[u8]) -> Result<(), OutputError> {
        self.write_with(|w| w.write_all(bytes))
    }

    /// Like [`OutputPath::write`], with the contents produced by `fill` into a buffered
    /// writer (for large outputs such as logits).
    ///
    /// # Errors
    /// [`OutputError::Write`] naming the flag and path.
    pub fn write_with(
        &self,
        fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), OutputError> {
        let err = |source| OutputError::Write {
            flag: self.flag,
            path: self.path.clone(),
            source,
        };
        let tmp = self.temp_path();
        let result = (|| {
            let file = std::fs::File::create(&tmp)?;
            let mut w = std::io::BufWriter::new(file);
            fill(&mut w)?;
            let file = w
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e));
        }
        Ok(())
    }

    /// `DIR/.NAME.PID.tmp`: hidden, in the target's directory (so the rename stays on one file
    /// system), unique per process.
    fn temp_path(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        parent_dir(&self.path).join(format!(".{name}.{}.tmp", std::process::id()))
    }
}

/// The directory `path` goes into (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "bitnet-app-output-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn missing_directory_existing_file_and_directory_are_refused() {
        let dir = tempdir();
        let e = OutputPath::check(&dir.join("nope/out.json"), "--json-out", true).unwrap_err();
        assert!(matches!(e, OutputError::NoDirectory { .. }), "{e}");
        assert!(e.to_string().starts_with("--json-out "), "{e}");
        let e = OutputPath::check(&dir, "--receipt", true).unwrap_err();
        assert!(matches!(e, OutputError::IsDirectory { .. }), "{e}");
        let file = dir.join("x.json");
        std::fs::write(&file, "old").unwrap();
        let e = OutputPath::check(&file, "--out", false).unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
        let ok = OutputPath::check(&file, "--out", true).unwrap();
        ok.write(b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_no_file() {
        let dir = tempdir();
        let file = dir.join("y.npy");
        let out = OutputPath::check(&file, "--out", false).unwrap();
        let e = out
            .write_with(|w| {
                w.write_all(b"partial")?;
                Err(std::io::Error::other("disk full"))
            })
            .unwrap_err();
        assert!(e.to_string().contains("--out"), "{e}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bare_file_name_goes_into_the_current_directory() {
        assert_eq!(parent_dir(Path::new("out.json")), Path::new("."));
    }
}
