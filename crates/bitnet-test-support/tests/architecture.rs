//! The workspace's structural rules (ARCHITECTURE.md), checked on every test run so that a
//! change that breaks one fails here with the rule it broke:
//!
//! 1. crate edges: `cargo metadata` lists every workspace crate's normal and build
//!    dependencies; none may be a forbidden edge (a layer importing upwards, a front end
//!    importing another, HTTP or Burn leaking into the wrong crate);
//! 2. no import cycles between the source files of a crate (`use crate::a` in `b.rs` and
//!    `use crate::b` in `a.rs`, or a longer loop): a file can be read knowing only what it
//!    imports;
//! 3. the engine's code names no OpenAI concept (it knows no front end).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use bitnet_test_support::fixtures::workspace_root;

/// `(crate, dependency, why it is forbidden)`; `*` as the crate means every workspace crate
/// but the dependency's allowed users listed in [`ONLY`].
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "bitnet-kernels",
        "bitnet-gguf",
        "kernels know no file format",
    ),
    (
        "bitnet-kernels",
        "bitnet-checkpoint",
        "kernels know no file format",
    ),
    ("bitnet-kernels", "bitnet-schema", "kernels know no model"),
    ("bitnet-kernels", "bitnet-engine", "kernels know no model"),
    (
        "bitnet-kernels",
        "bitnet-tokenizer",
        "kernels know no model",
    ),
    (
        "bitnet-formats",
        "bitnet-kernels",
        "storage formats are SIMD-free",
    ),
    ("bitnet-gguf", "bitnet-kernels", "gguf computes nothing"),
    ("bitnet-gguf", "bitnet-engine", "gguf computes nothing"),
    (
        "bitnet-schema",
        "bitnet-engine",
        "the schema sits below the engine and the converter",
    ),
    (
        "bitnet-schema",
        "bitnet-kernels",
        "the schema is data, not compute",
    ),
    (
        "bitnet-engine",
        "bitnet-cli",
        "the engine knows no front end",
    ),
    (
        "bitnet-engine",
        "bitnet-server",
        "the engine knows no front end",
    ),
    (
        "bitnet-engine",
        "bitnet-st2gguf",
        "the engine knows no front end",
    ),
    (
        "bitnet-engine",
        "bitnet-app",
        "the engine knows no front end",
    ),
    (
        "bitnet-engine",
        "bitnet-receipt",
        "run records sit above the engine",
    ),
    (
        "bitnet-engine",
        "bitnet-burn",
        "Burn stays off the hot path",
    ),
    ("bitnet-engine", "clap", "the engine knows no command line"),
    (
        "bitnet-cli",
        "bitnet-server",
        "front ends never import each other",
    ),
    (
        "bitnet-server",
        "bitnet-cli",
        "front ends never import each other",
    ),
    (
        "bitnet-cli",
        "bitnet-st2gguf",
        "front ends never import each other",
    ),
    (
        "bitnet-server",
        "bitnet-st2gguf",
        "front ends never import each other",
    ),
    (
        "bitnet-st2gguf",
        "bitnet-cli",
        "front ends never import each other",
    ),
    (
        "bitnet-st2gguf",
        "bitnet-server",
        "front ends never import each other",
    ),
    (
        "bitnet-cli",
        "bitnet-kernels",
        "front ends reach kernels through the engine",
    ),
    (
        "bitnet-server",
        "bitnet-kernels",
        "front ends reach kernels through the engine",
    ),
    (
        "bitnet-server",
        "bitnet-burn",
        "Burn stays off the hot path",
    ),
    (
        "bitnet-openai",
        "bitnet-engine",
        "the wire format knows no model: the server validates requests against its engine",
    ),
    (
        "bitnet-engine",
        "bitnet-openai",
        "the engine knows no OpenAI vocabulary",
    ),
    (
        "bitnet-engine",
        "bitnet-hub",
        "the engine is network-free: front ends resolve hf: models to paths",
    ),
    (
        "bitnet-hub",
        "bitnet-engine",
        "fetching a model needs no model runtime",
    ),
    (
        "bitnet-hub",
        "bitnet-cli",
        "the Hub client serves the front ends, not the other way round",
    ),
    (
        "bitnet-hub",
        "bitnet-server",
        "the Hub client serves the front ends, not the other way round",
    ),
];

/// Dependencies only these workspace crates may have (as normal or build dependencies).
const ONLY: &[(&str, &[&str], &str)] = &[
    (
        "actix-web",
        &["bitnet-server"],
        "only the server knows HTTP",
    ),
    ("awc", &["bitnet-server"], "only the server knows HTTP"),
    (
        "tracing-actix-web",
        &["bitnet-server"],
        "only the server knows HTTP",
    ),
    ("burn", &["bitnet-burn"], "Burn stays off the hot path"),
    (
        "hf-hub",
        &["bitnet-hub"],
        "only bitnet-hub talks to the Hugging Face Hub",
    ),
    (
        "ureq",
        &["bitnet-hub"],
        "only bitnet-hub is a network client",
    ),
    (
        "bitnet-hub",
        &["bitnet-cli", "bitnet-server"],
        "models are fetched by the front ends, never below the engine",
    ),
    (
        "bitnet-burn",
        &["bitnet-cli"],
        "Burn is a cross-check reached from the CLI only",
    ),
    (
        "tracing-subscriber",
        &["bitnet-app"],
        "one logging set-up for the binaries",
    ),
    (
        "bitnet-test-support",
        &["bitnet-e2e"],
        "test support is for tests only (bitnet-e2e is a test crate)",
    ),
    (
        "bitnet-e2e",
        &[],
        "end-to-end tests are nobody's dependency",
    ),
];

