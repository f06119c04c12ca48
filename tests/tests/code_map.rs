//! ARCHITECTURE.md's code map and the libraries' module docs stay in step
//! with the worker's and the producer's source tree: every source file is
//! named in its crate's section of the map, and every module a `lib.rs`
//! declares is named in that `lib.rs`'s own docs. A module added without a
//! line in the map (with its invariant) fails here.

use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Every `.rs` file under `dir`, as paths relative to it.
fn sources(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            sources(&path, &format!("{prefix}{name}/"), out);
        } else if name.ends_with(".rs") {
            out.push(format!("{prefix}{name}"));
        }
    }
}

/// The map's section of `krate` (from its `### \`krate/\`` heading to the next heading).
fn section(map: &str, krate: &str) -> String {
    let start = map
        .find(&format!("### `{krate}/`"))
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no code-map section for {krate}/"));
    let rest = &map[start + 4..];
    let end = [rest.find("\n## "), rest.find("\n### ")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// A file is named when its file name, its module name or (for a `mod.rs`)
/// its directory appears in backticks.
fn named(section: &str, file: &str) -> bool {
    let path = Path::new(file);
    let name = path.file_name().unwrap().to_string_lossy();
    let stem = path.file_stem().unwrap().to_string_lossy();
    let dir = path
        .parent()
        .and_then(Path::file_name)
        .map(|d| d.to_string_lossy().into_owned());
    let candidates = match (name.as_ref(), dir) {
        ("mod.rs", Some(dir)) => vec![format!("`{dir}/`"), "`mod.rs`".to_owned()],
        _ => vec![
            format!("`{name}`"),
            format!("`{stem}`"),
            format!("`{stem}/`"),
        ],
    };
    candidates.iter().any(|c| section.contains(c.as_str()))
}

#[test]
fn every_worker_and_producer_source_file_is_in_the_code_map() {
    let map = std::fs::read_to_string(repo("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    for krate in ["worker", "producer"] {
        let section = section(&map, krate);
        let mut files = Vec::new();
        sources(&repo(&format!("{krate}/src")), "", &mut files);
        assert!(files.len() > 5, "{krate}/src: {files:?}");
        missing.extend(
            files
                .iter()
                .filter(|f| !named(&section, f))
                .map(|f| format!("{krate}/src/{f}")),
        );
    }
    assert!(
        missing.is_empty(),
        "not named in ARCHITECTURE.md's code map (add a line with its invariant): {missing:?}"
    );
}

#[test]
fn every_library_module_is_named_in_its_lib_rs_docs() {
    let mut missing = Vec::new();
    for lib in ["worker/src/lib.rs", "producer/src/lib.rs"] {
        let text = std::fs::read_to_string(repo(lib)).unwrap();
        let docs: String = text
            .lines()
            .filter(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        for module in text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub mod "))
            .map(|m| m.trim_end_matches(';'))
        {
            if !docs.contains(&format!("[`{module}`]")) {
                missing.push(format!("{lib}: {module}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "modules not named in their lib.rs docs: {missing:?}"
    );
}
