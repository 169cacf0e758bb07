//! Typed errors of the log.

use std::path::PathBuf;

/// Why the log refuses further commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoisonCause {
    /// A write failed (errno).
    Write(i32),
    /// An `fdatasync` failed (errno): the page-cache state is unknown, never retried.
    Sync(i32),
    /// Creating or preallocating a segment failed (errno).
    Roll(i32),
    /// The disk is full.
    StorageFull,
}

/// A range of committed records that can no longer be read intact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// Base offset of the segment holding the damage.
    pub segment_base: u64,
    /// Byte position of the damage in that segment.
    pub position: u64,
    /// First offset that cannot be served.
    pub first_offset: u64,
    /// Offset after the last one that cannot be served (may equal `first_offset`
    /// when only a commit marker or the chain is damaged).
    pub end_offset: u64,
    /// What was found.
    pub what: String,
}

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The configuration breaks a bound.
    #[error("invalid log configuration: {0}")]
    Config(String),
    /// An I/O call failed outside the commit path.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The record is larger than a batch can hold.
    #[error("record of {size_bytes} bytes exceeds the maximum of {size_bytes_max}")]
    TooLarge {
        /// Record size asked for.
        size_bytes: usize,
        /// The largest allowed.
        size_bytes_max: usize,
    },
    /// Every batch buffer is full or in flight; wait for a commit and retry.
    #[error("all batch buffers are in use")]
    Busy,
    /// The disk is full; nothing more is acknowledged until the log is reopened.
    #[error("storage full")]
    StorageFull,
    /// A write or fdatasync failed before; nothing more will be acknowledged.
    #[error("log poisoned by an earlier I/O failure: {0:?}")]
    Poisoned(PoisonCause),
    /// The log is closed.
    #[error("log closed")]
    Closed,
    /// On-disk state that recovery cannot repair without an operator.
    #[error("unrecoverable log state in {path}: {what}")]
    Unrecoverable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Another process has this log open.
    #[error("log directory {0} is locked by another process")]
    Locked(PathBuf),
}

impl LogError {
    /// An I/O error, or `StorageFull` when the OS says the disk or quota is full.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> LogError {
        if matches!(
            source.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT)
        ) {
            return LogError::StorageFull;
        }
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl From<&PoisonCause> for LogError {
    fn from(cause: &PoisonCause) -> LogError {
        match cause {
            PoisonCause::StorageFull => LogError::StorageFull,
            other => LogError::Poisoned(other.clone()),
        }
    }
}
