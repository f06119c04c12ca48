//! Held snapshots (a snapshot loaded and verified but waiting for an
//! operator before its switch) and their approve/reject. This build has no
//! held state: [`installed`] returns `None`, the console shows no held
//! databases and refuses approve/reject saying so. When the held state
//! lands, implement [`HeldGate`] over its functions and return it from
//! [`installed`] (one line), along these lines:
//!
//! ```text
//! struct Gates;
//! #[async_trait]
//! impl HeldGate for Gates {
//!     async fn held(&self, state: &FleetState, c: &Customer) -> anyhow::Result<Vec<u64>> {
//!         Ok(state.held(c).await?.into_iter().map(|(id, _)| id).collect())
//!     }
//!     async fn approve(&self, config: &Config, c: &Customer, s: SnapshotId, _op: &str) -> anyhow::Result<String> {
//!         let d = crate::approve::approve(config, c.as_str(), s.get()).await?;
//!         Ok(format!("approved {}/{}: the alias points to {}", d.customer, d.snapshot_id, d.database))
//!     }
//!     async fn reject(...) { /* crate::approve::reject, the same way */ }
//! }
//! pub fn installed() -> Option<Arc<dyn HeldGate>> { Some(Arc::new(Gates)) }
//! ```

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

/// The approve/reject this build has: none yet.
pub fn installed() -> Option<Arc<dyn HeldGate>> {
    None
}

/// Why approve/reject is refused in this build.
pub const NOT_AVAILABLE: &str =
    "this build has no held snapshots (approval gates are not part of it); nothing was changed";
