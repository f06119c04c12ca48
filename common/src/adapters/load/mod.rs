//! Loading one snapshot into one (new, empty) database: all node files (each
//! node's internal id kept in the id map), then all relationship files
//! (resolved through the id map), then a count check against the rows read. Used by the worker and by the benchmark; knows
//! nothing about queues, locks or aliases.
//!
//! Each file is read as a stream of Arrow record batches on a blocking thread
//! ([`reader::stream`], a bounded channel: back-pressure), cut to
//! `batch_size` rows, and written with up to `concurrency` write statements
//! in flight at once (one `FuturesUnordered` on this task: while the database
//! works on one batch, the next is converted and sent). Memory is bounded by
//! the read-ahead plus `concurrency` batches, whatever the snapshot's size,
//! plus the id map ([`crate::adapters::idmap`], about 44 bytes a node).
//! A write statement that fails transiently (a deadlock, a dropped
//! connection) is retried on its own, up to [`BATCH_RETRIES`] times; the id
//! map's work for its batch is not repeated.

mod batches;
mod options;

use batches::*;
pub use options::{
    DanglingPolicy, DuplicatePolicy, LoadError, LoadOptions, LoadReport, LoadTimes, BATCH_RETRIES,
};

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use crate::adapters::graph::LoadMethod;

use crate::adapters::graph::falkordb_bulk::BulkWriter;
use crate::adapters::graph::values::Declared;
use crate::adapters::graph::{
    Counts, GraphError, GraphWriter, NodeRef, NodeWrite, Prop, RelWrite, Values,
};
use crate::adapters::idmap::{id_key, IdKey, IdMap};
use crate::adapters::snapshot::header::{check_name, Column, NodeSpec, PropColumn, RelSpec};
use crate::adapters::snapshot::layout::Input;
use crate::adapters::snapshot::options::ImportOptions;
use crate::adapters::snapshot::{layout, reader, SnapshotError};

/// One ID space: the property holding the id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdSpace {
    property: String,
}

/// Rows read and written by one phase (nodes or relationships).
#[derive(Debug, Clone, Default)]
struct Tally {
    rows: u64,
    written: u64,
    /// Rows not written: duplicate nodes skipped, dangling relationships.
    skipped: u64,
    /// The first dangling relationship row (its data row from 0), described.
    first_dangling: Option<(u64, String)>,
}

/// What one write batch did.
#[derive(Debug, Clone, Default)]
struct BatchDone {
    created: u64,
    /// Rows left out: duplicate node ids (skip policy) or dangling relationships.
    skipped: u64,
    /// The first dangling relationship row of the batch (its data row from 0), described.
    first_dangling: Option<(u64, String)>,
}

/// Loads the snapshot in `dir` into `db`, which must exist and be empty:
/// with GRAPH.BULK calls when `options.method` is `bulk` and the store has
/// it ([`crate::adapters::graph::falkordb_bulk::BulkWriter`]), else with write
/// statements. Both paths share everything else: the id map, duplicates,
/// dangling relationships, the count check.
pub async fn load_snapshot(
    store: &dyn GraphWriter,
    db: &str,
    dir: &Path,
    options: LoadOptions,
    cancel: &CancellationToken,
) -> Result<LoadReport, LoadError> {
    if options.method == LoadMethod::Bulk && store.can_bulk() {
        let bulk = BulkWriter::new(store, options.bulk_max_stall_ms);
        // Calls go out one at a time, in order; more batches in flight let
        // the next calls be converted and encoded while one runs.
        let options = LoadOptions {
            concurrency: options.concurrency.max(BULK_IN_FLIGHT),
            ..options
        };
        let result = load_into(&bulk, db, dir, options, cancel, 0).await;
        let stats = bulk.stats().await;
        tracing::info!(
            %db,
            calls = stats.calls,
            longest_call_ms = stats.longest_call.as_millis() as u64,
            bulk_max_stall_ms = options.bulk_max_stall_ms,
            ok = result.is_ok(),
            "GRAPH.BULK load"
        );
        return result.map(|report| LoadReport {
            bulk_calls: stats.calls,
            longest_bulk_call_ms: stats.longest_call.as_millis() as u64,
            times: LoadTimes {
                encode_ms: stats.encode_time.as_millis() as u64,
                call_ms: stats.call_time.as_millis() as u64,
                sync_ms: stats.sync_time.as_millis() as u64,
                ..report.times
            },
            ..report
        });
    }
    load_into(store, db, dir, options, cancel, BATCH_RETRIES).await
}

/// Write batches in flight on the bulk path (at least): each encodes its
/// records into the next calls while earlier calls run on the server.
pub const BULK_IN_FLIGHT: usize = 8;

