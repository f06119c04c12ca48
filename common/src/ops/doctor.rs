//! `doctor`: a preflight that checks each dependency the way the binaries use
//! it and prints one line per check with ✓ (fine), ! (works, but an operator
//! should know) or ✗ (will not work), and the fix. Each check has a short
//! timeout; nothing here retries.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use lapin::{Connection, ConnectionProperties};

use crate::adapters::graph::GraphStore;
use crate::config::targets::{GraphTarget, Targets, DEFAULT_TARGET};
use crate::config::Config;
use crate::contract::topology::Topology;

const TIMEOUT: Duration = Duration::from_secs(10);

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Passed.
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Fails: the process would not work.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// How it went.
    pub status: Status,
    /// What was checked.
    pub name: String,
    /// What was found.
    pub detail: String,
    /// What to do about a failure or warning.
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &str, detail: impl Into<String>) -> Self {
        Check {
            status: Status::Ok,
            name: name.into(),
            detail: detail.into(),
            fix: None,
        }
    }
    fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            status: Status::Warn,
            name: name.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            status: Status::Fail,
            name: name.into(),
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match self.status {
            Status::Ok => "✓",
            Status::Warn => "!",
            Status::Fail => "✗",
        };
        write!(f, "{mark} {}: {}", self.name, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n    fix: {fix}")?;
        }
        Ok(())
    }
}

/// Every check's result, in order.
#[derive(Debug, Default)]
pub struct Report {
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    /// No check failed (warnings pass).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

async fn within<T>(fut: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(TIMEOUT, fut).await.ok()
}

/// The broker is reachable and every queue has the arguments this config
/// declares (a mismatch makes RabbitMQ refuse the declare). Queues that do
/// not exist yet are declared, as the binaries do at start.
pub async fn broker(config: &Config) -> Vec<Check> {
    let url = config.amqp_url.redacted();
    let tls = match crate::adapters::tls::amqp_tls(config.amqp_ca_file.as_deref()) {
        Ok(t) => t,
        Err(e) => return vec![Check::fail("RabbitMQ", e, "correct amqp_ca_file")],
    };
    let connect = async {
        Connection::connect_with_config(
            config.amqp_url.expose(),
            ConnectionProperties::default(),
            tls,
            lapin::runtime::default_runtime()?,
        )
        .await
    };
    let connection = match within(connect).await {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            return vec![Check::fail(
                "RabbitMQ",
                format!("cannot connect to {url}: {e}"),
                "start RabbitMQ or correct amqp_url (host, port, user, password, vhost)",
            )]
        }
        None => {
            return vec![Check::fail(
                "RabbitMQ",
                format!("no answer from {url} within {TIMEOUT:?}"),
                "check that amqp_url points at RabbitMQ and no firewall drops the connection",
            )]
        }
    };
    let mut checks = vec![Check::ok("RabbitMQ", format!("reachable at {url}"))];
    let topology = Topology::from_config(config);
    let declared = match connection.create_channel().await {
        Ok(channel) => {
            let declared = within(crate::adapters::broker::declare(&channel, &topology)).await;
            // Closed before the connection: a channel dropped while its
            // connection closes makes lapin log a spurious ERROR.
            if channel.status().connected() {
                channel.close(200, "doctor".into()).await.ok();
            }
            declared
        }
        Err(e) => Some(Err(e.into())),
    };
    checks.push(match declared {
        Some(Ok(())) => Check::ok(
            "queues",
            format!("{} and {} delay queues match this config's arguments", topology.work_queue, topology.delays.len()),
        ),
        Some(Err(e)) => Check::fail(
            "queues",
            e.to_string(),
            "a queue was declared with other arguments (another config, or an older version): align max_retries, retry_backoff_base, health_check_retry_delay and lock_wait_timeout across the fleet, or delete the queue after draining it",
        ),
        None => Check::fail("queues", "declaring the topology timed out", "check RabbitMQ's health"),
    });
    connection.close(200, "doctor".into()).await.ok();
    checks
}

