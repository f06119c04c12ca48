//! The graph-store interface: everything the worker needs from a graph
//! database, implemented once for FalkorDB (Redis protocol) and once for Neo4j
//! (Bolt, through neo4rs). Names reach statement text only after
//! [`crate::adapters::snapshot::header::check_name`] and inside backticks; values only as
//! parameters.

pub mod cypher;
pub mod falkordb;
#[allow(missing_docs)] // GRAPH.BULK's writer: its public items are still to document
pub mod falkordb_bulk;
pub mod marks;
pub mod neo4j;
pub mod target;
pub mod temporal;
pub mod values;

use async_trait::async_trait;
use thiserror::Error;

pub use values::{Value, Values};

pub use crate::adapters::snapshot::header::quote;
pub use target::{GraphTarget, HealthThresholds, TargetError, Targets};

use serde::{Deserialize, Serialize};
use std::fmt;

/// Which graph database adapter a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphKind {
    /// FalkorDB over its Redis protocol (`redis://host:port`).
    Falkordb,
    /// Neo4j Enterprise over Bolt (`neo4j://`, `bolt://`), through neo4rs.
    Neo4j,
}

impl fmt::Display for GraphKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GraphKind::Falkordb => "falkordb",
            GraphKind::Neo4j => "neo4j",
        })
    }
}

/// How a load writes (`load_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMethod {
    /// FalkorDB's `GRAPH.BULK` ([`crate::adapters::graph::falkordb_bulk`]); on a store
    /// without it, the same as `Cypher`.
    Bulk,
    /// Write statements (`UNWIND … CREATE`), `batch_size` rows each.
    Cypher,
}

impl LoadMethod {
    /// `set`, else the store's fastest: `bulk` on FalkorDB (`GRAPH.BULK`,
    /// calls sized to `bulk_max_stall_ms`), `cypher` on a Bolt store, which
    /// has no bulk path (docs/performance.md, "Bulk loading").
    pub fn resolve(set: Option<LoadMethod>, kind: GraphKind) -> LoadMethod {
        set.unwrap_or(match kind {
            GraphKind::Falkordb => LoadMethod::Bulk,
            GraphKind::Neo4j => LoadMethod::Cypher,
        })
    }
}

impl std::fmt::Display for LoadMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LoadMethod::Bulk => "bulk",
            LoadMethod::Cypher => "cypher",
        })
    }
}

/// Why a graph-store operation failed, by what the caller should do.
#[allow(missing_docs)] // each variant is described by its #[error] text
#[derive(Debug, Error)]
pub enum GraphError {
    /// Connection loss, timeouts, a server that is busy or restarting: the same
    /// work may succeed later.
    #[error("graph database unavailable: {0}")]
    Transient(String),
    /// The statement or the data is wrong; retrying cannot help.
    #[error("graph database refused the work: {0}")]
    Permanent(String),
    /// The store refused a fenced effect: a newer lock holder (a higher
    /// fencing token) has been seen for the customer. The caller has lost
    /// its lock and must abandon its work.
    #[error("fenced out: {0}")]
    Fenced(String),
}

impl GraphError {
    /// Worth retrying later.
    pub fn is_transient(&self) -> bool {
        matches!(self, GraphError::Transient(_))
    }
    /// The caller lost its lock.
    pub fn is_fenced(&self) -> bool {
        matches!(self, GraphError::Fenced(_))
    }
}

/// What a fenced admin effect carries: the customer whose lock the caller
/// holds and that acquisition's fencing token. The store refuses the effect
/// when it has seen a higher token for the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The customer whose lock the caller holds.
    pub customer: String,
    /// That lock's fencing token.
    pub token: u64,
}

