//! Configuration: one struct, layered from defaults, a TOML file, `SNAPSWITCH_*`
//! environment variables and command-line flags (later layers win), then
//! validated as a whole before anything connects anywhere.
//!
//! The seed orchestrator's key names are kept where they exist (`scan_interval`,
//! `max_databases`, `heap_threshold_percent`, `pagecache_threshold_percent`,
//! `health_check_retry_delay`, `max_retries`, `retry_backoff_base`,
//! `shutdown_timeout`, `workers`). Durations are whole seconds, as in the seed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub mod build;
pub mod targets;

pub use crate::adapters::graph::GraphKind;
use crate::adapters::secret::string_like;
pub use crate::adapters::secret::{
    is_tls_scheme, read_secret_file, redact_url, url_problem, Secret, ServiceUrl,
    MAX_SECRET_FILE_BYTES,
};
use crate::config::targets::TargetConfig;

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_FILE_ENV: &str = "SNAPSWITCH_CONFIG";
/// Prefix of every environment override: `SNAPSWITCH_<KEY>` (upper case).
pub const ENV_PREFIX: &str = "SNAPSWITCH_";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Load(String),
    #[error("invalid configuration:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Prefix of every AMQP exchange/queue name and Redis key this deployment
    /// owns; two deployments (or two test runs) sharing a broker or Redis need
    /// different namespaces.
    pub namespace: String,
    /// Root of the snapshot tree: `<data_root>/<customer>/<snapshot_id>/`.
    pub data_root: PathBuf,
    pub amqp_url: ServiceUrl,
    pub redis_url: ServiceUrl,
    pub graph_kind: GraphKind,
    pub graph_url: ServiceUrl,
    #[serde(deserialize_with = "string_like")]
    pub graph_user: String,
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
    pub max_shrink_percent: Option<u32>,
    pub max_growth_percent: Option<u32>,
    pub allow_empty: Option<bool>,
}

/// One `[[checks]]` table: a Cypher query returning one value; it passes
/// when the value is true or a non-zero number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckConfig {
    pub name: String,
    pub query: String,
    /// Only these customers (empty: every customer).
    pub customers: Vec<String>,
}