/// Redis is reachable; a warning when it persists nothing.
pub async fn redis(config: &Config) -> Vec<Check> {
    let url = config.redis_url.redacted();
    let client = match crate::adapters::tls::redis_client(
        &config.redis_url,
        config.redis_ca_file.as_deref(),
    ) {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::fail(
                "Redis",
                format!("{url}: {e}"),
                "correct redis_url",
            )]
        }
    };
    let mut con = match within(client.get_multiplexed_async_connection()).await {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            return vec![Check::fail(
                "Redis",
                format!("cannot connect to {url}: {e}"),
                "start Redis or correct redis_url",
            )]
        }
        None => {
            return vec![Check::fail(
                "Redis",
                format!("no answer from {url} within {TIMEOUT:?}"),
                "check redis_url",
            )]
        }
    };
    let pong: Result<String, _> = redis::cmd("PING").query_async(&mut con).await;
    if let Err(e) = pong {
        return vec![Check::fail(
            "Redis",
            format!("{url} answered PING with an error: {e}"),
            "check the password in redis_url",
        )];
    }
    let mut checks = vec![Check::ok("Redis", format!("reachable at {url}"))];
    let aof: Result<Vec<String>, _> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(&mut con)
        .await;
    let save: Result<Vec<String>, _> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("save")
        .query_async(&mut con)
        .await;
    checks.push(match (aof, save) {
        (Ok(aof), Ok(save)) => {
            let aof_on = aof.get(1).is_some_and(|v| v == "yes");
            let snapshots = save.get(1).is_some_and(|v| !v.trim().is_empty());
            if aof_on {
                Check::ok("Redis persistence", "append-only file on")
            } else if snapshots {
                Check::warn(
                    "Redis persistence",
                    "RDB snapshots only: a restart loses the writes since the last snapshot (locks, fencing tokens, stats)",
                    "set appendonly yes",
                )
            } else {
                Check::warn(
                    "Redis persistence",
                    "Redis persists nothing: locks, fencing tokens and fleet statistics vanish on restart",
                    "set appendonly yes (and appendfsync everysec or always)",
                )
            }
        }
        _ => Check::warn("Redis persistence", "could not read the persistence settings (CONFIG GET refused)", "make sure the Redis service keeps an append-only file"),
    });
    checks
}

/// Every graph target the worker connects to (see [`graph_target`]).
pub async fn graph(config: &Config) -> Vec<Check> {
    let targets = match Targets::from_config(config) {
        Ok(t) => t,
        Err(e) => {
            return vec![Check::fail(
                "graph targets",
                e.to_string(),
                "correct the graph target keys (docs/configuration.md, Graph targets)",
            )]
        }
    };
    let only_default = targets.all().len() == 1 && targets.all()[0].name == DEFAULT_TARGET;
    let mut checks = Vec::new();
    for target in targets.all() {
        // One target: the check names stay as they were ("graph database").
        let label = |what: &str| {
            if only_default {
                what.to_owned()
            } else {
                format!("{what} [{}]", target.name)
            }
        };
        checks.extend(
            graph_target(
                target,
                config.graph_pool_size(),
                config.connect_timeout(),
                &label,
            )
            .await,
        );
    }
    checks
}

/// One graph target: reachable (and Enterprise, for Neo4j), database
/// slots, memory against its health gate, and the right to create and drop
/// a database (a probe database, dropped again).
async fn graph_target(
    target: &GraphTarget,
    pool: usize,
    connect_timeout: Duration,
    label: &dyn Fn(&str) -> String,
) -> Vec<Check> {
    let url = target.url.redacted();
    let (url_key, kind_key) = (target.key("graph_url"), target.key("graph_kind"));
    let connect =
        crate::adapters::graph::connect_target_within(target, pool, connect_timeout, None);
    let store = match within(connect).await {
        Some(Ok(s)) => s,
        // Reached, but refused (the connect pings): the wrong kind of server.
        Some(Err(e)) if !e.is_transient() => {
            return vec![Check::fail(
                &label("graph database"),
                format!("{} at {url}: {e}", target.kind),
                format!("{kind_key} must match the server (falkordb: FalkorDB's Redis port; neo4j: a Neo4j 5 Enterprise Bolt URL) and the credentials must be right"),
            )]
        }
        Some(Err(e)) => {
            return vec![Check::fail(
                &label("graph database"),
                format!("cannot connect to {url}: {e}"),
                format!("start the graph database or correct {url_key} and {kind_key}"),
            )]
        }
        None => {
            return vec![Check::fail(
                &label("graph database"),
                format!("no answer from {url} within {TIMEOUT:?}"),
                format!("check {url_key}"),
            )]
        }
    };
    match within(store.ping()).await {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            return vec![Check::fail(
                &label("graph database"),
                format!("{} at {url}: {e}", target.kind),
                format!("{kind_key} must match the server (falkordb: FalkorDB's Redis port; neo4j: a Neo4j 5 Enterprise Bolt URL) and the credentials must be right"),
            )]
        }
        None => return vec![Check::fail(&label("graph database"), format!("no answer from {url} within {TIMEOUT:?}"), format!("check {url_key}"))],
    }
    let mut checks = vec![Check::ok(
        &label("graph database"),
        format!("{} reachable at {url}", target.kind),
    )];
    let max_databases = target.health.max_databases;
    let heap = target.health.heap_threshold_percent;
    match within(store.health()).await {
        Some(Ok(h)) => {
            let limit = h
                .max_databases
                .map_or(max_databases, |m| m.min(max_databases));
            let free = limit.saturating_sub(h.databases);
            checks.push(if free == 0 {
                Check::fail(
                    &label("database slots"),
                    format!(
                        "{} databases, limit {limit}: no load can start",
                        h.databases
                    ),
                    format!(
                        "drop unused databases or raise {} (and Neo4j's dbms.max_databases)",
                        target.key("max_databases")
                    ),
                )
            } else {
                Check::ok(
                    &label("database slots"),
                    format!("{} databases, {free} free of {limit}", h.databases),
                )
            });
            match h.memory_used_percent {
                Some(p) if p > f64::from(heap) => checks.push(Check::warn(
                    &label("memory"),
                    format!(
                        "{p:.1}% used, above {} {heap}: the health gate refuses loads now",
                        target.key("heap_threshold_percent")
                    ),
                    format!(
                        "free memory on the graph server or raise {}",
                        target.key("heap_threshold_percent")
                    ),
                )),
                Some(p) => checks.push(Check::ok(
                    &label("memory"),
                    format!("{p:.1}% used, threshold {heap}%"),
                )),
                None => checks.push(Check::warn(
                    &label("memory"),
                    "the server reports no memory figure; the gate checks databases only",
                    "for Neo4j, allow dbms.queryJmx to the snapswitch user",
                )),
            }
        }
        Some(Err(e)) => checks.push(Check::fail(
            &label("health"),
            e.to_string(),
            "the snapswitch user needs to list databases",
        )),
        None => checks.push(Check::fail(
            &label("health"),
            "timed out",
            "check the graph server's load",
        )),
    }
    let mut probe = admin_probe(store.as_ref()).await;
    probe.name = label(&probe.name);
    checks.push(probe);
    checks.extend(stray_aliases(store.as_ref(), label).await);
    checks
}

