//! Where `chat` reads user turns from: a line editor with history on a terminal, plain lines
//! from a pipe (one turn per line, no prompt).

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Result;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

/// What one read gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// A line (without its newline).
    Line(String),
    /// Ctrl-C at the prompt (the line being edited is discarded).
    Interrupted,
    /// Ctrl-D on an empty line, or the end of piped input.
    Eof,
}

/// A source of user turns.
pub enum Source {
    /// rustyline on a terminal: line editing (arrows, Home/End, Ctrl-W, ...), history recalled
    /// with Up/Down, kept in `history` when given.
    Terminal {
        /// The editor.
        editor: Box<DefaultEditor>,
        /// The history file (appended to after each line), `None` with `--no-history`.
        history: Option<PathBuf>,
    },
    /// Lines of stdin when it is not a terminal.
    Pipe(std::io::Lines<std::io::StdinLock<'static>>),
}

/// Where the history lives: `bitnet-rs/chat_history` under the user's data directory
/// (`$XDG_DATA_HOME` or `~/.local/share` on Linux).
pub fn default_history_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("bitnet-rs").join("chat_history"))
}

impl Source {
    /// The line editor, loading `history` if it exists (a missing or unreadable history file
    /// is not an error: the chat works without it, with a warning for the unreadable case).
    pub fn terminal(history: Option<PathBuf>) -> Result<Self> {
        let config = rustyline::Config::builder()
            .max_history_size(1000)?
            .history_ignore_dups(true)?
            .history_ignore_space(true)
            .auto_add_history(false)
            .build();
        let mut editor = DefaultEditor::with_config(config)?;
        if let Some(path) = &history
            && path.exists()
            && let Err(e) = editor.load_history(path)
        {
            bitnet_app::logging::warning(
                "bitnet-cli",
                &format!("{}: history not loaded: {e}", path.display()),
            );
        }
        Ok(Self::Terminal {
            editor: Box::new(editor),
            history,
        })
    }

    /// Lines of stdin.
    pub fn pipe() -> Self {
        Self::Pipe(std::io::stdin().lock().lines())
    }

    /// Reads one line, showing `prompt` on a terminal.
    pub fn read(&mut self, prompt: &str) -> Result<Input> {
        match self {
            Self::Terminal { editor, .. } => match editor.readline(prompt) {
                Ok(line) => Ok(Input::Line(line)),
                Err(ReadlineError::Interrupted) => Ok(Input::Interrupted),
                Err(ReadlineError::Eof) => Ok(Input::Eof),
                Err(e) => Err(e.into()),
            },
            Self::Pipe(lines) => match lines.next() {
                Some(line) => Ok(Input::Line(line?)),
                None => Ok(Input::Eof),
            },
        }
    }

    /// Records `line` in the history (memory and file); failures to write the file are
    /// reported once and then history is kept in memory only.
    pub fn remember(&mut self, line: &str) {
        let Self::Terminal { editor, history } = self else {
            return;
        };
        if !matches!(editor.add_history_entry(line), Ok(true)) {
            return;
        }
        let Some(path) = history.as_ref() else {
            return;
        };
        let saved = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(ReadlineError::from)
            .and_then(|()| editor.append_history(path));
        if let Err(e) = saved {
            bitnet_app::logging::warning(
                "bitnet-cli",
                &format!(
                    "{}: history not saved ({e}); keeping it for this session only",
                    path.display()
                ),
            );
            *history = None;
        }
    }
}
