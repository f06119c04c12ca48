//! The graph databases this worker loads into: one connected store per
//! active graph target (`common::targets`), and the routing of each customer
//! to its target's store. Which target serves a customer is decided by
//! `common::targets::target_of`; this module only holds the connections.

use std::sync::Arc;
use std::time::Duration;

use common::config::Config;
use common::graph::marks::RedisMarks;
use common::graph::{GraphError, GraphStore};
use common::targets::{GraphTarget, Targets};

/// One graph target and its connected store.
pub struct TargetGraph {
    /// The target: its name, address, caps and gates.
    pub target: GraphTarget,
    /// Its store, with the lifecycle marks in Redis.
    pub store: Arc<dyn GraphStore>,
}

/// Every graph target of the deployment, connected; which one serves a
/// customer is `targets::Targets`'s answer.
pub struct Graphs {
    targets: Targets,
    /// In the order of `targets.all()`.
    graphs: Vec<TargetGraph>,
}

impl Graphs {
    /// Connects and pings every active target, each tried for up to
    /// `connect_timeout` (the caller waits longer if it wants: see
    /// `ops::wait_for`); a permanent refusal (wrong kind, Community edition)
    /// fails at once, as a [`GraphError::Permanent`].
    pub async fn connect(config: &Config) -> anyhow::Result<Graphs> {
        let targets = Targets::from_config(config)?;
        // Lifecycle marks of stores that keep none themselves (Neo4j) live
        // in the coordination Redis.
        let redis = common::state::connect_config(config).await?;
        let keys = common::keys::Keys::new(&config.namespace);
        let mut graphs = Vec::new();
        for target in targets.all() {
            let marks = RedisMarks::new(redis.clone(), keys.clone(), &target.name);
            let store = connect_one(
                target,
                config.graph_pool_size(),
                config.connect_timeout(),
                marks,
            )
            .await?;
            graphs.push(TargetGraph {
                target: target.clone(),
                store,
            });
        }
        Ok(Graphs { targets, graphs })
    }

    /// Every active target, `default` first when active.
    pub fn all(&self) -> &[TargetGraph] {
        &self.graphs
    }

    /// The target serving `customer`.
    pub fn for_customer(&self, customer: &str) -> &TargetGraph {
        &self.graphs[self.targets.index_for(customer)]
    }

    /// Whether `target` is the one serving `customer`.
    pub fn serves(&self, target: &str, customer: &str) -> bool {
        self.targets.name_for(customer) == target
    }

    /// Pings every target; the error names each one that did not answer.
    pub async fn ping_all(&self) -> Result<(), String> {
        let mut failed = Vec::new();
        for g in &self.graphs {
            if let Err(e) = g.store.ping().await {
                failed.push(format!("target {} ({}): {e}", g.target.name, g.target.url));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}

async fn connect_one(
    target: &GraphTarget,
    pool: usize,
    timeout: Duration,
    marks: RedisMarks,
) -> Result<Arc<dyn GraphStore>, GraphError> {
    let store = common::graph::connect_target_within(target, pool, timeout, Some(marks)).await?;
    Ok(Arc::from(store))
}