struct Package {
    name: String,
    manifest_dir: PathBuf,
    /// Normal and build dependencies (dev-dependencies are free).
    deps: BTreeSet<String>,
}

fn workspace_packages() -> Vec<Package> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    v["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| Package {
            name: p["name"].as_str().expect("name").to_string(),
            manifest_dir: Path::new(p["manifest_path"].as_str().expect("manifest"))
                .parent()
                .expect("manifest dir")
                .to_path_buf(),
            deps: p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .map(|d| d["name"].as_str().expect("dep name").to_string())
                .collect(),
        })
        .collect()
}

#[test]
fn no_forbidden_crate_edges() {
    let packages = workspace_packages();
    assert!(
        packages.iter().any(|p| p.name == "bitnet-engine"),
        "cargo metadata lists the workspace"
    );
    let mut broken = Vec::new();
    for p in &packages {
        for (from, to, why) in FORBIDDEN {
            if p.name == *from && p.deps.contains(*to) {
                broken.push(format!("{from} -> {to}: {why}"));
            }
        }
        for (dep, allowed, why) in ONLY {
            if p.deps.contains(*dep) && !allowed.contains(&p.name.as_str()) {
                broken.push(format!("{} -> {dep}: {why}", p.name));
            }
        }
    }
    assert!(broken.is_empty(), "forbidden edges:\n{}", broken.join("\n"));
}

/// Module path (`a::b`) of every `.rs` file under `src`, with its text.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path
                .strip_prefix(src)
                .expect("under src")
                .with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).expect("source file");
            out.insert(parts.join("::"), text);
        }
    }
    out
}

/// The `crate::…` paths a file's code names (in `use` lines and inline), comment lines
/// skipped, and nothing from a `#[cfg(test)] mod` on: unit tests may use any sibling, as
/// the crate's integration tests may; the rule is about how the code itself is layered.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let line = line.trim_start();
        if line.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                // `use crate::{a, b::c}`: each item's first segment.
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let item = item.trim();
                    let seg: String = item
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    if !seg.is_empty() {
                        out.insert(seg);
                    }
                }
            } else {
                let seg: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                out.insert(seg.trim_end_matches(':').to_string());
            }
            rest = after;
        }
    }
    out
}

/// For each module, the other modules of the crate it imports (longest matching module
/// path; a parent or child module does not count: `mod` trees nest by design).
fn import_graph(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for (name, text) in mods {
        let mut targets = BTreeSet::new();
        for path in crate_paths(text) {
            let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let hit = (1..=segs.len())
                .rev()
                .map(|k| segs[..k].join("::"))
                .find(|m| mods.contains_key(m));
            if let Some(m) = hit {
                let nested = m.starts_with(&format!("{name}::"))
                    || name.starts_with(&format!("{m}::"))
                    || m == *name
                    || m.is_empty();
                if !nested {
                    targets.insert(m);
                }
            }
        }
        graph.insert(name.clone(), targets);
    }
    graph
}

/// Groups of two or more modules that reach each other (Tarjan's strongly connected
/// components).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.out.push(group);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_import_cycles_between_source_files() {
    let mut found = Vec::new();
    for p in workspace_packages() {
        let src = p.manifest_dir.join("src");
        if !src.is_dir() {
            continue;
        }
        for group in cycles(&import_graph(&modules(&src))) {
            found.push(format!("{}: {}", p.name, group.join(" <-> ")));
        }
    }
    assert!(
        found.is_empty(),
        "source files that import each other (move the shared part into one of them or a \
         third file):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut mods = BTreeMap::new();
    mods.insert("a".to_string(), "use crate::b::X;".to_string());
    mods.insert("b".to_string(), "fn f() { crate::c::g() }".to_string());
    mods.insert("c".to_string(), "use crate::{a, d};".to_string());
    mods.insert("d".to_string(), "// use crate::a;".to_string());
    mods.insert("e".to_string(), "use crate::e::inner;".to_string());
    // f uses g, and only g's unit tests use f: not a cycle.
    mods.insert("f".to_string(), "use crate::g::G;".to_string());
    mods.insert(
        "g".to_string(),
        "pub struct G;\n#[cfg(test)]\nmod tests {\n    use crate::f;\n}".to_string(),
    );
    assert_eq!(
        cycles(&import_graph(&mods)),
        vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]
    );
}

#[test]
fn the_engine_names_no_openai_concept() {
    let src = workspace_root().join("crates/bitnet-engine/src");
    let mut hits = Vec::new();
    for (module, text) in modules(&src) {
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if code.to_ascii_lowercase().contains("openai") {
                hits.push(format!("{module}:{}: {}", i + 1, line.trim()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "OpenAI names belong to bitnet-server:\n{}",
        hits.join("\n")
    );
}
