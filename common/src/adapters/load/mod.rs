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
//! plus the id map ([`crate::adapters::idmap`], about 46 bytes a node).
//! A write statement that fails transiently (a deadlock, a dropped
//! connection) is retried on its own, up to [`BATCH_RETRIES`] times; the id
//! map's work for its batch is not repeated.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

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
use crate::adapters::idmap::{id_key, IdMap};
use crate::adapters::snapshot::header::{check_name, Column, NodeSpec, PropColumn, RelSpec};
use crate::adapters::snapshot::layout::Input;
use crate::adapters::snapshot::options::ImportOptions;
use crate::adapters::snapshot::{layout, reader, SnapshotError};

/// Retries of one write batch after a transient error, before the load fails.
pub const BATCH_RETRIES: u32 = 3;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("load cancelled")]
    Cancelled,
    #[error("{0}")]
    Mismatch(String),
    /// Relationships whose start or end id matches no node, with
    /// `dangling_relationships = "fail"`.
    #[error("{count} of {total} relationships reference a start or end id that matches no node (dangling_relationships = \"fail\"; \"skip\" loads the rest and reports the count); the first: {first}")]
    Dangling {
        count: u64,
        total: u64,
        /// The first dangling row: file, row and the id not found.
        first: String,
    },
    /// A node id that an earlier node of the same ID space already has, with
    /// `duplicate_nodes = "fail"`.
    #[error("{file}: row {row}: node id `{id}` occurs again in ID space `{space}` (duplicate_nodes = \"fail\"; \"skip\" keeps the first node and reports the count, as neo4j-admin's --skip-duplicate-nodes)")]
    DuplicateNodeId {
        id: String,
        space: String,
        file: String,
        /// Data row, counted from 1 (the header not counted).
        row: u64,
    },
    /// The snapshot does not fit a limit of the store; nothing was written.
    #[error("{0}")]
    StoreLimit(String),
}

impl LoadError {
    pub fn is_transient(&self) -> bool {
        match self {
            LoadError::Snapshot(e) => e.is_transient(),
            LoadError::Graph(e) => e.is_transient(),
            LoadError::Cancelled => true,
            LoadError::Mismatch(_)
            | LoadError::Dangling { .. }
            | LoadError::DuplicateNodeId { .. }
            | LoadError::StoreLimit(_) => false,
        }
    }
}

/// What to do with relationships whose start or end id matches no node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DanglingPolicy {
    /// The load fails (permanent, reason `dangling_relationships`) naming the count.
    #[default]
    Fail,
    /// The other relationships are loaded; the skipped ones are counted and reported.
    Skip,
}

impl std::fmt::Display for DanglingPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DanglingPolicy::Fail => "fail",
            DanglingPolicy::Skip => "skip",
        })
    }
}

/// What to do with a node whose id its ID space already has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicatePolicy {
    /// The load fails (permanent, reason `duplicate_node_id`) naming the id,
    /// the file and the row.
    #[default]
    Fail,
    /// The first node with that id is kept, later ones are not loaded; they
    /// are counted and reported (neo4j-admin's `--skip-duplicate-nodes`).
    Skip,
}

impl std::fmt::Display for DuplicatePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DuplicatePolicy::Fail => "fail",
            DuplicatePolicy::Skip => "skip",
        })
    }
}

/// What a load wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub nodes: u64,
    pub relationships: u64,
    /// Relationship rows not loaded because an endpoint matched no node
    /// (only with [`DanglingPolicy::Skip`]; with `Fail` the load fails).
    pub skipped_relationships: u64,
    /// Node rows not loaded because their id was already taken in their ID
    /// space (only with [`DuplicatePolicy::Skip`]).
    pub skipped_nodes: u64,
    /// `GRAPH.BULK` calls sent (0 on the cypher path).
    pub bulk_calls: u64,
    /// The longest of them, in milliseconds.
    pub longest_bulk_call_ms: u64,
}

/// One ID space: the property holding the id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdSpace {
    property: String,
}

