//! How big a `GRAPH.BULK` call may be (the stall budget), and the
//! thresholds of the node reservations and type synchronisations.

use std::time::Duration;

/// The smallest and largest call the sizing picks.
///
/// Without [`crate::adapters::graph::GraphWriter::bulk_reserve`] and [`crate::adapters::graph::GraphWriter::bulk_sync`],
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

/// A call is sent at the latest this long after its first record, whatever
/// its size: a snapshot read slowly (`batch_pause_ms`, a slow disk) reaches
/// the store, and the load's progress (counted in calls answered) moves, as
/// it is read, not all at the end. Calls of a load read at full speed fill
/// to their size in milliseconds, so this never cuts them.
pub const MAX_CALL_AGE: Duration = Duration::from_secs(1);

/// Node capacity is reserved ahead of the build in steps of this factor:
/// a call whose nodes go past the room reserved so far is preceded by
/// [`crate::adapters::graph::GraphWriter::bulk_reserve`] for `NODE_GROWTH ×` the nodes after it.
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
/// A relationship type is synchronised ([`crate::adapters::graph::GraphWriter::bulk_sync`]) after
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