/// The client's time per step, nanoseconds ([`LoadTimes`]).
#[derive(Debug, Default)]
struct Timers {
    read_stall: AtomicU64,
    convert: AtomicU64,
    id_map: AtomicU64,
}

impl Timers {
    fn add(counter: &AtomicU64, since: Instant) {
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        counter.fetch_add(ns, Ordering::Relaxed);
    }

    fn times(&self) -> LoadTimes {
        let ms = |c: &AtomicU64| c.load(Ordering::Relaxed) / 1_000_000;
        LoadTimes {
            read_stall_ms: ms(&self.read_stall),
            convert_ms: ms(&self.convert),
            id_map_ms: ms(&self.id_map),
            ..LoadTimes::default()
        }
    }
}

/// [`load_snapshot`] through `store`; a write batch that fails transiently
/// is retried `retries` times (0 for GRAPH.BULK: a call is never resent).
async fn load_into(
    store: &dyn GraphWriter,
    db: &str,
    dir: &Path,
    options: LoadOptions,
    cancel: &CancellationToken,
    retries: u32,
) -> Result<LoadReport, LoadError> {
    let (node_files, rel_files) = layout::inputs(dir)?;
    let import = ImportOptions::read(dir)?;
    let mut node_specs = Vec::new();
    let mut spaces: BTreeMap<String, IdSpace> = BTreeMap::new();
    for input in &node_files {
        let file = &input.path;
        let spec =
            NodeSpec::parse_named(&reader::column_names_of(input, &import)?, &input.labels())
                .map_err(|m| SnapshotError::format(file, m))?;
        let space = IdSpace {
            property: spec.id_property.clone(),
        };
        if let Some(existing) = spaces.insert(spec.id_space.clone(), space.clone()) {
            if existing != space {
                return Err(SnapshotError::format(
                    file,
                    format!(
                        "ID space `{}` uses id property `{}` here and `{}` in another node file",
                        spec.id_space, space.property, existing.property
                    ),
                )
                .into());
            }
        }
        node_specs.push((input, spec));
    }
    let mut rel_specs = Vec::new();
    for input in &rel_files {
        let file = &input.path;
        let spec = RelSpec::parse_named(
            &reader::column_names_of(input, &import)?,
            input.group.as_deref(),
        )
        .map_err(|m| SnapshotError::format(file, m))?;
        for space in [&spec.start_space, &spec.end_space] {
            if !spaces.contains_key(space) {
                return Err(SnapshotError::format(
                    file,
                    format!("ID space `{space}` is not defined by any node file"),
                )
                .into());
            }
        }
        rel_specs.push((input, spec));
    }

    // A declared type the store cannot keep at all fails the load before
    // anything is written, naming the file, the column, the type and the store.
    let declared = node_specs
        .iter()
        .map(|(input, spec)| (&input.path, &spec.properties))
        .chain(
            rel_specs
                .iter()
                .map(|(input, spec)| (&input.path, &spec.properties)),
        );
    for (file, columns) in declared {
        for column in columns.iter() {
            if let Some(why) = column.ty.and_then(|ty| store.lacks(ty)) {
                return Err(GraphError::Permanent(format!(
                    "{}: column `{}`: {why}",
                    file.display(),
                    column.name
                ))
                .into());
            }
        }
    }

    check_limits(&store.limits(), &node_specs, &rel_specs)?;

    // No index: relationships find their endpoints by the internal ids the
    // node writes return (the id map), and neo4j-admin creates none either.
    let ids = Mutex::new(IdMap::default());
    let timers = Timers::default();
    // Set when a batch was retried: a retried write may have been applied
    // before its reply was lost, so a surplus is then not the files' fault.
    let retried = Retries {
        max: retries,
        used: AtomicBool::new(false),
    };
    let mut nodes = Tally::default();
    let nodes_span = tracing::info_span!(
        "load_nodes",
        rows = tracing::field::Empty,
        concurrency = options.in_flight()
    );
    async {
        for (input, spec) in &node_specs {
            let file = &input.path;
            let t = write_file(
                input,
                &import,
                &spec.columns,
                &options,
                cancel,
                &timers,
                |batch, first| {
                    write_node_batch(
                        store,
                        db,
                        file,
                        spec,
                        &import,
                        (batch, first),
                        (&ids, &timers),
                        options.duplicates,
                        &retried,
                    )
                },
            )
            .await?;
            nodes.rows += t.rows;
            nodes.written += t.written;
            nodes.skipped += t.skipped;
        }
        Ok::<_, LoadError>(())
    }
    .instrument(nodes_span.clone())
    .await?;
    nodes_span.record("rows", nodes.rows);
    if nodes.skipped > 0 {
        tracing::warn!(
            %db,
            skipped_nodes = nodes.skipped,
            nodes = nodes.rows,
            "nodes whose id their ID space already had were skipped (duplicate_nodes = \"skip\")"
        );
    }

    let mut rels = Tally::default();
    let rels_span = tracing::info_span!(
        "load_relationships",
        rows = tracing::field::Empty,
        dangling = tracing::field::Empty,
        concurrency = options.in_flight()
    );
    async {
        for (input, spec) in &rel_specs {
            let file = &input.path;
            let t = write_file(
                input,
                &import,
                &spec.columns,
                &options,
                cancel,
                &timers,
                |batch, first| {
                    write_rel_batch(
                        store,
                        db,
                        file,
                        spec,
                        &import,
                        (batch, first),
                        (&ids, &timers),
                        &retried,
                    )
                },
            )
            .await?;
            rels.rows += t.rows;
            rels.written += t.written;
            rels.skipped += t.skipped;
            if rels.first_dangling.is_none() {
                rels.first_dangling = t.first_dangling;
            }
        }
        Ok::<_, LoadError>(())
    }
    .instrument(rels_span.clone())
    .await?;
    rels_span.record("rows", rels.rows);
    rels_span.record("dangling", rels.skipped);

    let dangling = rels.skipped;
    if dangling > 0 {
        match options.dangling {
            DanglingPolicy::Fail => {
                return Err(LoadError::Dangling {
                    count: dangling,
                    total: rels.rows,
                    first: rels.first_dangling.map(|(_, w)| w).unwrap_or_default(),
                })
            }
            DanglingPolicy::Skip => tracing::warn!(
                %db,
                skipped_relationships = dangling,
                relationships = rels.rows,
                "relationships whose start or end id matches no node were skipped (dangling_relationships = \"skip\")"
            ),
        }
    }
    let expected = Counts {
        nodes: nodes.rows - nodes.skipped,
        relationships: rels.rows - dangling,
    };
    let counts = store.counts(db).await?;
    if counts != expected {
        let message = format!(
            "database `{db}` holds {} nodes and {} relationships, the files have {} and {}{}{}",
            counts.nodes,
            counts.relationships,
            expected.nodes,
            expected.relationships,
            if dangling > 0 {
                format!(" ({dangling} dangling relationships skipped)")
            } else {
                String::new()
            },
            if nodes.skipped > 0 {
                format!(" ({} duplicate nodes skipped)", nodes.skipped)
            } else {
                String::new()
            }
        );
        let surplus =
            counts.nodes > expected.nodes || counts.relationships > expected.relationships;
        if surplus && retried.used.load(Ordering::Relaxed) {
            // A retried batch probably landed twice: loading again can succeed.
            return Err(GraphError::Transient(format!(
                "{message}; a batch was retried after a transient error and may have been applied twice"
            ))
            .into());
        }
        return Err(LoadError::Mismatch(message));
    }
    Ok(LoadReport {
        nodes: nodes.written,
        relationships: rels.written,
        skipped_relationships: dangling,
        skipped_nodes: nodes.skipped,
        bulk_calls: 0,
        longest_bulk_call_ms: 0,
        times: timers.times(),
    })
}

