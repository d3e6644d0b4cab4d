//! Errors the CLI itself detects (the engine, GGUF and tokenizer crates have their own), and
//! the one-line rendering of an error chain.

use std::path::PathBuf;

/// Bad input found by the CLI before or around the engine.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Text was given to a model that has no tokenizer.
    #[error("this model has no tokenizer; give token ids with --tokens")]
    NoTokenizer,
    /// A tokenizer was needed from a model that has none.
    #[error("{path}: this model has no tokenizer")]
    NoTokenizerIn {
        /// The model.
        path: PathBuf,
    },
    /// The prompt does not fit the session's context.
    #[error(
        "the prompt has {tokens} tokens but the context holds {ctx} ({})",
        too_long_hint(*ctx, *max)
    )]
    PromptTooLong {
        /// Prompt tokens.
        tokens: usize,
        /// Session context.
        ctx: usize,
        /// The model's trained context.
        max: usize,
    },
    /// `--ctx` asks for more than the model supports.
    #[error("--ctx {ctx} exceeds the model's context length of {max} tokens")]
    ContextTooLarge {
        /// Asked for.
        ctx: usize,
        /// The model's.
        max: usize,
    },
    /// No prompt anywhere.
    #[error("no prompt: give --prompt, --prompt-file, --tokens, or pipe the prompt to stdin")]
    NoPrompt,
    /// The prompt is empty.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong (the io error's text).
        message: String,
    },
    /// `--kernel` names a kernel this CPU cannot run.
    #[error(
        "--kernel {id}: not a kernel this CPU runs (available: {available}; `--kernel list` shows all)"
    )]
    UnknownKernel {
        /// The id given.
        id: String,
        /// The ids this CPU runs.
        available: String,
    },
    /// `--synthetic` names an unknown preset.
    #[error("unknown synthetic model '{name}' (known: {known})")]
    UnknownPreset {
        /// The name given.
        name: String,
        /// The known names.
        known: String,
    },
    /// A receipt file is malformed.
    #[error("{path}: not a valid receipt: {reason}")]
    BadReceipt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The text file scores no token.
    #[error("{path}: too short: it gives {tokens} tokens, perplexity needs at least 2")]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Tokens it gave.
        tokens: usize,
    },
}

impl CliError {
    /// A [`CliError::File`] from an io error.
    pub fn file(path: &std::path::Path, err: &std::io::Error) -> Self {
        Self::File {
            path: path.to_path_buf(),
            message: io_message(err),
        }
    }
}

pub use bitnet_app::report::io_message;

/// What to do about a prompt that does not fit: raising `-c` helps only below the model's own
/// context length (suggesting `-c 256` to a run that already has 256 would be no help).
fn too_long_hint(ctx: usize, max: usize) -> String {
    if ctx < max {
        format!("shorten the prompt, or raise -c/--ctx-size up to the model's {max}")
    } else {
        "shorten the prompt: that is the model's whole context".into()
    }
}
