//! FalkorDB over its Redis protocol (`GRAPH.QUERY`), through the redis crate.
//!
//! Databases are graph keys. FalkorDB has no aliases, so the alias `<customer>`
//! is the live database's graph key itself, and the string key
//! `snapswitch:alias:<customer>` records which database that is. A switch is
//! one Lua script, atomic like every Redis script:
//!
//! ```text
//! RENAME <customer> <customer>-<old id>     (the old live graph gets its name back)
//! RENAME <customer>-<new id> <customer>     (the new one becomes the alias)
//! SET snapswitch:alias:<customer> <customer>-<new id>
//! ```
//! A reader of `<customer>` sees the old graph or the new one, never a mix and
//! never nothing; no data is copied. The adapter presents the same model as
//! Neo4j: the live database is listed, counted and addressed by its own name
//! (`<customer>-<id>`), and it cannot be dropped while live.
//!
//! `GRAPH.COPY` (a copy instead of a rename) was tried first and dropped:
//! it forks the server, and two concurrent copies wedge FalkorDB 4.16
//! ("Can't fork for module: File exists", then no reply to anything).
//!
//! FalkorDB takes parameters as a `CYPHER name=value` prefix of the query
//! text, so values are written as Cypher literals by [`write_literal`], the one
//! place that must escape correctly.
//!
//! One store, by concern: [`scripts`] (keys and the Lua scripts of the fenced
//! lifecycle), [`literals`] (values as Cypher literals), [`replies`] (reading
//! replies), [`writer`] (the load path, `GraphWriter`), [`store`] (the admin
//! path, `GraphStore`); this file holds the store and its connections.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Value as RedisValue};

use super::cypher::{node_statement_with, relationship_statement_with};
use super::values::{Cell, CellKind};
use super::{
    quote, Census, Counts, DbState, Fence, GraphError, GraphStore, GraphWriter, Health, NodeWrite,
    RelWrite, Scalar, SwitchMode, Value,
};
use crate::adapters::graph::GraphKind;
use crate::adapters::secret::ServiceUrl;
use crate::adapters::snapshot::schema::SchemaStatement;
use crate::adapters::snapshot::PropType;
use crate::contract::ident::{Customer, DatabaseName};

mod literals;
mod replies;
mod scripts;
mod store;
mod writer;

pub use literals::write_literal;
use literals::*;
pub use replies::FALKORDB_MAX_PROPERTY_KEYS;
use replies::*;
use scripts::*;
pub use scripts::{alias_key, fence_key, mark_key, switch_script_hash};

/// Connections for write batches when the caller does not say.
pub const DEFAULT_WRITE_CONNECTIONS: usize = 4;

/// A FalkorDB server: the load path and the admin path, with its marks.
pub struct FalkorStore {
    con: ConnectionManager,
    /// Write batches go round-robin over these: Redis runs one blocking
    /// command per connection at a time, so K batches in flight need K
    /// connections to reach the server's thread pool together.
    writers: Vec<ConnectionManager>,
    next_writer: AtomicUsize,
    /// Opens a connection of its own for each check query: a slow check
    /// (FalkorDB notices its TIMEOUT late) must not hold up the store's
    /// other commands, nor the next check.
    /// (Boxed: the store stays small.)
    client: Box<redis::Client>,
}

async fn graph_query(
    mut con: ConnectionManager,
    graph: &str,
    query: &str,
) -> Result<RedisValue, GraphError> {
    redis::cmd("GRAPH.QUERY")
        .arg(graph)
        .arg(query)
        .query_async(&mut con)
        .await
        .map_err(map_err)
}

impl FalkorStore {
    /// Connects to `url` with the default write connections.
    pub async fn connect(url: &ServiceUrl) -> Result<Self, GraphError> {
        Self::connect_with(url, None, DEFAULT_WRITE_CONNECTIONS).await
    }

