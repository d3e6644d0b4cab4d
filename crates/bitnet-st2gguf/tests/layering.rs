//! The converter's modules depend on each other in one direction only: no source file uses a
//! module that (directly or through others) uses it back. Read from the source text: every
//! `crate::<module>` outside comments is an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `module -> modules it uses`, for every `src/*.rs` file that is a module.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            files.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    let modules: BTreeSet<String> = files
        .keys()
        .filter(|n| !matches!(n.as_str(), "lib" | "main"))
        .cloned()
        .collect();
    let mut graph = BTreeMap::new();
    for (name, text) in &files {
        if !modules.contains(name) {
            continue;
        }
        let mut uses = BTreeSet::new();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let module: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if modules.contains(&module) && module != *name {
                    uses.insert(module);
                }
            }
        }
        graph.insert(name.clone(), uses);
    }
    graph
}

/// A cycle through `node`, if any (depth-first search).
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|p| p == node) {
        let mut cycle = path[i..].to_vec();
        cycle.push(node.to_string());
        return Some(cycle);
    }
    path.push(node.to_string());
    for next in &graph[node] {
        if let Some(c) = cycle_from(graph, next, path) {
            return Some(c);
        }
    }
    path.pop();
    None
}

#[test]
fn no_module_imports_one_that_imports_it() {
    let graph = graph();
    assert!(
        ["plan", "source", "encode", "convert", "verify", "metadata"]
            .iter()
            .all(|m| graph.contains_key(*m)),
        "{graph:?}"
    );
    for node in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, node, &mut Vec::new()) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
    // The split itself: planning knows nothing of reading or encoding.
    assert!(!graph["plan"].contains("source") && !graph["plan"].contains("encode"));
    assert!(!graph["source"].contains("encode") && !graph["source"].contains("convert"));
    assert!(!graph["verify"].contains("convert") && !graph["verify"].contains("encode"));
}
