//! The configuration's value: the [`Config`] struct with its defaults and
//! the accessors the rest of the code reads it through. Loading it is
//! `layering.rs`; checking it, `validate.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::adapters::graph::GraphKind;
use crate::adapters::secret::{string_like, Secret, ServiceUrl};
use crate::config::targets::TargetConfig;

/// Why the configuration cannot be used.
#[allow(missing_docs)] // each variant is described by its #[error] text
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Load(String),
    #[error("invalid configuration:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// The whole configuration; every key is described in docs/configuration.md
/// (checked by `tests/tests/docs.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Prefix of every AMQP exchange/queue name and Redis key this deployment
    /// owns; two deployments (or two test runs) sharing a broker or Redis need
    /// different namespaces.
    pub namespace: String,
    /// Root of the snapshot tree: `<data_root>/<customer>/<snapshot_id>/`.
    pub data_root: PathBuf,
    /// RabbitMQ (`amqp://`, `amqps://`).
    pub amqp_url: ServiceUrl,
    /// The coordination Redis (`redis://`, `rediss://`).
    pub redis_url: ServiceUrl,
    /// The adapter of the `default` target.
    pub graph_kind: GraphKind,
    /// The `default` target's server.
    pub graph_url: ServiceUrl,
    /// The `default` target's user (Bolt).
    #[serde(deserialize_with = "string_like")]
    pub graph_user: String,
    /// The `default` target's password (Bolt).
    pub graph_password: Secret,
    /// Producer `watch`: seconds between full rescans (the file-system watcher
    /// catches most snapshots long before).
    pub scan_interval: u64,
    /// Priority given to events the producer publishes without `--priority`.
    pub default_priority: u8,
    /// Concurrent loads in one worker process (also its AMQP prefetch).
    pub workers: u16,
    /// Databases kept per customer after a switch (the alias target is always kept).
    pub keep_databases: usize,
    /// Health gate: refuse to load while the graph server holds this many databases.
    pub max_databases: usize,
    /// Health gate: refuse to load above this heap (Neo4j) or memory (FalkorDB) use.
    pub heap_threshold_percent: u8,
    /// Health gate: refuse to load above this page-cache use (Neo4j only).
    pub pagecache_threshold_percent: u8,
    /// Seconds before an event refused by the health gate is tried again.
    pub health_check_retry_delay: u64,
    /// Retries of a transiently failed load before the event is parked
    /// (the ladder's length). A failure because a dependency is down does
    /// not count (see `decide::after_failure`).
    pub max_retries: u32,
    /// Retry n waits `retry_backoff_base^n` seconds (2, 4, 8 …), at most
    /// `retry_max_delay`.
    pub retry_backoff_base: u64,
    /// The longest wait of the retry ladder, in seconds (its cap).
    pub retry_max_delay: u64,
    /// Seconds every connection attempt to RabbitMQ, Redis or a graph
    /// database may take: a CLI command gives up after it, the worker keeps
    /// trying (one log line per attempt).
    pub connect_timeout: u64,
    /// Seconds a stopping worker lets in-flight loads finish before aborting them.
    pub shutdown_timeout: u64,
    /// Seconds a customer lock lives without renewal (renewed every third of it).
    pub lock_ttl: u64,
    /// Seconds a worker waits for a busy customer lock before requeueing the
    /// event with the same delay.
    pub lock_wait_timeout: u64,
    /// Rows per read batch and per write (one UNWIND statement).
    pub batch_size: usize,
    /// Milliseconds to pause after each write batch: drip-feeds a graph
    /// database that must keep serving reads while it loads (0: no pause).
    pub batch_pause_ms: u64,
    /// Skip loading a snapshot older than one already loaded, seen or
    /// published for the same customer (it would never become live).
    pub skip_superseded: bool,
    /// Seconds between reconciliation passes of a worker (also run at start):
    /// orphan databases dropped, Redis state corrected from the graph database.
    pub reconcile_interval: u64,
    /// Consecutive graph-database or Redis failures after which a worker stops
    /// taking work until a probe succeeds (circuit breaker).
    pub breaker_threshold: u32,
    /// Seconds between probes while the circuit breaker is open.
    pub breaker_probe_interval: u64,
    /// Fleet-wide cap on loads running at once on the graph database (all
    /// workers, all hosts): the seed's "drip-feed". 1 = one load at a time.
    pub max_concurrent_loads: u32,
    /// Seconds a worker waits for a load slot before it delays the event by
    /// `health_check_retry_delay` (not a failed attempt).
    pub slot_wait_timeout: u64,
    /// Address of the process's HTTP server (/healthz, /readyz, /metrics,
    /// /status). Port 0 picks a free port (logged at start).
    pub http_listen: String,
    /// When set, the fleet status JSON is written there every 5 s
    /// (atomically), for Nagios-style checks.
    pub status_file: Option<PathBuf>,
    /// File holding the operator token of `producer console`; unset: the
    /// console is read-only.
    pub console_token_file: Option<PathBuf>,
    // --- Graph targets (several graph databases; common/src/config/targets.rs) ---
    /// More graph databases, by name (`[targets.<name>]`); the top-level
    /// graph keys are the target named `default`.
    pub targets: BTreeMap<String, TargetConfig>,
    /// Customer → target name; customers not listed go to `default_target`.
    pub customer_targets: BTreeMap<String, String>,
    /// The target of customers not in `customer_targets`.
    pub default_target: String,
    // --- security: TLS trust (security helper) ---
    /// PEM file with the CA certificate(s) RabbitMQ's certificate is checked
    /// against, for `amqps://` (unset: the system's trust store).
    pub amqp_ca_file: Option<PathBuf>,
    /// The same for `rediss://` in `redis_url`.
    pub redis_ca_file: Option<PathBuf>,
    /// The same for the graph database: `rediss://` (FalkorDB) or
    /// `neo4j+s://` / `bolt+s://` (Neo4j).
    pub graph_ca_file: Option<PathBuf>,

    // --- loader (issue 5: concurrent batches; issue 7: dangling relationships) ---
    /// Write statements in flight at once within one load (K): the next
    /// batches are read, converted and sent while the database works.
    pub load_concurrency: usize,
    /// A relationship whose start or end id matches no node: `fail` the load
    /// (naming the count) or `skip` it (counted and reported).
    pub dangling_relationships: crate::adapters::load::DanglingPolicy,

    // --- exactness (issue 14) ---
    /// A node whose id its ID space already has: `fail` the load (naming the
    /// id, file and row) or `skip` it (the first node stays; counted).
    pub duplicate_nodes: crate::adapters::load::DuplicatePolicy,
    /// Snapshot ids (Unix seconds) more than this many seconds ahead of the
    /// worker's clock are refused.
    pub max_future_seconds: u64,

    // --- bulk loading (issue 16) ---
    /// How loads write: `bulk` (FalkorDB's GRAPH.BULK) or `cypher` (write
    /// statements). Unset: `bulk` on FalkorDB, `cypher` on Neo4j. Targets
    /// may set their own.
    pub load_method: Option<crate::adapters::load::LoadMethod>,
    /// The longest a GRAPH.BULK call may block the FalkorDB server (and the
    /// readers of every graph on it), in milliseconds; calls are sized from
    /// it. 0: no budget (the largest, fastest calls).
    pub bulk_max_stall_ms: u64,

    // --- gates (issue 18): audit before publish ---
    /// Hold a snapshot whose nodes or relationships, in total or of one
    /// label or type, are more than this percent fewer than the live
    /// database's (100: never).
    pub max_shrink_percent: u32,
    /// Hold a snapshot with more than this percent more (unset: never).
    pub max_growth_percent: Option<u32>,
    /// May an empty snapshot replace a non-empty live graph?
    pub allow_empty: bool,
    /// Per-customer overrides of the three keys above.
    pub customer_gates: BTreeMap<String, GateOverride>,
    /// Read-only Cypher checks run against every new database after its load.
    pub checks: Vec<CheckConfig>,
    /// Seconds one check may run before it counts as failed.
    pub check_timeout: u64,
}

