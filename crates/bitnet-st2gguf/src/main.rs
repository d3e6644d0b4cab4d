//! `bitnet-st2gguf`: Hugging Face BitNet b1.58 checkpoints (safetensors) to GGUF.
//!
//! Thin entry point: parse the arguments, run the conversion, and on failure print
//! `error: <what>: <cause>: ...` (the whole error chain, one line) and exit with status 2.
//! Usage errors are clap's (status 2 as well); `--help` and `--version` exit 0.

use std::process::ExitCode;

use bitnet_st2gguf::{args, convert};
use clap::Parser;

fn main() -> ExitCode {
    let args = args::Args::parse();
    match convert::run(&args) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", chain(&err));
            ExitCode::from(2)
        }
    }
}

/// The error and its sources joined by `": "`, like anyhow's `{:#}`.
fn chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Some libraries repeat their source in their own message: do not print it twice.
        if !msg.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}
