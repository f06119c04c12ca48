//! The session of one operator command on a customer (`producer rollback`,
//! `approve`, `reject`, and the console's actions through them): the fleet
//! state, the customer's graph store with its lifecycle marks, and the
//! customer's lock with a fencing token lifted above the store's, so no
//! load of that customer runs meanwhile and every effect is fenced.

use std::time::Duration;

use common::alias::alias_target;
use common::config::Config;
use common::graph::{Fence, GraphStore};
use common::ident::{Customer, SnapshotId};
use common::keys::Keys;
use common::lock::LockGuard;
use common::lock_wait::{wait_for_lock, LockWait};
use common::state::FleetState;

/// The customer's lock, store and fence for one operator command.
pub struct OperatorSession {
    /// The fleet's state in Redis.
    pub state: FleetState,
    /// The customer's graph store, with its lifecycle marks.
    pub store: Box<dyn GraphStore>,
    guard: LockGuard,
    /// The customer.
    pub customer: Customer,
}

impl OperatorSession {
    /// Connects Redis and the customer's graph target (with its lifecycle
    /// marks), waits up to `lock_wait_timeout` (at least 10 s) for the
    /// customer's lock and lifts its fencing token above the store's.
    pub async fn open(config: &Config, customer: &Customer) -> anyhow::Result<OperatorSession> {
        let redis = common::state::connect_config(config).await?;
        let state = FleetState::new(redis, Keys::new(&config.namespace));
        let targets = common::targets::Targets::from_config(config)?;
        let target = targets.for_customer(customer.as_str());
        let marks = common::graph::marks::RedisMarks::new(
            state.connection(),
            Keys::new(&config.namespace),
            &target.name,
        );
        let store =
            common::graph::connect_target_within(target, 2, config.connect_timeout(), Some(marks))
                .await?;
        store.ping().await?;
        let mut con = state.connection();
        let wait = LockWait {
            ttl: config.lock_ttl(),
            within: Duration::from_secs(config.lock_wait_timeout.max(10)),
            poll: Duration::from_millis(250),
        };
        let Some((mut guard, _)) = wait_for_lock(&mut con, state.keys(), customer, wait).await?
        else {
            anyhow::bail!("customer {customer} is locked by a running load; try again when it finishes (producer history --customer {customer})");
        };
        let floor = store.fence_seen(customer.as_str()).await?;
        if !guard.lift_above(&mut con, floor).await? {
            guard.release(&mut con).await.ok();
            anyhow::bail!("lost the lock of {customer}; try again");
        }
        Ok(OperatorSession {
            state,
            store,
            guard,
            customer: customer.clone(),
        })
    }

    /// The fence every effect of this command carries.
    pub fn fence(&self) -> Fence {
        Fence {
            customer: self.customer.to_string(),
            token: self.guard.fence,
        }
    }

    /// The customer's live snapshot (its alias target).
    pub async fn live(&self) -> anyhow::Result<Option<SnapshotId>> {
        Ok(alias_target(self.store.as_ref(), &self.customer).await?)
    }

    /// Why `snapshot` is held, as `code: message` lines.
    pub async fn reasons(&self, snapshot: SnapshotId) -> anyhow::Result<Vec<String>> {
        let held = self.state.held(&self.customer).await?;
        Ok(held
            .into_iter()
            .find(|(id, _)| *id == snapshot.get())
            .and_then(|(_, r)| r["reasons"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|r| match (r["code"].as_str(), r["message"].as_str()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                _ => r.to_string(),
            })
            .collect())
    }

    /// Frees the lock (if it is still ours).
    pub async fn close(self) {
        let mut con = self.state.connection();
        self.guard.release(&mut con).await.ok();
    }
}
