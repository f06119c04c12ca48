//! The optional manifest in `_SUCCESS`. Spark and Hadoop write `_SUCCESS`
//! empty, and an empty (or whitespace-only) `_SUCCESS` means "no manifest".
//! An ETL job may instead write a JSON manifest there (schema:
//! `docs/manifest-v1.schema.json`): per data file its SHA-256 (and
//! optionally its size in bytes and its row count), and optionally totals
//! per label and per relationship type. The worker checks the files against
//! it before anything is written ([`compare_files`]) and the loaded
//! database's counts after the load ([`compare_counts`]); any difference
//! refuses the snapshot with reason `manifest_mismatch`. The comparisons
//! are pure; [`read`] and [`file_facts`] do the (blocking) file I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::layout;
use super::{SnapshotError, READY_MARKER};

/// The manifest version this code reads.
pub const MANIFEST_VERSION: u64 = 1;

/// A `_SUCCESS` manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always 1.
    pub manifest_version: u64,
    /// Every data file (and group header file) of the snapshot, by its path
    /// relative to the snapshot directory with `/` separators
    /// (`nodes/people.csv`, `nodes/Person/header.csv`).
    pub files: BTreeMap<String, FileEntry>,
    /// Nodes per label, when given.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, u64>>,
    /// Relationships per type, when given.
    #[serde(default)]
    pub relationship_types: Option<BTreeMap<String, u64>>,
}

/// What the manifest says of one file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Lower-case hex SHA-256 of the file's bytes as stored.
    pub sha256: String,
    /// Its size in bytes, when given.
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Data rows (without the header line) the file holds.
    #[serde(default)]
    pub rows: Option<u64>,
}

/// What one file on disk is: its relative path, size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFact {
    /// Relative to the snapshot directory, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of its bytes.
    pub sha256: String,
}

/// The manifest in `dir`'s `_SUCCESS`, `None` when `_SUCCESS` is empty.
/// A `_SUCCESS` that is neither empty nor a valid manifest is a format
/// error naming it.
pub fn read(dir: &Path) -> Result<Option<Manifest>, SnapshotError> {
    let path = dir.join(READY_MARKER);
    let text = std::fs::read_to_string(&path).map_err(|e| SnapshotError::Io {
        file: path.display().to_string(),
        source: e,
    })?;
    parse(&text).map_err(|m| SnapshotError::format(&path, m))
}

/// [`read`] on text: `None` when blank.
pub fn parse(text: &str) -> Result<Option<Manifest>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let m: Manifest = serde_json::from_str(text).map_err(|e| {
        format!(
            "`_SUCCESS` is neither empty nor a valid manifest (docs/manifest-v1.schema.json): {e}"
        )
    })?;
    if m.manifest_version != MANIFEST_VERSION {
        return Err(format!(
            "manifest_version {} is not supported (this worker reads {MANIFEST_VERSION})",
            m.manifest_version
        ));
    }
    for (path, f) in &m.files {
        let hex_ok = f.sha256.len() == 64 && f.sha256.chars().all(|c| c.is_ascii_hexdigit());
        if !hex_ok {
            return Err(format!(
                "manifest entry {path}: sha256 must be 64 hex digits, got {:?}",
                f.sha256
            ));
        }
    }
    Ok(Some(m))
}

/// The files the manifest must list: every data file of the snapshot and
/// every group header file, relative to `dir`.
pub fn snapshot_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, SnapshotError> {
    let (nodes, relationships) = layout::inputs(dir)?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for input in nodes.iter().chain(&relationships) {
        for p in std::iter::once(&input.path).chain(input.header.as_ref()) {
            let rel = relative(dir, p);
            if seen.insert(rel.clone()) {
                out.push((rel, p.clone()));
            }
        }
    }
    Ok(out)
}

fn relative(dir: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(dir).unwrap_or(p);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Size and SHA-256 of every file of the snapshot (blocking: it reads every
/// byte).
pub fn file_facts(dir: &Path) -> Result<Vec<FileFact>, SnapshotError> {
    let mut out = Vec::new();
    for (rel, path) in snapshot_files(dir)? {
        let io = |e: std::io::Error| SnapshotError::Io {
            file: path.display().to_string(),
            source: e,
        };
        let mut file = std::fs::File::open(&path).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            hasher.update(&buf[..n]);
        }
        out.push(FileFact {
            path: rel,
            bytes,
            sha256: hex::encode(hasher.finalize()),
        });
    }
    Ok(out)
}

/// Data rows of every data file the manifest gives `rows` for, read in
/// full (the same reader as the load, so a row is what the load would
/// write). Only run when the manifest has row counts: it is a second read
/// of those files. Relative path → rows.
pub async fn count_rows(dir: &Path, m: &Manifest) -> Result<BTreeMap<String, u64>, SnapshotError> {
    let import = super::options::ImportOptions::read(dir)?;
    let (nodes, relationships) = layout::inputs(dir)?;
    let mut out = BTreeMap::new();
    for input in nodes.iter().chain(&relationships) {
        let rel = relative(dir, &input.path);
        if m.files.get(&rel).and_then(|f| f.rows).is_none() {
            continue;
        }
        let names = super::reader::column_names_of(input, &import)?;
        let columns = names
            .iter()
            .map(|n| super::header::parse_column(n))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| SnapshotError::format(&input.path, e))?;
        let mut stream = super::reader::stream_of(input, &columns, 10_000, &import)?;
        let mut rows = 0u64;
        while let Some(batch) = stream.next().await {
            rows += batch?.num_rows() as u64;
        }
        out.insert(rel, rows);
    }
    Ok(out)
}