/// How a load writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Rows per write statement.
    pub batch_size: usize,
    /// Pause after each write batch (drip-feed). When set, batches are
    /// written one at a time whatever `concurrency` says.
    pub batch_pause: Duration,
    /// Write statements in flight at once (K).
    pub concurrency: usize,
    pub dangling: DanglingPolicy,
    pub duplicates: DuplicatePolicy,
    /// `bulk` uses GRAPH.BULK when the store has it ([`GraphWriter::can_bulk`]).
    pub method: LoadMethod,
    /// The stall budget GRAPH.BULK calls are sized from (`bulk_max_stall_ms`).
    pub bulk_max_stall_ms: u64,
}

impl LoadOptions {
    /// `batch_size` rows per statement, one at a time, dangling relationships fail.
    pub fn new(batch_size: usize) -> Self {
        LoadOptions {
            batch_size,
            batch_pause: Duration::ZERO,
            concurrency: 1,
            dangling: DanglingPolicy::Fail,
            duplicates: DuplicatePolicy::Fail,
            method: LoadMethod::Bulk,
            bulk_max_stall_ms: 50,
        }
    }

    pub fn with_method(mut self, method: LoadMethod) -> Self {
        self.method = method;
        self
    }

    pub fn with_bulk_max_stall_ms(mut self, ms: u64) -> Self {
        self.bulk_max_stall_ms = ms;
        self
    }

    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    pub fn with_dangling(mut self, dangling: DanglingPolicy) -> Self {
        self.dangling = dangling;
        self
    }

    pub fn with_duplicates(mut self, duplicates: DuplicatePolicy) -> Self {
        self.duplicates = duplicates;
        self
    }

    fn in_flight(&self) -> usize {
        if self.batch_pause.is_zero() {
            self.concurrency.max(1)
        } else {
            1
        }
    }
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
            ..report
        });
    }
    load_into(store, db, dir, options, cancel, BATCH_RETRIES).await
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
                |batch, first| {
                    write_node_batch(
                        store,
                        db,
                        file,
                        spec,
                        &import,
                        (batch, first),
                        &ids,
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
                |batch, first| {
                    write_rel_batch(
                        store,
                        db,
                        file,
                        spec,
                        &import,
                        (batch, first),
                        &ids,
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

/// Streams one file and writes it, with up to `options.in_flight()` write
/// statements outstanding. `write` takes one batch and returns how many
/// nodes or relationships it created.
async fn write_file<W, Fut>(
    input: &Input,
    import: &ImportOptions,
    columns: &[Column],
    options: &LoadOptions,
    cancel: &CancellationToken,
    write: W,
) -> Result<Tally, LoadError>
where
    W: Fn(RecordBatch, u64) -> Fut,
    Fut: Future<Output = Result<BatchDone, LoadError>>,
{
    let limit = options.in_flight();
    let mut stream = reader::stream_of(input, columns, options.batch_size, import)?;
    let mut pending: VecDeque<RecordBatch> = VecDeque::new();
    let mut in_flight = FuturesUnordered::new();
    let mut tally = Tally::default();
    let mut read_all = false;
    loop {
        while in_flight.len() < limit {
            let Some(batch) = pending.pop_front() else {
                break;
            };
            // The batch's first row in the file (from 0), for messages.
            let first = tally.rows;
            tally.rows += batch.num_rows() as u64;
            in_flight.push(write(batch, first));
        }
        if read_all && pending.is_empty() && in_flight.is_empty() {
            return Ok(tally);
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(LoadError::Cancelled),
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                let done = done?;
                tally.written += done.created;
                tally.skipped += done.skipped;
                // Batches finish in any order: keep the file's first row.
                if let Some((row, what)) = done.first_dangling {
                    if tally.first_dangling.as_ref().is_none_or(|(r, _)| row < *r) {
                        tally.first_dangling = Some((row, what));
                    }
                }
                if !options.batch_pause.is_zero() {
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(LoadError::Cancelled),
                        _ = tokio::time::sleep(options.batch_pause) => {}
                    }
                }
            }
            item = stream.next(), if !read_all && pending.is_empty() => match item {
                None => read_all = true,
                Some(batch) => pending.extend(slices(batch?, options.batch_size)),
            },
        }
    }
}

/// One store write, retried after transient graph errors, up to
/// [`BATCH_RETRIES`] times. Retried per statement, not per batch: the id
/// map's claims and lookups for a batch are made once. A permanent refusal
/// names the file.
/// How often a write batch may be retried, and whether one was.
struct Retries {
    max: u32,
    used: AtomicBool,
}

async fn retrying<T, F, Fut>(
    file: &Path,
    rows: usize,
    retried: &Retries,
    call: F,
) -> Result<T, GraphError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, GraphError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if e.is_transient() && attempt < retried.max => {
                attempt += 1;
                retried.used.store(true, Ordering::Relaxed);
                let wait = Duration::from_millis(100 << attempt);
                tracing::warn!(file = %file.display(), rows, attempt, error = %e, ?wait, "write batch failed transiently; retrying it");
                tokio::time::sleep(wait).await;
            }
            other => return other.map_err(|e| in_file(file, e)),
        }
    }
}