/// The guards in force for one customer: the global keys with its
/// `customer_gates` override applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guards {
    pub max_shrink_percent: u32,
    pub max_growth_percent: Option<u32>,
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

    /// Loads defaults ← file ← environment ← `overrides` (typically the CLI
    /// flags that were given, as a serializable struct with `None`s skipped),
    /// then validates.
    pub fn load<O: Serialize>(file: Option<&Path>, overrides: O) -> Result<Config, ConfigError> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from));
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist or is not a file",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        let both = secret_env_conflicts();
        if !both.is_empty() {
            return Err(ConfigError::Load(format!(
                "set either the variable or its _FILE form, not both: {}",
                both.join(", ")
            )));
        }
        let config: Config = figment
            .merge(env_provider())
            .merge(secret_file_env_provider(ENV_PREFIX, &SECRET_KEYS))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(load_error)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value; the error lists each bad key with its value and what
    /// is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut bad = Vec::new();
        let mut check = |ok: bool, key: &str, value: String, allowed: &str| {
            if !ok {
                bad.push(format!("  {key} = {value}: {allowed}"));
            }
        };
        check(
            !self.namespace.is_empty()
                && self.namespace.len() <= 64
                && self
                    .namespace
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "namespace",
            format!("{:?}", self.namespace),
            "1 to 64 characters from a-z, A-Z, 0-9, '-' and '_'",
        );
        for (key, url, schemes) in [
            ("amqp_url", &self.amqp_url, &["amqp", "amqps"][..]),
            ("redis_url", &self.redis_url, &["redis", "rediss"][..]),
        ] {
            check(
                url.scheme().is_some_and(|s| schemes.contains(&s)),
                key,
                url.redacted(),
                &format!("a URL with scheme {}", schemes.join(" or ")),
            );
        }
        let graph_schemes = crate::config::targets::schemes(self.graph_kind);
        check(
            self.graph_url
                .scheme()
                .is_some_and(|s| graph_schemes.contains(&s)),
            "graph_url",
            self.graph_url.redacted(),
            &format!(
                "for graph_kind = {}: a URL with scheme {}",
                self.graph_kind,
                graph_schemes.join(", ")
            ),
        );
        check(
            self.scan_interval >= 1 && self.scan_interval <= 86_400,
            "scan_interval",
            self.scan_interval.to_string(),
            "1 to 86400 seconds",
        );
        check(
            self.default_priority <= crate::contract::event::MAX_PRIORITY,
            "default_priority",
            self.default_priority.to_string(),
            "0 to 9",
        );
        check(
            (1..=64).contains(&self.workers),
            "workers",
            self.workers.to_string(),
            "1 to 64 concurrent loads per process",
        );
        check(
            (1..=100).contains(&self.keep_databases),
            "keep_databases",
            self.keep_databases.to_string(),
            "1 to 100",
        );
        check(
            self.max_databases >= 1,
            "max_databases",
            self.max_databases.to_string(),
            "at least 1",
        );
        for (key, v) in [
            ("heap_threshold_percent", self.heap_threshold_percent),
            (
                "pagecache_threshold_percent",
                self.pagecache_threshold_percent,
            ),
        ] {
            check(
                (1..=100).contains(&v),
                key,
                v.to_string(),
                "1 to 100 (percent)",
            );
        }
        check(
            (1..=86_400).contains(&self.health_check_retry_delay),
            "health_check_retry_delay",
            self.health_check_retry_delay.to_string(),
            "1 to 86400 seconds",
        );
        check(
            self.max_retries <= 20,
            "max_retries",
            self.max_retries.to_string(),
            "0 to 20",
        );
        check(
            (1..=10).contains(&self.retry_backoff_base),
            "retry_backoff_base",
            self.retry_backoff_base.to_string(),
            "1 to 10",
        );
        check(
            (1..=604_800).contains(&self.retry_max_delay),
            "retry_max_delay",
            self.retry_max_delay.to_string(),
            "1 to 604800 seconds (7 days)",
        );
        check(
            (1..=300).contains(&self.connect_timeout),
            "connect_timeout",
            self.connect_timeout.to_string(),
            "1 to 300 seconds",
        );
        check(
            self.retry_delays().iter().all(|d| d.as_secs() <= 7 * 86_400),
            "max_retries",
            format!("{} with retry_backoff_base = {}", self.max_retries, self.retry_backoff_base),
            "the longest retry delay (retry_backoff_base^max_retries seconds) must stay under 7 days",
        );
        check(
            self.shutdown_timeout <= 86_400,
            "shutdown_timeout",
            self.shutdown_timeout.to_string(),
            "0 to 86400 seconds",
        );
        check(
            (3..=3600).contains(&self.lock_ttl),
            "lock_ttl",
            self.lock_ttl.to_string(),
            "3 to 3600 seconds (renewed every third of it)",
        );
        check(
            (1..=3600).contains(&self.lock_wait_timeout),
            "lock_wait_timeout",
            self.lock_wait_timeout.to_string(),
            "1 to 3600 seconds",
        );
        check(
            (1..=1_000_000).contains(&self.batch_size),
            "batch_size",
            self.batch_size.to_string(),
            "1 to 1000000 rows",
        );
        check(
            self.batch_pause_ms <= 60_000,
            "batch_pause_ms",
            self.batch_pause_ms.to_string(),
            "0 to 60000 milliseconds",
        );
        check(
            (1..=86_400).contains(&self.reconcile_interval),
            "reconcile_interval",
            self.reconcile_interval.to_string(),
            "1 to 86400 seconds",
        );
        check(
            (1..=1000).contains(&self.breaker_threshold),
            "breaker_threshold",
            self.breaker_threshold.to_string(),
            "1 to 1000 consecutive failures",
        );
        check(
            (1..=3600).contains(&self.breaker_probe_interval),
            "breaker_probe_interval",
            self.breaker_probe_interval.to_string(),
            "1 to 3600 seconds",
        );
        check(
            self.bulk_max_stall_ms <= 60_000,
            "bulk_max_stall_ms",
            self.bulk_max_stall_ms.to_string(),
            "0 to 60000 milliseconds (0: no budget)",
        );
        check(
            !(self.load_method == Some(crate::adapters::load::LoadMethod::Bulk)
                && self.graph_kind == GraphKind::Neo4j),
            "load_method",
            "bulk".into(),
            "cypher for graph_kind = neo4j (bulk is FalkorDB's GRAPH.BULK)",
        );
        check(
            (1..=1000).contains(&self.max_concurrent_loads),
            "max_concurrent_loads",
            self.max_concurrent_loads.to_string(),
            "1 to 1000 loads at once",
        );
        check(
            (1..=3600).contains(&self.slot_wait_timeout),
            "slot_wait_timeout",
            self.slot_wait_timeout.to_string(),
            "1 to 3600 seconds",
        );
        check(
            self.http_listen.parse::<std::net::SocketAddr>().is_ok(),
            "http_listen",
            format!("{:?}", self.http_listen),
            "an address with a port, e.g. 0.0.0.0:9464 or 127.0.0.1:0",
        );
        // --- loader ---
        check(
            (1..=64).contains(&self.load_concurrency),
            "load_concurrency",
            self.load_concurrency.to_string(),
            "1 to 64 write batches in flight",
        );
        // --- exactness ---
        check(
            (60..=31_536_000).contains(&self.max_future_seconds),
            "max_future_seconds",
            self.max_future_seconds.to_string(),
            "60 to 31536000 seconds",
        );
        // --- gates ---
        let percent = |v: Option<u32>, max: u32| v.is_none_or(|v| v <= max);
        check(
            percent(Some(self.max_shrink_percent), 100),
            "max_shrink_percent",
            self.max_shrink_percent.to_string(),
            "0 to 100 (100: never hold for shrinking)",
        );
        check(
            self.max_growth_percent
                .is_none_or(|g| (1..=1_000_000).contains(&g)),
            "max_growth_percent",
            format!("{:?}", self.max_growth_percent),
            "unset, or 1 to 1000000",
        );
        for (customer, o) in &self.customer_gates {
            check(
                crate::contract::ident::Customer::parse(customer).is_ok()
                    && percent(o.max_shrink_percent, 100)
                    && o.max_growth_percent
                        .is_none_or(|g| (1..=1_000_000).contains(&g)),
                &format!("customer_gates.{customer}"),
                format!("{o:?}"),
                "a valid customer name; max_shrink_percent 0 to 100, max_growth_percent 1 to 1000000",
            );
        }
        check(
            (1..=3600).contains(&self.check_timeout),
            "check_timeout",
            self.check_timeout.to_string(),
            "1 to 3600 seconds",
        );
        let mut names = std::collections::BTreeSet::new();
        for c in &self.checks {
            check(
                !c.name.trim().is_empty()
                    && names.insert(c.name.as_str())
                    && !c.query.trim().is_empty()
                    && c.customers
                        .iter()
                        .all(|n| crate::contract::ident::Customer::parse(n).is_ok()),
                "checks",
                format!("{:?}", c.name),
                "each check a unique non-empty name, a non-empty query and valid customer names",
            );
        }
        // --- security: URLs, names, TLS trust files (security helper) ---
        for (key, url) in [
            ("amqp_url", &self.amqp_url),
            ("redis_url", &self.redis_url),
            ("graph_url", &self.graph_url),
        ] {
            check(
                url_has_host(url.expose()),
                key,
                url.redacted(),
                "a URL with a host after `://`, without spaces or control characters",
            );
            if let Some(problem) = url_problem(url.expose()) {
                check(false, key, url.redacted(), &problem);
            }
        }
        check(
            !self.data_root.as_os_str().is_empty(),
            "data_root",
            "\"\"".into(),
            "a directory path",
        );
        check(
            self.max_databases <= 100_000,
            "max_databases",
            self.max_databases.to_string(),
            "1 to 100000",
        );
        check(
            self.graph_kind != GraphKind::Neo4j
                || (!self.graph_user.is_empty()
                    && self.graph_user.len() <= 256
                    && !self.graph_user.chars().any(char::is_control)),
            "graph_user",
            format!("{:?}", self.graph_user.chars().take(80).collect::<String>()),
            "for graph_kind = neo4j: 1 to 256 characters, no control characters",
        );
        check(
            self.status_file.as_deref().is_none_or(|p| !p.is_dir()),
            "status_file",
            self.status_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            "a file path, not a directory",
        );
        for (key, ca, url) in [
            ("amqp_ca_file", &self.amqp_ca_file, &self.amqp_url),
            ("redis_ca_file", &self.redis_ca_file, &self.redis_url),
            ("graph_ca_file", &self.graph_ca_file, &self.graph_url),
        ] {
            let Some(ca) = ca else { continue };
            check(
                ca.is_file(),
                key,
                ca.display().to_string(),
                "a readable PEM file",
            );
            check(
                url.scheme().is_some_and(is_tls_scheme),
                key,
                ca.display().to_string(),
                &format!(
                    "set only with a TLS URL (amqps, rediss, neo4j+s, bolt+s); the URL is {}",
                    url.redacted()
                ),
            );
        }
        // Graph targets
        crate::config::targets::validate(self, &mut bad);
        if bad.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(bad))
        }
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

