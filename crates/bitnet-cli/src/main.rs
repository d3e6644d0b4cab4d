//! `bitnet-cli`: run, chat, inspect, tokenize, bench, perplexity, logits and receipts for
//! BitNet b1.58 models.
//!
//! `main` stays thin (as ripgrep's does): parse, run, and turn an error into one line on
//! stderr and an exit code: 0 on success and on a closed pipe (`bitnet-cli run ... | head`),
//! 1 on errors, 2 on usage errors (clap).

mod args;
mod cmd;
mod common;
mod error;
mod npy;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(
                std::io::stderr().lock(),
                "bitnet-cli: error: {}",
                error::message_chain(&err)
            );
            ExitCode::from(1)
        }
    }
}

/// Whether the error comes from writing to a closed pipe (the reader went away: not a failure).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
