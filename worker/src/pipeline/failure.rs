//! A failed attempt, classified: its class (transient or permanent) decides
//! retry or park, its code is the stable name operators and dashboards see.

use common::graph::GraphError;
use common::load::LoadError;
use common::snapshot::SnapshotError;
use common::state::StateError;

use common::vocab::FailureCode;

use crate::decide::ErrorClass;

/// A failed attempt, classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Retry or park.
    pub class: ErrorClass,
    /// Short stable code for the `x-snapswitch-reason` header.
    pub code: FailureCode,
    /// What failed, for people (the parking header, the audit entry).
    pub message: String,
}

impl Failure {
    /// A failure of `class` with its stable `code` and a message for people.
    pub fn new(class: ErrorClass, code: FailureCode, message: impl Into<String>) -> Self {
        Failure {
            class,
            code,
            message: message.into(),
        }
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Self {
        Failure::new(
            ErrorClass::Transient,
            FailureCode::RedisUnavailable,
            e.to_string(),
        )
    }
}

impl From<redis::RedisError> for Failure {
    fn from(e: redis::RedisError) -> Self {
        Failure::new(
            ErrorClass::Transient,
            FailureCode::RedisUnavailable,
            e.to_string(),
        )
    }
}

impl From<GraphError> for Failure {
    fn from(e: GraphError) -> Self {
        if e.is_fenced() {
            return Failure::new(ErrorClass::Transient, FailureCode::LockLost, e.to_string());
        }
        let class = if e.is_transient() {
            ErrorClass::Transient
        } else {
            ErrorClass::Permanent
        };
        let code = if e.is_transient() {
            FailureCode::GraphUnavailable
        } else {
            FailureCode::GraphRefused
        };
        Failure::new(class, code, e.to_string())
    }
}

impl From<SnapshotError> for Failure {
    fn from(e: SnapshotError) -> Self {
        let (class, code) = match &e {
            SnapshotError::NotReady(_) => (ErrorClass::Transient, FailureCode::SnapshotNotReady),
            SnapshotError::Missing(_) => (ErrorClass::Permanent, FailureCode::SnapshotMissing),
            SnapshotError::OutsideRoot(_) => {
                (ErrorClass::Permanent, FailureCode::SnapshotOutsideRoot)
            }
            SnapshotError::Future { .. } => {
                (ErrorClass::Permanent, FailureCode::SnapshotIdInFuture)
            }
            SnapshotError::Io { .. } => (ErrorClass::Transient, FailureCode::SnapshotIo),
            SnapshotError::Format { .. } | SnapshotError::Read { .. } => {
                (ErrorClass::Permanent, FailureCode::SnapshotInvalid)
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
            LoadError::Cancelled => Failure::new(
                ErrorClass::Transient,
                FailureCode::LoadCancelled,
                "load cancelled",
            ),
            LoadError::Mismatch(m) => {
                Failure::new(ErrorClass::Permanent, FailureCode::CountMismatch, m)
            }
            e @ LoadError::Dangling { .. } => Failure::new(
                ErrorClass::Permanent,
                FailureCode::DanglingRelationships,
                e.to_string(),
            ),
            e @ LoadError::DuplicateNodeId { .. } => Failure::new(
                ErrorClass::Permanent,
                FailureCode::DuplicateNodeId,
                e.to_string(),
            ),
            LoadError::StoreLimit(m) => {
                Failure::new(ErrorClass::Permanent, FailureCode::StoreLimit, m)
            }
        }
    }
}
