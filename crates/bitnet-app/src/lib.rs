//! What `bitnet-cli`, `bitnet-server` and `bitnet-st2gguf` do the same way, so a user sees one
//! behaviour across them:
//!
//! - [`logging`]: `-v`/`-q` and `RUST_LOG` through `tracing-subscriber`, text or JSON lines on
//!   stderr, colours only on a terminal, and a writer that never panics when stderr is a
//!   closed pipe (a log line is dropped instead).
//! - [`output`]: one policy for output files: checked before work starts (directory exists,
//!   no existing file without `--force`), written through a temporary file and a rename.
//! - [`cli`]: clap parsing whose usage errors obey `--log-format json`, and the completion
//!   scripts and man pages (clap_complete, clap_mangen) of every binary.
//! - [`report`]: one error-chain printer (`program: error: what: cause: cause`), a broken
//!   pipe on stdout treated as success (`bitnet-cli run ... | head`), the exit codes.
//!
//! Errors across the workspace follow one rule that makes the printer work: a variant that
//! has a source exposes it through `source()` and never also formats it into its own message,
//! so every cause is printed exactly once.

#![forbid(unsafe_code)]

pub mod cli;
pub mod logging;
pub mod output;
pub mod report;

pub use logging::{LogArgs, LogFormat};
pub use output::{OutputError, OutputPath};
pub use report::{chain, is_broken_pipe};