/// A value the config loader could not take, one line per key: the key,
/// the value found (hidden for keys that may hold a password), what is
/// allowed and where the value came from — instead of the deserializer's
/// raw text (`expected u16 for key "default.workers"`).
fn load_error(error: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let lines = error
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                "(top level)".to_owned()
            } else {
                e.path.join(".")
            };
            let secret = SECRET_KEYS
                .iter()
                .any(|k| key == *k || key.ends_with(&format!(".{k}")));
            let from = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(source) => format!(" (from {} {source})", m.name),
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            let shown = |actual: &figment::error::Actual| {
                if secret {
                    "***".to_owned()
                } else {
                    actual.to_string()
                }
            };
            match &e.kind {
                Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
                    format!("  {key} = {}: {}{from}", shown(actual), allowed(expected))
                }
                Kind::UnknownVariant(actual, expected) => format!(
                    "  {key} = {:?}: one of {}{from}",
                    if secret { "***" } else { actual.as_str() },
                    expected.join(", ")
                ),
                Kind::UnknownField(field, _) => {
                    let key = if e.path.is_empty() {
                        field.clone()
                    } else {
                        format!("{key}.{field}")
                    };
                    format!("  {key}: not a config key (see docs/configuration.md){from}")
                }
                other => format!("  {key}: {other}{from}"),
            }
        })
        .collect();
    ConfigError::Invalid(lines)
}

