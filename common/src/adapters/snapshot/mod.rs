//! Snapshots on disk: where they live, when they are ready, what their files
//! say (neo4j-admin import headers) and how to read them as Arrow record
//! batches without holding a whole file in memory. The format is documented in
//! `docs/snapshot-format.md`.

pub mod header;
pub mod layout;
pub mod limits;
pub mod manifest;
pub mod options;
pub mod reader;
pub mod sample;
pub mod schema;

use thiserror::Error;

pub use header::{Column, NodeSpec, PropType, RelSpec};
pub use layout::{ReadySnapshot, READY_MARKER};

/// Why a snapshot cannot be read.
#[allow(missing_docs)] // each variant is described by its #[error] text
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("snapshot directory {0} does not exist")]
    Missing(String),
    #[error(
        "snapshot directory {0} is not ready: `_SUCCESS` is missing (the ETL job writes it last)"
    )]
    NotReady(String),
    #[error("snapshot path {0} resolves outside the data root, outside its customer's own directory or outside its snapshot directory (through `..` or a symlink)")]
    OutsideRoot(String),
    #[error("{file}: {message}")]
    Format { file: String, message: String },
    /// A snapshot id too far ahead of the clock (`max_future_seconds`).
    #[error("snapshot id {id} is {ahead} seconds ahead of this worker's clock, more than max_future_seconds = {max}; a snapshot id is the Unix time of the snapshot")]
    Future { id: u64, ahead: u64, max: u64 },
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Read { file: String, message: String },
}

impl SnapshotError {
    /// `NotReady` may resolve itself (the ETL job is still writing); every
    /// other snapshot error needs a new snapshot.
    pub fn is_transient(&self) -> bool {
        matches!(self, SnapshotError::NotReady(_))
    }

    /// A format error in `file`.
    pub fn format(file: &std::path::Path, message: impl Into<String>) -> Self {
        SnapshotError::Format {
            file: file.display().to_string(),
            message: message.into(),
        }
    }
}
