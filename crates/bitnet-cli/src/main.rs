//! `bitnet-cli`: run, chat, inspect, tokenize, bench, perplexity, logits and receipts for
//! BitNet b1.58 models.
//!
//! `main` stays thin (as ripgrep's does): parse, run, and turn an error into one line on
//! stderr and an exit code: 0 on success and on a closed pipe (`bitnet-cli run ... | head`),
//! 1 on errors, 2 on usage errors (clap).

#![forbid(unsafe_code)]

mod args;
mod cmd;
mod common;
mod error;
mod npy;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli: args::Cli = match bitnet_app::cli::parse("bitnet-cli", std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    bitnet_app::logging::init(&cli.log, "warn");
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let err: &(dyn std::error::Error + 'static) = err.as_ref();
            if bitnet_app::is_broken_pipe(err) {
                return ExitCode::SUCCESS;
            }
            bitnet_app::report::print_error("bitnet-cli", err);
            ExitCode::from(1)
        }
    }
}
