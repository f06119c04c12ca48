//! The structure of the `common` library, checked from its source: its layers
//! (`contract` → `adapters` → `config` → `ops`, each using only the ones
//! before it), no import circle between its modules, and every module named
//! in `lib.rs`'s docs and in ARCHITECTURE.md's code map.
//!
//! A module here is a layer's child (`adapters::graph`, with everything under
//! it); an import is any `crate::…` or `super::…` path outside a comment and
//! outside the tests (a module's `#[cfg(test)]` part, and `tests.rs` files).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module may use its own layer and those before.
const LAYERS: [&str; 4] = ["contract", "adapters", "config", "ops"];

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../common/src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// `adapters/graph/values.rs` → `["adapters", "graph", "values"]`;
/// `adapters/graph/mod.rs` → `["adapters", "graph"]`; `lib.rs` → `[]`.
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("inside common/src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The module a path belongs to: `layer::child`, or the layer itself.
fn unit(path: &[String]) -> Option<String> {
    match path {
        [] => None,
        [layer] => Some(layer.clone()),
        [layer, child, ..] => Some(format!("{layer}::{child}")),
    }
}

fn layer_rank(unit: &str) -> usize {
    let layer = unit.split("::").next().unwrap_or(unit);
    LAYERS.iter().position(|l| *l == layer).unwrap_or_else(|| {
        panic!(
            "common/src/{layer}: not in a layer; move it under one of {LAYERS:?} \
                 (contract: names and formats, no I/O; adapters: the outside world; \
                 config: reading the configuration; ops: running a process)"
        )
    })
}

/// The flat names `lib.rs` re-exports (`common::graph` for
/// `common::adapters::graph`), so an import through one still counts against
/// the module it names.
fn root_aliases(lib: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    // `pub use a::{b, c};` may span lines (rustfmt wraps long lists).
    for statement in lib.split(';') {
        let statement: String = statement.split_whitespace().collect::<Vec<_>>().join(" ");
        let Some(rest) = statement
            .find("pub use ")
            .map(|at| &statement[at + "pub use ".len()..])
        else {
            continue;
        };
        let (base, names) = match rest.split_once("::{") {
            Some((base, names)) => (base, names.trim_end_matches('}')),
            None => match rest.rsplit_once("::") {
                Some((base, name)) => (base, name),
                None => continue,
            },
        };
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let mut path: Vec<String> = base.split("::").map(str::to_owned).collect();
            path.push(name.to_owned());
            out.insert(name.to_owned(), path);
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module paths one line of code names: `crate::a::b`, `super::x`, and
/// each first name of a `crate::a::{b, c}` group.
fn named_paths(
    line: &str,
    here: &[String],
    aliases: &BTreeMap<String, Vec<String>>,
) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..].iter().collect();
        let preceded_by_ident = i > 0 && (is_ident(bytes[i - 1]) || bytes[i - 1] == ':');
        let (mut base, skip) = if rest.starts_with("crate::") && !preceded_by_ident {
            (Vec::new(), "crate::".len())
        } else if rest.starts_with("super::") && !preceded_by_ident {
            let mut base = here.to_vec();
            let mut skip = 0;
            while rest[skip..].starts_with("super::") {
                base.pop();
                skip += "super::".len();
            }
            (base, skip)
        } else {
            i += 1;
            continue;
        };
        let tail = &rest[skip..];
        let mut segments: Vec<String> = Vec::new();
        let mut group: Vec<String> = Vec::new();
        let mut j = 0;
        let chars: Vec<char> = tail.chars().collect();
        loop {
            let start = j;
            while j < chars.len() && is_ident(chars[j]) {
                j += 1;
            }
            if j > start {
                segments.push(chars[start..j].iter().collect());
            }
            if tail[j..].starts_with("::{") {
                let close = tail[j..].find('}').map_or(tail.len(), |c| j + c);
                group = tail[j + 3..close]
                    .split(',')
                    .filter_map(|item| {
                        let first: String =
                            item.trim().chars().take_while(|c| is_ident(*c)).collect();
                        (!first.is_empty()).then_some(first)
                    })
                    .collect();
                j = close;
                break;
            }
            if tail[j..].starts_with("::") && j > start {
                j += 2;
                continue;
            }
            break;
        }
        if base.is_empty() {
            if let Some(first) = segments.first() {
                if let Some(full) = aliases.get(first) {
                    base = full.clone();
                    segments.remove(0);
                }
            }
        }
        // Only module names count: a name starting upper case is an item.
        let modules: Vec<String> = segments
            .into_iter()
            .take_while(|s| s.starts_with(|c: char| c.is_ascii_lowercase()))
            .collect();
        let mut path = base;
        path.extend(modules);
        if group.is_empty() {
            out.push(path);
        } else {
            for g in group {
                let mut p = path.clone();
                if g.starts_with(|c: char| c.is_ascii_lowercase()) && g != "self" {
                    p.push(g);
                }
                out.push(p);
            }
        }
        i += skip + j.max(1);
    }
    out
}