/// Refuses a snapshot that crosses a limit of the store, before anything is
/// written: the distinct property names of all its files (ids included).
fn check_limits(
    limits: &crate::adapters::graph::StoreLimits,
    node_specs: &[(&Input, NodeSpec)],
    rel_specs: &[(&Input, RelSpec)],
) -> Result<(), LoadError> {
    if let Some(max) = limits.property_keys {
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for (_, spec) in node_specs {
            names.insert(&spec.id_property);
            names.extend(spec.properties.iter().map(|p| p.name.as_str()));
        }
        for (_, spec) in rel_specs {
            names.extend(spec.properties.iter().map(|p| p.name.as_str()));
        }
        if let Some(reason) = property_keys_over(names.len(), max) {
            return Err(LoadError::StoreLimit(reason));
        }
    }
    Ok(())
}

/// The message when `count` distinct property names exceed the store's `max`.
fn property_keys_over(count: usize, max: usize) -> Option<String> {
    (count > max).then(|| {
        format!(
            "store limit `property_keys`: the snapshot has {count} distinct property names and the graph store holds at most {max} per database; nothing was written"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::snapshot::header::GLOBAL_ID_SPACE;

    #[test]
    fn a_pause_writes_one_batch_at_a_time() {
        let options = LoadOptions::new(100).with_concurrency(4);
        assert_eq!(options.in_flight(), 4);
        let paused = LoadOptions {
            batch_pause: Duration::from_millis(5),
            ..options
        };
        assert_eq!(paused.in_flight(), 1);
        assert_eq!(LoadOptions::new(100).with_concurrency(0).in_flight(), 1);
    }

    #[test]
    fn load_method_defaults_by_store_kind() {
        use crate::adapters::graph::GraphKind::{Falkordb, Neo4j};
        for (set, kind, want) in [
            (None, Falkordb, LoadMethod::Bulk),
            (None, Neo4j, LoadMethod::Cypher),
            (Some(LoadMethod::Cypher), Neo4j, LoadMethod::Cypher),
            (Some(LoadMethod::Cypher), Falkordb, LoadMethod::Cypher),
            (Some(LoadMethod::Bulk), Falkordb, LoadMethod::Bulk),
        ] {
            assert_eq!(LoadMethod::resolve(set, kind), want, "{set:?} {kind:?}");
        }
    }

    #[test]
    fn dangling_policy_reads_fail_and_skip_only() {
        let read = |s: &str| serde_json::from_str::<DanglingPolicy>(s);
        assert_eq!(read("\"fail\"").unwrap(), DanglingPolicy::Fail);
        assert_eq!(read("\"skip\"").unwrap(), DanglingPolicy::Skip);
        assert!(read("\"ignore\"").is_err());
        assert_eq!(DanglingPolicy::default(), DanglingPolicy::Fail);
    }

    #[test]
    fn ipc_batches_are_cut_to_batch_size() {
        use arrow::array::Int64Array;
        use std::sync::Arc;
        let a: arrow::array::ArrayRef = Arc::new(Int64Array::from_iter_values(0..25));
        let batch = RecordBatch::try_from_iter([("id", a)]).unwrap();
        let sizes: Vec<usize> = slices(batch, 10).iter().map(|b| b.num_rows()).collect();
        assert_eq!(sizes, [10, 10, 5]);
    }

    #[test]
    fn the_dangling_error_names_the_count() {
        let e = LoadError::Dangling {
            count: 3,
            total: 10,
            first: "r.csv row 2: :END_ID `x` is not an id of ID space `P`".into(),
        };
        assert!(
            e.to_string()
                .ends_with("the first: r.csv row 2: :END_ID `x` is not an id of ID space `P`"),
            "{e}"
        );
        assert!(e.to_string().starts_with("3 of 10 relationships"), "{e}");
        assert!(!e.is_transient());
    }

    #[test]
    fn the_property_key_limit_holds_at_the_limit_and_refuses_one_past() {
        for (count, max, refused) in [
            (0, 65534, false),
            (65534, 65534, false),
            (65535, 65534, true),
            (100_001, 65534, true),
        ] {
            let got = property_keys_over(count, max);
            assert_eq!(got.is_some(), refused, "{count} {max}");
            if let Some(m) = got {
                assert!(m.starts_with("store limit `property_keys`"), "{m}");
                assert!(
                    m.contains(&format!("{count} distinct property names")),
                    "{m}"
                );
            }
        }
    }

    #[test]
    fn labels_come_from_label_values_or_else_the_id_space() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let with = NodeSpec::parse(&names(&["id:ID(User)", ":LABEL"])).unwrap();
        let without = NodeSpec::parse(&names(&["id:ID(User)"])).unwrap();
        let file = Path::new("n.csv");
        let group = |cols: &[&str]| {
            NodeSpec::parse_named(&names(cols), &["Person".into(), "Employee".into()]).unwrap()
        };
        let grouped_with = group(&["id:ID(User)", ":LABEL"]);
        let grouped = group(&["id:ID(User)"]);
        let global = NodeSpec::parse(&names(&["id:ID"])).unwrap();
        for (spec, value, want) in [
            (&with, "Admin;User", vec!["Admin", "User"]),
            (&with, " A ; ;A;B ", vec!["A", "B"]),
            (&with, "", vec![]),
            (&with, "Admin", vec!["Admin"]),
            (&without, "", vec!["User"]),
            // A group directory's labels, never the ID space beside them.
            (&grouped, "", vec!["Person", "Employee"]),
            (
                &grouped_with,
                "Admin;Person",
                vec!["Person", "Employee", "Admin"],
            ),
            // The global ID space is a label only for a node with no other source.
            (&global, "", vec![GLOBAL_ID_SPACE]),
        ] {
            assert_eq!(
                node_labels(file, spec, value, ';').unwrap(),
                want,
                "{value:?}"
            );
        }
        // The array delimiter splits `:LABEL` values.
        assert_eq!(
            node_labels(file, &with, "A|B;C", '|').unwrap(),
            ["A", "B;C"]
        );
        assert!(node_labels(file, &with, "a`b", ';').is_err());
    }
}
