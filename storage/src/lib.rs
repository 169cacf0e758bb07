//! gonets storage: per-shard append-only segment logs.
//!
//! A [`Log`] is a directory of fixed-size, preallocated segment files. Records
//! are appended into batch buffers and committed in groups: one O_DIRECT
//! write and one `fdatasync` through glommio's io_uring cover every record of
//! a batch, and only then does [`Log::commit`] resolve. Reads are zero-copy
//! slices of the tail cache (the records of the most recent durable
//! batches, kept in memory) or of read-only memory maps, each record's CRC
//! checked before it is served. Recovery on open starts at the last checkpoint, cuts a torn tail
//! (proven never acknowledged), reports damage inside the durable part and
//! resynchronises past it, never deletes a file that may hold committed data
//! (a file proven empty is moved into `quarantine/`), and [`repair`] records
//! damage an operator accepts. The byte format, the recovery rules and the
//! crash analysis are in `docs/storage.md`. [`index_run`] holds the immutable
//! sorted key-to-offset files the history archive indexes its log with;
//! [`verify`] walks a log read-only and checks every record, marker and
//! the hash chain (`gonets verify`). [`attachment`] is the store of large
//! message attachments (chunked, resumable uploads made content-addressed
//! blobs), in its own files beside the logs. [`durable_file`] writes the
//! small files outside the logs (the server's, the attachment store's
//! meta files) durably: temporary name, sync, rename, directory sync.

/// Runs its statements only in builds with the test-only `failpoints` feature.
macro_rules! journal {
    ($($t:tt)*) => {
        #[cfg(feature = "failpoints")]
        {
            $($t)*
        }
    };
}

pub mod attachment;
mod checkpoint;
pub mod commit_stats;
mod config;
mod durable_batch;
pub mod durable_file;
mod error;
mod flusher;
pub mod frame;
mod index;
pub mod index_run;
#[cfg(feature = "failpoints")]
pub mod journal;
mod log;
pub mod marker;
mod prewrite;
mod read;
mod recovery;
mod repair;
mod reserve;
pub mod scan;
pub mod segment;
mod tail;
pub mod verify;

pub use attachment::{
    AttachmentError, AttachmentLimits, AttachmentStore, BlobInfo, BlobReader, SweepReport,
    UploadId, UploadState, WriteGate, CHUNK_BYTES_MAX_DEFAULT, WRITEBACK_PIECE_BYTES,
};
pub use checkpoint::{Checkpoint, CHECKPOINT_FILE};
pub use config::{
    DsyncWrites, Durability, LogConfig, READAHEAD_BYTES_MAX, RECENT_BYTES_MAX,
    RESERVE_RETRY_MS_MAX, RESERVE_RETRY_MS_MIN, RESERVE_SEGMENTS_MAX,
};
pub use error::{Corruption, LogError, PoisonCause};
pub use log::{Commit, Log, LogStats, WrittenBytes};
pub use read::{LogIter, RecordRef, Slot};
pub use recovery::{Quarantined, RecoveryReport, TornTail};
pub use repair::{repair, RepairReport, ACCEPTED_DAMAGE_FILE, QUARANTINE_DIR, REPAIR_REPORT_FILE};
pub use reserve::{RESERVE_FILE, ZERO_FILL_CHUNK_BYTES};
