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

/// Runs the parsed command line.
pub fn run(mut cli: Cli) -> Result<()> {
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
    }
}
