//! The fleet's shared state in Redis: counters, per-customer records, the
//! workers' "already seen" memory and the audit trail (the producer's
//! "already published" memory is [`crate::adapters::claims`]). Every write is one small command or pipeline; every
//! collection is capped so that months of snapshots do not grow Redis.

mod audit;
mod connect;
mod customers;
mod workers;

pub use audit::{audit_command, AuditEntry};
pub use connect::{
    connect, connect_config, connect_tls, connect_within, fleet, startup_backoff, within_deadline,
    RedisOptions, DEFAULT_CONNECT_TIMEOUT,
};
pub use customers::CustomerRecord;
pub use workers::{LoadProgress, WorkerInfo, PROGRESS_TTL};

use std::collections::HashMap;
use std::time::Duration;

use backon::ExponentialBuilder;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use thiserror::Error;

use crate::adapters::secret::ServiceUrl;
use crate::contract::ident::{Customer, SnapshotId};
use crate::contract::keys::Keys;

/// Snapshot ids remembered per customer in the published/seen sets.
pub const REMEMBERED_SNAPSHOTS: isize = 1000;
/// Entries kept (approximately) in the audit stream.
pub const AUDIT_MAXLEN: usize = 100_000;
/// A worker whose last heartbeat is older than this is not live.
pub const HEARTBEAT_WINDOW: Duration = Duration::from_secs(20);
/// How long a cancellation is remembered.
pub const CANCEL_TTL: Duration = Duration::from_secs(7 * 86_400);

/// Why a Redis operation failed.
#[allow(missing_docs)] // each variant is described by its #[error] text
#[derive(Debug, Error)]
pub enum StateError {
    #[error("cannot connect to Redis at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The fleet counters, as in the seed's status file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Distinct snapshots that reached a worker for the first time.
    Discovered,
    /// Events the producer published.
    Published,
    /// Snapshots loaded and verified (switched or not).
    Completed,
    /// Load attempts that failed (each retry that follows counts once more).
    Failed,
    /// Events sent back through the retry ladder.
    Retried,
    /// Events parked in the dead-letter queue.
    Parked,
    /// Events acked without loading because a newer snapshot exists.
    Superseded,
    /// Events acked without loading (or with the load aborted) because an
    /// operator cancelled the snapshot.
    Cancelled,
    /// Snapshots loaded and verified but held by a guard or a check.
    Held,
}

impl Counter {
    /// The counter's field name in the stats hash (and the status).
    pub fn as_str(self) -> &'static str {
        match self {
            Counter::Discovered => "discovered",
            Counter::Published => "published",
            Counter::Completed => "completed",
            Counter::Failed => "failed",
            Counter::Retried => "retried",
            Counter::Parked => "parked",
            Counter::Superseded => "superseded",
            Counter::Cancelled => "cancelled",
            Counter::Held => "held",
        }
    }
}

/// The fleet's state in one Redis: a reconnecting connection and the
/// namespace's keys. Cheap to clone.
#[derive(Clone)]
pub struct FleetState {
    con: ConnectionManager,
    keys: Keys,
}

impl FleetState {
    /// The state behind `con`, under `keys`.
    pub fn new(con: ConnectionManager, keys: Keys) -> Self {
        FleetState { con, keys }
    }

    /// The namespace's keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A clone of the connection (multiplexed).
    pub fn connection(&self) -> ConnectionManager {
        self.con.clone()
    }

    /// Checks Redis answers.
    pub async fn ping(&self) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: String = redis::cmd("PING").query_async(&mut con).await?;
        Ok(())
    }

    /// Adds `by` to `counter`.
    pub async fn incr(&self, counter: Counter, by: i64) -> Result<(), StateError> {
        let mut con = self.con.clone();
        let _: i64 = con.hincr(self.keys.stats(), counter.as_str(), by).await?;
        Ok(())
    }

    /// The fleet counters (missing ones read as 0 by callers).
    pub async fn counters(&self) -> Result<HashMap<String, i64>, StateError> {
        let mut con = self.con.clone();
        let raw: HashMap<String, String> = con.hgetall(self.keys.stats()).await?;
        Ok(raw
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect())
    }

    /// When a worker last finished something (RFC 3339), if ever.
    pub async fn last_activity(&self) -> Result<Option<String>, StateError> {
        let mut con = self.con.clone();
        Ok(con.hget(self.keys.stats(), "last_activity").await?)
    }
}

#[cfg(test)]
mod console_state_tests {
    use super::*;

    #[test]
    fn worker_ids_split_into_host_and_pid() {
        let w = WorkerInfo::from_id("db-host-1-4242-abcdef12", 5, Some("0.1.0".into()));
        assert_eq!((w.host.as_str(), w.pid), ("db-host-1", Some(4242)));
        let w = WorkerInfo::from_id("odd", 5, None);
        assert_eq!((w.host.as_str(), w.pid), ("odd", None));
    }

    #[test]
    fn rate_is_rows_per_second_since_the_start() {
        let p = LoadProgress {
            nodes: 300,
            relationships: 200,
            started_ms: 1_000,
            updated_ms: 3_000,
            ..Default::default()
        };
        assert_eq!(p.rate(), 250.0);
        assert_eq!(LoadProgress::default().rate(), 0.0);
    }
}
