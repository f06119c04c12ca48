//! The vocabulary operators see: failure codes (the `x-snapswitch-reason`
//! header of a parked event, the `code` label of
//! `snapswitch_tasks_failed_total`, the `code` field of `failed` and
//! `retried` audit entries), hold codes (why a verified snapshot is held)
//! and audit event names (the `event` field of every
//! entry in `<ns>:audit`, what `producer history` and the console show).
//!
//! Each is an enum whose string form is the documented contract: a name
//! users already see never changes (the tests below pin every one); a new
//! outcome is a new variant, so a typo is a compile error, not a new series.

use std::fmt;

use crate::contract::event::EventError;
use crate::contract::ident::IdentError;

/// Why an attempt failed: a short stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureCode {
    /// The event body is larger than `max_event_bytes`.
    EventTooLarge,
    /// The event body is not JSON.
    EventNotJson,
    /// The event has no numeric `schema_version`.
    EventMissingVersion,
    /// The event's `schema_version` is not one this worker understands.
    EventUnsupportedVersion,
    /// The event does not match the schema.
    EventSchema,
    /// The event's customer is not a safe identifier.
    EventInvalidCustomer,
    /// The event's snapshot id is not a valid snapshot id.
    EventInvalidSnapshotId,
    /// The event's priority is out of range.
    EventInvalidPriority,
    /// The event's path is not the snapshot directory.
    EventInvalidPath,
    /// The snapshot has no `_SUCCESS` yet.
    SnapshotNotReady,
    /// The snapshot directory does not exist.
    SnapshotMissing,
    /// The snapshot resolves outside the data root.
    SnapshotOutsideRoot,
    /// The snapshot id lies more than `max_future_seconds` ahead.
    SnapshotIdInFuture,
    /// Reading the snapshot failed (I/O).
    SnapshotIo,
    /// The snapshot's files are malformed.
    SnapshotInvalid,
    /// The graph database does not answer.
    GraphUnavailable,
    /// The graph database refused a statement.
    GraphRefused,
    /// Redis does not answer.
    RedisUnavailable,
    /// The load was cancelled (shutdown or a lost slot).
    LoadCancelled,
    /// The loaded counts differ from the snapshot's.
    CountMismatch,
    /// Relationships point at nodes that do not exist.
    DanglingRelationships,
    /// A node id occurs twice in one ID space.
    DuplicateNodeId,
    /// The snapshot exceeds a limit of the graph store.
    StoreLimit,
    /// The customer's lock was lost; the work was abandoned.
    LockLost,
    /// The snapshot's files or loaded counts differ from its manifest.
    ManifestMismatch,
}

impl FailureCode {
    /// Every code, so metrics can expose each at 0 from the start.
    pub const ALL: [FailureCode; 25] = [
        FailureCode::EventTooLarge,
        FailureCode::EventNotJson,
        FailureCode::EventMissingVersion,
        FailureCode::EventUnsupportedVersion,
        FailureCode::EventSchema,
        FailureCode::EventInvalidCustomer,
        FailureCode::EventInvalidSnapshotId,
        FailureCode::EventInvalidPriority,
        FailureCode::EventInvalidPath,
        FailureCode::SnapshotNotReady,
        FailureCode::SnapshotMissing,
        FailureCode::SnapshotOutsideRoot,
        FailureCode::SnapshotIdInFuture,
        FailureCode::SnapshotIo,
        FailureCode::SnapshotInvalid,
        FailureCode::GraphUnavailable,
        FailureCode::GraphRefused,
        FailureCode::RedisUnavailable,
        FailureCode::LoadCancelled,
        FailureCode::CountMismatch,
        FailureCode::DanglingRelationships,
        FailureCode::DuplicateNodeId,
        FailureCode::StoreLimit,
        FailureCode::LockLost,
        FailureCode::ManifestMismatch,
    ];

