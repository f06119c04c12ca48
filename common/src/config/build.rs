//! The configuration builds each adapter's options: the adapters read no
//! configuration, so everything they are told comes through here.

use std::time::Duration;

use crate::adapters::broker::AmqpOptions;
use crate::adapters::graph::LoadMethod;
use crate::adapters::load::LoadOptions;
use crate::adapters::state::RedisOptions;
use std::path::Path;

use crate::adapters::graph::target::{GraphTarget, HealthThresholds, Targets, DEFAULT_TARGET};
use crate::adapters::secret::Secret;
use crate::config::model::{Config, ConfigError};
use crate::contract::topology::Topology;

impl From<&Config> for RedisOptions {
    fn from(config: &Config) -> Self {
        RedisOptions {
            url: config.redis_url.clone(),
            ca_file: config.redis_ca_file.clone(),
            namespace: config.namespace.clone(),
            connect_timeout: config.connect_timeout(),
        }
    }
}

impl From<&Config> for AmqpOptions {
    fn from(config: &Config) -> Self {
        AmqpOptions {
            url: config.amqp_url.clone(),
            ca_file: config.amqp_ca_file.clone(),
            connect_timeout: config.connect_timeout(),
        }
    }
}

impl LoadOptions {
    /// The worker's options: `batch_size`, `batch_pause_ms`,
    /// `load_concurrency`, `dangling_relationships`.
    pub fn from_config(config: &Config) -> Self {
        LoadOptions {
            batch_size: config.batch_size,
            batch_pause: Duration::from_millis(config.batch_pause_ms),
            concurrency: config.load_concurrency,
            dangling: config.dangling_relationships,
            duplicates: config.duplicate_nodes,
            method: LoadMethod::resolve(config.load_method, config.graph_kind),
            bulk_max_stall_ms: config.bulk_max_stall_ms,
        }
    }
}

impl Topology {
    /// The topology a config implies: retry ladder, health gate and lock waits.
    pub fn from_config(config: &Config) -> Self {
        let mut delays = config.retry_delays();
        delays.push(Duration::from_secs(config.health_check_retry_delay));
        delays.push(Duration::from_secs(config.lock_wait_timeout));
        Topology::new(&config.namespace, delays)
    }
}

impl Config {
    /// Connections a process keeps to one graph database
    /// ([`crate::adapters::graph::pool_size`] of `load_concurrency` and
    /// `workers`).
    pub fn graph_pool_size(&self) -> usize {
        crate::adapters::graph::pool_size(self.load_concurrency, self.workers)
    }
}

impl GraphTarget {
    /// The `default` target: the top-level keys.
    pub fn top_level(config: &Config) -> Self {
        GraphTarget {
            name: DEFAULT_TARGET.into(),
            kind: config.graph_kind,
            url: config.graph_url.clone(),
            user: config.graph_user.clone(),
            password: config.graph_password.clone(),
            ca_file: config.graph_ca_file.clone(),
            max_concurrent_loads: config.max_concurrent_loads,
            load_method: crate::adapters::load::LoadMethod::resolve(
                config.load_method,
                config.graph_kind,
            ),
            health: HealthThresholds {
                max_databases: config.max_databases,
                heap_threshold_percent: config.heap_threshold_percent,
                pagecache_threshold_percent: config.pagecache_threshold_percent,
            },
        }
    }
}

/// The names of the targets workers connect to, `default` first when active.
pub fn active_names(config: &Config) -> Vec<String> {
    let default_used = config.default_target == DEFAULT_TARGET
        || config
            .customer_targets
            .values()
            .any(|t| t == DEFAULT_TARGET);
    let mut names: Vec<String> = Vec::new();
    if default_used {
        names.push(DEFAULT_TARGET.into());
    }
    names.extend(config.targets.keys().cloned());
    names
}

/// Reads a password file: its content without the trailing line break.
pub fn read_password_file(path: &Path) -> Result<Secret, String> {
    crate::adapters::secret::read_secret_file(path).map(Secret::new)
}

impl Targets {
    /// Resolves every active target (reading password files). Expects a
    /// config that passed [`Config::validate`].
    pub fn from_config(config: &Config) -> Result<Targets, ConfigError> {
        let mut targets = Vec::new();
        let mut bad = Vec::new();
        for name in active_names(config) {
            if name == DEFAULT_TARGET {
                targets.push(GraphTarget::top_level(config));
                continue;
            }
            let Some(t) = config.targets.get(&name) else {
                continue;
            };
            let password = match &t.graph_password_file {
                Some(path) => match read_password_file(path) {
                    Ok(p) => p,
                    Err(e) => {
                        bad.push(format!(
                            "  targets.{name}.graph_password_file = {}: {e}",
                            path.display()
                        ));
                        continue;
                    }
                },
                None => t
                    .graph_password
                    .clone()
                    .unwrap_or_else(|| config.graph_password.clone()),
            };
            let top = GraphTarget::top_level(config);
            targets.push(GraphTarget {
                name: name.clone(),
                kind: t.graph_kind.unwrap_or(top.kind),
                url: t.graph_url.clone().unwrap_or(top.url),
                user: t.graph_user.clone().unwrap_or(top.user),
                password,
                ca_file: t.graph_ca_file.clone().or(top.ca_file),
                max_concurrent_loads: t.max_concurrent_loads.unwrap_or(top.max_concurrent_loads),
                load_method: crate::adapters::load::LoadMethod::resolve(
                    t.load_method.or(config.load_method),
                    t.graph_kind.unwrap_or(top.kind),
                ),
                health: HealthThresholds {
                    max_databases: t.max_databases.unwrap_or(top.health.max_databases),
                    heap_threshold_percent: t
                        .heap_threshold_percent
                        .unwrap_or(top.health.heap_threshold_percent),
                    pagecache_threshold_percent: t
                        .pagecache_threshold_percent
                        .unwrap_or(top.health.pagecache_threshold_percent),
                },
            });
        }
        if !bad.is_empty() {
            return Err(ConfigError::Invalid(bad));
        }
        if !targets.iter().any(|t| t.name == config.default_target) {
            return Err(ConfigError::Invalid(vec![format!(
                "  default_target = {:?}: not a defined target",
                config.default_target
            )]));
        }
        Targets::new(
            targets,
            config.customer_targets.clone(),
            config.default_target.clone(),
        )
        .map_err(|e| ConfigError::Invalid(vec![format!("  {e}")]))
    }
}

/// The binaries share their configuration as an `Arc<Config>`.
impl From<&std::sync::Arc<Config>> for RedisOptions {
    fn from(config: &std::sync::Arc<Config>) -> Self {
        RedisOptions::from(config.as_ref())
    }
}

/// The binaries share their configuration as an `Arc<Config>`.
impl From<&std::sync::Arc<Config>> for AmqpOptions {
    fn from(config: &std::sync::Arc<Config>) -> Self {
        AmqpOptions::from(config.as_ref())
    }
}
