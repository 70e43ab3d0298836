//! The crates' files import one another one way: no file of a crate reaches, through its
//! `crate::`, `super::` and child-module paths, back to itself. A cycle between files is a
//! module that cannot be read, changed or tested without the ones that call it.
//!
//! Read from the sources: each file is a module (`a/b.rs` and `a/b/mod.rs` are `a::b`), and a
//! path in its non-test code that names another module is an edge. A child that uses its
//! parent's items and a parent that uses its child's are both edges, so a parent holding a type
//! whose methods live in a child is fine only while the parent never names the child's items.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`store::prune`; the crate root is `""`) → its source, test code cut off.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel: PathBuf = path.strip_prefix(src).unwrap().with_extension("");
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
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests may use anything; only the code that ships counts.
            let test_code = ["#[cfg(test)]", "#[cfg(all(test"]
                .iter()
                .filter_map(|marker| text.find(marker))
                .min();
            let code = match test_code {
                Some(at) => text[..at].to_string(),
                None => text,
            };
            let code: String = code
                .lines()
                .map(|l| match l.find("//") {
                    Some(at) => &l[..at],
                    None => l,
                })
                .collect::<Vec<_>>()
                .join("\n");
            out.insert(parts.join("::"), code);
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifiers of a path written after `at` (`a::b::{c, d::e}` gives `a::b::c`, `a::b::d::e`).
fn paths_after(code: &str, at: usize) -> Vec<Vec<String>> {
    let rest = &code[at..];
    let mut head = Vec::new();
    let mut i = 0;
    loop {
        if rest[i..].starts_with('{') {
            let close = rest[i..].find('}').map_or(rest.len(), |c| i + c);
            return rest[i + 1..close]
                .split(',')
                .map(|item| {
                    let mut path = head.clone();
                    path.extend(
                        item.split("::")
                            .map(|p| p.trim().split(' ').next().unwrap_or("").to_string())
                            .filter(|p| !p.is_empty() && p != "self"),
                    );
                    path
                })
                .collect();
        }
        let ident: String = rest[i..].chars().take_while(|c| is_ident(*c)).collect();
        if ident.is_empty() {
            break;
        }
        i += ident.len();
        head.push(ident);
        if !rest[i..].starts_with("::") {
            break;
        }
        i += 2;
    }
    vec![head]
}

/// The longest prefix of `path` that is a module, if any.
fn module_of(path: &[String], modules: &BTreeMap<String, String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| modules.contains_key(m))
}

fn parent_of(module: &str) -> String {
    module.rsplit_once("::").map_or("", |(p, _)| p).to_string()
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}::{child}")
    }
}

/// Edges between the modules of the crate whose sources are under `src`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, code) in &modules {
        let mut targets = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            if at > 0 && code[..at].ends_with(|c: char| is_ident(c) || c == ':') {
                continue;
            }
            for path in paths_after(code, at + "crate::".len()) {
                // A path that names no module is an item of the crate root.
                targets.insert(module_of(&path, &modules).unwrap_or_default());
            }
        }
        for (at, _) in code.match_indices("super::") {
            if at > 0 && code[..at].ends_with(|c: char| is_ident(c) || c == ':') {
                continue;
            }
            let parent = parent_of(module);
            for path in paths_after(code, at + "super::".len()) {
                let mut full: Vec<String> = parent.split("::").map(String::from).collect();
                full.retain(|p| !p.is_empty());
                full.extend(path);
                targets.insert(module_of(&full, &modules).unwrap_or(parent.clone()));
            }
        }
        // A child named by a bare path (`use child::Item`, `child::f()`), not its declaration.
        for child in modules
            .keys()
            .filter(|m| parent_of(m) == *module && *m != module)
        {
            let name = child.rsplit("::").next().unwrap_or(child);
            for (at, _) in code.match_indices(&format!("{name}::")) {
                let before = code[..at].chars().next_back();
                if before.is_some_and(|c| is_ident(c) || c == ':') {
                    continue;
                }
                targets.insert(join(module, name));
            }
        }
        targets.remove(module);
        edges.insert(module.clone(), targets);
    }
    edges
}

/// The strongly connected components of more than one module (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        w.on_stack.insert(v);
        for u in w.graph.get(v).into_iter().flatten() {
            let u = u.as_str();
            if !w.graph.contains_key(u) {
                continue;
            }
            if !w.index.contains_key(u) {
                visit(w, u);
                let low = w.low[v].min(w.low[u]);
                w.low.insert(v, low);
            } else if w.on_stack.contains(u) {
                let low = w.low[v].min(w.index[u]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut component = Vec::new();
            while let Some(u) = w.stack.pop() {
                w.on_stack.remove(u);
                component.push(u.to_string());
                if u == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                w.found.push(component);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            visit(&mut walk, v);
        }
    }
    walk.found
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

#[test]
fn no_file_of_any_crate_imports_its_way_back_to_itself() {
    for krate in [
        "chain",
        "keys",
        "node",
        "contracts",
        "rpc",
        "client",
        "bench",
        "cli",
    ] {
        let found = cycles(&graph(&crate_src(krate)));
        assert!(found.is_empty(), "import cycles in {krate}/src: {found:?}");
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle_through_a_parent_and_its_child() {
    let dir = std::env::temp_dir().join(format!("cachet-arch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("store")).unwrap();
    std::fs::write(
        dir.join("lib.rs"),
        "mod store;\nmod api;\nuse crate::api::Api;\n",
    )
    .unwrap();
    std::fs::write(dir.join("api.rs"), "pub struct Api;\n").unwrap();
    std::fs::write(
        dir.join("store/mod.rs"),
        "mod prune;\npub struct Store { s: prune::Stale }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("store/prune.rs"),
        "use super::Store;\npub struct Stale;\n#[cfg(test)]\nmod tests { use crate::api; }\n",
    )
    .unwrap();
    let found = cycles(&graph(&dir));
    assert_eq!(
        found,
        vec![vec!["store".to_string(), "store::prune".to_string()]]
    );
    // The parent that only declares its child, and a child that uses the parent, is no cycle.
    std::fs::write(dir.join("store/mod.rs"), "mod prune;\npub struct Store;\n").unwrap();
    assert!(cycles(&graph(&dir)).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