    /// The code as operators see it.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::EventTooLarge => "event_too_large",
            FailureCode::EventNotJson => "event_not_json",
            FailureCode::EventMissingVersion => "event_missing_version",
            FailureCode::EventUnsupportedVersion => "event_unsupported_version",
            FailureCode::EventSchema => "event_schema",
            FailureCode::EventInvalidCustomer => "event_invalid_customer",
            FailureCode::EventInvalidSnapshotId => "event_invalid_snapshot_id",
            FailureCode::EventInvalidPriority => "event_invalid_priority",
            FailureCode::EventInvalidPath => "event_invalid_path",
            FailureCode::SnapshotNotReady => "snapshot_not_ready",
            FailureCode::SnapshotMissing => "snapshot_missing",
            FailureCode::SnapshotOutsideRoot => "snapshot_outside_root",
            FailureCode::SnapshotIdInFuture => "snapshot_id_in_future",
            FailureCode::SnapshotIo => "snapshot_io",
            FailureCode::SnapshotInvalid => "snapshot_invalid",
            FailureCode::GraphUnavailable => "graph_unavailable",
            FailureCode::GraphRefused => "graph_refused",
            FailureCode::RedisUnavailable => "redis_unavailable",
            FailureCode::LoadCancelled => "load_cancelled",
            FailureCode::CountMismatch => "count_mismatch",
            FailureCode::DanglingRelationships => "dangling_relationships",
            FailureCode::DuplicateNodeId => "duplicate_node_id",
            FailureCode::StoreLimit => "store_limit",
            FailureCode::LockLost => "lock_lost",
            FailureCode::ManifestMismatch => "manifest_mismatch",
        }
    }

    /// The code of an event that cannot be decoded (the same names as
    /// [`EventError::code`]).
    pub fn of_event(e: &EventError) -> FailureCode {
        match e {
            EventError::TooLarge { .. } => FailureCode::EventTooLarge,
            EventError::NotJson(_) => FailureCode::EventNotJson,
            EventError::MissingVersion => FailureCode::EventMissingVersion,
            EventError::UnsupportedVersion(_) => FailureCode::EventUnsupportedVersion,
            EventError::Schema(_) => FailureCode::EventSchema,
            EventError::Ident(IdentError::Customer { .. }) => FailureCode::EventInvalidCustomer,
            EventError::Ident(_) => FailureCode::EventInvalidSnapshotId,
            EventError::Priority(_) => FailureCode::EventInvalidPriority,
            EventError::Path { .. } => FailureCode::EventInvalidPath,
        }
    }

    /// A dependency (the graph database or Redis) did not answer: the
    /// failure may not be the event's fault (circuit breaker, dependency wait).
    pub fn is_unavailable(self) -> bool {
        matches!(
            self,
            FailureCode::GraphUnavailable | FailureCode::RedisUnavailable
        )
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an audit entry records (its `event` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditEvent {
    /// The producer published a snapshot's event.
    Published,
    /// A worker started loading a snapshot into a new database.
    LoadStarted,
    /// A load was aborted and its partial database dropped.
    LoadAborted,
    /// A snapshot was loaded, verified (and switched when newest).
    LoadFinished,
    /// The alias moved onto a new database.
    Switched,
    /// An alias left behind on an older verified database moved forward.
    Repaired,
    /// Old databases were dropped.
    Cleaned,
    /// A redelivered snapshot is already live.
    AlreadyLive,
    /// A redelivered snapshot is already loaded.
    AlreadyLoaded,
    /// A redelivered snapshot is held (it stays held).
    AlreadyHeld,
    /// A newer snapshot was seen; this one was not loaded.
    Superseded,
    /// A guard or a check held a loaded snapshot.
    Held,
    /// The health gate refused a load (requeued).
    HealthRefused,
    /// No load slot came free in time (requeued).
    SlotBusy,
    /// An attempt failed.
    Failed,
    /// A failed attempt will be retried.
    Retried,
    /// An event was parked in the dead-letter queue.
    Parked,
    /// An operator asked to cancel a snapshot.
    CancelRequested,
    /// A snapshot was cancelled (before or during its load).
    Cancelled,
    /// An operator approved a held snapshot.
    Approved,
    /// An operator rejected a held snapshot.
    Rejected,
    /// An operator rolled a customer back.
    RolledBack,
    /// An operator acted in the console.
    OperatorAction,
    /// Reconciliation dropped a leftover database.
    ReconciledDrop,
    /// Reconciliation fixed a database's lifecycle state.
    ReconciledState,
    /// Reconciliation moved an alias.
    ReconciledSwitch,
    /// Reconciliation found an alias on no customer's database.
    StrayAlias,
}

impl AuditEvent {
    /// Every audit event.
    pub const ALL: [AuditEvent; 27] = [
        AuditEvent::Published,
        AuditEvent::LoadStarted,
        AuditEvent::LoadAborted,
        AuditEvent::LoadFinished,
        AuditEvent::Switched,
        AuditEvent::Repaired,
        AuditEvent::Cleaned,
        AuditEvent::AlreadyLive,
        AuditEvent::AlreadyLoaded,
        AuditEvent::AlreadyHeld,
        AuditEvent::Superseded,
        AuditEvent::Held,
        AuditEvent::HealthRefused,
        AuditEvent::SlotBusy,
        AuditEvent::Failed,
        AuditEvent::Retried,
        AuditEvent::Parked,
        AuditEvent::CancelRequested,
        AuditEvent::Cancelled,
        AuditEvent::Approved,
        AuditEvent::Rejected,
        AuditEvent::RolledBack,
        AuditEvent::OperatorAction,
        AuditEvent::ReconciledDrop,
        AuditEvent::ReconciledState,
        AuditEvent::ReconciledSwitch,
        AuditEvent::StrayAlias,
    ];

    /// The name in the audit entry's `event` field.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::Published => "published",
            AuditEvent::LoadStarted => "load_started",
            AuditEvent::LoadAborted => "load_aborted",
            AuditEvent::LoadFinished => "load_finished",
            AuditEvent::Switched => "switched",
            AuditEvent::Repaired => "repaired",
            AuditEvent::Cleaned => "cleaned",
            AuditEvent::AlreadyLive => "already_live",
            AuditEvent::AlreadyLoaded => "already_loaded",
            AuditEvent::AlreadyHeld => "already_held",
            AuditEvent::Superseded => "superseded",
            AuditEvent::Held => "held",
            AuditEvent::HealthRefused => "health_refused",
            AuditEvent::SlotBusy => "slot_busy",
            AuditEvent::Failed => "failed",
            AuditEvent::Retried => "retried",
            AuditEvent::Parked => "parked",
            AuditEvent::CancelRequested => "cancel_requested",
            AuditEvent::Cancelled => "cancelled",
            AuditEvent::Approved => "approved",
            AuditEvent::Rejected => "rejected",
            AuditEvent::RolledBack => "rolled_back",
            AuditEvent::OperatorAction => "operator_action",
            AuditEvent::ReconciledDrop => "reconciled_drop",
            AuditEvent::ReconciledState => "reconciled_state",
            AuditEvent::ReconciledSwitch => "reconciled_switch",
            AuditEvent::StrayAlias => "stray_alias",
        }
    }
}

