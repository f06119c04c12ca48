//! Loading one snapshot into one (new, empty) database: indexes on every ID
//! space, all node files, then all relationship files, then a count check
//! against the rows read. Used by the worker and by the benchmark; knows
//! nothing about queues, locks or aliases.
//!
//! Each file is read as a stream of Arrow record batches on a blocking thread
//! ([`reader::stream`], a bounded channel: back-pressure), cut to
//! `batch_size` rows, and written with up to `concurrency` write statements
//! in flight at once (one `FuturesUnordered` on this task: while the database
//! works on one batch, the next is converted and sent). Memory is bounded by
//! the read-ahead plus `concurrency` batches, whatever the snapshot's size.
//! A batch that fails transiently (a deadlock, a dropped connection) is
//! retried on its own, up to [`BATCH_RETRIES`] times.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::graph::values::Declared;
use crate::graph::{Counts, Endpoint, GraphError, GraphWriter, NodeWrite, Prop, RelWrite, Values};
use crate::snapshot::header::{check_name, Column, NodeSpec, PropColumn, RelSpec};
use crate::snapshot::layout::Input;
use crate::snapshot::options::ImportOptions;
use crate::snapshot::{layout, reader, SnapshotError};

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
    #[error("{count} of {total} relationships reference a start or end id that matches no node (dangling_relationships = \"fail\"; \"skip\" loads the rest and reports the count)")]
    Dangling { count: u64, total: u64 },
}

impl LoadError {
    pub fn is_transient(&self) -> bool {
        match self {
            LoadError::Snapshot(e) => e.is_transient(),
            LoadError::Graph(e) => e.is_transient(),
            LoadError::Cancelled => true,
            LoadError::Mismatch(_) | LoadError::Dangling { .. } => false,
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

/// What a load wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub nodes: u64,
    pub relationships: u64,
    /// Relationship rows not loaded because an endpoint matched no node
    /// (only with [`DanglingPolicy::Skip`]; with `Fail` the load fails).
    pub skipped_relationships: u64,
}

/// One ID space: the label its nodes carry and the property holding the id.
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
}

impl LoadOptions {
    /// `batch_size` rows per statement, one at a time, dangling relationships fail.
    pub fn new(batch_size: usize) -> Self {
        LoadOptions {
            batch_size,
            batch_pause: Duration::ZERO,
            concurrency: 1,
            dangling: DanglingPolicy::Fail,
        }
    }

