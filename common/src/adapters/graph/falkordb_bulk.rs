//! Loading a new FalkorDB graph with `GRAPH.BULK` (FalkorDB's binary bulk
//! insert, `docs/performance.md` and ARCHITECTURE.md "Load path"): the
//! binary token encoding, the call sizing from the stall budget, and
//! [`BulkWriter`], a [`GraphWriter`] that buffers node and relationship
//! batches into calls.
//!
//! Wire format (FalkorDB 4.16.3, `src/bulk_insert/bulk_insert.c`):
//!
//! ```text
//! GRAPH.BULK <key> <node_count> <edge_count> <node_tokens> <edge_tokens> <token>…
//! token  = name NUL, u32 prop_count, prop_count × (name NUL), records…
//! node   = prop_count × value
//! edge   = src u64, dst u64, prop_count × value
//! value  = 0 null | 1 bool(u8) | 2 f64 | 3 utf-8 NUL | 4 i64 | 5 i64 count, values…
//! ```
//! (little-endian; the server reads host order, and every platform this
//! builds for is little-endian.) A node's internal id is its position in
//! the build: nodes counted over every call, in call, token and record
//! order. So [`BulkWriter`] knows each node's id when it encodes it, and the
//! loader's id map resolves relationships exactly as on the Cypher path.
//!
//! What it cannot carry (temporal values, points: 4.16 has no type byte for
//! them) goes through the Cypher writer for that batch, on the same graph,
//! after the calls before it: nothing is ever deleted from a graph being
//! built, so Cypher's `id(n)` continues the same positions, and the ids the
//! Cypher writer returns are checked against them.
//!
//! Keeping a call's server cost about its size (FalkorDB 4.16.3, read from
//! its source and measured, `docs/performance.md` "Bulk loading"): node
//! room is reserved ahead in [`NODE_GROWTH`] steps (a call without tokens,
//! [`GraphWriter::bulk_reserve`]) and the existing matrices are then resized
//! by read queries on a worker thread ([`GraphWriter::bulk_sync`]), where
//! each call used to resize (and so assemble) every matrix on the main
//! thread; and each relationship type's pending changes are applied by a
//! read query every [`SYNC_EDGES`] relationships, where each call's first
//! relationship of the type used to merge all of them.
//!
//! Failure: a `GRAPH.BULK` call has no safe retry (a lost reply that was
//! applied shifts every later node id) and the server deletes the key on a
//! malformed call. After any failed call the writer refuses every later
//! write with the same error, so the load fails whole; the worker then drops
//! the partial graph and the event is retried from the start.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    Counts, GraphError, GraphWriter, NodeRef, NodeWrite, Prop, RelWrite, StoreLimits, Value, Values,
};
use crate::snapshot::PropType;

/// Type bytes of a `GRAPH.BULK` value.
const NULL: u8 = 0;
const BOOL: u8 = 1;
const DOUBLE: u8 = 2;
const STRING: u8 = 3;
const LONG: u8 = 4;
const ARRAY: u8 = 5;

/// Why a value cannot be encoded. The batch then goes through the Cypher
/// writer, which either stores it or refuses it with its own message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unencodable;

/// The most properties a batch may have to travel in `GRAPH.BULK`; wider
/// batches go through Cypher. Measured on 4.16.3: a node with 40 000 or
/// 50 000 properties loaded and read back, one with 60 000 or more crashed
/// the server (SIGSEGV) after the call (`tests/tests/loading.rs` loads
/// 65 534 through the bulk method, so through Cypher).
pub const MAX_BULK_PROPERTIES: usize = 16_384;

/// Whether a column can travel in `GRAPH.BULK`: the plain types and arrays
/// of them; not temporal values or points.
pub fn column_fits(values: &Values) -> bool {
    match values.cell_kind() {
        None => true,
        Some(kind) => {
            kind.ty.int_range().is_some()
                || matches!(kind.ty, PropType::Float | PropType::Bool | PropType::String)
        }
    }
}

fn encode_cell(out: &mut Vec<u8>, c: &super::values::Cell) -> Result<(), Unencodable> {
    use super::values::Cell;
    match c {
        Cell::Int(i) => encode_value(out, Value::Int(*i)),
        Cell::Float(f) => encode_value(out, Value::Float(*f)),
        Cell::Bool(b) => encode_value(out, Value::Bool(*b)),
        Cell::Str(s) => encode_value(out, Value::Str(s)),
        Cell::List(items) => {
            out.push(ARRAY);
            out.extend_from_slice(&(items.len() as i64).to_le_bytes());
            for item in items {
                encode_cell(out, item)?;
            }
            Ok(())
        }
        _ => Err(Unencodable),
    }
}