/// One customer's overrides of the guards (`[customer_gates.<customer>]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateOverride {
    /// Overrides `max_shrink_percent` for this customer.
    pub max_shrink_percent: Option<u32>,
    /// Overrides `max_growth_percent` for this customer.
    pub max_growth_percent: Option<u32>,
    /// Overrides `allow_empty` for this customer.
    pub allow_empty: Option<bool>,
}

/// One `[[checks]]` table: a Cypher query returning one value; it passes
/// when the value is true or a non-zero number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckConfig {
    /// The check's name, shown in hold reasons.
    pub name: String,
    /// The read-only query; it must return one scalar.
    pub query: String,
    /// Only these customers (empty: every customer).
    pub customers: Vec<String>,
}

/// The guards in force for one customer: the global keys with its
/// `customer_gates` override applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guards {
    /// The largest shrink of a count against the live database, in percent.
    pub max_shrink_percent: u32,
    /// The largest growth, in percent (`None`: unlimited).
    pub max_growth_percent: Option<u32>,
    /// Whether an empty database may go live.
    pub allow_empty: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: "snapswitch".into(),
            data_root: PathBuf::from("data"),
            amqp_url: ServiceUrl::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            redis_url: ServiceUrl::new("redis://127.0.0.1:6379/"),
            graph_kind: GraphKind::Falkordb,
            graph_url: ServiceUrl::new("redis://127.0.0.1:6380/"),
            graph_user: "neo4j".into(),
            graph_password: Secret::default(),
            scan_interval: 30,
            default_priority: 5,
            workers: 1,
            keep_databases: 2,
            max_databases: 50,
            heap_threshold_percent: 85,
            pagecache_threshold_percent: 90,
            health_check_retry_delay: 60,
            max_retries: 8,
            retry_backoff_base: 2,
            retry_max_delay: 300,
            connect_timeout: 10,
            shutdown_timeout: 300,
            lock_ttl: 30,
            lock_wait_timeout: 5,
            batch_size: 10_000,
            batch_pause_ms: 0,
            skip_superseded: true,
            reconcile_interval: 300,
            breaker_threshold: 5,
            breaker_probe_interval: 5,
            max_concurrent_loads: 1,
            slot_wait_timeout: 30,
            http_listen: "127.0.0.1:9464".into(),
            status_file: None,
            console_token_file: None,
            // Graph targets
            targets: BTreeMap::new(),
            customer_targets: BTreeMap::new(),
            default_target: crate::config::targets::DEFAULT_TARGET.into(),
            // --- security: TLS trust (security helper) ---
            amqp_ca_file: None,
            redis_ca_file: None,
            graph_ca_file: None,

            // --- loader ---
            load_concurrency: 2,
            dangling_relationships: crate::adapters::load::DanglingPolicy::Fail,

            // --- exactness ---
            duplicate_nodes: crate::adapters::load::DuplicatePolicy::Fail,
            max_future_seconds: 86400,

            // --- bulk loading ---
            load_method: None,
            bulk_max_stall_ms: 50,
            // --- gates ---
            max_shrink_percent: 50,
            max_growth_percent: None,
            allow_empty: false,
            customer_gates: BTreeMap::new(),
            checks: Vec::new(),
            check_timeout: 30,
        }
    }
}