/// Arrow IPC files come in the batches they were written with; writes are cut
/// to `batch_size` rows (zero-copy slices).
fn slices(batch: RecordBatch, batch_size: usize) -> Vec<RecordBatch> {
    let rows = batch.num_rows();
    if rows <= batch_size {
        return vec![batch];
    }
    (0..rows)
        .step_by(batch_size)
        .map(|start| batch.slice(start, batch_size.min(rows - start)))
        .collect()
}

fn column_values(
    file: &Path,
    batch: &RecordBatch,
    columns: &[PropColumn],
    import: &ImportOptions,
    first: u64,
) -> Result<Vec<Values>, SnapshotError> {
    columns
        .iter()
        .map(|c| {
            let declared = Declared {
                ty: c.ty,
                array: c.array,
                array_delimiter: import.array_delimiter,
                first_row: usize::try_from(first).unwrap_or(usize::MAX),
            };
            Values::from_column(batch.column(c.index), declared)
                .map_err(|m| SnapshotError::format(file, format!("column `{}`: {m}", c.name)))
        })
        .collect()
}

fn id_values(
    file: &Path,
    batch: &RecordBatch,
    index: usize,
    what: &str,
) -> Result<Values, SnapshotError> {
    let values = Values::from_array(batch.column(index), None)
        .map_err(|m| SnapshotError::format(file, format!("{what} column: {m}")))?;
    if let Some(kind) = values.cell_kind() {
        // Relationships match ids as they are: an id must be a plain value.
        return Err(SnapshotError::format(
            file,
            format!(
                "{what} column holds {}{} values; ids are strings or integers",
                kind.ty.name(),
                if kind.array { " array" } else { "" }
            ),
        ));
    }
    if batch.column(index).logical_null_count() > 0 {
        return Err(SnapshotError::format(
            file,
            format!("{what} column has empty values"),
        ));
    }
    Ok(values)
}

/// A permanent refusal of a write names the file it came from.
fn in_file(file: &Path, e: GraphError) -> GraphError {
    match e {
        GraphError::Permanent(m) => GraphError::Permanent(format!("{}: {m}", file.display())),
        transient => transient,
    }
}

/// Groups row indices by the value of a string column (labels, types).
fn group_rows(
    file: &Path,
    batch: &RecordBatch,
    index: usize,
    what: &str,
) -> Result<BTreeMap<String, Vec<usize>>, SnapshotError> {
    // Any string layout (Utf8, LargeUtf8, Utf8View, dictionary) reads as Utf8.
    let column = arrow::compute::cast(batch.column(index), &arrow::datatypes::DataType::Utf8)
        .map_err(|e| {
            SnapshotError::format(file, format!("{what} column must hold strings: {e}"))
        })?;
    let strings = column
        .as_string_opt::<i32>()
        .ok_or_else(|| SnapshotError::format(file, format!("{what} column must hold strings")))?;
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for row in 0..batch.num_rows() {
        let key = if strings.is_valid(row) {
            strings.value(row)
        } else {
            ""
        };
        match groups.get_mut(key) {
            Some(rows) => rows.push(row),
            None => {
                groups.insert(key.to_owned(), vec![row]);
            }
        }
    }
    Ok(groups)
}