/// Appends one value. Refused (as on the Cypher path): a string holding a
/// NUL (the format ends strings with one), a float that is not finite,
/// temporal values and points.
pub fn encode_value(out: &mut Vec<u8>, v: Value<'_>) -> Result<(), Unencodable> {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(b) => out.extend_from_slice(&[BOOL, u8::from(b)]),
        Value::Float(f) if f.is_finite() => {
            out.push(DOUBLE);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Float(_) => return Err(Unencodable),
        Value::Int(i) => {
            out.push(LONG);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Str(s) => {
            if s.as_bytes().contains(&0) {
                return Err(Unencodable);
            }
            out.push(STRING);
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        Value::Cell(c) => encode_cell(out, c)?,
    }
    Ok(())
}

/// A token's header: its name (labels joined by `:`, or the relationship
/// type), then the property names.
pub fn token_header(name: &str, props: &[&str]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(name.len() + 5 + props.iter().map(|p| p.len() + 1).sum::<usize>());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(&(props.len() as u32).to_le_bytes());
    for p in props {
        out.extend_from_slice(p.as_bytes());
        out.push(0);
    }
    out
}

/// Appends one node record (`row` of each property column).
pub fn encode_node(out: &mut Vec<u8>, props: &[Prop<'_>], row: usize) -> Result<(), Unencodable> {
    for p in props {
        encode_value(out, p.values.get(row))?;
    }
    Ok(())
}

/// Appends one edge record from node position `src` to `dst`.
pub fn encode_edge(
    out: &mut Vec<u8>,
    src: u64,
    dst: u64,
    props: &[Prop<'_>],
    row: usize,
) -> Result<(), Unencodable> {
    out.extend_from_slice(&src.to_le_bytes());
    out.extend_from_slice(&dst.to_le_bytes());
    for p in props {
        encode_value(out, p.values.get(row))?;
    }
    Ok(())
}

/// The smallest and largest call the sizing picks.
///
/// Without [`GraphWriter::bulk_reserve`] and [`GraphWriter::bulk_sync`],
/// every call cost the server a part that grew with the graph (4.16.3: the
/// matrices are resized, and `GB_resize` assembles every pending change,
/// whenever the node capacity grows, which was every call; and the first
/// relationship of a type in a call assembles that type's pending changes,
/// `GB_wait` → `GB_add`, linear in the edges of the type so far); a 1 MiB
/// floor kept that from making the load quadratic. With both, a call's
/// cost is about its size, so the floor only keeps the number of calls
/// sane.
pub const MIN_CALL_BYTES: usize = 64 * 1024;
pub const MAX_CALL_BYTES: usize = 64 * 1024 * 1024;
/// The server speed assumed before the first call was timed, bytes a
/// millisecond: 1 MB calls took 30 to 50 ms on the 2-core machine of
/// `docs/performance.md` (about 25 000).
pub const ASSUMED_BYTES_PER_MS: f64 = 20_000.0;
/// The share of the budget a call is sized to fill: calls of one size vary
/// (the index insertions, the allocator), so the sizing aims below it.
pub const BUDGET_SHARE: f64 = 0.6;

/// Node capacity is reserved ahead of the build in steps of this factor:
/// a call whose nodes go past the room reserved so far is preceded by
/// [`GraphWriter::bulk_reserve`] for `NODE_GROWTH ×` the nodes after it.
/// FalkorDB sizes every matrix to the node capacity, and resizing one
/// assembles all its pending changes (`GB_resize` → `GB_wait`), so growing
/// by 16 384 nodes (its `NODE_CREATION_BUFFER`) per call made each call
/// cost the nodes so far; geometric steps make that a few times in a load.
/// The price: up to half again the node slots (8 bytes a node in FalkorDB's
/// node block, and the matrices' row pointers) until the graph grows into
/// them.
pub const NODE_GROWTH: f64 = 1.5;
/// No reservation below this many nodes: FalkorDB's default capacity step.
pub const MIN_RESERVE: u64 = 16_384;
/// A relationship type is synchronised ([`GraphWriter::bulk_sync`]) after
/// the call that brings its unsynchronised relationships to this many. In a
/// call, the first relationship of a type assembles every change of that
/// type since the last synchronisation, on the server's main thread; the
/// synchronisation moves them into the type's matrix on a worker thread
/// instead, at a cost linear in the type's relationships so far. So this
/// bounds the main thread's share, and the number of synchronisations.
pub const SYNC_EDGES: u64 = 262_144;

/// How big the next call may be, in bytes, for calls to block the server's
/// main thread (and every reader of every graph on it) for at most
/// `budget_ms`: the server's measured speed (bytes a millisecond; `None`
/// before the first call: [`ASSUMED_BYTES_PER_MS`]) times [`BUDGET_SHARE`] of the budget, within
/// [`MIN_CALL_BYTES`]..=[`MAX_CALL_BYTES`]. A budget of 0 means no budget:
/// the largest calls (fastest overall).
pub fn call_bytes(budget_ms: u64, bytes_per_ms: Option<f64>) -> usize {
    if budget_ms == 0 {
        return MAX_CALL_BYTES;
    }
    let rate = bytes_per_ms
        .filter(|r| r.is_finite() && *r > 0.0)
        .unwrap_or(ASSUMED_BYTES_PER_MS);
    let bytes = rate * budget_ms as f64 * BUDGET_SHARE;
    (bytes.min(MAX_CALL_BYTES as f64) as usize).clamp(MIN_CALL_BYTES, MAX_CALL_BYTES)
}

/// The server speed after one more call: the slowest of the last estimate
/// and this call's (a call that ran slow sizes the next one down at once; a
/// fast one raises the estimate by at most half the difference).
pub fn next_rate(previous: Option<f64>, bytes: usize, took: Duration) -> Option<f64> {
    let ms = took.as_secs_f64() * 1000.0;
    if ms <= 0.0 || bytes == 0 {
        return previous;
    }
    let this = bytes as f64 / ms;
    Some(match previous {
        None => this,
        Some(p) if this < p => this,
        Some(p) => p + (this - p) / 2.0,
    })
}

/// A matrix [`GraphWriter::bulk_sync`] brings to the graph's size and whose
/// pending changes it applies, off the server's main thread.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SyncTarget {
    /// The node-to-labels matrix.
    NodeLabels,
    /// The adjacency matrix (every relationship).
    Adjacency,
    Label(String),
    RelType(String),
}

/// The arguments of one `GRAPH.BULK` call, after the key.
#[derive(Debug, Default)]
pub struct Call {
    pub nodes: u64,
    pub edges: u64,
    node_tokens: Vec<(Vec<u8>, Vec<u8>)>,
    edge_tokens: Vec<(Vec<u8>, Vec<u8>)>,
    bytes: usize,
    /// Nodes to reserve room for before the call (0: none).
    reserve: u64,
    /// Matrices to synchronise after the reservation, before the call (so
    /// the call does not resize them on the main thread).
    pre_sync: Vec<SyncTarget>,
    /// Relationship types to synchronise after the call.
    sync: Vec<SyncTarget>,
}

impl Call {
    pub fn is_empty(&self) -> bool {
        self.nodes == 0 && self.edges == 0
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The token to append records with `header` to: the last one when it
    /// has the same header, else a new one.
    fn token(tokens: &mut Vec<(Vec<u8>, Vec<u8>)>, header: Vec<u8>) -> &mut Vec<u8> {
        if tokens.last().is_none_or(|(h, _)| *h != header) {
            tokens.push((header, Vec::new()));
        }
        match tokens.last_mut() {
            Some((_, body)) => body,
            None => unreachable!("a token was just pushed"),
        }
    }

    /// The call's arguments after the key: counts, then tokens.
    pub fn args(&self) -> Vec<Vec<u8>> {
        let mut args = vec![
            self.nodes.to_string().into_bytes(),
            self.edges.to_string().into_bytes(),
            self.node_tokens.len().to_string().into_bytes(),
            self.edge_tokens.len().to_string().into_bytes(),
        ];
        for (h, body) in self.node_tokens.iter().chain(&self.edge_tokens) {
            let mut t = Vec::with_capacity(h.len() + body.len());
            t.extend_from_slice(h);
            t.extend_from_slice(body);
            args.push(t);
        }
        args
    }
}

/// The node-position bookkeeping and the call being filled.
#[derive(Debug, Default)]
struct State {
    /// Nodes in the graph, counting the call being filled: the next node's id.
    next_node: u64,
    /// Nodes the reservations so far made room for.
    reserved: u64,
    /// Relationships per type since that type's last synchronisation.
    unsynced: std::collections::BTreeMap<String, u64>,
    /// The labels of the calls closed so far.
    labels: std::collections::BTreeSet<String>,
    call: Call,
    /// Calls handed out for sending so far: the next call's number.
    next_seq: u64,
    /// The emptiness check ran.
    started: bool,
}

/// What the sent calls measured, and the first failure.
#[derive(Debug, Default)]
struct Sent {
    /// The server's speed, bytes a millisecond, for calls with nodes only
    /// (`[0]`) and calls with relationships (`[1]`): a relationship costs
    /// the server several times a node of the same size.
    rate: [Option<f64>; 2],
    calls: u64,
    longest_call: Duration,
    reserves: u64,
    syncs: u64,
    sync_time: Duration,
    /// A failed call: every later write fails with it.
    failed: Option<GraphError>,
}

/// Figures of one bulk load, for logs and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BulkStats {
    pub calls: u64,
    pub longest_call: Duration,
    /// The server speed the sizing ended with, bytes a millisecond: for
    /// calls of nodes, and of relationships.
    pub bytes_per_ms: [Option<f64>; 2],
    /// Node reservations ([`GraphWriter::bulk_reserve`]).
    pub reserves: u64,
    /// Synchronisations ([`GraphWriter::bulk_sync`]) and their total time
    /// (on the server's worker threads, not its main thread).
    pub syncs: u64,
    pub sync_time: Duration,
}

/// A [`GraphWriter`] that builds a brand-new FalkorDB graph with
/// `GRAPH.BULK` calls sized from `budget_ms`; everything else (indexes,
/// counts, batches with temporal values or points) goes to `inner`, whose
/// [`GraphWriter::bulk_call`] sends the calls.
///
/// Calls are numbered when they are closed and sent strictly in that order
/// (each waits for the one before it), without holding the encoder's lock:
/// while the server works on call n, the next batches are encoded into call
/// n + 1.
pub struct BulkWriter<'a> {
    inner: &'a dyn GraphWriter,
    budget_ms: u64,
    /// [`SYNC_EDGES`], unless a test sets another.
    sync_edges: u64,
    state: tokio::sync::Mutex<State>,
    sent: std::sync::Mutex<Sent>,
    /// Calls finished (`u64::MAX` once one failed).
    done: tokio::sync::watch::Sender<u64>,
}

impl<'a> BulkWriter<'a> {
    pub fn new(inner: &'a dyn GraphWriter, budget_ms: u64) -> Self {
        BulkWriter {
            inner,
            budget_ms,
            sync_edges: SYNC_EDGES,
            state: tokio::sync::Mutex::new(State::default()),
            sent: std::sync::Mutex::new(Sent::default()),
            done: tokio::sync::watch::channel(0).0,
        }
    }

    /// Synchronises a relationship type after this many of its
    /// relationships instead of [`SYNC_EDGES`] (tests: a small snapshot
    /// that synchronises several times).
    pub fn with_sync_edges(mut self, edges: u64) -> Self {
        self.sync_edges = edges.max(1);
        self
    }

    /// Sends what is buffered and waits for every call. The load calls it
    /// once after the last write (through [`GraphWriter::counts`]).
    pub async fn finish(&self, db: &str) -> Result<(), GraphError> {
        let mut state = self.state.lock().await;
        self.drain(db, &mut state).await
    }

    pub async fn stats(&self) -> BulkStats {
        let sent = self.sent();
        BulkStats {
            calls: sent.calls,
            longest_call: sent.longest_call,
            bytes_per_ms: sent.rate,
            reserves: sent.reserves,
            syncs: sent.syncs,
            sync_time: sent.sync_time,
        }
    }

    fn sent(&self) -> std::sync::MutexGuard<'_, Sent> {
        match self.sent.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn failed(&self) -> Result<(), GraphError> {
        match &self.sent().failed {
            Some(e) => Err(clone_err(e)),
            None => Ok(()),
        }
    }

    fn fail(&self, e: &GraphError) {
        let mut sent = self.sent();
        if sent.failed.is_none() {
            sent.failed = Some(clone_err(e));
        }
        drop(sent);
        self.done.send_replace(u64::MAX);
    }

    /// The graph must be empty: positions count from 0.
    async fn start(&self, db: &str, state: &mut State) -> Result<(), GraphError> {
        if !std::mem::replace(&mut state.started, true) {
            let counts = self.inner.counts(db).await?;
            if counts.nodes != 0 || counts.relationships != 0 {
                return Err(GraphError::Permanent(format!(
                    "GRAPH.BULK builds only an empty graph; `{db}` holds {} nodes",
                    counts.nodes
                )));
            }
            state.next_node = 0;
        }
        Ok(())
    }

    /// Closes the call being filled, if it has anything: its number and
    /// arguments, to [`BulkWriter::send`], with the reservation before it
    /// and the synchronisations after it.
    fn close(state: &mut State, sync_edges: u64) -> Option<(u64, Call)> {
        if state.call.is_empty() {
            return None;
        }
        let mut call = std::mem::take(&mut state.call);
        let after = state.next_node;
        if call.nodes > 0 && after > state.reserved && after > MIN_RESERVE {
            let first = after - call.nodes;
            let room = ((after as f64) * NODE_GROWTH).ceil() as u64;
            call.reserve = room - first;
            state.reserved = room;
            // Every matrix that exists before this call is resized to the
            // new room by a read query, not by the call.
            if first > 0 {
                call.pre_sync.push(SyncTarget::NodeLabels);
            }
            call.pre_sync
                .extend(state.labels.iter().cloned().map(SyncTarget::Label));
            if !state.unsynced.is_empty() {
                call.pre_sync.push(SyncTarget::Adjacency);
            }
            call.pre_sync
                .extend(state.unsynced.keys().cloned().map(SyncTarget::RelType));
        }
        for (header, _) in &call.node_tokens {
            let name = header.split(|b| *b == 0).next().unwrap_or_default();
            for label in String::from_utf8_lossy(name).split(':') {
                if !label.is_empty() && !state.labels.contains(label) {
                    state.labels.insert(label.to_owned());
                }
            }
        }
        for (rel_type, n) in state.unsynced.iter_mut() {
            if *n >= sync_edges {
                call.sync.push(SyncTarget::RelType(rel_type.clone()));
                *n = 0;
            }
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        Some((seq, call))
    }

    /// Waits until `count` calls have finished (or one failed).
    async fn wait_for(&self, count: u64) -> Result<(), GraphError> {
        let mut rx = self.done.subscribe();
        rx.wait_for(|done| *done >= count).await.ok();
        self.failed()
    }

    /// Sends call `seq` after every call before it (and everything they
    /// asked for: a synchronisation must end before the next call, which
    /// would otherwise wait for the graph's lock on the server's main
    /// thread).
    async fn send(&self, db: &str, seq: u64, call: Call) -> Result<(), GraphError> {
        self.wait_for(seq).await?;
        if call.reserve > 0 {
            if let Err(e) = self.inner.bulk_reserve(db, call.reserve).await {
                tracing::warn!(%db, error = %e, "GRAPH.BULK reservation failed; the load fails whole");
                self.fail(&e);
                return Err(e);
            }
            self.sent().reserves += 1;
            self.sync_all(db, &call.pre_sync).await;
        }
        let bytes = call.bytes();
        let kind = usize::from(call.edges > 0);
        let started = Instant::now();
        let sent = self.inner.bulk_call(db, call.args()).await;
        let took = started.elapsed();
        if let Err(e) = sent {
            tracing::warn!(%db, error = %e, "GRAPH.BULK call failed; the load fails whole (no per-call retry)");
            self.fail(&e);
            return Err(e);
        }
        {
            let mut s = self.sent();
            s.calls += 1;
            s.longest_call = s.longest_call.max(took);
            s.rate[kind] = next_rate(s.rate[kind], bytes, took);
        }
        tracing::debug!(%db, bytes, nodes = call.nodes, edges = call.edges, reserve = call.reserve, took_ms = took.as_millis() as u64, "GRAPH.BULK call");
        self.sync_all(db, &call.sync).await;
        self.done.send_if_modified(|d| {
            if *d == seq {
                *d = seq + 1;
                true
            } else {
                false
            }
        });
        Ok(())
    }

    /// Synchronises `targets` one after another. Only a speed-up: a failure
    /// leaves the changes pending, and the next call applies them on the
    /// main thread as it would without it.
    async fn sync_all(&self, db: &str, targets: &[SyncTarget]) {
        for target in targets {
            let started = Instant::now();
            if let Err(e) = self.inner.bulk_sync(db, target).await {
                tracing::warn!(%db, ?target, error = %e, "synchronising a matrix failed; continuing");
            }
            let took = started.elapsed();
            let mut s = self.sent();
            s.syncs += 1;
            s.sync_time += took;
            tracing::debug!(%db, ?target, took_ms = took.as_millis() as u64, "matrix synchronised");
        }
    }

    /// Sends the call being filled and waits for every call, holding the
    /// encoder's lock (before a Cypher batch, and at the end).
    async fn drain(&self, db: &str, state: &mut State) -> Result<(), GraphError> {
        self.failed()?;
        if let Some((seq, call)) = Self::close(state, self.sync_edges) {
            self.send(db, seq, call).await?;
        }
        self.wait_for(state.next_seq).await
    }

    /// Appends a batch's encoded records (`body`, each row's end offset in
    /// `ends`) to the call being filled, closing calls as they reach the
    /// size the budget allows: a batch larger than that is split between
    /// calls at record boundaries (every call gets at least one record).
    /// Returns the calls closed, in order, for [`BulkWriter::send`].
    fn append(
        &self,
        state: &mut State,
        kind: Kind,
        name: &str,
        header: &[u8],
        body: &[u8],
        ends: &[usize],
    ) -> Vec<(u64, Call)> {
        let mut closed = Vec::new();
        let mut row = 0;
        while row < ends.len() {
            let edges = kind == Kind::Edges || state.call.edges > 0;
            let rate = self.sent().rate[usize::from(edges)];
            let target = call_bytes(self.budget_ms, rate);
            let base = if row == 0 { 0 } else { ends[row - 1] };
            let room = target.saturating_sub(state.call.bytes() + header.len());
            // The rows from `row` whose records fit in the room.
            let mut to = row + ends[row..].partition_point(|&e| e - base <= room);
            if to == row {
                if !state.call.is_empty() {
                    closed.extend(Self::close(state, self.sync_edges));
                    continue;
                }
                to = row + 1;
            }
            let bytes = ends[to - 1] - base;
            let n = (to - row) as u64;
            let tokens = match kind {
                Kind::Nodes => &mut state.call.node_tokens,
                Kind::Edges => &mut state.call.edge_tokens,
            };
            let new_token = tokens.last().is_none_or(|(h, _)| h.as_slice() != header);
            Call::token(tokens, header.to_vec()).extend_from_slice(&body[base..ends[to - 1]]);
            state.call.bytes += bytes + if new_token { header.len() } else { 0 };
            match kind {
                Kind::Nodes => {
                    state.call.nodes += n;
                    state.next_node += n;
                }
                Kind::Edges => {
                    state.call.edges += n;
                    *state.unsynced.entry(name.to_owned()).or_default() += n;
                }
            }
            row = to;
            if state.call.bytes() >= target {
                closed.extend(Self::close(state, self.sync_edges));
            }
        }
        closed
    }
}

fn clone_err(e: &GraphError) -> GraphError {
    match e {
        GraphError::Transient(m) => GraphError::Transient(m.clone()),
        GraphError::Permanent(m) => GraphError::Permanent(m.clone()),
        GraphError::Fenced(m) => GraphError::Fenced(m.clone()),
    }
}

/// Rows of `rows` encoded one after another into `out`, stopping at the
/// first that cannot be; `ends` gets the end offset of each row's record
/// (a batch is split between calls at record boundaries).
fn encode_rows(
    out: &mut Vec<u8>,
    ends: &mut Vec<usize>,
    rows: &[usize],
    mut f: impl FnMut(&mut Vec<u8>, usize, usize) -> Result<(), Unencodable>,
) -> Result<(), Unencodable> {
    ends.reserve(rows.len());
    for (i, &row) in rows.iter().enumerate() {
        f(out, i, row)?;
        ends.push(out.len());
    }
    Ok(())
}

/// What a batch's records are appended as.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nodes,
    Edges,
}

#[async_trait]
impl GraphWriter for BulkWriter<'_> {
    async fn create_index(&self, db: &str, label: &str, property: &str) -> Result<(), GraphError> {
        self.inner.create_index(db, label, property).await
    }

    async fn write_nodes(&self, db: &str, w: &NodeWrite<'_>) -> Result<Vec<NodeRef>, GraphError> {
        let mut state = self.state.lock().await;
        self.start(db, &mut state).await?;
        self.failed()?;
        if w.rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut body = Vec::new();
        let mut ends = Vec::new();
        let fits =
            w.props.len() <= MAX_BULK_PROPERTIES && w.props.iter().all(|p| column_fits(p.values));
        let encoded = if fits {
            encode_rows(&mut body, &mut ends, w.rows, |out, _, row| {
                encode_node(out, w.props, row)
            })
        } else {
            Err(Unencodable)
        };
        if encoded.is_err() {
            // Through Cypher, after everything before it.
            self.drain(db, &mut state).await?;
            let ids = self.inner.write_nodes(db, w).await?;
            let first = state.next_node;
            for (i, id) in ids.iter().enumerate() {
                if u64::try_from(*id).ok() != Some(first + i as u64) {
                    let e = GraphError::Permanent(format!(
                        "FalkorDB gave node id {id} where the bulk load expected {}; the graph is not new",
                        first + i as u64
                    ));
                    self.fail(&e);
                    return Err(e);
                }
            }
            state.next_node = first + ids.len() as u64;
            return Ok(ids);
        }
        let names: Vec<&str> = w.props.iter().map(|p| p.name).collect();
        let labels = w.labels.join(":");
        let header = token_header(&labels, &names);
        let n = w.rows.len() as u64;
        let first = state.next_node;
        let closed = self.append(&mut state, Kind::Nodes, &labels, &header, &body, &ends);
        drop(state);
        for (seq, call) in closed {
            self.send(db, seq, call).await?;
        }
        Ok((first..first + n).map(|p| p as NodeRef).collect())
    }

    async fn write_relationships(&self, db: &str, w: &RelWrite<'_>) -> Result<u64, GraphError> {
        let mut state = self.state.lock().await;
        self.start(db, &mut state).await?;
        self.failed()?;
        if w.rows.is_empty() {
            return Ok(0);
        }
        let mut body = Vec::new();
        let mut ends = Vec::new();
        let ends_ok = w.ends.len() == w.rows.len()
            && w.ends
                .iter()
                .flatten()
                .all(|&e| u64::try_from(e).is_ok_and(|e| e < state.next_node));
        if !ends_ok {
            return Err(GraphError::Permanent(format!(
                "a relationship of type `{}` names a node the bulk load has not created",
                w.rel_type
            )));
        }
        let fits =
            w.props.len() <= MAX_BULK_PROPERTIES && w.props.iter().all(|p| column_fits(p.values));
        let encoded = if fits {
            encode_rows(&mut body, &mut ends, w.rows, |out, i, row| {
                let [a, b] = w.ends[i];
                encode_edge(out, a as u64, b as u64, w.props, row)
            })
        } else {
            Err(Unencodable)
        };
        if encoded.is_err() {
            self.drain(db, &mut state).await?;
            return self.inner.write_relationships(db, w).await;
        }
        let names: Vec<&str> = w.props.iter().map(|p| p.name).collect();
        let header = token_header(w.rel_type, &names);
        let closed = self.append(&mut state, Kind::Edges, w.rel_type, &header, &body, &ends);
        drop(state);
        for (seq, call) in closed {
            self.send(db, seq, call).await?;
        }
        Ok(w.rows.len() as u64)
    }

    async fn counts(&self, db: &str) -> Result<Counts, GraphError> {
        self.finish(db).await?;
        self.inner.counts(db).await
    }

    fn lacks(&self, ty: PropType) -> Option<String> {
        self.inner.lacks(ty)
    }

    fn limits(&self) -> StoreLimits {
        self.inner.limits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::values::Cell;
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn values_encode_as_the_server_reads_them() {
        let list = Cell::List(vec![Cell::Int(1), Cell::Int(2)]);
        let empty = Cell::List(vec![]);
        let table: Vec<(Value<'_>, Vec<u8>)> = vec![
            (Value::Null, vec![0]),
            (Value::Bool(true), vec![1, 1]),
            (Value::Bool(false), vec![1, 0]),
            (
                Value::Float(1.5),
                [vec![2], 1.5f64.to_le_bytes().to_vec()].concat(),
            ),
            (Value::Str("ab"), vec![3, b'a', b'b', 0]),
            (Value::Str(""), vec![3, 0]),
            (
                Value::Int(-2),
                [vec![4], (-2i64).to_le_bytes().to_vec()].concat(),
            ),
            (
                Value::Cell(&list),
                [
                    vec![5],
                    2i64.to_le_bytes().to_vec(),
                    vec![4],
                    1i64.to_le_bytes().to_vec(),
                    vec![4],
                    2i64.to_le_bytes().to_vec(),
                ]
                .concat(),
            ),
            (
                Value::Cell(&empty),
                [vec![5], 0i64.to_le_bytes().to_vec()].concat(),
            ),
        ];
        for (v, want) in table {
            let mut out = Vec::new();
            encode_value(&mut out, v).unwrap();
            assert_eq!(out, want, "{v:?}");
        }
    }

    #[test]
    fn what_the_format_cannot_carry_is_refused() {
        let date = Cell::Date(chrono::NaiveDate::from_ymd_opt(2020, 1, 2).unwrap());
        let nested = Cell::List(vec![date.clone()]);
        for v in [
            Value::Str("a\0b"),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Cell(&date),
            Value::Cell(&nested),
        ] {
            assert_eq!(encode_value(&mut Vec::new(), v), Err(Unencodable), "{v:?}");
        }
    }

    #[test]
    fn a_token_header_names_labels_and_properties() {
        assert_eq!(
            token_header("Person:Employee", &["id", "x"]),
            [
                b"Person:Employee\0".to_vec(),
                2u32.to_le_bytes().to_vec(),
                b"id\0x\0".to_vec()
            ]
            .concat()
        );
        assert_eq!(
            token_header("KNOWS", &[]),
            [b"KNOWS\0".to_vec(), 0u32.to_le_bytes().to_vec()].concat()
        );
    }

    #[test]
    fn an_edge_record_is_two_positions_then_values() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(7), None]));
        let values = Values::from_array(&ints, None).unwrap();
        let props = [Prop {
            name: "w",
            values: &values,
        }];
        let mut out = Vec::new();
        encode_edge(&mut out, 3, 4, &props, 1).unwrap();
        assert_eq!(
            out,
            [
                3u64.to_le_bytes().to_vec(),
                4u64.to_le_bytes().to_vec(),
                vec![0]
            ]
            .concat()
        );
        let mut out = Vec::new();
        encode_node(&mut out, &props, 0).unwrap();
        assert_eq!(out, [vec![4], 7i64.to_le_bytes().to_vec()].concat());
    }

    #[test]
    fn tokens_of_one_header_are_joined_in_order() {
        let mut call = Call::default();
        Call::token(&mut call.node_tokens, token_header("A", &[])).push(1);
        Call::token(&mut call.node_tokens, token_header("A", &[])).push(2);
        Call::token(&mut call.node_tokens, token_header("B", &[])).push(3);
        Call::token(&mut call.node_tokens, token_header("A", &[])).push(4);
        call.nodes = 4;
        let args = call.args();
        assert_eq!(
            &args[..4],
            &[b"4".to_vec(), b"0".to_vec(), b"3".to_vec(), b"0".to_vec()]
        );
        let bodies: Vec<&[u8]> = args[4..]
            .iter()
            .map(|t| &t[t.len() - t.len().min(2)..])
            .collect();
        assert_eq!(args.len(), 7, "A, B, A: positions follow token order");
        assert_eq!(bodies[0], &[1, 2]);
    }

    #[test]
    fn string_columns_fit_and_date_columns_do_not() {
        let s: ArrayRef = Arc::new(StringArray::from(vec!["2020-01-02"]));
        assert!(column_fits(&Values::from_array(&s, None).unwrap()));
        assert!(column_fits(
            &Values::from_array(&s, Some(PropType::String)).unwrap()
        ));
        assert!(!column_fits(
            &Values::from_array(&s, Some(PropType::Date)).unwrap()
        ));
    }

    #[test]
    fn call_size_follows_the_stall_budget() {
        // (budget ms, measured bytes/ms, expected bytes)
        let table: [(u64, Option<f64>, usize); 9] = [
            (50, None, 600_000),
            (5, None, MIN_CALL_BYTES),
            (0, None, MAX_CALL_BYTES),
            (0, Some(10.0), MAX_CALL_BYTES),
            (50, Some(40_000.0), 1_200_000),
            (100, Some(40_000.0), 2_400_000),
            (200, Some(40_000.0), 4_800_000),
            (50, Some(1.0), MIN_CALL_BYTES),
            (10_000, Some(1e9), MAX_CALL_BYTES),
        ];
        for (budget, rate, want) in table {
            assert_eq!(call_bytes(budget, rate), want, "{budget} ms at {rate:?}");
        }
        assert_eq!(call_bytes(50, Some(f64::NAN)), 600_000);
    }

    #[test]
    fn a_call_past_the_reserved_room_reserves_half_again() {
        // 70 000 nodes sent before, 30 000 in this call.
        let mut state = State {
            next_node: 100_000,
            ..State::default()
        };
        state.call.nodes = 30_000;
        Call::token(
            &mut state.call.node_tokens,
            token_header("Person:Employee", &[]),
        )
        .push(1);
        let (_, call) = BulkWriter::close(&mut state, SYNC_EDGES).unwrap();
        assert_eq!(call.reserve, 150_000 - 70_000);
        assert_eq!(state.reserved, 150_000);
        assert_eq!(call.pre_sync, vec![SyncTarget::NodeLabels]);
        state.next_node = 130_000;
        state.call.nodes = 30_000;
        let (_, call) = BulkWriter::close(&mut state, SYNC_EDGES).unwrap();
        assert_eq!(call.reserve, 0, "within the room reserved");
        state.next_node = 160_000;
        state.call.nodes = 30_000;
        let (_, call) = BulkWriter::close(&mut state, SYNC_EDGES).unwrap();
        assert_eq!(call.reserve, 240_000 - 130_000);
        // The matrices that exist are resized by queries, not by the call.
        assert_eq!(
            call.pre_sync,
            vec![
                SyncTarget::NodeLabels,
                SyncTarget::Label("Employee".into()),
                SyncTarget::Label("Person".into())
            ]
        );
        // Small graphs: FalkorDB's own capacity step is enough.
        let mut small = State {
            next_node: 1000,
            ..State::default()
        };
        small.call.nodes = 1000;
        assert_eq!(
            BulkWriter::close(&mut small, SYNC_EDGES).unwrap().1.reserve,
            0
        );
    }

    #[test]
    fn a_type_is_synchronised_after_the_call_that_reaches_the_threshold() {
        let mut state = State::default();
        state.call.edges = 10;
        state.unsynced.insert("KNOWS".into(), SYNC_EDGES - 1);
        state.unsynced.insert("WORKS_AT".into(), SYNC_EDGES);
        let (_, call) = BulkWriter::close(&mut state, SYNC_EDGES).unwrap();
        assert_eq!(call.sync, vec![SyncTarget::RelType("WORKS_AT".into())]);
        assert_eq!(state.unsynced["WORKS_AT"], 0);
        assert_eq!(state.unsynced["KNOWS"], SYNC_EDGES - 1);
    }

    /// A writer that is never called: [`BulkWriter::append`] needs none.
    struct Unused;

    #[async_trait]
    impl GraphWriter for Unused {
        async fn create_index(&self, _: &str, _: &str, _: &str) -> Result<(), GraphError> {
            unreachable!()
        }
        async fn write_nodes(
            &self,
            _: &str,
            _: &NodeWrite<'_>,
        ) -> Result<Vec<NodeRef>, GraphError> {
            unreachable!()
        }
        async fn write_relationships(&self, _: &str, _: &RelWrite<'_>) -> Result<u64, GraphError> {
            unreachable!()
        }
        async fn counts(&self, _: &str) -> Result<Counts, GraphError> {
            unreachable!()
        }
    }

    #[test]
    fn a_batch_larger_than_a_call_is_split_at_record_boundaries() {
        let writer = BulkWriter::new(&Unused, 1);
        let mut state = State::default();
        // 10 000 nodes of one LONG property: 9 bytes a record, 90 000 bytes,
        // more than one call of MIN_CALL_BYTES.
        let mut body = Vec::new();
        let mut ends = Vec::new();
        for i in 0..10_000i64 {
            encode_value(&mut body, Value::Int(i)).unwrap();
            ends.push(body.len());
        }
        let header = token_header("N", &["v"]);
        let closed = writer.append(&mut state, Kind::Nodes, "N", &header, &body, &ends);
        assert_eq!(closed.len(), 1);
        let (seq, call) = &closed[0];
        assert_eq!(*seq, 0);
        assert!(call.bytes() <= MIN_CALL_BYTES, "{}", call.bytes());
        assert!(call.bytes() + 9 > MIN_CALL_BYTES, "{}", call.bytes());
        assert_eq!(call.nodes + state.call.nodes, 10_000);
        assert_eq!(state.next_node, 10_000);
        // The records of both calls, in order, are the batch.
        let args = call.args();
        let first = &args[4][header.len()..];
        let rest = state.call.args();
        assert_eq!([first, &rest[4][header.len()..]].concat(), body);
        assert_eq!(first.len() % 9, 0);
    }

    #[test]
    fn a_slow_call_lowers_the_rate_at_once_and_a_fast_one_by_half() {
        let ms = Duration::from_millis;
        assert_eq!(next_rate(None, 1000, ms(10)), Some(100.0));
        assert_eq!(next_rate(Some(100.0), 500, ms(10)), Some(50.0));
        assert_eq!(next_rate(Some(100.0), 3000, ms(10)), Some(200.0));
        assert_eq!(next_rate(Some(100.0), 0, ms(10)), Some(100.0));
        assert_eq!(next_rate(Some(100.0), 10, Duration::ZERO), Some(100.0));
    }
}
