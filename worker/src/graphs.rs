//! The graph databases this worker loads into: one connected store per
//! active graph target (`common::targets`), and the routing of each customer
//! to its target's store. Which target serves a customer is decided by
//! `common::targets::target_of`; this module only holds the connections.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use common::config::Config;
use common::graph::marks::RedisMarks;
use common::graph::{GraphError, GraphStore};
use common::targets::{GraphTarget, Targets};

/// One graph target and its connected store.
pub struct TargetGraph {
    pub target: GraphTarget,
    pub store: Arc<dyn GraphStore>,
}

pub struct Graphs {
    targets: Targets,
    /// In the order of `targets.all()`.
    graphs: Vec<TargetGraph>,
}

impl Graphs {
    /// Connects and pings every active target, each retried with backoff for
    /// ~30 s (it may still be starting); a permanent refusal (wrong kind,
    /// Community edition) fails at once.
    pub async fn connect(config: &Config) -> anyhow::Result<Graphs> {
        let targets = Targets::from_config(config)?;
        // Lifecycle marks of stores that keep none themselves (Neo4j) live
        // in the coordination Redis.
        let redis = common::state::connect_config(config).await?;
        let keys = common::keys::Keys::new(&config.namespace);
        let mut graphs = Vec::new();
        for target in targets.all() {
            let marks = RedisMarks::new(redis.clone(), keys.clone(), &target.name);
            let store = connect_one(target, common::graph::pool_size(config), marks).await?;
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
    marks: RedisMarks,
) -> anyhow::Result<Arc<dyn GraphStore>> {
    use backon::{ExponentialBuilder, Retryable};
    let attempt = || async {
        let store = common::graph::connect_target_marked(target, pool, Some(marks.clone())).await?;
        store.ping().await?;
        Ok::<_, GraphError>(store)
    };
    let store = attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(8),
        )
        .when(|e| e.is_transient())
        .notify(|e, wait| tracing::warn!(graph_target = %target.name, error = %e, ?wait, "graph database not reachable yet, retrying"))
        .await
        .with_context(|| format!("graph database of target {} at {}", target.name, target.url))?;
    Ok(Arc::from(store))
}