    /// The worker's options: `batch_size`, `batch_pause_ms`,
    /// `load_concurrency`, `dangling_relationships`.
    pub fn from_config(config: &crate::config::Config) -> Self {
        LoadOptions {
            batch_size: config.batch_size,
            batch_pause: Duration::from_millis(config.batch_pause_ms),
            concurrency: config.load_concurrency,
            dangling: config.dangling_relationships,
        }
    }

    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    pub fn with_dangling(mut self, dangling: DanglingPolicy) -> Self {
        self.dangling = dangling;
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
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    rows: u64,
    written: u64,
    /// Sum over batches of the rows that created nothing.
    missing: u64,
}

/// Loads the snapshot in `dir` into `db`, which must exist and be empty.
pub async fn load_snapshot(
    store: &dyn GraphWriter,
    db: &str,
    dir: &Path,
    options: LoadOptions,
    cancel: &CancellationToken,
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

    // Indexes first: relationship endpoints are matched by (label, id property).
    for (label, space) in &spaces {
        store.create_index(db, label, &space.property).await?;
    }

    // Set when a batch was retried: a retried write may have been applied
    // before its reply was lost, so a surplus is then not the files' fault.
    let retried = AtomicBool::new(false);
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
                &retried,
                |batch, first| write_node_batch(store, db, file, spec, &import, batch, first),
            )
            .await?;
            nodes.rows += t.rows;
            nodes.written += t.written;
        }
        Ok::<_, LoadError>(())
    }
    .instrument(nodes_span.clone())
    .await?;
    nodes_span.record("rows", nodes.rows);

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
                &retried,
                |batch, first| {
                    write_rel_batch(store, db, file, spec, &spaces, &import, (batch, first))
                },
            )
            .await?;
            rels.rows += t.rows;
            rels.written += t.written;
            rels.missing += t.missing;
        }
        Ok::<_, LoadError>(())
    }
    .instrument(rels_span.clone())
    .await?;
    rels_span.record("rows", rels.rows);
    rels_span.record("dangling", rels.missing);

    let dangling = rels.missing;
    if dangling > 0 {
        match options.dangling {
            DanglingPolicy::Fail => {
                return Err(LoadError::Dangling {
                    count: dangling,
                    total: rels.rows,
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
        nodes: nodes.rows,
        relationships: rels.rows - dangling,
    };
    let counts = store.counts(db).await?;
    if counts != expected {
        let message = format!(
            "database `{db}` holds {} nodes and {} relationships, the files have {} and {}{}",
            counts.nodes,
            counts.relationships,
            expected.nodes,
            expected.relationships,
            if dangling > 0 {
                format!(" ({dangling} dangling relationships skipped)")
            } else {
                String::new()
            }
        );
        let surplus =
            counts.nodes > expected.nodes || counts.relationships > expected.relationships;
        if surplus && retried.load(Ordering::Relaxed) {
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
    retried: &AtomicBool,
    write: W,
) -> Result<Tally, LoadError>
where
    W: Fn(RecordBatch, usize) -> Fut,
    Fut: Future<Output = Result<u64, LoadError>>,
{
    let file = input.path.as_path();
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
            // The batch's first row in the file, for messages.
            let first = usize::try_from(tally.rows).unwrap_or(usize::MAX);
            tally.rows += batch.num_rows() as u64;
            in_flight.push(write_retrying(batch, first, &write, file, retried));
        }
        if read_all && pending.is_empty() && in_flight.is_empty() {
            return Ok(tally);
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(LoadError::Cancelled),
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                let (rows, created) = done?;
                tally.written += created;
                tally.missing += rows.saturating_sub(created);
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

/// One batch, retried after transient graph errors; returns (rows, created).
async fn write_retrying<W, Fut>(
    batch: RecordBatch,
    first: usize,
    write: &W,
    file: &Path,
    retried: &AtomicBool,
) -> Result<(u64, u64), LoadError>
where
    W: Fn(RecordBatch, usize) -> Fut,
    Fut: Future<Output = Result<u64, LoadError>>,
{
    let rows = batch.num_rows() as u64;
    let mut attempt = 0;
    loop {
        match write(batch.clone(), first).await {
            Err(LoadError::Graph(e)) if e.is_transient() && attempt < BATCH_RETRIES => {
                attempt += 1;
                retried.store(true, Ordering::Relaxed);
                let wait = Duration::from_millis(100 << attempt);
                tracing::warn!(file = %file.display(), rows, attempt, error = %e, ?wait, "write batch failed transiently; retrying it");
                tokio::time::sleep(wait).await;
            }
            other => return other.map(|created| (rows, created)),
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
    first_row: usize,
) -> Result<Vec<Values>, SnapshotError> {
    columns
        .iter()
        .map(|c| {
            let declared = Declared {
                ty: c.ty,
                array: c.array,
                array_delimiter: import.array_delimiter,
                first_row,
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
                "{what} column holds {}{} values; ids must be integers, floats, booleans or strings",
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

async fn write_node_batch(
    store: &dyn GraphWriter,
    db: &str,
    file: &Path,
    spec: &NodeSpec,
    import: &ImportOptions,
    batch: RecordBatch,
    first_row: usize,
) -> Result<u64, LoadError> {
    let batch = &batch;
    let id = id_values(file, batch, spec.id_index, ":ID")?;
    let values = column_values(file, batch, &spec.properties, import, first_row)?;
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
        // Every node carries its ID space as a label: that is how relationships find it.
        let mut list: Vec<&str> = vec![spec.id_space.as_str()];
        for label in &spec.labels {
            if !list.contains(&label.as_str()) {
                list.push(label);
            }
        }
        for label in labels
            .split(import.array_delimiter)
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            check_name("label", label).map_err(|m| SnapshotError::format(file, m))?;
            if !list.contains(&label) {
                list.push(label);
            }
        }
        created += store
            .write_nodes(
                db,
                &NodeWrite {
                    labels: &list,
                    props: &props,
                    rows,
                },
            )
            .await
            .map_err(|e| in_file(file, e))?;
    }
    Ok(created)
}

async fn write_rel_batch(
    store: &dyn GraphWriter,
    db: &str,
    file: &Path,
    spec: &RelSpec,
    spaces: &BTreeMap<String, IdSpace>,
    import: &ImportOptions,
    (batch, first_row): (RecordBatch, usize),
) -> Result<u64, LoadError> {
    let batch = &batch;
    let start = id_values(file, batch, spec.start_index, ":START_ID")?;
    let end = id_values(file, batch, spec.end_index, ":END_ID")?;
    let values = column_values(file, batch, &spec.properties, import, first_row)?;
    let props: Vec<Prop<'_>> = spec
        .properties
        .iter()
        .zip(&values)
        .map(|(c, v)| Prop {
            name: &c.name,
            values: v,
        })
        .collect();
    let property = |space: &str| {
        spaces
            .get(space)
            .map(|s| s.property.as_str())
            .unwrap_or("id")
    };
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
        created += store
            .write_relationships(
                db,
                &RelWrite {
                    rel_type: &rel_type,
                    start: Endpoint {
                        label: &spec.start_space,
                        property: property(&spec.start_space),
                        values: &start,
                    },
                    end: Endpoint {
                        label: &spec.end_space,
                        property: property(&spec.end_space),
                        values: &end,
                    },
                    props: &props,
                    rows: &rows,
                },
            )
            .await
            .map_err(|e| in_file(file, e))?;
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        };
        assert!(e.to_string().starts_with("3 of 10 relationships"), "{e}");
        assert!(!e.is_transient());
    }
}