/// A file that only holds tests (`#[cfg(test)] mod tests;`).
fn is_tests(file: &Path) -> bool {
    file.file_name().is_some_and(|n| n == "tests.rs")
}

struct Import {
    from: String,
    to: String,
    at: String,
}

fn imports() -> Vec<Import> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let aliases = root_aliases(&lib);
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut out = Vec::new();
    for file in files {
        let here = module_path(&file);
        let Some(from) = unit(&here) else { continue };
        if is_tests(&file) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("source file");
        for (n, line) in text.lines().enumerate() {
            // A module's tests come last and may import anything.
            if line == "#[cfg(test)]" {
                break;
            }
            if line.trim_start().starts_with("//") {
                continue;
            }
            for path in named_paths(line, &here, &aliases) {
                let Some(to) = unit(&path) else { continue };
                if to != from {
                    out.push(Import {
                        from: from.clone(),
                        to,
                        at: format!(
                            "{}:{}",
                            file.strip_prefix(src()).unwrap_or(&file).display(),
                            n + 1
                        ),
                    });
                }
            }
        }
    }
    out
}

#[test]
fn common_imports_follow_the_layers() {
    let against: Vec<String> = imports()
        .into_iter()
        .filter(|i| layer_rank(&i.to) > layer_rank(&i.from))
        .map(|i| format!("{} uses {} ({})", i.from, i.to, i.at))
        .collect();
    assert!(
        against.is_empty(),
        "imports against the layer direction {LAYERS:?}:\n{}",
        against.join("\n")
    );
}

#[test]
fn common_has_no_import_circle() {
    let imports = imports();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for i in &imports {
        edges.entry(&i.from).or_default().insert(&i.to);
    }
    // A circle is a module that reaches itself.
    let mut circles = Vec::new();
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
        while let Some((at, path)) = stack.pop() {
            for next in edges.get(at).into_iter().flatten() {
                if next == start {
                    circles.push(format!("{} -> {start}", path.join(" -> ")));
                } else if seen.insert(*next) {
                    let mut p = path.clone();
                    p.push(next);
                    stack.push((next, p));
                }
            }
        }
    }
    let detail: Vec<String> = imports
        .iter()
        .filter(|i| {
            circles
                .iter()
                .any(|c| c.contains(&i.from) && c.contains(&i.to))
        })
        .map(|i| format!("  {} uses {} ({})", i.from, i.to, i.at))
        .collect();
    assert!(
        circles.is_empty(),
        "import circles:\n{}\nimports on them:\n{}",
        circles.join("\n"),
        detail.join("\n")
    );
}

/// Every module a layer declares: `adapters::graph`, `ops::doctor`, ….
fn modules() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for layer in LAYERS {
        let text = std::fs::read_to_string(src().join(layer).join("mod.rs"))
            .unwrap_or_else(|e| panic!("{layer}/mod.rs: {e}"));
        for line in text.lines() {
            if let Some(name) = line.trim().strip_prefix("pub mod ") {
                out.push((layer.to_owned(), name.trim_end_matches(';').to_owned()));
            }
        }
    }
    out
}

#[test]
fn every_module_is_declared_by_its_layer() {
    let declared: BTreeSet<String> = modules()
        .into_iter()
        .map(|(l, m)| format!("{l}::{m}"))
        .collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let on_disk: BTreeSet<String> = files
        .iter()
        .filter(|f| !is_tests(f))
        .filter_map(|f| {
            let p = module_path(f);
            (p.len() >= 2).then(|| format!("{}::{}", p[0], p[1]))
        })
        .collect();
    assert_eq!(declared, on_disk);
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    for line in lib.lines().filter(|l| l.starts_with("pub mod ")) {
        let name = line.trim_start_matches("pub mod ").trim_end_matches(';');
        assert!(
            LAYERS.contains(&name),
            "lib.rs declares {name}, which is not a layer"
        );
    }
}

#[test]
fn every_module_is_named_in_lib_docs_and_in_the_code_map() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let lib_docs: String = lib
        .lines()
        .filter(|l| l.starts_with("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let arch =
        std::fs::read_to_string(src().join("../../ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = arch
        .find("### `common/`")
        .expect("ARCHITECTURE.md: the code map of common");
    let end = arch[start..]
        .find("\n### ")
        .map_or(arch.len(), |e| start + e);
    let map = &arch[start..end];
    let mut missing = Vec::new();
    for (layer, module) in modules() {
        if !lib_docs.contains(&format!("[`{layer}::{module}`]")) {
            missing.push(format!("lib.rs docs: [`{layer}::{module}`]"));
        }
        let file = format!("`{layer}/{module}.rs`");
        let dir = format!("`{layer}/{module}/`");
        if !map.contains(&file) && !map.contains(&dir) {
            missing.push(format!("ARCHITECTURE.md code map: {file} or {dir}"));
        }
    }
    for layer in LAYERS {
        if !map.contains(&format!("`{layer}/`")) {
            missing.push(format!("ARCHITECTURE.md code map: the layer `{layer}/`"));
        }
    }
    assert!(missing.is_empty(), "not named:\n{}", missing.join("\n"));
}
