//! `bitnet-st2gguf`: Hugging Face BitNet b1.58 checkpoints (safetensors) to GGUF.
//!
//! Thin entry point: parse the arguments, run the conversion, and on failure print
//! `bitnet-st2gguf: error: <what>: <cause>: ...` (the whole error chain, one line, each
//! cause once: the printer all three binaries share) and exit with status 2.
//! Usage errors are clap's (status 2 as well); `--help` and `--version` exit 0.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use bitnet_st2gguf::{args, convert};
use clap::Parser;

fn main() -> ExitCode {
    let args = args::Args::parse();
    bitnet_app::logging::init(&args.log, "warn");
    if let Err(e) = bitnet_st2gguf::output::install_signal_cleanup() {
        eprintln!(
            "bitnet-st2gguf: warning: no signal handler ({e}); an interrupted run may leave its temporary file"
        );
    }
    match convert::run(&args) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            bitnet_app::report::print_error("bitnet-st2gguf", &err);
            ExitCode::from(2)
        }
    }
}
