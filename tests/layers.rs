//! The host crate's top-level modules sit in layers, and every `crate::` path in production
//! code points to its own layer or one below; within a layer the modules' graph has no
//! cycle. A new module must be given a layer here (and in ARCHITECTURE.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: each module may use its own layer and the ones below.
const LAYERS: &[(&str, &[&str])] = &[
    ("vocabulary", &["value", "time", "window", "counters"]),
    ("settings", &["config"]),
    (
        "components",
        &["kafka", "source", "decode", "sink", "plugin", "checkpoint"],
    ),
    ("telemetry", &["console"]),
    ("engine", &["pipeline"]),
    ("hosts", &["serve"]),
    ("http", &["admin"]),
    (
        "commands",
        &["cli", "bench", "sample", "scaffold", "produce"],
    ),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read host/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The production part of a file: up to its inline test module, without comment lines.
fn production(text: &str) -> String {
    let end = text
        .find("#[cfg(test)]\nmod ")
        .or_else(|| text.find("#[cfg(test)]\npub(super) mod "))
        .unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a text names as `crate::<module>`.
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `crate::` inside an identifier (`weir_crate::`) is not a path of this crate.
        let before = rest[..at].chars().next_back();
        if !name.is_empty() && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            found.insert(name);
        }
        rest = after;
    }
    found
}

/// Every edge between top-level modules, with a file that makes it.
fn edges() -> BTreeMap<(String, String), PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read a source file");
        for to in named_modules(&production(&text)) {
            if to != module {
                edges
                    .entry((module.clone(), to))
                    .or_insert_with(|| rel.to_path_buf());
            }
        }
    }
    edges
}

#[test]
fn every_module_uses_only_its_layer_and_those_below() {
    let edges = edges();
    assert!(
        edges.len() > 20,
        "too few edges found ({}): is the scan reading host/src?",
        edges.len()
    );
    let mut wrong = Vec::new();
    for ((from, to), file) in &edges {
        match (layer_of(from), layer_of(to)) {
            (None, _) => wrong.push(format!(
                "module `{from}` ({}) has no layer: add it to LAYERS in tests/layers.rs and to ARCHITECTURE.md",
                file.display()
            )),
            (_, None) => wrong.push(format!(
                "`{from}` ({}) uses `crate::{to}`, which has no layer",
                file.display()
            )),
            (Some(a), Some(b)) if b > a => wrong.push(format!(
                "`{from}` ({}, layer {}) uses `crate::{to}` (layer {}): an edge pointing up",
                file.display(),
                LAYERS[a].0,
                LAYERS[b].0
            )),
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let edges = edges();
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        graph.entry(from).or_default().push(to);
    }
    // Depth-first search; a node met again on the current path closes a cycle.
    fn visit<'a>(
        node: &'a str,
        graph: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node);
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        let cycle = visit(node, &graph, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap().join(" → ")
        );
    }
}

#[test]
fn the_scan_reads_paths_and_skips_comments_and_tests() {
    // The checks above could pass by reading nothing: the reader finds a path in code and
    // skips comments and test modules.
    let text = "use crate::serve::Host;\n// crate::admin in a comment\n#[cfg(test)]\nmod tests { use crate::cli; }";
    assert_eq!(
        named_modules(&production(text)),
        BTreeSet::from(["serve".to_string()])
    );
    assert!(layer_of("serve") > layer_of("pipeline"));
    assert_eq!(layer_of("no_such_module"), None);
}