/// Row counts read ([`count_rows`]) against the manifest's, naming the file
/// and both values.
pub fn compare_rows(m: &Manifest, counted: &BTreeMap<String, u64>) -> Vec<String> {
    let mut out = Vec::new();
    for (path, got) in counted {
        if let Some(want) = m.files.get(path).and_then(|f| f.rows) {
            if want != *got {
                out.push(format!(
                    "{path}: {got} rows in the snapshot, {want} in the manifest"
                ));
            }
        }
    }
    out
}

/// The files against the manifest: each difference, naming the file and
/// both values. Empty: they agree.
pub fn compare_files(m: &Manifest, facts: &[FileFact]) -> Vec<String> {
    let mut out = Vec::new();
    let on_disk: BTreeMap<&str, &FileFact> = facts.iter().map(|f| (f.path.as_str(), f)).collect();
    for (path, want) in &m.files {
        let Some(got) = on_disk.get(path.as_str()) else {
            out.push(format!(
                "{path}: listed in the manifest, not in the snapshot"
            ));
            continue;
        };
        if let Some(bytes) = want.bytes.filter(|b| *b != got.bytes) {
            out.push(format!(
                "{path}: {} bytes in the snapshot, {bytes} in the manifest",
                got.bytes
            ));
        }
        if !want.sha256.eq_ignore_ascii_case(&got.sha256) {
            out.push(format!(
                "{path}: SHA-256 {} in the snapshot, {} in the manifest",
                got.sha256,
                want.sha256.to_ascii_lowercase()
            ));
        }
    }
    for f in facts {
        if !m.files.contains_key(&f.path) {
            out.push(format!(
                "{}: in the snapshot, not listed in the manifest",
                f.path
            ));
        }
    }
    out
}

/// What the load put in the database, for [`compare_counts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Nodes created.
    pub nodes: u64,
    /// Relationship rows read (created plus skipped as dangling).
    pub relationship_rows: u64,
    /// Nodes per label.
    pub labels: BTreeMap<String, u64>,
    /// Relationships per type.
    pub types: BTreeMap<String, u64>,
}

/// The loaded counts against the manifest: the rows of the node files
/// (when every node file gives `rows`) against the nodes loaded, the rows of
/// the relationship files against the relationship rows read, and each
/// label and type total given against the database's. Each difference names
/// what and both values.
pub fn compare_counts(m: &Manifest, loaded: &Loaded) -> Vec<String> {
    let mut out = Vec::new();
    for (prefix, what, got) in [
        ("nodes/", "node", loaded.nodes),
        ("relationships/", "relationship", loaded.relationship_rows),
    ] {
        let files: Vec<(&String, &FileEntry)> = m
            .files
            .iter()
            .filter(|(p, _)| p.starts_with(prefix) && !is_header(p))
            .collect();
        let rows: Option<u64> = files.iter().map(|(_, f)| f.rows).sum();
        if let Some(rows) = rows.filter(|r| *r != got && !files.is_empty()) {
            let per_file: Vec<String> = files
                .iter()
                .map(|(p, f)| format!("{p} {}", f.rows.unwrap_or(0)))
                .collect();
            out.push(format!(
                "{what} rows: {got} loaded, {rows} in the manifest ({})",
                per_file.join(", ")
            ));
        }
    }
    let totals = [
        ("label", &m.labels, &loaded.labels),
        ("type", &m.relationship_types, &loaded.types),
    ];
    for (what, want, got) in totals {
        let Some(want) = want else { continue };
        let names: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
        for name in names {
            let (w, g) = (
                want.get(name).copied().unwrap_or(0),
                got.get(name).copied().unwrap_or(0),
            );
            if w != g {
                out.push(format!("{what} {name}: {g} loaded, {w} in the manifest"));
            }
        }
    }
    out
}

