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

use super::{Counts, GraphError, GraphWriter, NodeRef, NodeWrite, RelWrite, StoreLimits};
use crate::snapshot::PropType;

mod encode;
mod sizing;
#[cfg(test)]
mod tests;

pub use encode::*;
pub use sizing::*;

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
    /// When the call got its first record ([`MAX_CALL_AGE`]).
    opened: Option<Instant>,
}

impl Call {
    pub fn is_empty(&self) -> bool {
        self.nodes == 0 && self.edges == 0
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The token to append records with `header` to: the last one when it
    /// has the same header, else a new one (its bytes start with the
    /// header: a token is sent as it is).
    fn token<'t>(tokens: &'t mut Vec<(Vec<u8>, Vec<u8>)>, header: &[u8]) -> &'t mut Vec<u8> {
        if tokens.last().is_none_or(|(h, _)| h.as_slice() != header) {
            tokens.push((header.to_vec(), header.to_vec()));
        }
        match tokens.last_mut() {
            Some((_, body)) => body,
            None => unreachable!("a token was just pushed"),
        }
    }

    /// The call's arguments after the key: counts, then tokens.
    pub fn args(&self) -> Vec<Vec<u8>> {
        let mut args = self.counts();
        for (_, token) in self.node_tokens.iter().chain(&self.edge_tokens) {
            args.push(token.clone());
        }
        args
    }

    /// [`Call::args`], moving the tokens out of the call (no copy).
    fn take_args(&mut self) -> Vec<Vec<u8>> {
        let mut args = self.counts();
        let tokens = std::mem::take(&mut self.node_tokens)
            .into_iter()
            .chain(std::mem::take(&mut self.edge_tokens));
        args.extend(tokens.map(|(_, token)| token));
        args
    }

    fn counts(&self) -> Vec<Vec<u8>> {
        vec![
            self.nodes.to_string().into_bytes(),
            self.edges.to_string().into_bytes(),
            self.node_tokens.len().to_string().into_bytes(),
            self.edge_tokens.len().to_string().into_bytes(),
        ]
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
    /// Request to reply, over every call.
    call_time: Duration,
    /// Encoding records and cutting them into calls.
    encode_time: Duration,
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
    /// `GRAPH.BULK` calls, request to reply, summed.
    pub call_time: Duration,
    /// Encoding records and cutting them into calls, summed.
    pub encode_time: Duration,
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
            call_time: sent.call_time,
            encode_time: sent.encode_time,
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
    async fn send(&self, db: &str, seq: u64, mut call: Call) -> Result<(), GraphError> {
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
        let args = call.take_args();
        let started = Instant::now();
        let sent = self.inner.bulk_call(db, args).await;
        let took = started.elapsed();
        if let Err(e) = sent {
            tracing::warn!(%db, error = %e, "GRAPH.BULK call failed; the load fails whole (no per-call retry)");
            self.fail(&e);
            return Err(e);
        }
        {
            let mut s = self.sent();
            s.calls += 1;
            s.call_time += took;
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
    /// size the budget allows (a batch larger than that is split between
    /// calls at record boundaries, every call gets at least one record) or
    /// have been filling for [`MAX_CALL_AGE`].
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
            if state.call.is_empty() {
                state.call.opened = Some(Instant::now());
            }
            let tokens = match kind {
                Kind::Nodes => &mut state.call.node_tokens,
                Kind::Edges => &mut state.call.edge_tokens,
            };
            let new_token = tokens.last().is_none_or(|(h, _)| h.as_slice() != header);
            Call::token(tokens, header).extend_from_slice(&body[base..ends[to - 1]]);
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
            let aged = state
                .call
                .opened
                .is_some_and(|t| t.elapsed() >= MAX_CALL_AGE);
            if state.call.bytes() >= target || aged {
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
        let started = Instant::now();
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
        self.sent().encode_time += started.elapsed();
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
        let started = Instant::now();
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
        self.sent().encode_time += started.elapsed();
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
