//! Loading one snapshot into one (new, empty) database: indexes on every ID
//! space, all node files, then all relationship files, then a count check
//! against the rows read. Used by the worker and by the benchmark; knows
//! nothing about queues, locks or aliases.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::graph::{Counts, Endpoint, GraphError, GraphWriter, NodeWrite, Prop, RelWrite, Values};
use crate::snapshot::header::{check_name, NodeSpec, PropColumn, RelSpec};
use crate::snapshot::{layout, reader, SnapshotError};

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
}

impl LoadError {
    pub fn is_transient(&self) -> bool {
        match self {
            LoadError::Snapshot(e) => e.is_transient(),
            LoadError::Graph(e) => e.is_transient(),
            LoadError::Cancelled => true,
            LoadError::Mismatch(_) => false,
        }
    }
}

/// What a load wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub nodes: u64,
    pub relationships: u64,
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
    /// Pause after each write batch (drip-feed).
    pub batch_pause: std::time::Duration,
}

impl LoadOptions {
    pub fn new(batch_size: usize) -> Self {
        LoadOptions {
            batch_size,
            batch_pause: std::time::Duration::ZERO,
        }
    }

    async fn pause(&self, cancel: &CancellationToken) -> Result<(), LoadError> {
        if !self.batch_pause.is_zero() {
            tokio::select! {
                _ = cancel.cancelled() => return Err(LoadError::Cancelled),
                _ = tokio::time::sleep(self.batch_pause) => {}
            }
        }
        Ok(())
    }
}

/// Loads the snapshot in `dir` into `db`, which must exist and be empty.
pub async fn load_snapshot(
    store: &dyn GraphWriter,
    db: &str,
    dir: &Path,
    options: LoadOptions,
    cancel: &CancellationToken,
) -> Result<LoadReport, LoadError> {
    let batch_size = options.batch_size;
    let (node_files, rel_files) = layout::data_files(dir)?;
    let mut node_specs = Vec::new();
    let mut spaces: BTreeMap<String, IdSpace> = BTreeMap::new();
    for file in &node_files {
        let spec = NodeSpec::parse(&reader::column_names(file)?)
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
        node_specs.push((file, spec));
    }
    let mut rel_specs = Vec::new();
    for file in &rel_files {
        let spec = RelSpec::parse(&reader::column_names(file)?)
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
        rel_specs.push((file, spec));
    }

    // Indexes first: relationship endpoints are matched by (label, id property).
    for (label, space) in &spaces {
        store.create_index(db, label, &space.property).await?;
    }

    let mut expected = Counts::default();
    let mut written = LoadReport::default();
    let nodes_span = tracing::info_span!("load_nodes", rows = tracing::field::Empty);
    async {
        for (file, spec) in &node_specs {
            let mut stream = reader::stream(file, &spec.columns, batch_size)?;
            while let Some(batch) = stream.next().await {
                if cancel.is_cancelled() {
                    return Err(LoadError::Cancelled);
                }
                for batch in slices(batch?, batch_size) {
                    expected.nodes += batch.num_rows() as u64;
                    written.nodes += write_node_batch(store, db, file, spec, &batch).await?;
                    options.pause(cancel).await?;
                }
            }
        }
        Ok::<_, LoadError>(())
    }
    .instrument(nodes_span.clone())
    .await?;
    nodes_span.record("rows", expected.nodes);

    let rels_span = tracing::info_span!("load_relationships", rows = tracing::field::Empty);
    async {
        for (file, spec) in &rel_specs {
            let mut stream = reader::stream(file, &spec.columns, batch_size)?;
            while let Some(batch) = stream.next().await {
                if cancel.is_cancelled() {
                    return Err(LoadError::Cancelled);
                }
                for batch in slices(batch?, batch_size) {
                    expected.relationships += batch.num_rows() as u64;
                    written.relationships +=
                        write_rel_batch(store, db, file, spec, &spaces, &batch).await?;
                    options.pause(cancel).await?;
                }
            }
        }

        Ok::<_, LoadError>(())
    }
    .instrument(rels_span.clone())
    .await?;
    rels_span.record("rows", expected.relationships);

    let counts = store.counts(db).await?;
    if counts != expected {
        return Err(LoadError::Mismatch(format!(
            "database `{db}` holds {} nodes and {} relationships, the files have {} and {}{}",
            counts.nodes,
            counts.relationships,
            expected.nodes,
            expected.relationships,
            if counts.relationships < expected.relationships {
                " (a relationship whose start or end id matches no node is not created)"
            } else {
                ""
            }
        )));
    }
    Ok(written)
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
) -> Result<Vec<Values>, SnapshotError> {
    columns
        .iter()
        .map(|c| {
            Values::from_array(batch.column(c.index), c.ty)
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
    if batch.column(index).logical_null_count() > 0 {
        return Err(SnapshotError::format(
            file,
            format!("{what} column has empty values"),
        ));
    }
    Ok(values)
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
    batch: &RecordBatch,
) -> Result<u64, LoadError> {
    let id = id_values(file, batch, spec.id_index, ":ID")?;
    let values = column_values(file, batch, &spec.properties)?;
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
        for label in labels.split(';').map(str::trim).filter(|l| !l.is_empty()) {
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
            .await?;
    }
    Ok(created)
}

async fn write_rel_batch(
    store: &dyn GraphWriter,
    db: &str,
    file: &Path,
    spec: &RelSpec,
    spaces: &BTreeMap<String, IdSpace>,
    batch: &RecordBatch,
) -> Result<u64, LoadError> {
    let start = id_values(file, batch, spec.start_index, ":START_ID")?;
    let end = id_values(file, batch, spec.end_index, ":END_ID")?;
    let values = column_values(file, batch, &spec.properties)?;
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
    let mut created = 0;
    for (rel_type, rows) in group_rows(file, batch, spec.type_index, ":TYPE")? {
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
            .await?;
    }
    Ok(created)
}