/// What a Rust type name in a deserializer's message allows, in words.
fn allowed(expected: &str) -> String {
    match expected {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" | "usize" => "a whole number, 0 or more".into(),
        "i64" | "isize" | "i32" => "a whole number".into(),
        "a boolean" => "true or false".into(),
        "a string" => "a string (in quotes in TOML)".into(),
        other => other.to_owned(),
    }
}

/// `SNAPSWITCH_<KEY>` for every config key. Other `SNAPSWITCH_*` variables
/// (the config file's name, the log format, the scripts' and tests' own) are
/// not config keys; [`unknown_env_vars`] lists them so a typo can be warned about.
fn env_provider() -> Env {
    let keys = Config::keys();
    Env::prefixed(ENV_PREFIX)
        .filter(move |key| {
            keys.iter()
                .any(|k| k.eq_ignore_ascii_case(top_key(key.as_str())))
        })
        .split(NEST)
}

/// `SNAPSWITCH_TARGETS__EAST__GRAPH_URL` sets `targets.east.graph_url`.
const NEST: &str = "__";

/// The top-level key of a (possibly nested) environment key.
fn top_key(key: &str) -> &str {
    key.split(NEST).next().unwrap_or(key)
}

/// `SNAPSWITCH_*` variables that are neither config keys nor known to belong
/// to something else: most likely typos.
pub fn unknown_env_vars() -> Vec<String> {
    const OTHERS: [&str; 4] = ["CONFIG", "LOG_FORMAT", "TOOLS", "PY_TOOLS"];
    let keys = Config::keys();
    std::env::vars()
        .filter_map(|(name, _)| {
            let rest = name.strip_prefix(ENV_PREFIX)?;
            let secret_file = rest
                .strip_suffix(FILE_SUFFIX)
                .is_some_and(|k| SECRET_KEYS.iter().any(|s| s.eq_ignore_ascii_case(k)));
            let known = keys.iter().any(|k| k.eq_ignore_ascii_case(top_key(rest)))
                || secret_file
                || OTHERS.contains(&rest)
                || rest.starts_with("TEST_");
            (!known).then_some(name)
        })
        .collect()
}

