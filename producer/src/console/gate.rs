//! Held snapshots (a snapshot loaded and verified but waiting for an
//! operator before its switch) and their approve/reject. This build has no
//! held state: [`installed`] returns `None`, the console shows no held
//! databases and refuses approve/reject saying so. When the held state
//! lands, implement [`HeldGate`] over its approve/reject functions and
//! return it from [`installed`] (one line).

use std::sync::Arc;

use async_trait::async_trait;
use common::config::Config;
use common::ident::{Customer, SnapshotId};

#[async_trait]
pub trait HeldGate: Send + Sync {
    /// The customer's held snapshots.
    async fn held(&self, customer: &Customer) -> anyhow::Result<Vec<u64>>;
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
