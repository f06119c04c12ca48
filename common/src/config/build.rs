//! The configuration builds each adapter's options: the adapters read no
//! configuration, so everything they are told comes through here.

use std::time::Duration;

use crate::adapters::broker::AmqpOptions;
use crate::adapters::graph::LoadMethod;
use crate::adapters::load::LoadOptions;
use crate::adapters::state::RedisOptions;
use crate::config::Config;
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