// --- security: secrets from files (security helper) ---

/// Suffix of the environment variable that names a file holding a secret
/// key's value: `SNAPSWITCH_GRAPH_PASSWORD_FILE=/run/secrets/neo4j`.
pub const FILE_SUFFIX: &str = "_FILE";
/// The keys whose value may be given as a file (`<KEY>_FILE` in the
/// environment, `key = { file = "..." }` in TOML): every key that may hold a
/// password.
pub const SECRET_KEYS: [&str; 4] = ["amqp_url", "redis_url", "graph_url", "graph_password"];
/// A figment layer turning `<prefix><KEY>_FILE=<path>` into `key = { file =
/// "<path>" }` for each of `keys` (dotted keys address nested tables, e.g.
/// `graph_targets.blue.password`); the [`Secret`]/[`ServiceUrl`] field then
/// reads the file when the config is extracted.
pub fn secret_file_env_provider(prefix: &str, keys: &[&str]) -> Env {
    let keys: Vec<String> = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
    let suffix = FILE_SUFFIX.to_ascii_lowercase();
    Env::prefixed(prefix).filter_map(move |name| {
        let name = name.as_str().to_ascii_lowercase();
        let base = name.strip_suffix(suffix.as_str())?;
        keys.iter()
            .find(|k| k.replace('.', "_") == base)
            .map(|k| format!("{k}.file").into())
    })
}

/// Secret keys given both directly and as `_FILE` in the environment.
fn secret_env_conflicts() -> Vec<String> {
    SECRET_KEYS
        .iter()
        .map(|k| format!("{ENV_PREFIX}{}", k.to_ascii_uppercase()))
        .filter(|var| {
            std::env::var_os(var).is_some()
                && std::env::var_os(format!("{var}{FILE_SUFFIX}")).is_some()
        })
        .collect()
}

