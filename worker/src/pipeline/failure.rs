//! A failed attempt, classified: its class (transient or permanent) decides
//! retry or park, its code is the stable name operators and dashboards see.

use common::graph::GraphError;
use common::load::LoadError;
use common::snapshot::SnapshotError;
use common::state::StateError;

use crate::decide::ErrorClass;

/// Every failure code a worker can report (event codes from
/// `EventError::code`, then the pipeline's own), so metrics can expose each
/// at 0 from the start.
pub const FAILURE_CODES: [&str; 22] = [
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
    "snapshot_io",
    "snapshot_invalid",
    "graph_unavailable",
    "graph_refused",
    "redis_unavailable",
    "load_cancelled",
    "count_mismatch",
    "dangling_relationships",
    "lock_lost",
    "manifest_mismatch",
];

/// A failed attempt, classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub class: ErrorClass,
    /// Short stable code for the `x-snapswitch-reason` header.
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    /// A failure of `class` with its stable `code` and a message for people.
    pub fn new(class: ErrorClass, code: &'static str, message: impl Into<String>) -> Self {
        Failure {
            class,
            code,
            message: message.into(),
        }
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        Failure::new(ErrorClass::Transient, "redis_unavailable", e.to_string())
    }
}

impl From<redis::RedisError> for Failure {
    fn from(e: redis::RedisError) -> Self {
        Failure::new(ErrorClass::Transient, "redis_unavailable", e.to_string())
    }
}

impl From<GraphError> for Failure {
    fn from(e: GraphError) -> Self {
        if e.is_fenced() {
            return Failure::new(ErrorClass::Transient, "lock_lost", e.to_string());
        }
        let class = if e.is_transient() {
            ErrorClass::Transient
        } else {
            ErrorClass::Permanent
        };
        let code = if e.is_transient() {
            "graph_unavailable"
        } else {
            "graph_refused"
        };
        Failure::new(class, code, e.to_string())
    }
}

impl From<SnapshotError> for Failure {
    fn from(e: SnapshotError) -> Self {
        let (class, code) = match &e {
            SnapshotError::NotReady(_) => (ErrorClass::Transient, "snapshot_not_ready"),
            SnapshotError::Missing(_) => (ErrorClass::Permanent, "snapshot_missing"),
            SnapshotError::OutsideRoot(_) => (ErrorClass::Permanent, "snapshot_outside_root"),
            SnapshotError::Future { .. } => (ErrorClass::Permanent, "snapshot_id_in_future"),
            SnapshotError::Io { .. } => (ErrorClass::Transient, "snapshot_io"),
            SnapshotError::Format { .. } | SnapshotError::Read { .. } => {
                (ErrorClass::Permanent, "snapshot_invalid")
            }
        };
        Failure::new(class, code, e.to_string())
    }
}

impl From<LoadError> for Failure {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Snapshot(e) => e.into(),
            LoadError::Graph(e) => e.into(),
            LoadError::Cancelled => {
                Failure::new(ErrorClass::Transient, "load_cancelled", "load cancelled")
            }
            LoadError::Mismatch(m) => Failure::new(ErrorClass::Permanent, "count_mismatch", m),
            e @ LoadError::Dangling { .. } => Failure::new(
                ErrorClass::Permanent,
                "dangling_relationships",
                e.to_string(),
            ),
            e @ LoadError::DuplicateNodeId { .. } => {
                Failure::new(ErrorClass::Permanent, "duplicate_node_id", e.to_string())
            }
            LoadError::StoreLimit(m) => Failure::new(ErrorClass::Permanent, "store_limit", m),
        }
    }
}
