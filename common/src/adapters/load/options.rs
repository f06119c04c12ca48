//! What a load is told (`LoadOptions`, the duplicate and dangling policies) and
//! what it reports (`LoadReport`, `LoadError`).

use super::*;

/// Retries of one write batch after a transient error, before the load fails.
pub const BATCH_RETRIES: u32 = 3;

/// Why a load failed.
#[allow(missing_docs)] // each variant is described by its #[error] text
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
    /// Worth retrying: the store was unavailable, not the snapshot wrong.
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
    /// Nodes created.
    pub nodes: u64,
    /// Relationships created.
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
    /// Where the loader's time went.
    pub times: LoadTimes,
}

/// Where a load's time went on the client, in milliseconds summed over the
/// load. The parts overlap one another and the server's work (batches are
/// converted and encoded while earlier ones are written), so they do not
/// add up to the load's duration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadTimes {
    /// The writer waiting for the file reader (CSV parsing, Parquet
    /// decoding, on its own thread) with no write in flight.
    pub read_stall_ms: u64,
    /// Arrow columns to property values and id keys.
    pub convert_ms: u64,
    /// Id map claims, lookups and records.
    pub id_map_ms: u64,
    /// Bulk: binary encoding of the records and cutting them into calls.
    pub encode_ms: u64,
    /// Bulk: `GRAPH.BULK` calls, request to reply.
    pub call_ms: u64,
    /// Bulk: matrix synchronisations (read queries off the main thread).
    pub sync_ms: u64,
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
    /// What to do with relationships whose endpoint matches no node.
    pub dangling: DanglingPolicy,
    /// What to do with a node id its ID space already has.
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

    /// These options with `method`.
    pub fn with_method(mut self, method: LoadMethod) -> Self {
        self.method = method;
        self
    }

    /// These options with the GRAPH.BULK stall budget `ms`.
    pub fn with_bulk_max_stall_ms(mut self, ms: u64) -> Self {
        self.bulk_max_stall_ms = ms;
        self
    }

    /// These options with `concurrency` write statements in flight.
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// These options with the dangling-relationship policy `dangling`.
    pub fn with_dangling(mut self, dangling: DanglingPolicy) -> Self {
        self.dangling = dangling;
        self
    }

    /// These options with the given duplicate-node policy.
    pub fn with_duplicates(mut self, duplicates: DuplicatePolicy) -> Self {
        self.duplicates = duplicates;
        self
    }

    pub(super) fn in_flight(&self) -> usize {
        if self.batch_pause.is_zero() {
            self.concurrency.max(1)
        } else {
            1
        }
    }
}
