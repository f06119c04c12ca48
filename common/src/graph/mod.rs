//! The graph-store interface: everything the worker needs from a graph
//! database, implemented once for FalkorDB (Redis protocol) and once for Neo4j
//! (Bolt, through neo4rs). Names reach statement text only after
//! [`crate::snapshot::header::check_name`] and inside backticks; values only as
//! parameters.

pub mod cypher;
pub mod falkordb;
pub mod neo4j;
pub mod values;

use async_trait::async_trait;
use thiserror::Error;

pub use values::{Value, Values};

use crate::config::{Config, GraphKind};
use crate::targets::GraphTarget;

#[derive(Debug, Error)]
pub enum GraphError {
    /// Connection loss, timeouts, a server that is busy or restarting: the same
    /// work may succeed later.
    #[error("graph database unavailable: {0}")]
    Transient(String),
    /// The statement or the data is wrong; retrying cannot help.
    #[error("graph database refused the work: {0}")]
    Permanent(String),
}

impl GraphError {
    pub fn is_transient(&self) -> bool {
        matches!(self, GraphError::Transient(_))
    }
}

/// Resource figures for the health gate; `None` where the store has no such figure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    pub databases: usize,
    /// The server's own limit on databases (Neo4j's `dbms.max_databases`).
    pub max_databases: Option<usize>,
    pub memory_used_percent: Option<f64>,
    pub pagecache_used_percent: Option<f64>,
}

/// Node and relationship counts of one database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub nodes: u64,
    pub relationships: u64,
}

/// A property column to write: its (checked) name and values.
#[derive(Debug, Clone, Copy)]
pub struct Prop<'a> {
    pub name: &'a str,
    pub values: &'a Values,
}

/// Creates one node per row in `rows`, with `labels` and `props`.
#[derive(Debug, Clone, Copy)]
pub struct NodeWrite<'a> {
    pub labels: &'a [&'a str],
    pub props: &'a [Prop<'a>],
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
    pub rel_type: &'a str,
    pub ends: &'a [[NodeRef; 2]],
    pub props: &'a [Prop<'a>],
    pub rows: &'a [usize],
}

/// Limits of a store that a load must not cross: checked before anything is
/// written, refused by name ([`crate::load::LoadError::StoreLimit`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreLimits {
    /// Distinct property names one database can hold (FalkorDB: attribute
    /// ids are 16-bit, two values reserved: 65534).
    pub property_keys: Option<usize>,
}

/// The load path: what [`crate::load::load_snapshot`] needs to fill one
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
    async fn write_relationships(&self, db: &str, write: &RelWrite<'_>) -> Result<u64, GraphError>;
    async fn counts(&self, db: &str) -> Result<Counts, GraphError>;
    /// The store's limits a snapshot must fit in.
    fn limits(&self) -> StoreLimits {
        StoreLimits::default()
    }
}

/// A graph server snapswitch manages: the load path plus the admin path
/// (databases, aliases, health).
#[async_trait]
pub trait GraphStore: GraphWriter {
    fn kind(&self) -> GraphKind;
    /// Reachable and answering.
    async fn ping(&self) -> Result<(), GraphError>;
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
}

/// Connects the adapter of the config's top-level graph keys (the `default`
/// target).
pub async fn connect(config: &Config) -> Result<Box<dyn GraphStore>, GraphError> {
    connect_target(&GraphTarget::top_level(config), pool_size(config)).await
}

/// Connections a process keeps to one graph database: enough for `workers`
/// loads with `load_concurrency` batches in flight each, plus two for admin
/// statements and probes (at most 64). The Bolt pool's size, and FalkorDB's
/// write connections.
pub fn pool_size(config: &Config) -> usize {
    (config.load_concurrency * usize::from(config.workers) + 2).min(64)
}

/// Connects one graph target; `pool` as [`pool_size`].
pub async fn connect_target(
    target: &GraphTarget,
    pool: usize,
) -> Result<Box<dyn GraphStore>, GraphError> {
    let ca = target.ca_file.as_deref();
    Ok(match target.kind {
        GraphKind::Falkordb => {
            Box::new(falkordb::FalkorStore::connect_with(&target.url, ca, pool).await?)
        }
        GraphKind::Neo4j => Box::new(
            neo4j::Neo4jStore::connect(&target.url, &target.user, &target.password, pool, ca)
                .await?,
        ),
    })
}

/// `name` in backticks. Callers pass only names that passed
/// [`crate::snapshot::header::check_name`] or [`crate::ident`] validation, so a
/// backtick can never occur; it is still doubled (Cypher's escape) as a second
/// line of defence.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}
