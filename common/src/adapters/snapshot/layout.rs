//! `<data_root>/<customer>/<snapshot_id>/` with `nodes/`, `relationships/` and
//! the `_SUCCESS` marker.

use std::path::{Path, PathBuf};

use crate::contract::ident::{Customer, SnapshotId};

use super::SnapshotError;

/// Written last by the ETL job: the snapshot is complete.
pub const READY_MARKER: &str = "_SUCCESS";
/// The directory of node files in a snapshot.
pub const NODES_DIR: &str = "nodes";
/// The directory of relationship files in a snapshot.
pub const RELATIONSHIPS_DIR: &str = "relationships";

/// A complete snapshot found under the data root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReadySnapshot {
    /// Whose snapshot.
    pub customer: Customer,
    /// Its id (its directory's name).
    pub id: SnapshotId,
    /// Its directory.
    pub dir: PathBuf,
}

/// File formats snapswitch reads, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// CSV: plain, `.csv.gz` or `.zip`.
    Csv,
    /// Parquet.
    Parquet,
    /// Arrow IPC file format (`.arrow`, `.feather`, `.ipc`).
    ArrowFile,
    /// Arrow IPC stream format (`.arrows`).
    ArrowStream,
    /// Gzip-compressed CSV (`.csv.gz`).
    CsvGz,
    /// A zip archive holding one CSV file (`.zip`), as neo4j-admin reads it.
    CsvZip,
}

impl FileFormat {
    /// The format `path`'s extension names (`None`: not a data file).
    pub fn of(path: &Path) -> Option<FileFormat> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name.ends_with(".csv.gz") {
            return Some(FileFormat::CsvGz);
        }
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "zip" => FileFormat::CsvZip,
            "csv" => FileFormat::Csv,
            "parquet" => FileFormat::Parquet,
            "arrow" | "feather" | "ipc" => FileFormat::ArrowFile,
            "arrows" => FileFormat::ArrowStream,
            _ => return None,
        })
    }

    /// CSV, compressed or not.
    pub fn is_csv(self) -> bool {
        matches!(
            self,
            FileFormat::Csv | FileFormat::CsvGz | FileFormat::CsvZip
        )
    }
}

/// One data file to load, and what its naming says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The file.
    pub path: PathBuf,
    /// The separate header file of its group (neo4j-admin's
    /// `--nodes=header.csv,part1.csv`): the data file then has no header line.
    pub header: Option<PathBuf>,
    /// The group directory's name: for node files the labels of every node
    /// (`Person:Employee`, split at `:`), for relationship files the type
    /// (neo4j-admin's `--nodes=Label=…`, `--relationships=TYPE=…`).
    pub group: Option<String>,
}

impl Input {
    fn plain(path: PathBuf) -> Input {
        Input {
            path,
            header: None,
            group: None,
        }
    }