/// Where a database is in its lifecycle: loading → verified → live →
/// retired. "Live" is not a mark of its own: it is the alias target, and only
/// a verified database can become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbState {
    /// Created by a load that has not (yet) passed its count check.
    Loading,
    /// Fully loaded and verified under a valid fence: may become live.
    Verified,
    /// Loaded and verified, but a guard or a check said no: kept, never
    /// dropped while held, not live until an operator approves it
    /// (`producer approve`, which makes it verified) or a newer snapshot
    /// supersedes it.
    Held,
    /// Taken out of service by `producer rollback`: never live again.
    Retired,
    /// No mark: made by hand, by another tool, or before marks existed.
    /// Never becomes live; cleanup drops it like any unverified database.
    Unmarked,
    /// No mark where the store's marks live in the coordination Redis (Neo4j):
    /// made before marks existed, or the mark was lost with Redis's data.
    /// Kept by cleanup (it may be complete), but never becomes live: after a
    /// Redis data loss a partial database must not pass for a verified one.
    NotTracked,
}

impl DbState {
    /// May a database in this state become live (by the pipeline, a
    /// rollback or a repair)? Only a verified one.
    pub fn may_go_live(self) -> bool {
        matches!(self, DbState::Verified)
    }

    /// The state as the mark stores it and messages show it.
    pub fn as_str(self) -> &'static str {
        match self {
            DbState::Loading => "loading",
            DbState::Verified => "verified",
            DbState::Held => "held",
            DbState::Retired => "retired",
            DbState::Unmarked => "unmarked",
            DbState::NotTracked => "not tracked",
        }
    }
}

/// How a fenced switch may move the alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchMode {
    /// The pipeline and repairs: only onto a newer snapshot than the current
    /// target.
    Forward,
    /// `producer rollback`: onto an older verified database; the database it
    /// leaves is retired.
    Rollback,
}

/// Resource figures for the health gate; `None` where the store has no such figure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// Databases on the server.
    pub databases: usize,
    /// The server's own limit on databases (Neo4j's `dbms.max_databases`).
    pub max_databases: Option<usize>,
    /// Heap (Neo4j) or memory (FalkorDB) in use, in percent.
    pub memory_used_percent: Option<f64>,
    /// Page cache in use, in percent (Neo4j).
    pub pagecache_used_percent: Option<f64>,
}

/// Node and relationship counts of one database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Nodes.
    pub nodes: u64,
    /// Relationships.
    pub relationships: u64,
}

/// Counts per label and per relationship type of one database: what the
/// guards compare and what "what changed" shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Census {
    /// Nodes.
    pub nodes: u64,
    /// Relationships.
    pub relationships: u64,
    /// Nodes per label.
    pub labels: std::collections::BTreeMap<String, u64>,
    /// Relationships per type.
    pub types: std::collections::BTreeMap<String, u64>,
}

/// The one value a check query returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// No value.
    Null,
    /// Anything else, as text (a string, a list, a node), or a reply that
    /// was not one row of one column (`"2 rows"`).
    Other(String),
}

impl Scalar {
    /// A JSON value (the Bolt path reads values as JSON) as a scalar.
    pub fn from_json(v: serde_json::Value) -> Scalar {
        match v {
            serde_json::Value::Bool(b) => Scalar::Bool(b),
            serde_json::Value::Null => Scalar::Null,
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Scalar::Int(i),
                None => n
                    .as_f64()
                    .map_or(Scalar::Other(n.to_string()), Scalar::Float),
            },
            other => Scalar::Other(other.to_string()),
        }
    }
}

/// A property column to write: its (checked) name and values.
#[derive(Debug, Clone, Copy)]
pub struct Prop<'a> {
    /// The property's name.
    pub name: &'a str,
    /// Its values, one per row of the batch.
    pub values: &'a Values,
}

/// Creates one node per row in `rows`, with `labels` and `props`.
#[derive(Debug, Clone, Copy)]
pub struct NodeWrite<'a> {
    /// The labels every node gets.
    pub labels: &'a [&'a str],
    /// The property columns.
    pub props: &'a [Prop<'a>],
    /// The rows of the batch to write.
    pub rows: &'a [usize],
}

