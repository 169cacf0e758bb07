//! Settings of a log, with bounds checked once at open.

use crate::error::LogError;
use crate::frame::HEADER_SIZE_BYTES;
use crate::marker::{marker_size_bytes, sector_count, BLOCK_SIZE_BYTES};
use crate::segment::SEGMENT_HEADER_BYTES;

/// When an append counts as committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// A commit resolves after the batch is written and covered by `fdatasync`.
    /// Survives power loss.
    Fdatasync,
    /// A commit resolves when the batch's write completes, through the
    /// segment opened `O_DSYNC`: the write returns once its data and the
    /// metadata to read it back are on stable storage, as a write followed
    /// by `fdatasync` would. Survives power loss. One write in flight, and
    /// one I/O (not two) on each commit's path (ADR 0027). The default.
    Dsync,
    /// A commit resolves after the batch write completes, with no `fdatasync`:
    /// survives a process crash but **not** a power loss or kernel crash.
    /// For benchmarks that compare with peers run this way; never the default.
    None,
}

/// Where a [`Durability::Dsync`] batch write is submitted (ADR 0028).
///
/// Inline, the owner's thread submits the write and the kernel tries it at
/// once; on a device without FUA the kernel then makes it durable with a
/// cache flush from a work item queued on the same core, which waits there
/// while the owner's thread keeps the core busy. Handed to one of the
/// ring's io-wq workers (`IOSQE_ASYNC`), the write and its flush run in the
/// worker, at the cost of one more hand-off a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DsyncWrites {
    /// Always from the owner's thread.
    Inline,
    /// Always through an io-wq worker.
    Worker,
    /// Through a worker while the owner says its core is contended
    /// ([`crate::Log::set_contended`]), inline otherwise. The default:
    /// measured on the project VM, the worker shortened rt calls beside
    /// bulk, while always using it cost bulk alone ~7 %, which this keeps
    /// inline (bench/RESULTS.md).
    WhileContended,
}

impl DsyncWrites {
    /// The setting a configuration name stands for: `auto`, `worker`,
    /// `inline` (`[commit] dsync_writes`); `None` for any other.
    pub fn from_name(name: &str) -> Option<DsyncWrites> {
        match name {
            "auto" => Some(DsyncWrites::WhileContended),
            "worker" => Some(DsyncWrites::Worker),
            "inline" => Some(DsyncWrites::Inline),
            _ => None,
        }
    }
}

/// Settings of a log.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Size of each segment file; a multiple of 4 KiB. Production default 64 MiB
    /// (ADR 0002: larger preallocated files hit a slow ext4 path).
    pub segment_size_bytes: u64,
    /// Largest batch (records + commit marker), and so the largest record; a multiple of 4 KiB.
    pub batch_bytes_max: usize,
    /// Batch buffers that may exist at once (filling plus waiting plus in flight); at least 2.
    pub batch_buffers_max: usize,
    /// After a commit is asked for, wait this long for more appends before writing (0: write at once).
    pub commit_window_us: u64,
    /// Write without waiting for the window once this many bytes are pending.
    pub commit_window_bytes: usize,
    /// What a commit waits for.
    pub durability: Durability,
    /// With [`Durability::Dsync`]: where each batch write is submitted
    /// (ADR 0028). Default [`DsyncWrites::WhileContended`].
    pub dsync_writes: DsyncWrites,
    /// Write a checkpoint after this many bytes were committed since the last one;
    /// bounds recovery time.
    pub checkpoint_interval_bytes: u64,
    /// Distance between entries of the sparse offset index.
    pub index_interval_bytes: usize,
    /// How far ahead of the write position the active segment is overwritten
    /// with zeros in the background (0: never). Batches then land on blocks
    /// the file system already counts as written, so their sync has no
    /// extent conversion (ADR 0001). Costs one extra write of each block.
    pub prewrite_ahead_bytes: u64,
    /// Zero writes start only while batches have been taken for writing
    /// at least this far apart, smoothed, µs (0: whenever the flusher is
    /// idle). Measured (ADR 0037): with commits back to back, zeros in
    /// their short gaps slowed every commit (rt 10,000 calls/s: p50 0.70
    /// against 0.46 ms without); with commits ~1 ms apart they help.
    pub prewrite_batch_interval_us_min: u64,
    /// Size of one background zero write; a multiple of 4 KiB.
    pub prewrite_chunk_bytes: usize,
    /// Disk space held back for this log, in segments (0 to
    /// [`RESERVE_SEGMENTS_MAX`]; 0: none): a preallocated file named
    /// `reserve` in the log directory. When a segment roll finds the disk
    /// full, the log removes it and rolls into the freed space, so nothing
    /// pending fails; it is then *space low* ([`crate::Log::space_low`])
    /// until the reserve can be made again. See `docs/storage.md` §11.
    pub reserve_segments: u32,
    /// How often a log whose reserve is gone tries to make it again, ms
    /// ([`RESERVE_RETRY_MS_MIN`] to [`RESERVE_RETRY_MS_MAX`]). One try is a
    /// `statvfs` and, only when enough space is free, one preallocation.
    pub reserve_retry_ms: u64,
    /// Bytes of the most recent durable batches kept in memory (the tail
    /// cache), so reads of fresh records touch neither the segment map nor
    /// the disk; oldest batch dropped first. 0: off (every read through the
    /// map); else from `batch_bytes_max` to [`RECENT_BYTES_MAX`]. Default 64 MiB.
    /// See `docs/storage.md` §13.
    pub recent_bytes_max: usize,
    /// How far ahead of a read from a segment map (a record not in the tail
    /// cache, e.g. a backlog's head) the kernel is asked to read in the
    /// background (`madvise(MADV_WILLNEED)`, once per half of this); 0: never.
    /// A multiple of 4 KiB up to [`READAHEAD_BYTES_MAX`]. Default 1 MiB.
    pub readahead_bytes: usize,
}