impl Config {
    /// The guards in force for `customer`.
    pub fn guards_for(&self, customer: &str) -> Guards {
        let o = self
            .customer_gates
            .get(customer)
            .cloned()
            .unwrap_or_default();
        Guards {
            max_shrink_percent: o.max_shrink_percent.unwrap_or(self.max_shrink_percent),
            max_growth_percent: o.max_growth_percent.or(self.max_growth_percent),
            allow_empty: o.allow_empty.unwrap_or(self.allow_empty),
        }
    }

    /// The checks that apply to `customer`.
    pub fn checks_for(&self, customer: &str) -> Vec<&CheckConfig> {
        self.checks
            .iter()
            .filter(|c| c.customers.is_empty() || c.customers.iter().any(|n| n == customer))
            .collect()
    }

    /// Delay before retry n (1-based): `retry_backoff_base^n` seconds, at
    /// most `retry_max_delay`.
    pub fn retry_delays(&self) -> Vec<Duration> {
        (1..=self.max_retries)
            .map(|n| {
                Duration::from_secs(
                    self.retry_backoff_base
                        .saturating_pow(n)
                        .min(self.retry_max_delay.max(1)),
                )
            })
            .collect()
    }

    /// How long one connection attempt may take (`connect_timeout`).
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout)
    }

    /// The data root must be a readable directory before anything starts.
    pub fn check_data_root(&self) -> Result<(), ConfigError> {
        if self.data_root.is_dir() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(vec![format!(
                "  data_root = {}: not a readable directory",
                self.data_root.display()
            )]))
        }
    }

    /// `lock_ttl` as a duration.
    pub fn lock_ttl(&self) -> Duration {
        Duration::from_secs(self.lock_ttl)
    }

    /// The names of every key, for tests that keep docs and deploy files honest.
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}