/// The map key of every row's id, or an error naming the file, row and column.
fn id_keys<'v>(
    file: &Path,
    values: &'v Values,
    rows: usize,
    first: u64,
    what: &str,
) -> Result<Vec<std::borrow::Cow<'v, str>>, SnapshotError> {
    (0..rows)
        .map(|row| {
            id_key(values.get(row)).map_err(|m| {
                SnapshotError::format(
                    file,
                    format!("row {}: {what} column {m}", first + row as u64 + 1),
                )
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn write_node_batch(
    store: &dyn GraphWriter,
    db: &str,
    file: &Path,
    spec: &NodeSpec,
    import: &ImportOptions,
    (batch, first): (RecordBatch, u64),
    ids: &Mutex<IdMap>,
    duplicates: DuplicatePolicy,
    retried: &Retries,
) -> Result<BatchDone, LoadError> {
    let batch = &batch;
    let id = id_values(file, batch, spec.id_index, ":ID")?;
    let keys = id_keys(file, &id, batch.num_rows(), first, ":ID")?;
    let values = column_values(file, batch, &spec.properties, import, first)?;
    // Claim every id before writing: a second node with an id its ID space
    // already has is refused (or left out), exactly.
    let mut keep = vec![true; batch.num_rows()];
    let mut skipped = 0;
    {
        let mut map = ids
            .lock()
            .map_err(|_| LoadError::Mismatch("the id map was poisoned".into()))?;
        for (row, key) in keys.iter().enumerate() {
            if map.claim(&spec.id_space, key) {
                continue;
            }
            let row_number = first + row as u64 + 1;
            match duplicates {
                DuplicatePolicy::Fail => {
                    return Err(LoadError::DuplicateNodeId {
                        id: key.to_string(),
                        space: spec.id_space.clone(),
                        file: file.display().to_string(),
                        row: row_number,
                    })
                }
                DuplicatePolicy::Skip => {
                    tracing::debug!(file = %file.display(), row = row_number, id = %key, space = %spec.id_space, "duplicate node id skipped");
                    keep[row] = false;
                    skipped += 1;
                }
            }
        }
    }
    let mut props = vec![Prop {
        name: &spec.id_property,
        values: &id,
    }];
    props.extend(spec.properties.iter().zip(&values).map(|(c, v)| Prop {
        name: &c.name,
        values: v,
    }));
    let groups = match spec.label_index {
        Some(index) => group_rows(file, batch, index, ":LABEL")?,
        None => BTreeMap::from([(String::new(), (0..batch.num_rows()).collect())]),
    };
    let mut created = 0;
    for (labels, rows) in &groups {
        let rows: Vec<usize> = rows.iter().copied().filter(|r| keep[*r]).collect();
        if rows.is_empty() {
            continue;
        }
        let list = node_labels(file, spec, labels, import.array_delimiter)?;
        let write = NodeWrite {
            labels: &list,
            props: &props,
            rows: &rows,
        };
        let written = retrying(file, rows.len(), retried, || store.write_nodes(db, &write)).await?;
        if written.len() != rows.len() {
            return Err(LoadError::Mismatch(format!(
                "{}: a batch of {} nodes returned {} ids",
                file.display(),
                rows.len(),
                written.len()
            )));
        }
        created += written.len() as u64;
        let mut map = ids
            .lock()
            .map_err(|_| LoadError::Mismatch("the id map was poisoned".into()))?;
        for (row, node) in rows.iter().zip(written) {
            map.set(&spec.id_space, &keys[*row], node);
        }
    }
    Ok(BatchDone {
        created,
        skipped,
        first_dangling: None,
    })
}

/// A node's labels, as neo4j-admin gives them: the labels of the file's
/// group directory (`nodes/<Label>/`, neo4j-admin's `--nodes=<Label>=<file>`)
/// and the row's `:LABEL` value split at the array delimiter (trimmed, empty
/// parts and repeats dropped). A file with neither (no group directory, no
/// `:LABEL` column) gives its nodes their ID space as label, snapswitch's
/// stand-in for naming the label on the command line. The ID space is never
/// added to other labels: ID spaces (the global one too) are independent of
/// labels.
fn node_labels<'a>(
    file: &Path,
    spec: &'a NodeSpec,
    value: &'a str,
    array_delimiter: char,
) -> Result<Vec<&'a str>, SnapshotError> {
    if spec.label_index.is_none() && spec.labels.is_empty() {
        return Ok(vec![spec.id_space.as_str()]);
    }
    let mut list: Vec<&str> = Vec::new();
    for label in &spec.labels {
        if !list.contains(&label.as_str()) {
            list.push(label);
        }
    }
    for label in value
        .split(array_delimiter)
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        check_name("label", label).map_err(|m| SnapshotError::format(file, m))?;
        if !list.contains(&label) {
            list.push(label);
        }
    }
    Ok(list)
}

#[allow(clippy::too_many_arguments)]
async fn write_rel_batch(
    store: &dyn GraphWriter,
    db: &str,
    file: &Path,
    spec: &RelSpec,
    import: &ImportOptions,
    (batch, first): (RecordBatch, u64),
    ids: &Mutex<IdMap>,
    retried: &Retries,
) -> Result<BatchDone, LoadError> {
    let batch = &batch;
    let start = id_values(file, batch, spec.start_index, ":START_ID")?;
    let end = id_values(file, batch, spec.end_index, ":END_ID")?;
    let start_keys = id_keys(file, &start, batch.num_rows(), first, ":START_ID")?;
    let end_keys = id_keys(file, &end, batch.num_rows(), first, ":END_ID")?;
    let values = column_values(file, batch, &spec.properties, import, first)?;
    // Every row resolves to exactly one start and one end node, or is dangling.
    let resolved: Vec<Option<[NodeRef; 2]>> = {
        let map = ids
            .lock()
            .map_err(|_| LoadError::Mismatch("the id map was poisoned".into()))?;
        start_keys
            .iter()
            .zip(&end_keys)
            .map(|(s, e)| Some([map.get(&spec.start_space, s)?, map.get(&spec.end_space, e)?]))
            .collect()
    };
    let dangling = resolved.iter().filter(|r| r.is_none()).count() as u64;
    let first_dangling = resolved.iter().position(Option::is_none).map(|row| {
        let map = ids.lock();
        let start_found = map
            .as_ref()
            .is_ok_and(|m| m.get(&spec.start_space, &start_keys[row]).is_some());
        let (what, space, id) = if start_found {
            (":END_ID", &spec.end_space, &end_keys[row])
        } else {
            (":START_ID", &spec.start_space, &start_keys[row])
        };
        let row = first + row as u64;
        let what = format!(
            "{} row {}: {what} `{id}` is not an id of ID space `{space}`",
            file.display(),
            row + 1
        );
        (row, what)
    });
    let props: Vec<Prop<'_>> = spec
        .properties
        .iter()
        .zip(&values)
        .map(|(c, v)| Prop {
            name: &c.name,
            values: v,
        })
        .collect();
    let groups = match (spec.type_index, &spec.fixed_type) {
        (Some(index), _) => group_rows(file, batch, index, ":TYPE")?,
        (None, Some(t)) => BTreeMap::from([(t.clone(), (0..batch.num_rows()).collect())]),
        (None, None) => {
            return Err(SnapshotError::format(file, "relationship file has no :TYPE column").into())
        }
    };
    let mut created = 0;
    for (rel_type, rows) in groups {
        check_name("relationship type", &rel_type).map_err(|m| SnapshotError::format(file, m))?;
        let (rows, ends): (Vec<usize>, Vec<[NodeRef; 2]>) = rows
            .into_iter()
            .filter_map(|r| resolved[r].map(|e| (r, e)))
            .unzip();
        if rows.is_empty() {
            continue;
        }
        let write = RelWrite {
            rel_type: &rel_type,
            ends: &ends,
            props: &props,
            rows: &rows,
        };
        let made = retrying(file, rows.len(), retried, || {
            store.write_relationships(db, &write)
        })
        .await?;
        if made != rows.len() as u64 {
            return Err(LoadError::Mismatch(format!(
                "{}: a batch of {} resolved `{rel_type}` relationships created {made}",
                file.display(),
                rows.len()
            )));
        }
        created += made;
    }
    Ok(BatchDone {
        created,
        skipped: dangling,
        first_dangling,
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
            (None, Falkordb, LoadMethod::Cypher),
            (None, Neo4j, LoadMethod::Cypher),
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