/// The largest read-ahead a log may ask for.
pub const READAHEAD_BYTES_MAX: usize = 64 << 20;

/// The largest tail cache a log may keep.
pub const RECENT_BYTES_MAX: usize = 16 << 30;

/// The most segments a log's disk reserve may hold.
pub const RESERVE_SEGMENTS_MAX: u32 = 16;
/// The shortest interval between tries to remake a used reserve, ms.
pub const RESERVE_RETRY_MS_MIN: u64 = 10;
/// The longest interval between tries to remake a used reserve, ms.
pub const RESERVE_RETRY_MS_MAX: u64 = 3_600_000;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_size_bytes: 64 << 20,
            batch_bytes_max: 1 << 20,
            batch_buffers_max: 8,
            commit_window_us: 0,
            commit_window_bytes: 256 << 10,
            // ADR 0027: one I/O a commit; measured faster beside bulk.
            durability: Durability::Dsync,
            // ADR 0028: in a worker while the owner's core is contended.
            dsync_writes: DsyncWrites::WhileContended,
            checkpoint_interval_bytes: 64 << 20,
            index_interval_bytes: 64 << 10,
            prewrite_ahead_bytes: 32 << 20,
            prewrite_chunk_bytes: 1 << 20,
            // ADR 0037: above ~1,700 commits a second the zeros cost more
            // commit time than the conversions they save.
            prewrite_batch_interval_us_min: 600,
            reserve_segments: 1,
            reserve_retry_ms: 1_000,
            recent_bytes_max: 64 << 20,
            readahead_bytes: 1 << 20,
        }
    }
}

impl LogConfig {
    /// A small configuration for tests: 256 KiB segments, 32 KiB batches.
    pub fn small_for_tests() -> Self {
        LogConfig {
            segment_size_bytes: 256 << 10,
            batch_bytes_max: 32 << 10,
            batch_buffers_max: 4,
            commit_window_bytes: 16 << 10,
            checkpoint_interval_bytes: 1 << 20,
            index_interval_bytes: 8 << 10,
            prewrite_ahead_bytes: 64 << 10,
            prewrite_chunk_bytes: 16 << 10,
            reserve_retry_ms: 50,
            recent_bytes_max: 128 << 10,
            ..LogConfig::default()
        }
    }

    /// Bytes of the disk reserve (`reserve_segments` segments).
    pub fn reserve_bytes(&self) -> u64 {
        u64::from(self.reserve_segments) * self.segment_size_bytes
    }

    /// The largest marker a full batch needs.
    pub(crate) fn marker_reserve_bytes(&self) -> usize {
        marker_size_bytes(sector_count(self.batch_bytes_max))
    }

    /// The largest payload one record may carry.
    pub fn payload_bytes_max(&self) -> usize {
        self.batch_bytes_max - self.marker_reserve_bytes() - HEADER_SIZE_BYTES
    }