    /// [`FalkorStore::connect`] with `rediss://` trusting the CA in `ca`.
    pub async fn connect_tls(
        url: &ServiceUrl,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, GraphError> {
        Self::connect_with(url, ca, DEFAULT_WRITE_CONNECTIONS).await
    }

    /// Connects with `writers` connections for write batches (at least 1).
    pub async fn connect_with_writers(
        url: &ServiceUrl,
        writers: usize,
    ) -> Result<Self, GraphError> {
        Self::connect_with(url, None, writers).await
    }

    /// Connects with `writers` connections for write batches (at least 1),
    /// `rediss://` trusting the CA in `ca`.
    pub async fn connect_with(
        url: &ServiceUrl,
        ca: Option<&std::path::Path>,
        writers: usize,
    ) -> Result<Self, GraphError> {
        let con = Self::open(url, ca).await?;
        let mut pool = Vec::with_capacity(writers.max(1));
        for _ in 0..writers.max(1) {
            pool.push(Self::open(url, ca).await?);
        }
        let client = crate::adapters::tls::redis_client(url, ca)
            .map_err(|e| GraphError::Permanent(format!("FalkorDB URL {}: {e}", url.redacted())))?;
        Ok(FalkorStore {
            con,
            writers: pool,
            next_writer: AtomicUsize::new(0),
            client: Box::new(client),
        })
    }

    async fn open(
        url: &ServiceUrl,
        ca: Option<&std::path::Path>,
    ) -> Result<ConnectionManager, GraphError> {
        let client = crate::adapters::tls::redis_client(url, ca)
            .map_err(|e| GraphError::Permanent(format!("FalkorDB URL {}: {e}", url.redacted())))?;
        // Big UNWIND batches can take a while; a stuck server is caught by the
        // lock renewal and the worker's own timeouts, not by this one.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(600)))
            // Fail fast on the first connect; callers decide how long to retry.
            .set_number_of_retries(2);
        let con = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| {
                GraphError::Transient(format!(
                    "cannot connect to FalkorDB at {}: {e}",
                    url.redacted()
                ))
            })?;
        Ok(con)
    }

    async fn query(&self, graph: &str, query: &str) -> Result<RedisValue, GraphError> {
        graph_query(self.con.clone(), graph, query).await
    }

    /// `loading` (under this fence's token) → `state` (`verified`/`held`).
    async fn mark_loaded(&self, db: &str, fence: &Fence, state: &str) -> Result<(), GraphError> {
        let mut con = self.con.clone();
        let _: i64 = redis::Script::new(&fenced(MARK_VERIFIED))
            .key(fence_key(&fence.customer))
            .key(mark_key(db))
            .key(db)
            .arg(fence.token)
            .arg(db)
            .arg(state)
            .invoke_async(&mut con)
            .await
            .map_err(map_fenced)?;
        Ok(())
    }

    /// A write statement, on the next write connection.
    async fn write_query(&self, graph: &str, query: &str) -> Result<RedisValue, GraphError> {
        let i = self.next_writer.fetch_add(1, AtomicOrdering::Relaxed) % self.writers.len();
        graph_query(self.writers[i].clone(), graph, query).await
    }

    async fn exists(&self, key: &str) -> Result<bool, GraphError> {
        let mut con = self.con.clone();
        con.exists(key).await.map_err(map_err)
    }

    /// The customer whose alias currently holds `db`, if `db` is live.
    async fn live_alias(&self, db: &str) -> Result<Option<String>, GraphError> {
        let Ok(name) = DatabaseName::parse(db) else {
            return Ok(None);
        };
        let alias = name.customer.to_string();
        let target = self.alias_target(&alias).await?;
        Ok((target.as_deref() == Some(db)).then_some(alias))
    }

    /// The graph key that holds database `db`: its own name, or the alias's
    /// while it is live.
    async fn key_of(&self, db: &str) -> Result<String, GraphError> {
        Ok(self.live_alias(db).await?.unwrap_or_else(|| db.to_owned()))
    }
}

fn map_err(e: redis::RedisError) -> GraphError {
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.code(),
            Some("LOADING" | "BUSY" | "TRYAGAIN" | "OOM" | "MASTERDOWN")
        );
    if transient {
        GraphError::Transient(e.to_string())
    } else {
        GraphError::Permanent(e.to_string())
    }
}