/// A graph key (or database) named like a customer's alias that snapswitch
/// does not manage blocks every switch of that customer: one warning each,
/// naming the key and how to clear it.
async fn stray_aliases(store: &dyn GraphStore, label: &dyn Fn(&str) -> String) -> Vec<Check> {
    match within(store.stray_aliases()).await {
        Some(Ok(strays)) => strays
            .into_iter()
            .map(|(name, fix)| {
                Check::warn(
                    &label("stray alias"),
                    format!("`{name}` blocks every switch of customer {name}"),
                    fix,
                )
            })
            .collect(),
        Some(Err(e)) => vec![Check::warn(
            &label("stray alias"),
            format!("could not look for stray alias keys: {e}"),
            "check the graph server",
        )],
        None => Vec::new(),
    }
}

async fn admin_probe(store: &dyn GraphStore) -> Check {
    let probe = format!("snapswitch-doctor-{}", std::process::id());
    let alias = format!("{probe}-alias");
    let result = within(async {
        store.create_database(&probe).await?;
        store.switch_alias(&alias, &probe).await?;
        store.drop_alias(&alias).await?;
        store.drop_database(&probe).await
    })
    .await;
    match result {
        Some(Ok(())) => Check::ok(
            "privileges",
            format!("created database `{probe}`, aliased it, removed the alias and dropped it"),
        ),
        Some(Err(e)) => {
            let _ = within(store.drop_alias(&alias)).await;
            let _ = within(store.drop_database(&probe)).await;
            Check::fail(
                "privileges",
                format!("could not create, alias and drop a database: {e}"),
                "grant the snapswitch user the database and alias management privileges (see docs/neo4j.md)",
            )
        }
        None => Check::fail(
            "privileges",
            "the probe timed out",
            "check the graph server",
        ),
    }
}

/// The data root is a readable directory.
pub fn data_root(config: &Config) -> Check {
    let root = &config.data_root;
    match crate::adapters::snapshot::layout::scan(root) {
        Ok(ready) => Check::ok(
            "data root",
            format!(
                "{} readable, {} ready snapshots",
                root.display(),
                ready.len()
            ),
        ),
        Err(e) => Check::fail(
            "data root",
            e.to_string(),
            "create the directory, mount the snapshot volume, or set data_root",
        ),
    }
}

/// The worker's checks: broker, Redis, graph database, data root.
pub async fn worker(config: &Config) -> Report {
    let mut checks = broker(config).await;
    checks.extend(redis(config).await);
    checks.extend(graph(config).await);
    checks.push(data_root(config));
    Report { checks }
}

/// The producer's checks: broker, Redis, data root.
pub async fn producer(config: &Config) -> Report {
    let mut checks = broker(config).await;
    checks.extend(redis(config).await);
    checks.push(data_root(config));
    Report { checks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_mark_detail_and_fix() {
        let c = Check::fail("Redis", "cannot connect", "start Redis");
        assert_eq!(
            c.to_string(),
            "✗ Redis: cannot connect\n    fix: start Redis"
        );
        assert_eq!(Check::ok("x", "y").to_string(), "✓ x: y");
        let report = Report {
            checks: vec![Check::ok("a", "b"), Check::warn("c", "d", "e")],
        };
        assert!(report.passed());
        let report = Report { checks: vec![c] };
        assert!(!report.passed());
    }
}