    /// Checks every bound; an error names the broken one.
    pub fn validate(&self) -> Result<(), LogError> {
        let fail = |s: String| Err(LogError::Config(s));
        let block = BLOCK_SIZE_BYTES;
        if !self.batch_bytes_max.is_multiple_of(block) || self.batch_bytes_max < 2 * block {
            return fail(format!(
                "batch_bytes_max {} must be a multiple of {block} and at least {}",
                self.batch_bytes_max,
                2 * block
            ));
        }
        if self.batch_bytes_max > 64 << 20 {
            return fail(format!(
                "batch_bytes_max {} exceeds 64 MiB",
                self.batch_bytes_max
            ));
        }
        if !self.segment_size_bytes.is_multiple_of(block as u64)
            || self.segment_size_bytes < (SEGMENT_HEADER_BYTES + self.batch_bytes_max) as u64
            || self.segment_size_bytes > u32::MAX as u64
        {
            return fail(format!(
                "segment_size_bytes {} must be a multiple of {block}, hold a header and a full batch ({}), and be below 4 GiB",
                self.segment_size_bytes,
                SEGMENT_HEADER_BYTES + self.batch_bytes_max
            ));
        }
        if self.batch_buffers_max < 2 || self.batch_buffers_max > 1024 {
            return fail(format!(
                "batch_buffers_max {} must be between 2 and 1024",
                self.batch_buffers_max
            ));
        }
        if self.commit_window_us > 1_000_000 {
            return fail(format!(
                "commit_window_us {} exceeds one second",
                self.commit_window_us
            ));
        }
        if self.prewrite_batch_interval_us_min > crate::log::BATCH_INTERVAL_US_MAX {
            return fail(format!(
                "prewrite_batch_interval_us_min {} exceeds {} (what an idle log reads as)",
                self.prewrite_batch_interval_us_min,
                crate::log::BATCH_INTERVAL_US_MAX
            ));
        }
        if self.index_interval_bytes == 0 {
            return fail("index_interval_bytes must be positive".into());
        }
        if !self.prewrite_chunk_bytes.is_multiple_of(block)
            || self.prewrite_chunk_bytes == 0
            || self.prewrite_chunk_bytes > 8 << 20
        {
            return fail(format!(
                "prewrite_chunk_bytes {} must be a positive multiple of {block} up to 8 MiB",
                self.prewrite_chunk_bytes
            ));
        }
        if self.reserve_segments > RESERVE_SEGMENTS_MAX {
            return fail(format!(
                "reserve_segments {} exceeds {RESERVE_SEGMENTS_MAX}",
                self.reserve_segments
            ));
        }
        if !(RESERVE_RETRY_MS_MIN..=RESERVE_RETRY_MS_MAX).contains(&self.reserve_retry_ms) {
            return fail(format!(
                "reserve_retry_ms {} must be between {RESERVE_RETRY_MS_MIN} and {RESERVE_RETRY_MS_MAX}",
                self.reserve_retry_ms
            ));
        }
        self.validate_recent()
    }

    fn validate_recent(&self) -> Result<(), LogError> {
        let r = self.readahead_bytes;
        if !r.is_multiple_of(BLOCK_SIZE_BYTES) || r > READAHEAD_BYTES_MAX {
            return Err(LogError::Config(format!(
                "readahead_bytes {r} must be a multiple of {BLOCK_SIZE_BYTES} up to {READAHEAD_BYTES_MAX}"
            )));
        }
        let n = self.recent_bytes_max;
        if n != 0 && !(self.batch_bytes_max..=RECENT_BYTES_MAX).contains(&n) {
            return Err(LogError::Config(format!(
                "recent_bytes_max {n} must be 0 (off) or between batch_bytes_max ({}) and {RECENT_BYTES_MAX}",
                self.batch_bytes_max
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_defaults_when_validated_then_ok() {
        LogConfig::default().validate().unwrap();
        LogConfig::small_for_tests().validate().unwrap();
    }

    #[test]
    fn given_segment_smaller_than_batch_when_validated_then_config_error() {
        let c = LogConfig {
            segment_size_bytes: 8192,
            ..LogConfig::small_for_tests()
        };
        assert!(matches!(c.validate(), Err(LogError::Config(_))));
    }

    #[test]
    fn given_reserve_out_of_bounds_when_validated_then_config_error() {
        for c in [
            LogConfig {
                reserve_segments: RESERVE_SEGMENTS_MAX + 1,
                ..LogConfig::small_for_tests()
            },
            LogConfig {
                reserve_retry_ms: RESERVE_RETRY_MS_MIN - 1,
                ..LogConfig::small_for_tests()
            },
            LogConfig {
                reserve_retry_ms: RESERVE_RETRY_MS_MAX + 1,
                ..LogConfig::small_for_tests()
            },
        ] {
            assert!(matches!(c.validate(), Err(LogError::Config(_))), "{c:?}");
        }
        let none = LogConfig {
            reserve_segments: 0,
            ..LogConfig::small_for_tests()
        };
        none.validate().unwrap();
        assert_eq!(none.reserve_bytes(), 0);
    }

    #[test]
    fn given_recent_bytes_out_of_bounds_when_validated_then_config_error() {
        let small = LogConfig::small_for_tests();
        for n in [1, small.batch_bytes_max - 1, RECENT_BYTES_MAX + 1] {
            let c = LogConfig {
                recent_bytes_max: n,
                ..small.clone()
            };
            match c.validate() {
                Err(LogError::Config(what)) => assert!(what.contains("recent_bytes_max"), "{what}"),
                other => panic!("{n}: {other:?}"),
            }
        }
        for r in [1, READAHEAD_BYTES_MAX + 4096] {
            let c = LogConfig {
                readahead_bytes: r,
                ..small.clone()
            };
            assert!(
                matches!(c.validate(), Err(LogError::Config(w)) if w.contains("readahead_bytes"))
            );
        }
        for n in [0, small.batch_bytes_max, RECENT_BYTES_MAX] {
            LogConfig {
                recent_bytes_max: n,
                ..small.clone()
            }
            .validate()
            .unwrap();
        }
    }
}
