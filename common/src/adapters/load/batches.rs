//! Writing one file: its batches streamed, cut, converted and written with up
//! to `concurrency` statements in flight, each retried alone after a
//! transient error; nodes claim their ids in the id map, relationships are
//! resolved through it.

use super::*;

/// Streams one file and writes it, with up to `options.in_flight()` write
/// statements outstanding. `write` takes one batch and returns how many
/// nodes or relationships it created.
pub(super) async fn write_file<W, Fut>(
    input: &Input,
    import: &ImportOptions,
    columns: &[Column],
    options: &LoadOptions,
    cancel: &CancellationToken,
    timers: &Timers,
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
        // Nothing in flight: the writer waits for the reader.
        let stalled = in_flight.is_empty().then(Instant::now);
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
        if let Some(since) = stalled {
            Timers::add(&timers.read_stall, since);
        }
    }
}

/// How often a write batch may be retried, and whether one was.
pub(super) struct Retries {
    pub(super) max: u32,
    pub(super) used: AtomicBool,
}

/// One store write, retried after transient graph errors, up to
/// [`BATCH_RETRIES`] times. Retried per statement, not per batch: the id
/// map's claims and lookups for a batch are made once. A permanent refusal
/// names the file.
pub(super) async fn retrying<T, F, Fut>(
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
pub(super) fn slices(batch: RecordBatch, batch_size: usize) -> Vec<RecordBatch> {
    let rows = batch.num_rows();
    if rows <= batch_size {
        return vec![batch];
    }
    (0..rows)
        .step_by(batch_size)
        .map(|start| batch.slice(start, batch_size.min(rows - start)))
        .collect()
}

pub(super) fn column_values(
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

pub(super) fn id_values(
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
pub(super) fn in_file(file: &Path, e: GraphError) -> GraphError {
    match e {
        GraphError::Permanent(m) => GraphError::Permanent(format!("{}: {m}", file.display())),
        transient => transient,
    }
}

/// Groups row indices by the value of a string column (labels, types).
pub(super) fn group_rows(
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
pub(super) fn id_keys<'v>(
    file: &Path,
    values: &'v Values,
    rows: usize,
    first: u64,
    what: &str,
) -> Result<Vec<IdKey<'v>>, SnapshotError> {
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
pub(super) async fn write_node_batch(
    store: &dyn GraphWriter,
    db: &str,
    file: &Path,
    spec: &NodeSpec,
    import: &ImportOptions,
    (batch, first): (RecordBatch, u64),
    (ids, timers): (&Mutex<IdMap>, &Timers),
    duplicates: DuplicatePolicy,
    retried: &Retries,
) -> Result<BatchDone, LoadError> {
    let batch = &batch;
    let started = Instant::now();
    let id = id_values(file, batch, spec.id_index, ":ID")?;
    let keys = id_keys(file, &id, batch.num_rows(), first, ":ID")?;
    let values = column_values(file, batch, &spec.properties, import, first)?;
    Timers::add(&timers.convert, started);
    let started = Instant::now();
    // Claim every id before writing: a second node with an id its ID space
    // already has is refused (or left out), exactly.
    let mut keep = vec![true; batch.num_rows()];
    let mut skipped = 0;
    {
        let mut map = ids
            .lock()
            .map_err(|_| LoadError::Mismatch("the id map was poisoned".into()))?;
        let space = map.space_mut(&spec.id_space);
        for (row, key) in keys.iter().enumerate() {
            if space.claim(key) {
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
    Timers::add(&timers.id_map, started);
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
        let started = Instant::now();
        let mut map = ids
            .lock()
            .map_err(|_| LoadError::Mismatch("the id map was poisoned".into()))?;
        let space = map.space_mut(&spec.id_space);
        for (row, node) in rows.iter().zip(written) {
            space.set(&keys[*row], node);
        }
        drop(map);
        Timers::add(&timers.id_map, started);
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
pub(super) fn node_labels<'a>(
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
pub(super) async fn write_rel_batch(
    store: &dyn GraphWriter,
    db: &str,
    file: &Path,
    spec: &RelSpec,
    import: &ImportOptions,
    (batch, first): (RecordBatch, u64),
    (ids, timers): (&Mutex<IdMap>, &Timers),
    retried: &Retries,
) -> Result<BatchDone, LoadError> {
    let batch = &batch;
    let started = Instant::now();
    let start = id_values(file, batch, spec.start_index, ":START_ID")?;
    let end = id_values(file, batch, spec.end_index, ":END_ID")?;
    let start_keys = id_keys(file, &start, batch.num_rows(), first, ":START_ID")?;
    let end_keys = id_keys(file, &end, batch.num_rows(), first, ":END_ID")?;
    let values = column_values(file, batch, &spec.properties, import, first)?;
    Timers::add(&timers.convert, started);
    let started = Instant::now();
    // Every row resolves to exactly one start and one end node, or is dangling.
    let resolved: Vec<Option<[NodeRef; 2]>> = {
        let map = ids
            .lock()
            .map_err(|_| LoadError::Mismatch("the id map was poisoned".into()))?;
        match (map.space(&spec.start_space), map.space(&spec.end_space)) {
            (Some(starts), Some(ends)) => start_keys
                .iter()
                .zip(&end_keys)
                .map(|(s, e)| Some([starts.get(s)?, ends.get(e)?]))
                .collect(),
            _ => vec![None; start_keys.len()],
        }
    };
    Timers::add(&timers.id_map, started);
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