/// A node's internal id in the store (`id(n)`), as returned by
/// [`GraphWriter::write_nodes`]; relationships find their endpoints by it.
pub type NodeRef = i64;

/// Creates one relationship of type `rel_type` per row in `rows`, from the
/// node `ends[i][0]` to the node `ends[i][1]` (internal ids, resolved by the
/// loader; `ends` is aligned with `rows`). `write_relationships` returns how
/// many were created, which must be all of them.
#[derive(Debug, Clone, Copy)]
pub struct RelWrite<'a> {
    /// The relationships' type.
    pub rel_type: &'a str,
    /// Start and end node of each row, aligned with `rows`.
    pub ends: &'a [[NodeRef; 2]],
    /// The property columns.
    pub props: &'a [Prop<'a>],
    /// The rows of the batch to write.
    pub rows: &'a [usize],
}

/// Limits of a store that a load must not cross: checked before anything is
/// written, refused by name ([`crate::adapters::load::LoadError::StoreLimit`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreLimits {
    /// Distinct property names one database can hold (FalkorDB: attribute
    /// ids are 16-bit, two values reserved: 65534).
    pub property_keys: Option<usize>,
}

/// The load path: what [`crate::adapters::load::load_snapshot`] needs to fill one
/// database. Implemented by every store, and on its own by
/// [`neo4j::BoltWriter`] (the Bolt load path, also run against ArcadeDB).
#[async_trait]
pub trait GraphWriter: Send + Sync {
    /// An index on `(label, property)`; usable when this returns. (The loader
    /// creates none: neo4j-admin import creates none either.)
    async fn create_index(&self, db: &str, label: &str, property: &str) -> Result<(), GraphError>;
    /// Creates the nodes and returns their internal ids, one per row of
    /// `write.rows`, in that order.
    async fn write_nodes(
        &self,
        db: &str,
        write: &NodeWrite<'_>,
    ) -> Result<Vec<NodeRef>, GraphError>;
    /// Creates the relationships and returns how many it created.
    async fn write_relationships(&self, db: &str, write: &RelWrite<'_>) -> Result<u64, GraphError>;
    /// The database's node and relationship counts.
    async fn counts(&self, db: &str) -> Result<Counts, GraphError>;

    /// Why this store cannot keep any value of the declared type `ty`, if it
    /// cannot: the loader checks every declared column before it writes
    /// anything. Values of a type the store keeps only in part are checked
    /// one by one when written.
    fn lacks(&self, _ty: crate::adapters::snapshot::PropType) -> Option<String> {
        None
    }

    /// Whether [`GraphWriter::bulk_call`] works: FalkorDB's `GRAPH.BULK`
    /// ([`falkordb_bulk`]). Wrappers forward it.
    fn can_bulk(&self) -> bool {
        false
    }
    /// Sends one `GRAPH.BULK` call to `db` (the arguments after the key,
    /// [`falkordb_bulk::Call::args`]). Never retried: see [`falkordb_bulk`].
    async fn bulk_call(&self, db: &str, _args: Vec<Vec<u8>>) -> Result<(), GraphError> {
        Err(GraphError::Permanent(format!(
            "the graph store of `{db}` has no bulk insert; use load_method = \"cypher\""
        )))
    }
    /// Room for `nodes` more nodes in `db` (a `GRAPH.BULK` call without
    /// tokens), so the calls after it do not resize every matrix. A hint:
    /// the default does nothing. See [`falkordb_bulk`].
    async fn bulk_reserve(&self, _db: &str, _nodes: u64) -> Result<(), GraphError> {
        Ok(())
    }
    /// Brings one of `db`'s matrices to the graph's size and applies its
    /// pending changes, off the server's main thread (a read query). A
    /// hint: the default does nothing. See [`falkordb_bulk`].
    async fn bulk_sync(
        &self,
        _db: &str,
        _target: &falkordb_bulk::SyncTarget,
    ) -> Result<(), GraphError> {
        Ok(())
    }
    /// The store's limits a snapshot must fit in.
    fn limits(&self) -> StoreLimits {
        StoreLimits::default()
    }
}

/// A graph server snapswitch manages: the load path plus the admin path
/// (databases, aliases, health).
#[async_trait]
pub trait GraphStore: GraphWriter {
    /// Which adapter this is.
    fn kind(&self) -> GraphKind;
    /// Reachable and answering.
    async fn ping(&self) -> Result<(), GraphError>;
    /// The figures the health gate compares with its thresholds.
    async fn health(&self) -> Result<Health, GraphError>;
    /// Every database/graph the server holds (snapswitch's and others).
    async fn list_databases(&self) -> Result<Vec<String>, GraphError>;
    /// The database the alias points to, if the alias exists.
    async fn alias_target(&self, alias: &str) -> Result<Option<String>, GraphError>;
    /// Creates an empty database; an existing one is an error.
    async fn create_database(&self, db: &str) -> Result<(), GraphError>;
    /// Drops a database; a missing one is fine; the live target of an alias
    /// is refused.
    async fn drop_database(&self, db: &str) -> Result<(), GraphError>;
    /// Points `alias` at `db`, atomically for readers of the alias.
    async fn switch_alias(&self, alias: &str, db: &str) -> Result<(), GraphError>;
    /// Removes `alias`; its database stays. A missing alias is fine.
    async fn drop_alias(&self, alias: &str) -> Result<(), GraphError>;

