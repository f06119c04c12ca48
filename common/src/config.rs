//! Configuration: one struct, layered from defaults, a TOML file, `SNAPSWITCH_*`
//! environment variables and command-line flags (later layers win), then
//! validated as a whole before anything connects anywhere.
//!
//! The seed orchestrator's key names are kept where they exist (`scan_interval`,
//! `max_databases`, `heap_threshold_percent`, `pagecache_threshold_percent`,
//! `health_check_retry_delay`, `max_retries`, `retry_backoff_base`,
//! `shutdown_timeout`, `workers`). Durations are whole seconds, as in the seed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use thiserror::Error;

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

/// A string that never shows itself in `Debug` or `Display` output.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(#[serde(deserialize_with = "string_like")] String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is handed to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A service URL that may carry a password (`amqp://user:pass@host`). Its
/// `Debug` and `Display` show the URL with the password replaced by `***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServiceUrl(String);

impl ServiceUrl {
    pub fn new(s: impl Into<String>) -> Self {
        ServiceUrl(s.into())
    }
    /// The full URL including any password; hand it only to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn scheme(&self) -> Option<&str> {
        self.0.split_once("://").map(|(s, _)| s)
    }
    /// The URL with the password of its userinfo part masked.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Masks the password in `scheme://user:password@host/...`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_owned(),
    }
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
    /// Retries of a transiently failed load before the event is parked.
    pub max_retries: u32,
    /// Retry n waits `retry_backoff_base^n` seconds (2, 4, 8 …).
    pub retry_backoff_base: u64,
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

    // --- loader (issue 5: concurrent batches; issue 7: dangling relationships) ---
    /// Write statements in flight at once within one load (K): the next
    /// batches are read, converted and sent while the database works.
    pub load_concurrency: usize,
    /// A relationship whose start or end id matches no node: `fail` the load
    /// (naming the count) or `skip` it (counted and reported).
    pub dangling_relationships: crate::load::DanglingPolicy,
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
            max_retries: 3,
            retry_backoff_base: 2,
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

            // --- loader ---
            load_concurrency: 2,
            dangling_relationships: crate::load::DanglingPolicy::Fail,
        }
    }
}

impl Config {
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
        let config: Config = figment
            .merge(env_provider())
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
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
        let graph_schemes: &[&str] = match self.graph_kind {
            GraphKind::Falkordb => &["redis", "rediss"],
            GraphKind::Neo4j => &[
                "neo4j",
                "neo4j+s",
                "neo4j+ssc",
                "bolt",
                "bolt+s",
                "bolt+ssc",
            ],
        };
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
            self.default_priority <= crate::event::MAX_PRIORITY,
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
        if bad.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(bad))
        }
    }

    /// Delay before retry n (1-based): `retry_backoff_base^n` seconds.
    pub fn retry_delays(&self) -> Vec<Duration> {
        (1..=self.max_retries)
            .map(|n| Duration::from_secs(self.retry_backoff_base.saturating_pow(n)))
            .collect()
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

/// `SNAPSWITCH_<KEY>` for every config key. Other `SNAPSWITCH_*` variables
/// (the config file's name, the log format, the scripts' and tests' own) are
/// not config keys; [`unknown_env_vars`] lists them so a typo can be warned about.
fn env_provider() -> Env {
    let keys = Config::keys();
    Env::prefixed(ENV_PREFIX)
        .filter(move |key| keys.iter().any(|k| k.eq_ignore_ascii_case(key.as_str())))
}

/// `SNAPSWITCH_*` variables that are neither config keys nor known to belong
/// to something else: most likely typos.
pub fn unknown_env_vars() -> Vec<String> {
    const OTHERS: [&str; 4] = ["CONFIG", "LOG_FORMAT", "TOOLS", "PY_TOOLS"];
    let keys = Config::keys();
    std::env::vars()
        .filter_map(|(name, _)| {
            let rest = name.strip_prefix(ENV_PREFIX)?;
            let known = keys.iter().any(|k| k.eq_ignore_ascii_case(rest))
                || OTHERS.contains(&rest)
                || rest.starts_with("TEST_");
            (!known).then_some(name)
        })
        .collect()
}

/// Deserializes a string that the environment layer may have parsed as a
/// number or a boolean (`SNAPSWITCH_GRAPH_PASSWORD=12345`).
fn string_like<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_i64<E>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_char<E>(self, v: char) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(V)
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
        assert_eq!(c.retry_delays(), [2, 4, 8].map(Duration::from_secs));
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

    #[test]
    fn redact_url_masks_only_the_password() {
        assert_eq!(
            redact_url("amqp://guest:guest@h:5672/%2f"),
            "amqp://guest:***@h:5672/%2f"
        );
        assert_eq!(redact_url("redis://h:6379/"), "redis://h:6379/");
        assert_eq!(redact_url("bolt://u@h"), "bolt://u@h");
        assert_eq!(redact_url("amqp://u:p@ss@h/x@y"), "amqp://u:***@h/x@y");
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
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "wokers = 3\n").unwrap();
        #[derive(Serialize)]
        struct NoFlags {}
        let err = Config::load(Some(&path), NoFlags {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("wokers"), "{err}");
    }
}