    /// The labels a group directory under `nodes/` gives its nodes.
    pub fn labels(&self) -> Vec<String> {
        self.group
            .as_deref()
            .map(|g| g.split(':').map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

/// Is `name` (a file name) the header file of a group: its stem ends with
/// `header` (`header.csv`, `people-header.csv.gz`).
pub fn is_header_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let stem = lower.split('.').next().unwrap_or_default();
    stem.ends_with("header")
}

/// Every ready snapshot under `root`, sorted by customer then id. Directories
/// whose names are not a valid customer or snapshot id are skipped (and logged
/// at debug level); unreadable directories are errors.
pub fn scan(root: &Path) -> Result<Vec<ReadySnapshot>, SnapshotError> {
    let mut found = Vec::new();
    for customer_dir in read_dir(root)? {
        let Some(name) = customer_dir
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
        else {
            continue;
        };
        let Ok(customer) = Customer::parse(&name) else {
            tracing::debug!(dir = %customer_dir.display(), "not a customer directory, skipped");
            continue;
        };
        if !customer_dir.is_dir() {
            continue;
        }
        for snapshot_dir in read_dir(&customer_dir)? {
            let Some(id) = snapshot_dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| SnapshotId::parse(n).ok())
            else {
                continue;
            };
            if snapshot_dir.join(READY_MARKER).is_file() {
                found.push(ReadySnapshot {
                    customer: customer.clone(),
                    id,
                    dir: snapshot_dir,
                });
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Interprets a path below `root` as `<customer>/<snapshot_id>[/...]`.
pub fn parse_relative(root: &Path, path: &Path) -> Option<(Customer, SnapshotId)> {
    let rel = path.strip_prefix(root).ok()?;
    let mut parts = rel.components();
    let customer = Customer::parse(parts.next()?.as_os_str().to_str()?).ok()?;
    let id = SnapshotId::parse(parts.next()?.as_os_str().to_str()?).ok()?;
    Some((customer, id))
}

/// Refuses a snapshot id more than `max_future_seconds` ahead of `now` (Unix
/// seconds): such an id would pin the alias, every later snapshot being
/// "superseded".
pub fn check_not_future(
    id: SnapshotId,
    now: u64,
    max_future_seconds: u64,
) -> Result<(), SnapshotError> {
    let ahead = id.get().saturating_sub(now);
    if ahead > max_future_seconds {
        return Err(SnapshotError::Future {
            id: id.get(),
            ahead,
            max: max_future_seconds,
        });
    }
    Ok(())
}

/// [`check_not_future`] against the system clock.
pub fn check_not_future_now(id: SnapshotId, max_future_seconds: u64) -> Result<(), SnapshotError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    check_not_future(id, now, max_future_seconds)
}

/// Resolves the snapshot directory of an event, refusing anything that leaves
/// the data root or the customer's own directory (through `..` or a symlink:
/// a customer directory that is a symlink, or a snapshot directory linked
/// into another customer's tree), and checks it is ready.
pub fn resolve_ready(
    root: &Path,
    customer: &Customer,
    id: SnapshotId,
) -> Result<PathBuf, SnapshotError> {
    let dir = root.join(customer.as_str()).join(id.to_string());
    let shown = dir.display().to_string();
    let canonical_root = root.canonicalize().map_err(|e| SnapshotError::Io {
        file: root.display().to_string(),
        source: e,
    })?;
    let canonical = match dir.canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SnapshotError::Missing(shown))
        }
        Err(e) => {
            return Err(SnapshotError::Io {
                file: shown,
                source: e,
            })
        }
    };
    // Inside the data root, and inside this customer's own tree: the
    // customer directory itself must not be a symlink elsewhere.
    let own_tree = canonical_root.join(customer.as_str());
    if !canonical.starts_with(&canonical_root) || !canonical.starts_with(&own_tree) {
        return Err(SnapshotError::OutsideRoot(shown));
    }
    if !canonical.is_dir() {
        return Err(SnapshotError::Missing(shown));
    }
    if !canonical.join(READY_MARKER).is_file() {
        return Err(SnapshotError::NotReady(shown));
    }
    Ok(canonical)
}

/// The data files of a snapshot: (node files, relationship files), each sorted
/// by name. Hidden files and files starting with `_` are ignored; any other
/// file with an unknown extension is an error, so a typo never silently drops
/// data. Every file must resolve (through any symlinks) to a regular file
/// inside the snapshot directory: a link to `/etc/passwd`, to another
/// snapshot or to a FIFO is refused.
pub fn data_files(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), SnapshotError> {
    let (nodes, relationships) = inputs(dir)?;
    let paths = |v: Vec<Input>| v.into_iter().map(|i| i.path).collect();
    Ok((paths(nodes), paths(relationships)))
}

/// The data files of a snapshot as [`Input`]s: (node files, relationship
/// files). Files directly in `nodes/` and `relationships/` come first, in
/// name order; then each group directory (`nodes/<Label[:Label…]>/`,
/// `relationships/<TYPE>/`, directories starting with `.` or `_` skipped)
/// in name order, its files in name order. A group may hold one header file
/// ([`is_header_file`]); its other files then have no header line. The
/// same confinement as [`data_files`] applies to every file.
pub fn inputs(dir: &Path) -> Result<(Vec<Input>, Vec<Input>), SnapshotError> {
    let io = |p: &Path, e: std::io::Error| SnapshotError::Io {
        file: p.display().to_string(),
        source: e,
    };
    let base = dir.canonicalize().map_err(|e| io(dir, e))?;
    let confined = |p: &Path| -> Result<PathBuf, SnapshotError> {
        let c = p.canonicalize().map_err(|e| io(p, e))?;
        if c.starts_with(&base) {
            Ok(c)
        } else {
            Err(SnapshotError::OutsideRoot(p.display().to_string()))
        }
    };
    // (files, subdirectories) of one directory, each sorted by name.
    let list = |path: &Path| -> Result<(Vec<PathBuf>, Vec<PathBuf>), SnapshotError> {
        if !path.is_dir() {
            return Ok((Vec::new(), Vec::new()));
        }
        confined(path)?;
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for file in read_dir(path)? {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if file.is_dir() {
                dirs.push(file);
                continue;
            }
            if FileFormat::of(&file).is_none() {
                return Err(SnapshotError::format(
                    &file,
                    "unsupported file type: use .csv, .csv.gz, .zip (one CSV file inside), .parquet, .arrow/.feather/.ipc (Arrow IPC file) or .arrows (Arrow IPC stream)",
                ));
            }
            let real = confined(&file)?;
            if !real.metadata().map_err(|e| io(&file, e))?.is_file() {
                return Err(SnapshotError::format(&file, "not a regular file"));
            }
            files.push(file);
        }
        files.sort();
        dirs.sort();
        Ok((files, dirs))
    };
    let collect = |sub: &str| -> Result<Vec<Input>, SnapshotError> {
        let (files, groups) = list(&dir.join(sub))?;
        let mut out: Vec<Input> = files.into_iter().map(Input::plain).collect();
        for group in groups {
            let name = group
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let (files, nested) = list(&group)?;
            if let Some(n) = nested.first() {
                return Err(SnapshotError::format(
                    n,
                    "directories inside a group directory are not read; move its files up",
                ));
            }
            let (headers, data): (Vec<PathBuf>, Vec<PathBuf>) = files.into_iter().partition(|f| {
                f.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_header_file)
            });
            if headers.len() > 1 {
                return Err(SnapshotError::format(
                    &group,
                    "more than one header file in one directory",
                ));
            }
            let header = headers.into_iter().next();
            if let Some(h) = &header {
                if data.is_empty() {
                    return Err(SnapshotError::format(h, "header file without data files"));
                }
            }
            out.extend(data.into_iter().map(|path| Input {
                path,
                header: header.clone(),
                group: Some(name.clone()),
            }));
        }
        Ok(out)
    };
    let nodes = collect(NODES_DIR)?;
    let relationships = collect(RELATIONSHIPS_DIR)?;
    if nodes.is_empty() {
        return Err(SnapshotError::format(
            dir,
            "snapshot has no node files under nodes/",
        ));
    }
    Ok((nodes, relationships))
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, SnapshotError> {
    let entries = std::fs::read_dir(dir).map_err(|e| SnapshotError::Io {
        file: dir.display().to_string(),
        source: e,
    })?;
    Ok(entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"").unwrap();
    }