    // The fenced admin path: what the worker, reconciliation and rollback
    // use. The unfenced methods above are for tools and tests.

    /// The highest fencing token the store has seen for `customer` (0 when
    /// none, or when the store keeps no fence).
    async fn fence_seen(&self, customer: &str) -> Result<u64, GraphError>;
    /// Creates an empty database marked `loading` by `fence`.
    async fn create_fenced(&self, db: &str, fence: &Fence) -> Result<(), GraphError>;
    /// Marks a database this fence created as `verified`.
    async fn mark_verified(&self, db: &str, fence: &Fence) -> Result<(), GraphError>;
    /// Marks a database this fence created, loaded and verified as `held`:
    /// complete, but a guard or a check refused it.
    async fn mark_held(&self, db: &str, fence: &Fence) -> Result<(), GraphError>;
    /// A `held` database becomes `verified` (an operator approved it), under
    /// any valid fence of the customer; refused for any other state.
    async fn release_held(&self, db: &str, fence: &Fence) -> Result<(), GraphError>;
    /// Runs `query` read-only on `db` (FalkorDB: `GRAPH.RO_QUERY` with a
    /// server-side timeout; Bolt: a transaction that is rolled back) and
    /// returns its one value. More or fewer than one row of one column is
    /// [`Scalar::Other`] saying so.
    async fn read_scalar(
        &self,
        db: &str,
        query: &str,
        timeout: std::time::Duration,
    ) -> Result<Scalar, GraphError>;
    /// Applies one `schema.cypher` statement to the (empty) database `db`,
    /// usable when this returns; an existing identical index or constraint
    /// is fine.
    async fn apply_schema(
        &self,
        db: &str,
        statement: &crate::adapters::snapshot::schema::SchemaStatement,
    ) -> Result<(), GraphError>;
    /// Node and relationship counts in total, per label and per type (a
    /// query per label and per type).
    async fn census(&self, db: &str) -> Result<Census, GraphError>;
    /// Points `alias` at the verified database `db`, refused when a newer
    /// fence was seen, `db` is not verified, or (in `Forward` mode) the alias
    /// is on a newer snapshot. `Ok(false)` when it already pointed there.
    async fn switch_fenced(
        &self,
        alias: &str,
        db: &str,
        fence: &Fence,
        mode: SwitchMode,
    ) -> Result<bool, GraphError>;
    /// Drops a database and its mark, refused when a newer fence was seen or
    /// `db` is the live target. A missing database is fine.
    async fn drop_fenced(&self, db: &str, fence: &Fence) -> Result<(), GraphError>;
    /// The lifecycle state of `db`.
    async fn database_state(&self, db: &str) -> Result<DbState, GraphError>;
    /// Graph keys or databases named like a customer's alias that the store
    /// does not manage as one: each blocks every switch of that customer.
    /// Returns (name, how to clear it).
    async fn stray_aliases(&self) -> Result<Vec<(String, String)>, GraphError> {
        Ok(Vec::new())
    }
}

/// Connections a process keeps to one graph database: enough for `workers`
/// loads with `load_concurrency` batches in flight each, plus two for admin
/// statements and probes (at most 64). The Bolt pool's size, and FalkorDB's
/// write connections.
pub fn pool_size(load_concurrency: usize, workers: u16) -> usize {
    (load_concurrency * usize::from(workers) + 2).min(64)
}

/// Connects one graph target; `pool` as [`pool_size`]; within
/// [`crate::adapters::state::DEFAULT_CONNECT_TIMEOUT`]. Without lifecycle marks for a
/// store that cannot keep them (see [`connect_target_within`]).
pub async fn connect_target(
    target: &GraphTarget,
    pool: usize,
) -> Result<Box<dyn GraphStore>, GraphError> {
    connect_target_within(
        target,
        pool,
        crate::adapters::state::DEFAULT_CONNECT_TIMEOUT,
        None,
    )
    .await
}

/// Connects one graph target and pings it, all within `timeout` (tried
/// again with a short pause until then). A transient error names the target's
/// URL (password hidden); a permanent refusal (bad URL, Community edition)
/// comes at once. `marks` (in the coordination Redis) serve a store that
/// keeps no lifecycle marks itself (Neo4j); FalkorDB keeps its own.
pub async fn connect_target_within(
    target: &GraphTarget,
    pool: usize,
    timeout: std::time::Duration,
    marks: Option<marks::RedisMarks>,
) -> Result<Box<dyn GraphStore>, GraphError> {
    let ca = target.ca_file.as_deref();
    let url = target.url.redacted();
    let service = match target.kind {
        GraphKind::Falkordb => "FalkorDB",
        GraphKind::Neo4j => "the graph database (Bolt)",
    };
    let attempt = || async {
        let store: Box<dyn GraphStore> = match target.kind {
            GraphKind::Falkordb => {
                Box::new(falkordb::FalkorStore::connect_with(&target.url, ca, pool).await?)
            }
            GraphKind::Neo4j => Box::new(
                neo4j::Neo4jStore::connect(&target.url, &target.user, &target.password, pool, ca)
                    .await?
                    .with_marks(marks.clone()),
            ),
        };
        store.ping().await?;
        Ok::<_, GraphError>(store)
    };
    // Ok(Err(_)): a permanent refusal, which ends the tries at once.
    let tried = crate::adapters::state::within_deadline(service, &url, timeout, || async {
        match attempt().await {
            Ok(store) => Ok(Ok(store)),
            Err(GraphError::Permanent(m)) => Ok(Err(GraphError::Permanent(m))),
            Err(GraphError::Fenced(m)) => Ok(Err(GraphError::Fenced(m))),
            Err(GraphError::Transient(m)) => Err(m),
        }
    })
    .await;
    match tried {
        Ok(result) => result,
        Err(reason) if reason.contains(&url) => Err(GraphError::Transient(format!(
            "graph target {}: {reason}",
            target.name
        ))),
        Err(reason) => Err(GraphError::Transient(format!(
            "cannot connect to {service} at {url} (graph target {}): {reason}",
            target.name
        ))),
    }
}
