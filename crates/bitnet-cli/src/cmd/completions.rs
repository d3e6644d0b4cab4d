//! `completions`: shell completion scripts from the clap definition (the same helper prints
//! `bitnet-server --completions` and `bitnet-st2gguf --completions`).

use anyhow::Result;

use crate::args::{Cli, CompletionsArgs};

/// Prints the completion script for the shell to stdout.
pub fn run(args: CompletionsArgs) -> Result<()> {
    bitnet_app::cli::print_completions::<Cli>(args.shell, "bitnet-cli")?;
    Ok(())
}