    #[test]
    fn scan_finds_only_ready_snapshots_with_valid_names() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        touch(&r.join("acme/1767741427/_SUCCESS"));
        touch(&r.join("acme/1767741500/nodes/a.csv")); // still being copied
        touch(&r.join("Bad Name/1767741427/_SUCCESS"));
        touch(&r.join("acme/notanid/_SUCCESS"));
        touch(&r.join("beta/1767741000/_SUCCESS"));
        let found: Vec<String> = scan(r)
            .unwrap()
            .iter()
            .map(|s| format!("{}/{}", s.customer, s.id))
            .collect();
        assert_eq!(found, ["acme/1767741427", "beta/1767741000"]);
    }

    #[test]
    fn resolve_refuses_missing_unready_and_escaping_dirs() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().join("data");
        let outside = root.path().join("outside/1767741427");
        touch(&outside.join("_SUCCESS"));
        touch(&r.join("acme/1767741427/_SUCCESS"));
        touch(&r.join("acme/1767741428/nodes/x.csv"));
        std::os::unix::fs::symlink(root.path().join("outside"), r.join("evil")).unwrap();
        let c = |s| Customer::parse(s).unwrap();
        let id = |n| SnapshotId::new(n).unwrap();
        assert!(resolve_ready(&r, &c("acme"), id(1767741427)).is_ok());
        assert!(matches!(
            resolve_ready(&r, &c("acme"), id(1767741428)),
            Err(SnapshotError::NotReady(_))
        ));
        assert!(matches!(
            resolve_ready(&r, &c("acme"), id(1767741429)),
            Err(SnapshotError::Missing(_))
        ));
        assert!(matches!(
            resolve_ready(&r, &c("evil"), id(1767741427)),
            Err(SnapshotError::OutsideRoot(_))
        ));
    }

    #[test]
    fn group_directories_give_labels_types_and_header_files() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path();
        touch(&d.join("nodes/a.csv"));
        touch(&d.join("nodes/Person:Employee/header.csv"));
        touch(&d.join("nodes/Person:Employee/part2.csv.gz"));
        touch(&d.join("nodes/Person:Employee/part1.csv"));
        touch(&d.join("nodes/_skipped/x.csv"));
        touch(&d.join("relationships/KNOWS/k.zip"));
        let (nodes, rels) = inputs(d).unwrap();
        let shown: Vec<_> = nodes
            .iter()
            .map(|i| {
                (
                    i.path.strip_prefix(d).unwrap().display().to_string(),
                    i.header.is_some(),
                    i.labels(),
                )
            })
            .collect();
        let pe = vec!["Person".to_string(), "Employee".to_string()];
        assert_eq!(
            shown,
            [
                ("nodes/a.csv".to_string(), false, vec![]),
                (
                    "nodes/Person:Employee/part1.csv".to_string(),
                    true,
                    pe.clone()
                ),
                ("nodes/Person:Employee/part2.csv.gz".to_string(), true, pe),
            ]
        );
        assert_eq!(rels[0].group.as_deref(), Some("KNOWS"));
        assert_eq!(FileFormat::of(&rels[0].path), Some(FileFormat::CsvZip));
        touch(&d.join("nodes/Person:Employee/deeper/x.csv"));
        let err = inputs(d).unwrap_err().to_string();
        assert!(
            err.contains("directories inside a group directory"),
            "{err}"
        );
    }

    #[test]
    fn resolve_refuses_links_into_another_customers_tree() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().join("data");
        touch(&r.join("other/1767741427/_SUCCESS"));
        touch(&r.join("acme/1767741000/_SUCCESS"));
        let c = |s| Customer::parse(s).unwrap();
        let id = |n| SnapshotId::new(n).unwrap();
        // A customer directory that is a link to another customer's.
        std::os::unix::fs::symlink(r.join("other"), r.join("victim")).unwrap();
        assert!(matches!(
            resolve_ready(&r, &c("victim"), id(1767741427)),
            Err(SnapshotError::OutsideRoot(_))
        ));
        // A snapshot directory linked into another customer's tree.
        std::os::unix::fs::symlink(r.join("other/1767741427"), r.join("acme/1767741427")).unwrap();
        assert!(matches!(
            resolve_ready(&r, &c("acme"), id(1767741427)),
            Err(SnapshotError::OutsideRoot(_))
        ));
        // A link within the customer's own tree is its own data.
        std::os::unix::fs::symlink(r.join("acme/1767741000"), r.join("acme/1767741001")).unwrap();
        assert!(resolve_ready(&r, &c("acme"), id(1767741001)).is_ok());
        assert!(resolve_ready(&r, &c("other"), id(1767741427)).is_ok());
    }

    #[test]
    fn snapshot_ids_far_ahead_of_the_clock_are_refused() {
        let id = |n| SnapshotId::new(n).unwrap();
        let now = 1_767_741_427;
        for (snapshot, max, ok) in [
            (now, 86400, true),
            (now - 1_000_000, 86400, true),
            (now + 86400, 86400, true),
            (now + 86401, 86400, false),
            (9_999_999_999, 86400, false),
            (now + 120, 60, false),
        ] {
            let got = check_not_future(id(snapshot), now, max);
            assert_eq!(got.is_ok(), ok, "{snapshot} {max}: {got:?}");
        }
        let e = check_not_future(id(9_999_999_999), now, 86400).unwrap_err();
        assert!(e.to_string().contains("max_future_seconds = 86400"), "{e}");
    }

    #[test]
    fn data_files_refuses_unknown_extensions() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path();
        touch(&d.join("nodes/people.csv"));
        touch(&d.join("nodes/.hidden"));
        touch(&d.join("relationships/knows.parquet"));
        let (n, r) = data_files(d).unwrap();
        assert_eq!((n.len(), r.len()), (1, 1));
        touch(&d.join("nodes/people.xlsx"));
        assert!(data_files(d)
            .unwrap_err()
            .to_string()
            .contains("unsupported file type"));
    }

    #[test]
    fn data_files_refuse_links_out_of_the_snapshot_and_non_files() {
        let root = tempfile::tempdir().unwrap();
        let snap = root.path().join("acme/1767741427");
        let other = root.path().join("acme/1767741000");
        touch(&snap.join("nodes/people.csv"));
        touch(&other.join("nodes/secret.csv"));
        // A link that stays inside the snapshot is fine.
        std::os::unix::fs::symlink(snap.join("nodes/people.csv"), snap.join("nodes/again.csv"))
            .unwrap();
        assert_eq!(data_files(&snap).unwrap().0.len(), 2);
        // A link to a file outside the snapshot (here: another snapshot) is not.
        std::os::unix::fs::symlink(other.join("nodes/secret.csv"), snap.join("nodes/x.csv"))
            .unwrap();
        assert!(matches!(
            data_files(&snap),
            Err(SnapshotError::OutsideRoot(_))
        ));
        std::fs::remove_file(snap.join("nodes/x.csv")).unwrap();
        // Nor a relationships/ directory that is a link elsewhere.
        std::os::unix::fs::symlink(other.join("nodes"), snap.join("relationships")).unwrap();
        assert!(matches!(
            data_files(&snap),
            Err(SnapshotError::OutsideRoot(_))
        ));
        std::fs::remove_file(snap.join("relationships")).unwrap();
        // A FIFO would block a reader forever.
        let fifo = snap.join("nodes/pipe.csv");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let err = data_files(&snap).unwrap_err().to_string();
            assert!(err.contains("not a regular file"), "{err}");
        }
    }
}