/// `scheme://host…`: something after `://` before any path, and no
/// whitespace or control characters anywhere.
fn url_has_host(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    !host.is_empty()
        && !host.starts_with(':')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_keep_seed_values() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.scan_interval, 30);
        assert_eq!(c.keep_databases, 2);
        // The seed's 2, 4, 8 s are the ladder's first steps, not its whole budget.
        assert_eq!(c.retry_delays()[..3], [2, 4, 8].map(Duration::from_secs));
        assert_eq!(
            c.retry_delays(),
            [2, 4, 8, 16, 32, 64, 128, 256].map(Duration::from_secs)
        );
        assert_eq!(c.connect_timeout(), Duration::from_secs(10));
    }

    #[test]
    fn the_retry_ladder_is_capped_by_retry_max_delay() {
        let c = Config {
            max_retries: 12,
            retry_max_delay: 100,
            ..Config::default()
        };
        c.validate().unwrap();
        let d = c.retry_delays();
        assert_eq!(d.len(), 12);
        assert_eq!(d[5], Duration::from_secs(64));
        assert!(d[6..].iter().all(|x| *x == Duration::from_secs(100)));
    }

    #[test]
    fn invalid_values_name_key_value_and_allowed_range() {
        let c = Config {
            workers: 0,
            heap_threshold_percent: 150,
            amqp_url: ServiceUrl::new("http://u:hunter2@h"),
            ..Config::default()
        };
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.contains("workers = 0: 1 to 64"), "{msg}");
        assert!(
            msg.contains("heap_threshold_percent = 150: 1 to 100"),
            "{msg}"
        );
        assert!(msg.contains("amqp_url = http://u:***@h"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn graph_url_scheme_must_match_kind() {
        let c = Config {
            graph_kind: GraphKind::Neo4j,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("graph_url"));
    }

    #[test]
    fn secrets_never_print() {
        let c = Config {
            graph_password: Secret::new("s3cret-pw"),
            redis_url: ServiceUrl::new("redis://:p4ss@127.0.0.1:6379/0"),
            ..Config::default()
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret-pw") && !shown.contains("p4ss"),
            "{shown}"
        );
        assert!(shown.contains("redis://:***@127.0.0.1:6379/0"), "{shown}");
    }

    /// Passwords no output may show, whatever they hold.
    pub const HOSTILE_PASSWORDS: [&str; 14] = [
        "s3cr#t-pw",
        "pa/ss-word",
        "pa?ss=word",
        "p@ss@word",
        "pa:ss:word",
        "1234/5678",
        "9999#x",
        "#leading",
        "trailing@",
        "a/b?c#d@e:f",
        "%zz-not-encoded",
        "sp ace",
        "uni\u{e9}code-\u{1f511}",
        "p%40ss%23encoded",
    ];

    #[test]
    fn no_password_survives_redaction() {
        for pw in HOSTILE_PASSWORDS {
            for template in [
                "amqp://guest:{pw}@rabbit.example:5672/%2f",
                "amqps://guest:{pw}@rabbit.example/vhost",
                "redis://:{pw}@127.0.0.1:6379/0",
                "rediss://default:{pw}@redis.example:6380",
                "neo4j://neo4j:{pw}@graph.example:7687",
                "bolt://u:{pw}@h",
                "redis://:{pw}@",
                "u:{pw}@h:5672",
            ] {
                let raw = template.replace("{pw}", pw);
                let shown = redact_url(&raw);
                // The password, and each piece of it between reserved
                // characters that is long enough to mean something.
                let pieces: Vec<&str> = pw
                    .split(['#', '/', '?', '@', ':', '%', ' ', '='])
                    .filter(|p| p.len() >= 4)
                    .collect();
                assert!(!shown.contains(pw), "{raw} shown as {shown}");
                for piece in pieces {
                    assert!(!shown.contains(piece), "{raw} shown as {shown} ({piece})");
                }
            }
        }
    }

    #[test]
    fn a_url_with_unencoded_reserved_characters_is_refused_without_showing_it() {
        for pw in ["s3cr#t-pw", "pa/ss-word", "pa?ss=word", "1234/5678"] {
            let c = Config {
                amqp_url: ServiceUrl::new(format!("amqp://guest:{pw}@h:5672/%2f")),
                ..Config::default()
            };
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("amqp_url"), "{err}");
            assert!(err.contains("percent-encode"), "{err}");
            assert!(!err.contains(pw), "{err}");
        }
        let ok = Config {
            amqp_url: ServiceUrl::new("amqp://guest:s3cr%23t@h:5672/%2f"),
            ..Config::default()
        };
        ok.validate().unwrap();
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API
    fn type_errors_name_the_key_the_value_and_what_is_allowed() {
        figment::Jail::expect_with(|jail| {
            let none = BTreeMap::<String, String>::new();
            // The deserializer stops at the first bad value: one file each.
            for (text, want) in [
                (
                    "workers = \"four\"",
                    "workers = string \"four\": a whole number from 0 to 65535 (from TOML file",
                ),
                (
                    "skip_superseded = \"yes\"",
                    "skip_superseded = string \"yes\": true or false",
                ),
                ("amqp_url = [4242]", "amqp_url = ***: "),
            ] {
                jail.create_file("c.toml", text)?;
                let err = Config::load(Some(Path::new("c.toml")), &none)
                    .unwrap_err()
                    .to_string();
                assert!(err.contains(want), "{want}: {err}");
                assert!(!err.contains("default."), "{err}");
                assert!(!err.contains("4242"), "{err}");
            }
            jail.set_env("SNAPSWITCH_KEEP_DATABASES", "-3");
            jail.create_file("d.toml", "")?;
            let err = Config::load(Some(Path::new("d.toml")), &none)
                .unwrap_err()
                .to_string();
            assert!(err.contains("keep_databases = "), "{err}");
            assert!(err.contains("environment variable"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn redact_url_masks_only_the_password() {
        assert_eq!(
            redact_url("amqp://guest:guest@h:5672/%2f"),
            "amqp://guest:***@h:5672/%2f"
        );
        assert_eq!(redact_url("redis://h:6379/"), "redis://h:6379/");
        assert_eq!(redact_url("bolt://u@h"), "bolt://u@h");
        // An `@` after the authority: where the password ends is not sure.
        assert_eq!(redact_url("amqp://u:p@ss@h/x@y"), "amqp://***@y");
        assert_eq!(redact_url("amqp://u:p@ss@h/x"), "amqp://u:***@h/x");
        // A scheme-less mistake still hides the password.
        assert_eq!(redact_url("guest:hunter2@h:5672"), "***@h:5672");
        assert_eq!(redact_url("localhost:6379"), "localhost:6379");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API
    fn file_then_env_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "workers = 3\nkeep_databases = 4\nscan_interval = 7\n",
        )
        .unwrap();
        #[derive(Serialize)]
        struct Flags {
            keep_databases: usize,
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env("SNAPSWITCH_WORKERS", "5");
            jail.set_env("SNAPSWITCH_TEST_NEO4J_URL", "bolt://x");
            jail.set_env("SNAPSWITCH_TOOLS", "/opt/tools");
            jail.set_env("SNAPSWITCH_GRAPH_PASSWORD", "12345");
            jail.set_env("SNAPSWITCH_WOKERS", "2");
            let c = Config::load(Some(&path), Flags { keep_databases: 9 }).unwrap();
            assert_eq!((c.workers, c.keep_databases, c.scan_interval), (5, 9, 7));
            assert_eq!(c.graph_password.expose(), "12345");
            assert_eq!(unknown_env_vars(), ["SNAPSWITCH_WOKERS"]);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API
    fn targets_come_from_tables_and_from_nested_environment_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[targets.east]\ngraph_url = \"redis://east:6379/\"\nmax_concurrent_loads = 2\n\n[customer_targets]\nacme = \"east\"\n",
        )
        .unwrap();
        #[derive(Serialize)]
        struct NoFlags {}
        figment::Jail::expect_with(|jail| {
            jail.set_env("SNAPSWITCH_TARGETS__EAST__MAX_CONCURRENT_LOADS", "3");
            jail.set_env("SNAPSWITCH_TARGETS__WEST__GRAPH_URL", "redis://west:6379/");
            jail.set_env("SNAPSWITCH_TARGETS__WEST__GRAPH_PASSWORD", "12345");
            jail.set_env("SNAPSWITCH_CUSTOMER_TARGETS__GLOBEX", "west");
            jail.set_env("SNAPSWITCH_DEFAULT_TARGET", "east");
            let c = Config::load(Some(&path), NoFlags {}).unwrap();
            assert_eq!(c.targets["east"].max_concurrent_loads, Some(3));
            assert_eq!(
                c.targets["east"].graph_url,
                Some(ServiceUrl::new("redis://east:6379/"))
            );
            assert_eq!(
                c.targets["west"]
                    .graph_password
                    .as_ref()
                    .map(Secret::expose),
                Some("12345")
            );
            assert_eq!(c.customer_targets["acme"], "east");
            assert_eq!(c.customer_targets["globex"], "west");
            assert_eq!(c.default_target, "east");
            assert!(unknown_env_vars().is_empty(), "{:?}", unknown_env_vars());
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            // A whole map in one variable: customer names with '-' too.
            jail.set_env(
                "SNAPSWITCH_CUSTOMER_TARGETS",
                "{big-co = east, acme = default}",
            );
            let c = Config::load(Some(&path), NoFlags {}).unwrap();
            assert_eq!(c.customer_targets["big-co"], "east");
            assert_eq!(c.customer_targets["acme"], "default");
            jail.set_env("SNAPSWITCH_TARGETS__EAST__GRAPH_URLL", "redis://x:1/");
            let err = Config::load(Some(&path), NoFlags {})
                .unwrap_err()
                .to_string();
            assert!(err.contains("graph_urll"), "{err}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "wokers = 3\n").unwrap();
        #[derive(Serialize)]
        struct NoFlags {}
        // In a Jail: other tests set SNAPSWITCH_* variables in theirs.
        figment::Jail::expect_with(|_| {
            let err = Config::load(Some(&path), NoFlags {})
                .unwrap_err()
                .to_string();
            assert!(err.contains("wokers"), "{err}");
            Ok(())
        });
    }

    // --- security: secrets from files, URL and TLS checks (security helper) ---

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API
    fn secrets_come_from_files_named_in_env_or_toml() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "from-file-pw\n").unwrap();
        let amqp = dir.path().join("amqp");
        std::fs::write(&amqp, "amqp://u:url-pw@127.0.0.1:5672/%2f\r\n").unwrap();
        let redis = dir.path().join("redis");
        std::fs::write(&redis, "redis://:redis-pw@127.0.0.1:6379/").unwrap();
        let toml = dir.path().join("c.toml");
        std::fs::write(&toml, format!("redis_url = {{ file = {:?} }}\n", redis)).unwrap();
        #[derive(Serialize)]
        struct NoFlags {}
        figment::Jail::expect_with(|jail| {
            jail.set_env("SNAPSWITCH_GRAPH_PASSWORD_FILE", pw.display());
            jail.set_env("SNAPSWITCH_AMQP_URL_FILE", amqp.display());
            let c = Config::load(Some(&toml), NoFlags {}).unwrap();
            assert_eq!(c.graph_password.expose(), "from-file-pw");
            assert_eq!(c.amqp_url.expose(), "amqp://u:url-pw@127.0.0.1:5672/%2f");
            assert_eq!(c.redis_url.expose(), "redis://:redis-pw@127.0.0.1:6379/");
            assert!(unknown_env_vars().is_empty(), "{:?}", unknown_env_vars());
            let shown = format!("{c:?}");
            for secret in ["from-file-pw", "url-pw", "redis-pw"] {
                assert!(!shown.contains(secret), "{shown}");
            }
            // Both forms at once is ambiguous.
            jail.set_env("SNAPSWITCH_GRAPH_PASSWORD", "direct");
            let err = Config::load(Some(&toml), NoFlags {})
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("SNAPSWITCH_GRAPH_PASSWORD") && err.contains("not both"),
                "{err}"
            );
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "SNAPSWITCH_GRAPH_PASSWORD_FILE",
                dir.path().join("nope").display(),
            );
            let err = Config::load(None, NoFlags {}).unwrap_err().to_string();
            assert!(
                err.contains("nope") && err.to_lowercase().contains("graph_password"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn secret_files_are_bounded_and_not_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        assert!(read_secret_file(&empty).unwrap_err().contains("is empty"));
        let big = dir.path().join("big");
        std::fs::write(&big, "x".repeat(70_000)).unwrap();
        assert!(read_secret_file(&big).unwrap_err().contains("larger than"));
        let binary = dir.path().join("bin");
        std::fs::write(&binary, [0xff, 0xfe, b'p', b'w']).unwrap();
        let err = read_secret_file(&binary).unwrap_err();
        assert!(err.contains("not UTF-8") && !err.contains("pw"), "{err}");
        assert!(read_secret_file(dir.path())
            .unwrap_err()
            .contains("not a file"));
    }

    #[test]
    fn urls_need_a_host_and_ca_files_need_tls_urls() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let c = Config {
            amqp_url: ServiceUrl::new("amqp://"),
            redis_url: ServiceUrl::new("redis://:pw-in-url@"),
            graph_url: ServiceUrl::new("redis://host name:1/"),
            redis_ca_file: Some(ca.clone()),
            amqp_ca_file: Some(dir.path().join("missing.pem")),
            graph_kind: GraphKind::Falkordb,
            ..Config::default()
        };
        let msg = c.validate().unwrap_err().to_string();
        for want in [
            "amqp_url = amqp://: a URL with a host",
            // A URL that does not parse is not shown (it may hold a password).
            "redis_url = redis://*** (not a valid URL): a URL with a host",
            "graph_url = redis://*** (not a valid URL): a URL with a host",
            "redis_ca_file",
            "set only with a TLS URL",
            "missing.pem: a readable PEM file",
        ] {
            assert!(msg.contains(want), "{want}: {msg}");
        }
        assert!(!msg.contains("pw-in-url"), "{msg}");
        let ok = Config {
            redis_url: ServiceUrl::new("rediss://:pw@127.0.0.1:6390/"),
            redis_ca_file: Some(ca),
            ..Config::default()
        };
        ok.validate().unwrap();
        let neo = Config {
            graph_kind: GraphKind::Neo4j,
            graph_url: ServiceUrl::new("neo4j+s://db.example:7687"),
            graph_user: String::new(),
            ..Config::default()
        };
        assert!(neo
            .validate()
            .unwrap_err()
            .to_string()
            .contains("graph_user"));
    }
}
