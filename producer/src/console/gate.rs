//! Held snapshots (loaded and verified, kept, not live: a guard or a
//! check stopped them) and their approve/reject, through the same
//! functions as `producer approve` / `producer reject`
//! (`crate::approve`): fenced, under the customer's lock, audited there.
//! The console audits the operator's action itself as well.

use std::sync::Arc;

use async_trait::async_trait;
use common::config::Config;
use common::ident::{Customer, SnapshotId};
use common::state::FleetState;

#[async_trait]
pub trait HeldGate: Send + Sync {
    /// The customer's held snapshots.
    async fn held(&self, state: &FleetState, customer: &Customer) -> anyhow::Result<Vec<u64>>;
    /// Switches the held snapshot live; returns what it did.
    async fn approve(
        &self,
        config: &Config,
        customer: &Customer,
        snapshot: SnapshotId,
        operator: &str,
    ) -> anyhow::Result<String>;
    /// Drops the held snapshot; returns what it did.
    async fn reject(
        &self,
        config: &Config,
        customer: &Customer,
        snapshot: SnapshotId,
        operator: &str,
    ) -> anyhow::Result<String>;
}

/// Approve/reject over `crate::approve`.
struct Gates;

#[async_trait]
impl HeldGate for Gates {
    async fn held(&self, state: &FleetState, customer: &Customer) -> anyhow::Result<Vec<u64>> {
        Ok(state
            .held(customer)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    async fn approve(
        &self,
        config: &Config,
        customer: &Customer,
        snapshot: SnapshotId,
        _operator: &str,
    ) -> anyhow::Result<String> {
        let d = crate::approve::approve(config, customer.as_str(), snapshot.get()).await?;
        Ok(format!(
            "approved {}/{}: the alias points to {}",
            d.customer, d.snapshot_id, d.database
        ))
    }

    async fn reject(
        &self,
        config: &Config,
        customer: &Customer,
        snapshot: SnapshotId,
        _operator: &str,
    ) -> anyhow::Result<String> {
        let d = crate::approve::reject(config, customer.as_str(), snapshot.get()).await?;
        Ok(format!(
            "rejected {}/{}: database {} dropped",
            d.customer, d.snapshot_id, d.database
        ))
    }
}

/// The approve/reject the console uses.
pub fn installed() -> Option<Arc<dyn HeldGate>> {
    Some(Arc::new(Gates))
}

/// Why approve/reject is refused when no gate is installed.
pub const NOT_AVAILABLE: &str =
    "this build has no held snapshots (approval gates are not part of it); nothing was changed";
