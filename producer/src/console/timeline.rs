//! A customer's snapshots from the audit trail: what happened to each, in
//! order, its counts and the difference against the snapshot that was live
//! before it. Pure: built from audit entries.

use std::collections::BTreeMap;

use common::state::AuditEntry;
use serde::Serialize;

/// One step of a snapshot's life.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// published, started, verified, switched, superseded, cancelled,
    /// parked, cleaned, failed, retried, rolled back, …
    pub what: String,
    pub at_ms: Option<i64>,
    /// The entry's other fields, `key=value`, sorted.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotRow {
    pub snapshot_id: u64,
    pub steps: Vec<Step>,
    pub nodes: Option<u64>,
    pub relationships: Option<u64>,
    pub seconds: Option<f64>,
    /// Went live (a switch or a rollback onto it).
    pub went_live: bool,
    /// Nodes and relationships minus those of the snapshot live before it.
    pub diff_nodes: Option<i64>,
    pub diff_relationships: Option<i64>,
}

/// The timeline's name of an audit event.
pub fn step_name(event: &str) -> &str {
    match event {
        "load_started" => "started",
        "load_finished" => "verified",
        "load_aborted" => "aborted",
        "cancel_requested" => "cancel requested",
        "rolled_back" => "rolled back to",
        "already_live" => "already live",
        "already_loaded" => "already loaded",
        other => other,
    }
}

/// Groups `entries` (oldest first) of one customer by snapshot, oldest
/// snapshot first.
pub fn build(entries: &[AuditEntry]) -> Vec<SnapshotRow> {
    let mut rows: BTreeMap<u64, SnapshotRow> = BTreeMap::new();
    for e in entries {
        let Some(id) = e.get("snapshot_id").and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        let row = rows.entry(id).or_insert_with(|| SnapshotRow {
            snapshot_id: id,
            steps: Vec::new(),
            nodes: None,
            relationships: None,
            seconds: None,
            went_live: false,
            diff_nodes: None,
            diff_relationships: None,
        });
        let event = e.get("event").unwrap_or("-");
        if event == "load_finished" {
            row.nodes = e.get("nodes").and_then(|v| v.parse().ok());
            row.relationships = e.get("relationships").and_then(|v| v.parse().ok());
            row.seconds = e.get("seconds").and_then(|v| v.parse().ok());
            if e.get("switched") == Some("true") {
                row.went_live = true;
            }
        }
        if matches!(event, "switched" | "rolled_back") {
            row.went_live = true;
        }
        let mut detail: Vec<String> = e
            .fields
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "event" | "at_ms" | "customer" | "snapshot_id" | "event_id"
                )
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        detail.sort();
        row.steps.push(Step {
            what: step_name(event).to_owned(),
            at_ms: e.get("at_ms").and_then(|v| v.parse().ok()),
            detail: detail.join(" "),
        });
    }
    let mut out: Vec<SnapshotRow> = rows.into_values().collect();
    // The difference against the newest older snapshot that went live.
    let mut live_before: Option<(u64, u64)> = None;
    for row in &mut out {
        if let (Some((n0, r0)), Some(n), Some(r)) = (live_before, row.nodes, row.relationships) {
            row.diff_nodes = Some(n as i64 - n0 as i64);
            row.diff_relationships = Some(r as i64 - r0 as i64);
        }
        if let (true, Some(n), Some(r)) = (row.went_live, row.nodes, row.relationships) {
            live_before = Some((n, r));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fields: &[(&str, &str)]) -> AuditEntry {
        AuditEntry {
            id: "0-0".into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn snapshots_in_order_with_steps_counts_and_diffs() {
        let entries = [
            entry(&[
                ("event", "published"),
                ("snapshot_id", "10"),
                ("at_ms", "1"),
            ]),
            entry(&[
                ("event", "load_started"),
                ("snapshot_id", "10"),
                ("database", "a-10"),
            ]),
            entry(&[
                ("event", "load_finished"),
                ("snapshot_id", "10"),
                ("nodes", "100"),
                ("relationships", "50"),
                ("seconds", "1.5"),
                ("switched", "true"),
            ]),
            entry(&[
                ("event", "load_finished"),
                ("snapshot_id", "20"),
                ("nodes", "90"),
                ("relationships", "70"),
                ("switched", "false"),
            ]),
            entry(&[
                ("event", "parked"),
                ("snapshot_id", "30"),
                ("reason", "snapshot_invalid"),
            ]),
            entry(&[("event", "cancel_requested")]),
        ];
        let rows = build(&entries);
        let ids: Vec<u64> = rows.iter().map(|r| r.snapshot_id).collect();
        assert_eq!(ids, [10, 20, 30]);
        let whats: Vec<&str> = rows[0].steps.iter().map(|s| s.what.as_str()).collect();
        assert_eq!(whats, ["published", "started", "verified"]);
        assert_eq!(rows[0].steps[1].detail, "database=a-10");
        assert!(rows[0].went_live && !rows[1].went_live);
        assert_eq!(
            (rows[0].diff_nodes, rows[0].diff_relationships),
            (None, None)
        );
        assert_eq!(
            (rows[1].diff_nodes, rows[1].diff_relationships),
            (Some(-10), Some(20))
        );
        assert_eq!(rows[2].nodes, None);
        assert_eq!(rows[2].steps[0].what, "parked");
    }
}
