//! `bitnet-st2gguf`: Hugging Face BitNet b1.58 checkpoints (safetensors) to GGUF.
//!
//! Thin entry point: parse the arguments, run the conversion, and on failure print
//! `bitnet-st2gguf: error: <what>: <cause>: ...` (the whole error chain, one line, each
//! cause once: the printer all three binaries share) and exit with status 2.
//! Usage errors are clap's (status 2 as well); `--help` and `--version` exit 0.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use bitnet_st2gguf::{args, convert};

fn main() -> ExitCode {
    let args: args::Args =
        match bitnet_app::cli::parse("bitnet-st2gguf", std::env::args_os().collect()) {
            Ok(a) => a,
            Err(code) => return code,
        };
    bitnet_app::logging::init(&args.log, "warn");
    let printed = if let Some(shell) = args.completions {
        Some(bitnet_app::cli::print_completions::<args::Args>(
            shell,
            "bitnet-st2gguf",
        ))
    } else if args.man {
        Some(bitnet_app::cli::print_man::<args::Args>())
    } else {
        None
    };
    if let Some(result) = printed {
        return match result {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                bitnet_app::report::print_error("bitnet-st2gguf", &e);
                ExitCode::from(2)
            }
            _ => ExitCode::SUCCESS,
        };
    }
    if let Err(e) = bitnet_st2gguf::output::install_signal_cleanup() {
        bitnet_app::logging::warning(
            "bitnet-st2gguf",
            &format!("no signal handler ({e}); an interrupted run may leave its temporary file"),
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