fn is_header(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(layout::is_header_file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn manifest(json: serde_json::Value) -> Manifest {
        parse(&json.to_string()).unwrap().unwrap()
    }

    fn fact(path: &str, bytes: u64, sha: &str) -> FileFact {
        FileFact {
            path: path.into(),
            bytes,
            sha256: sha.into(),
        }
    }

    #[test]
    fn parse_table() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse(" \n"), Ok(None));
        let cases = [
            ("{", "neither empty nor a valid manifest"),
            (
                r#"{"manifest_version": 2, "files": {}}"#,
                "manifest_version 2 is not supported",
            ),
            (
                r#"{"manifest_version": 1, "files": {"a": {"sha256": "xyz"}}}"#,
                "sha256 must be 64 hex digits",
            ),
            (
                r#"{"manifest_version": 1, "files": {}, "extra": 1}"#,
                "unknown field `extra`",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn files_table() {
        let m = manifest(serde_json::json!({
            "manifest_version": 1,
            "files": {
                "nodes/a.csv": {"sha256": SHA_A, "bytes": 10, "rows": 3},
                "relationships/r.csv": {"sha256": SHA_B},
            }
        }));
        let good = [
            fact("nodes/a.csv", 10, SHA_A),
            fact("relationships/r.csv", 99, SHA_B),
        ];
        assert!(compare_files(&m, &good).is_empty());
        let cases: Vec<(Vec<FileFact>, Vec<&str>)> = vec![
            (
                vec![fact("nodes/a.csv", 7, SHA_A), fact("relationships/r.csv", 1, SHA_B)],
                vec!["nodes/a.csv: 7 bytes in the snapshot, 10 in the manifest"],
            ),
            (
                vec![fact("nodes/a.csv", 10, SHA_B), fact("relationships/r.csv", 1, SHA_B)],
                vec![
                    "nodes/a.csv: SHA-256 bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb in the snapshot, aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa in the manifest",
                ],
            ),
            (
                vec![fact("nodes/a.csv", 10, SHA_A)],
                vec!["relationships/r.csv: listed in the manifest, not in the snapshot"],
            ),
            (
                vec![
                    fact("nodes/a.csv", 10, SHA_A),
                    fact("relationships/r.csv", 1, SHA_B),
                    fact("nodes/b.csv", 1, SHA_B),
                ],
                vec!["nodes/b.csv: in the snapshot, not listed in the manifest"],
            ),
        ];
        for (facts, want) in cases {
            assert_eq!(compare_files(&m, &facts), want);
        }
    }

    #[test]
    fn rows_table() {
        let m = manifest(serde_json::json!({
            "manifest_version": 1,
            "files": {
                "nodes/a.csv": {"sha256": SHA_A, "rows": 3},
                "nodes/b.csv": {"sha256": SHA_A},
            }
        }));
        let counted: BTreeMap<String, u64> = [("nodes/a.csv".to_owned(), 3)].into();
        assert!(compare_rows(&m, &counted).is_empty());
        let counted: BTreeMap<String, u64> = [("nodes/a.csv".to_owned(), 2)].into();
        assert_eq!(
            compare_rows(&m, &counted),
            vec!["nodes/a.csv: 2 rows in the snapshot, 3 in the manifest"]
        );
    }

    #[test]
    fn counts_table() {
        let m = manifest(serde_json::json!({
            "manifest_version": 1,
            "files": {
                "nodes/a.csv": {"sha256": SHA_A, "rows": 3},
                "nodes/b.csv": {"sha256": SHA_A, "rows": 2},
                "nodes/G/header.csv": {"sha256": SHA_A},
                "relationships/r.csv": {"sha256": SHA_B},
            },
            "labels": {"Person": 5},
            "relationship_types": {"KNOWS": 4},
        }));
        let good = Loaded {
            nodes: 5,
            relationship_rows: 4,
            labels: [("Person".to_owned(), 5)].into(),
            types: [("KNOWS".to_owned(), 4)].into(),
        };
        assert!(compare_counts(&m, &good).is_empty());
        let short = Loaded {
            nodes: 4,
            labels: [("Person".to_owned(), 4), ("Extra".to_owned(), 1)].into(),
            ..good.clone()
        };
        assert_eq!(
            compare_counts(&m, &short),
            vec![
                "node rows: 4 loaded, 5 in the manifest (nodes/a.csv 3, nodes/b.csv 2)",
                "label Extra: 1 loaded, 0 in the manifest",
                "label Person: 4 loaded, 5 in the manifest",
            ]
        );
        // Relationship files without rows: no row check.
        let fewer = Loaded {
            relationship_rows: 1,
            types: [("KNOWS".to_owned(), 1)].into(),
            ..good
        };
        assert_eq!(
            compare_counts(&m, &fewer),
            vec!["type KNOWS: 1 loaded, 4 in the manifest"]
        );
    }
}
