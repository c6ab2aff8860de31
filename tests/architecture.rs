//! The layering of the crate, read from its source: top-level modules import one another
//! in one direction only. `http` sits on top (it may import anything); `app` and `domain`
//! never import `http`; and no two modules import each other, directly or round a longer
//! loop. A new `use crate::…` that closes a loop fails here, naming the loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module name → the top-level modules its files name as `crate::…`.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The identifiers that follow `crate::` in `text`, including each name in a group
/// (`crate::{a::X, b}` gives `a` and `b`).
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                found.push(leading_ident(item.trim()));
            }
        } else {
            found.push(leading_ident(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

fn leading_ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The code of a file: `#[cfg(test)]` modules dropped (tests may reach anywhere), and
/// comments too (a doc comment may name any module).
fn code_of(text: &str) -> String {
    let text = text
        .find("#[cfg(test)]\nmod tests")
        .map_or(text, |at| &text[..at]);
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let top = |p: &Path| -> String {
        let rel = p.strip_prefix(&src).expect("under src/");
        let first = rel.components().next().expect("a file name");
        first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|p| top(p))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut g = Graph::new();
    for file in &files {
        let from = top(file);
        if !modules.contains(&from) {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("a readable source file");
        let to = g.entry(from.clone()).or_default();
        for m in crate_paths(&code_of(&text)) {
            if m != from && modules.contains(&m) {
                to.insert(m);
            }
        }
    }
    g
}

/// One import loop, if there is any: the modules in order, the first repeated at the end.
fn find_loop(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in g.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(g, next, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|start| visit(g, start, &mut Vec::new(), &mut done))
}

#[test]
fn the_reader_finds_imports_and_loops() {
    let text =
        "use crate::app::AppState;\nuse crate::{cache::L1, store};\nlet x = crate::clock::now();";
    assert_eq!(crate_paths(text), ["app", "cache", "store", "clock"]);
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_loop(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_loop(&g).expect("a loop"),
        ["a", "b", "c", "a"].map(String::from)
    );
}

#[test]
fn no_import_loop_between_top_level_modules() {
    let g = graph();
    assert!(g.len() > 5, "too few modules read: {g:?}");
    assert!(
        g["http"].contains("app"),
        "the reader lost http → app: {g:?}"
    );
    if let Some(cycle) = find_loop(&g) {
        panic!("import loop: {}\nall imports: {g:#?}", cycle.join(" → "));
    }
}

#[test]
fn app_and_domain_import_nothing_from_http() {
    let g = graph();
    for module in ["app", "domain"] {
        assert!(
            !g[module].contains("http"),
            "{module} imports http: {:?}",
            g[module]
        );
    }
}
