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

/// Approving and rejecting held snapshots, behind a trait so the console's
/// unit tests can stand in for the graph store.
#[async_trait]
pub trait HeldGate: Send + Sync {
    /// The customer's held snapshots, oldest first: each its record (the
    /// database, `reasons` as `{code, message}`, `changed`, `held_at`)
    /// with `snapshot_id` added.
    async fn held(
        &self,
        state: &FleetState,
        customer: &Customer,
    ) -> anyhow::Result<Vec<serde_json::Value>>;
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
    async fn held(
        &self,
        state: &FleetState,
        customer: &Customer,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(state
            .held(customer)
            .await?
            .into_iter()
            .map(|(id, record)| held_value(id, record))
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

/// A held record as the console shows it: an object with `snapshot_id`
/// (a record that is not an object is kept under `record`).
pub fn held_value(id: u64, record: serde_json::Value) -> serde_json::Value {
    let mut v = match record {
        serde_json::Value::Object(m) => serde_json::Value::Object(m),
        other => serde_json::json!({ "record": other }),
    };
    v["snapshot_id"] = id.into();
    v
}

/// Why a snapshot is held, one line: `code: message; …` (a reason that is
/// not `{code, message}` is shown as its JSON).
pub fn reasons_text(held: &serde_json::Value) -> String {
    let Some(reasons) = held["reasons"].as_array() else {
        return "-".into();
    };
    let parts: Vec<String> = reasons
        .iter()
        .map(|r| match (r["code"].as_str(), r["message"].as_str()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.to_owned(),
            _ => super::html::plain(r),
        })
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

/// The approve/reject the console uses.
pub fn installed() -> Option<Arc<dyn HeldGate>> {
    Some(Arc::new(Gates))
}

/// Why approve/reject is refused when no gate is installed.
pub const NOT_AVAILABLE: &str =
    "this build has no held snapshots (approval gates are not part of it); nothing was changed";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasons_read_as_code_and_message() {
        let table = [
            (
                json!({"reasons": [{"code": "empty", "message": "the snapshot is empty"}]}),
                "empty: the snapshot is empty",
            ),
            (
                json!({"reasons": [{"code": "shrink", "message": "a"}, {"code": "check"}]}),
                "shrink: a; check",
            ),
            (json!({"reasons": ["legacy text"]}), "legacy text"),
            (json!({"reasons": []}), "-"),
            (json!({}), "-"),
        ];
        for (held, want) in table {
            assert_eq!(reasons_text(&held), want, "{held}");
        }
    }

    #[test]
    fn held_value_names_its_snapshot() {
        let v = held_value(7, json!({"database": "acme-7"}));
        assert_eq!(v, json!({"database": "acme-7", "snapshot_id": 7}));
        let v = held_value(8, json!("odd"));
        assert_eq!(v, json!({"record": "odd", "snapshot_id": 8}));
    }
}