impl fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a loaded, verified snapshot is held instead of going live: the
/// `held` metric's `reason` label, the `reason` field of `held` audit
/// entries and the `code` of each reason in the customer's held record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HoldCode {
    /// The snapshot is empty and the live graph is not.
    Empty,
    /// A label or type shrank more than `max_shrink_percent`.
    Shrink,
    /// A label or type grew more than `max_growth_percent`.
    Growth,
    /// A `[[checks]]` query failed, could not run or returned false.
    Check,
}

impl HoldCode {
    /// Every hold code, so the metric can expose each at 0 from the start.
    pub const ALL: [HoldCode; 4] = [
        HoldCode::Empty,
        HoldCode::Shrink,
        HoldCode::Growth,
        HoldCode::Check,
    ];

    /// The code as operators see it.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldCode::Empty => "empty",
            HoldCode::Shrink => "shrink",
            HoldCode::Growth => "growth",
            HoldCode::Check => "check",
        }
    }
}

impl fmt::Display for HoldCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for HoldCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names operators, dashboards and alert rules already use.
    #[test]
    fn failure_codes_keep_their_documented_names() {
        let names: Vec<&str> = FailureCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "event_too_large",
                "event_not_json",
                "event_missing_version",
                "event_unsupported_version",
                "event_schema",
                "event_invalid_customer",
                "event_invalid_snapshot_id",
                "event_invalid_priority",
                "event_invalid_path",
                "snapshot_not_ready",
                "snapshot_missing",
                "snapshot_outside_root",
                "snapshot_id_in_future",
                "snapshot_io",
                "snapshot_invalid",
                "graph_unavailable",
                "graph_refused",
                "redis_unavailable",
                "load_cancelled",
                "count_mismatch",
                "dangling_relationships",
                "duplicate_node_id",
                "store_limit",
                "lock_lost",
                "manifest_mismatch",
            ]
        );
    }

    #[test]
    fn event_failure_codes_are_the_events_own() {
        let errors = [
            EventError::TooLarge { size: 2, max: 1 },
            EventError::NotJson("x".into()),
            EventError::MissingVersion,
            EventError::UnsupportedVersion(9),
            EventError::Schema("x".into()),
            EventError::Ident(IdentError::Customer {
                name: "../x".into(),
                why: "x",
            }),
            EventError::Priority(10),
            EventError::Path {
                path: "a".into(),
                expected: "b".into(),
            },
        ];
        for e in &errors {
            assert_eq!(FailureCode::of_event(e).as_str(), e.code(), "{e:?}");
        }
    }

    #[test]
    fn hold_codes_keep_their_documented_names() {
        let names: Vec<&str> = HoldCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["empty", "shrink", "growth", "check"]);
        assert_eq!(
            serde_json::to_string(&HoldCode::Shrink).unwrap(),
            "\"shrink\""
        );
    }

    #[test]
    fn audit_events_keep_their_documented_names() {
        let names: Vec<&str> = AuditEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            names,
            [
                "published",
                "load_started",
                "load_aborted",
                "load_finished",
                "switched",
                "repaired",
                "cleaned",
                "already_live",
                "already_loaded",
                "already_held",
                "superseded",
                "held",
                "health_refused",
                "slot_busy",
                "failed",
                "retried",
                "parked",
                "cancel_requested",
                "cancelled",
                "approved",
                "rejected",
                "rolled_back",
                "operator_action",
                "reconciled_drop",
                "reconciled_state",
                "reconciled_switch",
                "stray_alias",
            ]
        );
    }
}
