//! The conversation `chat` keeps: the system prompt and the turns after it, how the oldest
//! turns are dropped when the context is full (context shift), and `/save`.

use std::io::Write;
use std::path::{Path, PathBuf};

use bitnet_tokenizer::ChatMessage;

use crate::error::CliError;

/// The system prompt (kept through `/clear` and context shifts) and the messages after it.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    system: Option<ChatMessage>,
    turns: Vec<ChatMessage>,
}

impl Conversation {
    /// A conversation that starts with `system` when given.
    pub fn new(system: Option<&str>) -> Self {
        Self {
            system: system.map(|s| message("system", s)),
            turns: Vec::new(),
        }
    }

    /// Every message in order, the system prompt first: what the template renders and what
    /// `/save` writes.
    pub fn messages(&self) -> Vec<ChatMessage> {
        self.system.iter().chain(&self.turns).cloned().collect()
    }

    /// Adds a message at the end.
    pub fn push(&mut self, role: &str, content: &str) {
        self.turns.push(message(role, content));
    }

    /// Removes the last message (a user message that could not be answered).
    pub fn pop(&mut self) {
        self.turns.pop();
    }

    /// Forgets every turn; the system prompt stays (`/clear`).
    pub fn clear(&mut self) {
        self.turns.clear();
    }

    /// Drops the oldest turn (a user message and the replies up to the next user message) if
    /// one exists before the last user message, which is never dropped; returns whether it did.
    pub fn drop_oldest_turn(&mut self) -> bool {
        let last_user = self.turns.iter().rposition(|m| m.role == "user");
        let Some(first_user) = self.turns.iter().position(|m| m.role == "user") else {
            return false;
        };
        if Some(first_user) == last_user {
            return false;
        }
        let end = self.turns[first_user + 1..]
            .iter()
            .position(|m| m.role == "user")
            .map_or(self.turns.len(), |i| first_user + 1 + i);
        self.turns.drain(..end);
        true
    }

    /// Writes the messages as an OpenAI-shaped JSON array (`[{"role", "content"}]`) to `path`,
    /// refusing to replace an existing file unless `overwrite`. The file appears complete or
    /// not at all: the JSON goes to a temporary file in the same directory first, which is then
    /// hard-linked to `path` (fails if `path` exists, so no check-then-write race) or, when
    /// overwriting, renamed over it.
    pub fn save(&self, path: &Path, overwrite: bool) -> Result<(), CliError> {
        let json = serde_json::to_vec_pretty(&self.messages()).map_err(|e| CliError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if !overwrite && path.exists() {
            return Err(exists(path));
        }
        let tmp = temp_path(path);
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()
        };
        let result = write()
            .map_err(|e| CliError::file(&tmp, &e))
            .and_then(|()| {
                if overwrite {
                    std::fs::rename(&tmp, path).map_err(|e| CliError::file(path, &e))
                } else {
                    match std::fs::hard_link(&tmp, path) {
                        Ok(()) => Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                            Err(exists(path))
                        }
                        Err(e) => Err(CliError::file(path, &e)),
                    }
                }
            });
        // After a rename the temporary name is gone already; otherwise it is removed here.
        let _ = std::fs::remove_file(&tmp);
        result
    }
}

fn message(role: &str, content: &str) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content: content.into(),
    }
}

fn exists(path: &Path) -> CliError {
    CliError::File {
        path: path.to_path_buf(),
        message: "already exists (use /save! FILE to replace it)".into(),
    }
}

/// `DIR/.NAME.PID.tmp` next to `path`, so the final rename or link stays on one filesystem.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "chat".into());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(c: &Conversation) -> Vec<String> {
        c.messages()
            .iter()
            .map(|m| format!("{}:{}", m.role, m.content))
            .collect()
    }

    #[test]
    fn drops_whole_turns_and_keeps_system_and_last_user() {
        let mut c = Conversation::new(Some("sys"));
        c.push("user", "a");
        c.push("assistant", "A");
        c.push("user", "b");
        c.push("assistant", "B");
        c.push("user", "c");
        assert!(c.drop_oldest_turn());
        assert_eq!(roles(&c), ["system:sys", "user:b", "assistant:B", "user:c"]);
        assert!(c.drop_oldest_turn());
        assert_eq!(roles(&c), ["system:sys", "user:c"]);
        assert!(!c.drop_oldest_turn());
        c.clear();
        assert_eq!(roles(&c), ["system:sys"]);
    }

    #[test]
    fn save_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let mut c = Conversation::new(None);
        c.push("user", "hi \"there\"");
        c.save(&path, false).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!([{"role": "user", "content": "hi \"there\""}])
        );
        c.push("assistant", "yes");
        let err = c.save(&path, false).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        c.save(&path, true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
