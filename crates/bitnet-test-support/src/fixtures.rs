//! The repository's fixtures (`fixtures/` at the workspace root) and the reference data
//! recorded with Hugging Face transformers (see `fixtures/tiny-bitnet/README.md`).

use std::path::{Path, PathBuf};

/// The workspace root (this crate lives at `crates/bitnet-test-support`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// `fixtures/<rel>` in the repository.
pub fn fixture(rel: &str) -> PathBuf {
    workspace_root().join("fixtures").join(rel)
}

/// `fixtures/tiny-bitnet/<rel>`: the tiny BitNet model in the real checkpoint layouts.
pub fn tiny(rel: &str) -> PathBuf {
    fixture("tiny-bitnet").join(rel)
}

/// One prompt of a reference `greedy.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct RefPrompt {
    /// Prompt ids.
    pub prompt: Vec<u32>,
    /// transformers' greedy continuation.
    pub greedy: Vec<u32>,
    /// Top-1 minus top-2 logit at each greedy step (small margins may flip legitimately).
    pub margins: Vec<f32>,
}

/// Reads `<dir>/greedy.json`.
///
/// # Panics
/// On a missing or malformed file, naming it.
pub fn read_greedy(dir: &Path) -> Vec<RefPrompt> {
    let path = dir.join("greedy.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let ids = |x: &serde_json::Value| -> Vec<u32> {
        x.as_array()
            .expect("an id list")
            .iter()
            .map(|t| u32::try_from(t.as_u64().expect("an id")).expect("a u32 id"))
            .collect()
    };
    v["prompts"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no prompts", path.display()))
        .iter()
        .map(|p| RefPrompt {
            prompt: ids(&p["prompt"]),
            greedy: ids(&p["greedy"]),
            margins: p["top2_margins"]
                .as_array()
                .expect("top2_margins")
                .iter()
                .map(|m| m.as_f64().expect("a margin") as f32)
                .collect(),
        })
        .collect()
}
