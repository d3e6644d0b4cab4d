//! One module per subcommand; [`run()`] dispatches.

mod bench;
mod chat;
mod completions;
mod inspect;
mod logits;
mod perplexity;
mod pull;
pub mod receipt;
mod run;
mod tokenize;

use anyhow::Result;

use crate::args::{Cli, Command};

/// The `--kernel` value of a command that takes one.
fn kernel_arg(command: &Command) -> Option<&str> {
    match command {
        Command::Run(a) => a.model.kernel.as_deref(),
        Command::Chat(a) => a.model.kernel.as_deref(),
        Command::Perplexity(a) => a.model.kernel.as_deref(),
        Command::Logits(a) => a.model.kernel.as_deref(),
        Command::Bench(a) => a.kernel.as_deref(),
        _ => None,
    }
}

/// Runs the parsed command line.
pub fn run(mut cli: Cli) -> Result<()> {
    // `--kernel list` on any command that takes --kernel: print the ids and stop, before
    // reading a prompt or a model.
    if kernel_arg(&cli.command) == Some("list") {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(bitnet_engine::backend::list_text().as_bytes())?;
        out.flush()?;
        return Ok(());
    }
    pull::resolve_models(&mut cli.command, cli.offline)?;
    match cli.command {
        Command::Run(a) => run::run(a),
        Command::Chat(a) => chat::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Tokenize(a) => tokenize::tokenize(a),
        Command::Detokenize(a) => tokenize::detokenize(a),
        Command::Bench(a) => bench::run(a),
        Command::Perplexity(a) => perplexity::run(a),
        Command::Logits(a) => logits::run(a),
        Command::VerifyReceipt(a) => receipt::verify(a),
        Command::Completions(a) => completions::run(a),
        Command::Pull(a) => pull::run(a, cli.offline),
        Command::Man => Ok(bitnet_app::cli::print_man::<Cli>()?),
    }
}
