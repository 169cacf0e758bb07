//! The log: appends into batch buffers, group commit through io_uring, reads
//! from the tail cache (`tail.rs`) or through read-only memory maps.
//!
//! Write path (see `docs/adr/0001-storage-write-path.md`): each batch is one
//! O_DIRECT write of whole 4 KiB blocks at a fresh block boundary, then one
//! `fdatasync`, both through glommio's io_uring. A block, once written, is
//! never written again while the log is open, so reading a durable record
//! through the page cache (the map) never races an O_DIRECT write of the
//! same range.

use crate::checkpoint::{Checkpoint, CHECKPOINT_FILE, CHECKPOINT_TMP_FILE};
use crate::commit_stats::CommitStats;
use crate::config::LogConfig;
use crate::error::{Corruption, LogError, PoisonCause};
use crate::flusher::WrittenBatch;
use crate::frame::{self, RecordKind, HEADER_SIZE_BYTES};
use crate::index::SparseIndex;
use crate::marker::{self, align_up, BLOCK_SIZE_BYTES};
use crate::scan::Limits;
use crate::segment::{self, SegmentHeader, SEGMENT_HEADER_BYTES};
use crate::tail::TailCache;
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use memmap2::Mmap;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The longest interval between batches the smoothed interval counts, µs
/// (what an idle log reads as; [`LogConfig::prewrite_batch_interval_us_min`]).
pub(crate) const BATCH_INTERVAL_US_MAX: u64 = 10_000;

/// A segment as the log holds it.
pub(crate) struct SegmentEntry {
    pub(crate) base_offset: u64,
    pub(crate) path: PathBuf,
    pub(crate) map: Rc<Mmap>,
    pub(crate) index: SparseIndex,
    /// Range of this segment not scanned yet (segments before the checkpoint
    /// are indexed on first read, so recovery time does not grow with the log).
    pub(crate) lazy: Option<LazyRange>,
}

/// A range of a segment that recovery skipped because a checkpoint covers it.
#[derive(Clone, Debug)]
pub(crate) struct LazyRange {
    pub(crate) until_position: usize,
    pub(crate) until_offset: u64,
    pub(crate) prev_chain: [u8; 32],
}

/// A batch being filled or waiting to be written.
pub(crate) struct Batch {
    buf: DmaBuffer,
    used: usize,
    pub(crate) first_offset: u64,
    pub(crate) record_count: u32,
    last_timestamp_ns: u64,
}

impl Batch {
    /// Appends the commit marker and pads with zeros to a block boundary;
    /// returns the padded length, the marker's size and the batch's chain value.
    pub(crate) fn seal(&mut self, prev_chain: &[u8; 32]) -> (usize, usize, [u8; 32]) {
        let (marker_size, chain) = marker::write_marker(
            self.buf.as_bytes_mut(),
            self.used,
            self.first_offset,
            self.record_count,
            prev_chain,
            self.last_timestamp_ns,
        );
        let end = self.used + marker_size;
        let padded = align_up(end);
        self.buf.as_bytes_mut()[end..padded].fill(0);
        (padded, marker_size, chain)
    }

    /// Bytes of records in the batch (before its marker).
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// Trims the buffer to the padded length the write carries and returns it.
    pub(crate) fn into_padded_buffer(self, padded: usize) -> DmaBuffer {
        let mut buf = self.buf;
        buf.trim_to_size(padded);
        buf
    }
}

pub(crate) struct State {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) limits: Limits,
    pub(crate) segments: Vec<SegmentEntry>,
    pub(crate) active_file: Option<Rc<DmaFile>>,
    /// Where the next batch goes in the active segment.
    pub(crate) write_position: usize,
    /// Offset the next append gets.
    pub(crate) next_offset: u64,
    /// Every offset below this is durable.
    pub(crate) durable_offset: u64,
    /// First offset still held (after retention).
    pub(crate) start_offset: u64,
    /// Chain value after the last durable batch.
    pub(crate) chain: [u8; 32],
    pub(crate) corruptions: Vec<Corruption>,
    /// Damaged ranges an operator accepted with `repair` (read at open).
    pub(crate) accepted: Vec<Corruption>,
    pub(crate) checkpoint: Option<Checkpoint>,
    pub(crate) lock_file: Option<std::fs::File>,
    open_batch: Option<Batch>,
    sealed: VecDeque<Batch>,
    /// Bytes of records appended and not yet durable (open, sealed and
    /// in-flight batches): what a record appended now waits behind.
    unwritten_bytes: u64,
    batches_alive: usize,
    commit_waiters: Vec<(u64, Waker)>,
    room_waiters: Vec<Waker>,
    pub(crate) flush_wanted_offset: u64,
    flusher_waker: Option<Waker>,
    flusher_running: bool,
    flusher_done_waiters: Vec<Waker>,
    pub(crate) poisoned: Option<PoisonCause>,
    pub(crate) closing: bool,
    closed: bool,
    pub(crate) abandoned: bool,
    /// The owner says its core is contended ([`Log::set_contended`]).
    contended: bool,
    pub(crate) checkpoint_busy: bool,
    /// The owner's mark, kept in the next checkpoint.
    pub(crate) mark: u64,
    pub(crate) bytes_since_checkpoint: u64,
    /// Counts rolls, so a background write to an older segment is told apart.
    pub(crate) segment_generation: u64,
    /// In the active segment, every block below this has been written (data
    /// or prewritten zeros).
    pub(crate) prewritten_end: usize,
    /// End of the batch write in flight (equal to `write_position` when none).
    pub(crate) write_reserved_end: usize,
    pub(crate) prewritten_bytes: u64,
    pub(crate) prewrite_waits: u64,
    /// The background zero write in flight: segment generation, start, end.
    pub(crate) prewrite_in_flight: Option<(u64, usize, usize)>,
    pub(crate) prewriter_waker: Option<Waker>,
    pub(crate) prewriter_running: bool,
    /// Woken when a background zero write completes or the prewriter stops.
    pub(crate) prewrite_waiters: Vec<Waker>,
    /// When the flusher last took a batch to write.
    pub(crate) batch_taken_at: Option<Instant>,
    /// The interval between batches taken, smoothed (7/8 old, 1/8 new),
    /// µs: zero writes wait while it is short (ADR 0037).
    pub(crate) batch_interval_us: u64,
    /// The reserve file is in place: its space is held for a roll.
    pub(crate) reserve_held: bool,
    /// The reserve was used by a roll, or could not be made: the owner
    /// should refuse new work until it is made again.
    pub(crate) space_low: bool,
    /// Times a roll released the reserve since open.
    pub(crate) reserve_releases: u64,
    /// Times the reserve was made again after a release since open.
    pub(crate) reserve_restores: u64,
    pub(crate) reserve_retry_running: bool,
    pub(crate) reserve_retry_waker: Option<Waker>,
    /// Woken when the reserve retry task ends.
    pub(crate) reserve_retry_done_waiters: Vec<Waker>,
    /// The records of the most recent durable batches (`recent_bytes_max`).
    pub(crate) tail: TailCache,
    /// Reads since open, by where they were served from.
    pub(crate) reads_from_memory: u64,
    pub(crate) reads_from_map: u64,
    /// End of the last asynchronous read-ahead asked of the kernel: segment
    /// base and position.
    pub(crate) readahead_end: Option<(u64, usize)>,
    pub(crate) readahead_advices: u64,
    /// What the log wrote since open, by kind (see [`LogStats`]).
    pub(crate) written: WrittenBytes,
    pub(crate) commit_stats: CommitStats,
}

/// Bytes the log wrote since open, by what they hold; with
/// `State::prewritten_bytes` these are every byte the log writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WrittenBytes {
    /// Batch writes.
    pub batches: u64,
    /// Records' payload bytes in those batches.
    pub payload_bytes: u64,
    /// Records' headers in those batches.
    pub framing_bytes: u64,
    /// Commit markers in those batches.
    pub marker_bytes: u64,
    /// Zeros that pad each batch to a 4 KiB block boundary.
    pub padding_bytes: u64,
    /// Segment headers (one 4 KiB block per new segment).
    pub segment_header_bytes: u64,
    /// Checkpoints (one 4 KiB block each).
    pub checkpoint_bytes: u64,
}

impl WrittenBytes {
    /// Bytes of the batch writes: payload + framing + markers + padding.
    pub fn batch_bytes(&self) -> u64 {
        self.payload_bytes + self.framing_bytes + self.marker_bytes + self.padding_bytes
    }
}

/// A handle to an open log; clones share it. Single-threaded: use it from the
/// glommio executor that opened it.
#[derive(Clone)]
pub struct Log {
    pub(crate) state: Rc<RefCell<State>>,
}

/// Counters describing the log now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogStats {
    /// First offset still held.
    pub start_offset: u64,
    /// Every offset below this is durable.
    pub durable_offset: u64,
    /// Offset the next append gets.
    pub next_offset: u64,
    /// Segment files.
    pub segments: usize,
    /// Known damaged ranges.
    pub corruptions: usize,
    /// Bytes overwritten with zeros ahead of the write position since open.
    pub prewritten_bytes: u64,
    /// Batch writes that waited for a zero write to the same blocks.
    pub prewrite_waits: u64,
    /// The disk reserve is used up (see [`Log::space_low`]).
    pub space_low: bool,
    /// Times a roll found the disk full and used the reserve, since open.
    pub reserve_releases: u64,
    /// Times the reserve was made again after that, since open.
    pub reserve_restores: u64,
    /// Reads (by [`Log::read`] and [`Log::iter_from`]) served from the tail
    /// cache since open: no page fault, no disk read.
    pub reads_from_memory: u64,
    /// Reads served from a segment map since open (may fault and read the disk).
    pub reads_from_map: u64,
    /// Read-aheads asked of the kernel (`madvise(MADV_WILLNEED)`) for reads
    /// from a segment map, since open.
    pub readahead_advices: u64,
    /// Bytes of records held in the tail cache now.
    pub cached_bytes: u64,
    /// Batches held in the tail cache now.
    pub cached_batches: usize,
    /// The tail cache stands aside now: readers are further behind the
    /// tail than it reaches, so it takes no copies (`tail.rs`).
    pub cache_standing_aside: bool,
    /// Times the tail cache stood aside since open.
    pub cache_stood_aside: u64,
    /// Bytes written since open, by what they hold; the prewriter's zeros
    /// are `prewritten_bytes`, so everything the log writes is
    /// `written.batch_bytes() + written.segment_header_bytes +
    /// written.checkpoint_bytes + prewritten_bytes`.
    pub written: WrittenBytes,
    /// Group commits' latency and size histograms since open.
    pub commits: CommitStats,
}

impl LogStats {
    /// Every byte the log wrote since open: batches, segment headers,
    /// checkpoints and the prewriter's zeros.
    pub fn bytes_written(&self) -> u64 {
        let w = &self.written;
        w.batch_bytes() + w.segment_header_bytes + w.checkpoint_bytes + self.prewritten_bytes
    }

    /// Logs (INFO) where the bytes written since open went and where reads
    /// were served from: the write-amplification account of `docs/storage.md`.
    fn log_writes(&self, dir: &Path) {
        let w = &self.written;
        tracing::info!(dir = %dir.display(), bytes_written = self.bytes_written(),
            payload_bytes = w.payload_bytes, framing_bytes = w.framing_bytes,
            marker_bytes = w.marker_bytes, padding_bytes = w.padding_bytes,
            batches = w.batches, segment_header_bytes = w.segment_header_bytes,
            checkpoint_bytes = w.checkpoint_bytes, prewritten_bytes = self.prewritten_bytes,
            reads_from_memory = self.reads_from_memory, reads_from_map = self.reads_from_map,
            "log closed: bytes written since open, by kind, and reads by source");
    }
}

impl State {
    pub(crate) fn new(dir: PathBuf, config: LogConfig) -> State {
        let config_recent_bytes_max = config.recent_bytes_max;
        let limits = Limits {
            record_size_bytes_max: config.batch_bytes_max,
            batch_bytes_max: config.batch_bytes_max,
        };
        State {
            dir,
            config,
            limits,
            segments: vec![],
            active_file: None,
            write_position: SEGMENT_HEADER_BYTES,
            next_offset: 0,
            durable_offset: 0,
            start_offset: 0,
            chain: marker::CHAIN_GENESIS,
            corruptions: vec![],
            accepted: vec![],
            checkpoint: None,
            lock_file: None,
            open_batch: None,
            sealed: VecDeque::new(),
            unwritten_bytes: 0,
            batches_alive: 0,
            commit_waiters: vec![],
            room_waiters: vec![],
            flush_wanted_offset: 0,
            flusher_waker: None,
            flusher_running: false,
            flusher_done_waiters: vec![],
            poisoned: None,
            closing: false,
            closed: false,
            abandoned: false,
            contended: false,
            checkpoint_busy: false,
            mark: 0,
            bytes_since_checkpoint: 0,
            segment_generation: 0,
            prewritten_end: SEGMENT_HEADER_BYTES,
            write_reserved_end: SEGMENT_HEADER_BYTES,
            prewritten_bytes: 0,
            prewrite_waits: 0,
            prewrite_in_flight: None,
            prewriter_waker: None,
            prewriter_running: false,
            prewrite_waiters: vec![],
            batch_taken_at: None,
            // A log that has written nothing yet counts as idle.
            batch_interval_us: BATCH_INTERVAL_US_MAX,
            reserve_held: false,
            space_low: false,
            reserve_releases: 0,
            reserve_restores: 0,
            reserve_retry_running: false,
            reserve_retry_waker: None,
            reserve_retry_done_waiters: vec![],
            tail: TailCache::new(config_recent_bytes_max),
            reads_from_memory: 0,
            reads_from_map: 0,
            readahead_end: None,
            readahead_advices: 0,
            written: WrittenBytes::default(),
            commit_stats: CommitStats::default(),
        }
    }

    fn refuse(&self) -> Option<LogError> {
        if self.closed || self.closing {
            return Some(LogError::Closed);
        }
        self.poisoned.as_ref().map(LogError::from)
    }

    fn wake_flusher(&mut self) {
        if let Some(w) = self.flusher_waker.take() {
            w.wake();
        }
    }

    pub(crate) fn wake_prewriter(&mut self) {
        if let Some(w) = self.prewriter_waker.take() {
            w.wake();
        }
    }

    /// True once the log accepts no more work of any kind.
    pub(crate) fn stopping(&self) -> bool {
        self.poisoned.is_some() || self.abandoned || self.closing || self.closed
    }

    pub(crate) fn poison(&mut self, cause: PoisonCause) {
        if self.poisoned.is_none() {
            self.poisoned = Some(cause);
        }
        self.wake_prewriter();
        self.wake_reserve_retry();
        for (_, w) in self.commit_waiters.drain(..) {
            w.wake();
        }
        for w in self.room_waiters.drain(..) {
            w.wake();
        }
    }

    fn try_append(
        &mut self,
        parts: &[&[u8]],
        timestamp_ns: u64,
        flags: u8,
    ) -> Result<u64, LogError> {
        if let Some(e) = self.refuse() {
            return Err(e);
        }
        let payload_len: usize = parts.iter().map(|p| p.len()).sum();
        let size = HEADER_SIZE_BYTES + payload_len;
        let room = self.config.batch_bytes_max - self.config.marker_reserve_bytes();
        if size > room {
            return Err(LogError::TooLarge {
                size_bytes: size,
                size_bytes_max: room,
            });
        }
        let fits = self
            .open_batch
            .as_ref()
            .is_some_and(|b| b.used + size <= room);
        if !fits {
            if self.batches_alive >= self.config.batch_buffers_max {
                return Err(LogError::Busy);
            }
            if let Some(full) = self.open_batch.take() {
                self.sealed.push_back(full);
                self.wake_flusher();
            }
            self.batches_alive += 1;
            self.open_batch = Some(Batch {
                // From the global allocator, not the reactor's registered
                // memory: once durable the buffer itself may join the tail
                // cache and be read from any thread (`durable_batch`).
                buf: crate::durable_batch::batch_buffer(self.config.batch_bytes_max),
                used: 0,
                first_offset: self.next_offset,
                record_count: 0,
                last_timestamp_ns: timestamp_ns,
            });
        }
        let offset = self.next_offset;
        let batch = self.open_batch.as_mut().unwrap();
        let at = batch.used;
        let bytes = batch.buf.as_bytes_mut();
        // Bounded by the caller's parts; together they fill the record.
        let mut to = at + HEADER_SIZE_BYTES;
        for part in parts {
            bytes[to..to + part.len()].copy_from_slice(part);
            to += part.len();
        }
        assert_eq!(to, at + size, "the parts fill the record");
        frame::seal_in_place(
            &mut bytes[at..],
            payload_len,
            offset,
            timestamp_ns,
            RecordKind::Data,
            flags,
        );
        batch.used += size;
        batch.record_count += 1;
        self.unwritten_bytes += size as u64;
        batch.last_timestamp_ns = timestamp_ns;
        debug_assert_eq!(batch.first_offset + batch.record_count as u64, offset + 1);
        self.next_offset += 1;
        if batch.used >= self.config.commit_window_bytes {
            self.flush_wanted_offset = self.flush_wanted_offset.max(self.next_offset);
            self.wake_flusher();
        }
        Ok(offset)
    }

    /// Folds the time since the previous batch into the smoothed interval
    /// (each interval counted at most [`BATCH_INTERVAL_US_MAX`], so after
    /// an idle spell a burst of commits pulls it down within ~20 batches).
    fn note_batch_taken(&mut self, now: Instant) {
        if let Some(last) = self.batch_taken_at {
            let us = now.saturating_duration_since(last).as_micros();
            let us = us.min(u128::from(BATCH_INTERVAL_US_MAX)) as u64;
            self.batch_interval_us = (self.batch_interval_us * 7 + us) / 8;
        }
        self.batch_taken_at = Some(now);
    }

    /// True when sealed batches wait for the flusher.
    pub(crate) fn batches_waiting(&self) -> bool {
        !self.sealed.is_empty()
    }

    /// True when the flusher has a batch to write now: a full one, or the
    /// open one once a commit wants a record of it (or the log closes).
    /// While a sync is in flight (`syncing`) the open batch waits until it
    /// holds `commit_window_bytes` or the sync completes, so a commit still
    /// gathers what arrives meanwhile into one write.
    pub(crate) fn flush_due(&self, syncing: bool) -> bool {
        if !self.sealed.is_empty() {
            return true;
        }
        let Some(open) = self.open_batch.as_ref() else {
            return false;
        };
        let wanted = self.flush_wanted_offset > open.first_offset || self.closing;
        wanted && (!syncing || self.closing || open.used >= self.config.commit_window_bytes)
    }

    /// Takes the batch to write next: the oldest full one, else the open one.
    pub(crate) fn take_due_batch(&mut self) -> Batch {
        self.note_batch_taken(Instant::now());
        match self.sealed.pop_front() {
            Some(b) => b,
            None => self.open_batch.take().expect("flush due without a batch"),
        }
    }

    /// True when a commit window would let the next write carry more.
    /// True when the next dsync batch write goes to an io-wq worker
    /// ([`crate::DsyncWrites`]).
    pub(crate) fn dsync_in_worker(&self) -> bool {
        match self.config.dsync_writes {
            crate::DsyncWrites::Inline => false,
            crate::DsyncWrites::Worker => true,
            crate::DsyncWrites::WhileContended => self.contended,
        }
    }

    pub(crate) fn commit_window_short(&self) -> bool {
        let pending = self.open_batch.as_ref().map_or(0, |b| b.used);
        self.sealed.is_empty() && pending < self.config.commit_window_bytes && !self.closing
    }

    /// The active segment's file and path (batch writes and syncs go there).
    pub(crate) fn active_segment(&self) -> (Rc<DmaFile>, PathBuf) {
        (
            self.active_file.clone().expect("an active segment"),
            self.segments
                .last()
                .expect("an active segment")
                .path
                .clone(),
        )
    }

    /// Registers the flusher's waker (it waits for a due batch).
    pub(crate) fn set_flusher_waker(&mut self, waker: Waker) {
        self.flusher_waker = Some(waker);
    }
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering it, and starts its
    /// flusher on the current glommio executor.
    pub async fn open(
        dir: impl AsRef<Path>,
        config: LogConfig,
    ) -> Result<(Log, crate::RecoveryReport), LogError> {
        config.validate()?;
        // glommio opens directories relative to no directory fd (EBADF for
        // a relative path), and the process's cwd may change: hold an absolute one.
        let dir = std::path::absolute(dir.as_ref())
            .map_err(|e| LogError::io("resolve directory", dir.as_ref(), e))?;
        let (state, report) = crate::recovery::recover(&dir, config).await?;
        let log = Log {
            state: Rc::new(RefCell::new(state)),
        };
        // Before the flusher runs, so a failed open leaves no task behind.
        log.open_reserve().await?;
        log.state.borrow_mut().flusher_running = true;
        let flusher = log.clone();
        glommio::spawn_local(async move { flusher.run_flusher().await }).detach();
        log.start_prewriter();
        if report.checkpoint_rejected.is_some() {
            // The damaged checkpoint is replaced, never trusted again.
            if let Err(e) = log.checkpoint().await {
                tracing::warn!(dir = %dir.display(), error = %e,
                    "rewriting the checkpoint after recovery failed; the next open scans every segment again");
            }
        }
        Ok((log, report))
    }

    /// Appends a record to the open batch without waiting; `Busy` when every
    /// batch buffer is taken (wait on [`Log::commit`] or use [`Log::append`]).
    pub fn try_append(
        &self,
        payload: &[u8],
        timestamp_ns: u64,
        flags: u8,
    ) -> Result<u64, LogError> {
        self.try_append_parts(&[payload], timestamp_ns, flags)
    }

    /// [`Log::try_append`] of one record whose payload is `parts` back to
    /// back: each is copied once, straight into the batch (a caller that
    /// frames a large payload need not copy it into a buffer of its own first).
    pub fn try_append_parts(
        &self,
        parts: &[&[u8]],
        timestamp_ns: u64,
        flags: u8,
    ) -> Result<u64, LogError> {
        self.state
            .borrow_mut()
            .try_append(parts, timestamp_ns, flags)
    }

    /// Appends a record, waiting for a free batch buffer if needed. The record
    /// is not durable until a [`Log::commit`] covering its offset resolves.
    pub async fn append(
        &self,
        payload: &[u8],
        timestamp_ns: u64,
        flags: u8,
    ) -> Result<u64, LogError> {
        self.append_parts(&[payload], timestamp_ns, flags).await
    }

    /// [`Log::append`] of one record whose payload is `parts` back to back
    /// (as [`Log::try_append_parts`]).
    pub async fn append_parts(
        &self,
        parts: &[&[u8]],
        timestamp_ns: u64,
        flags: u8,
    ) -> Result<u64, LogError> {
        // Bounded: each pass either appends, fails, or waits for a batch to
        // finish writing, which frees a buffer or poisons the log.
        loop {
            match self.try_append_parts(parts, timestamp_ns, flags) {
                Err(LogError::Busy) => {
                    RoomWait {
                        log: self,
                        registered: false,
                    }
                    .await
                }
                other => return other,
            }
        }
    }

    /// Resolves once one `fdatasync` (or, with durability `none`, one write)
    /// has covered `offset` and everything before it.
    pub fn commit(&self, offset: u64) -> Commit<'_> {
        Commit {
            log: self,
            offset,
            registered: false,
        }
    }

    /// Asks the flusher to write `offset` and everything before it, without
    /// waiting: a commit's want made known the moment it is known. The
    /// flusher then starts the next write as soon as the one in flight is
    /// durable, rather than after the committer's next [`Log::commit`]
    /// poll, which waits behind whatever the first commit's completion
    /// woke (the measured gap: 1-12 ms of idle disk a group commit).
    pub fn flush_through(&self, offset: u64) {
        let mut st = self.state.borrow_mut();
        assert!(
            offset < st.next_offset,
            "flush of offset {offset} never appended"
        );
        if offset >= st.flush_wanted_offset {
            st.flush_wanted_offset = offset + 1;
            if offset >= st.durable_offset {
                st.wake_flusher();
            }
        }
    }

    /// Every offset below this is durable. The log is the one keeper of
    /// its durable end: the engine reads it here rather than keeping
    /// copies, and awaits [`Log::commit`] to see it move (it only moves
    /// forward).
    pub fn durable_offset(&self) -> u64 {
        self.state.borrow().durable_offset
    }

    /// The durable end and the chain value there, read together: every
    /// record below the offset is durable, the offset is a batch boundary,
    /// and the chain is the commit-marker chain after the batch that ends
    /// there ([`crate::marker::CHAIN_GENESIS`] for an empty log). What the
    /// engine signs as a chain anchor (docs/adr/0020).
    pub fn durable_head(&self) -> (u64, [u8; 32]) {
        let st = self.state.borrow();
        (st.durable_offset, st.chain)
    }

    /// Bytes of records appended and not yet durable: a record appended now
    /// is written after all of them (the log writes batches in order). An
    /// owner that can hold back work keeps this low to bound how long a
    /// record that cannot wait sits behind others (docs/adr/0015).
    pub fn unwritten_bytes(&self) -> u64 {
        self.state.borrow().unwritten_bytes
    }

    /// The owner's word on its core: `true` while other work keeps it busy
    /// (a shard stepping bulk beside real-time calls). With
    /// [`crate::DsyncWrites::WhileContended`], dsync batch writes go to an
    /// io-wq worker meanwhile (ADR 0028); the next batch written follows it.
    pub fn set_contended(&self, contended: bool) {
        self.state.borrow_mut().contended = contended;
    }

    /// Commits everything appended so far.
    pub async fn commit_all(&self) -> Result<(), LogError> {
        let next = self.state.borrow().next_offset;
        if next == 0 {
            return Ok(());
        }
        self.commit(next - 1).await
    }

    /// Counters describing the log now.
    pub fn stats(&self) -> LogStats {
        let st = self.state.borrow();
        LogStats {
            start_offset: st.start_offset,
            durable_offset: st.durable_offset,
            next_offset: st.next_offset,
            segments: st.segments.len(),
            corruptions: st.corruptions.len(),
            prewritten_bytes: st.prewritten_bytes,
            prewrite_waits: st.prewrite_waits,
            space_low: st.space_low,
            reserve_releases: st.reserve_releases,
            reserve_restores: st.reserve_restores,
            reads_from_memory: st.reads_from_memory,
            reads_from_map: st.reads_from_map,
            readahead_advices: st.readahead_advices,
            cached_bytes: st.tail.bytes() as u64,
            cached_batches: st.tail.batch_count(),
            cache_standing_aside: st.tail.standing_aside(),
            cache_stood_aside: st.tail.stood_aside,
            written: st.written,
            commits: st.commit_stats,
        }
    }

    /// Damage found so far (by recovery or by reads).
    pub fn corruptions(&self) -> Vec<Corruption> {
        self.state.borrow().corruptions.clone()
    }

    /// Why the log refuses commits, if it does.
    pub fn poisoned(&self) -> Option<PoisonCause> {
        self.state.borrow().poisoned.clone()
    }

    /// Sets the owner's mark (an offset the owner will want back after a
    /// restart, e.g. where its state snapshot starts); it is made durable by
    /// the next checkpoint. Must not exceed the durable end.
    pub fn set_mark(&self, mark: u64) {
        let mut st = self.state.borrow_mut();
        assert!(mark <= st.durable_offset, "mark beyond the durable end");
        assert!(mark >= st.mark, "marks only move forward");
        st.mark = mark;
    }

    /// The owner's mark from the last checkpoint (or [`Log::set_mark`]); 0 if none.
    pub fn mark(&self) -> u64 {
        self.state.borrow().mark
    }

    /// Writes a checkpoint at the durable end so the next recovery starts there.
    pub async fn checkpoint(&self) -> Result<(), LogError> {
        // Bounded by the one checkpoint in progress finishing.
        while self.state.borrow().checkpoint_busy {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let (cp, dir) = {
            let mut st = self.state.borrow_mut();
            if let Some(cause) = &st.poisoned {
                return Err(LogError::from(cause));
            }
            let Some(active) = st.segments.last() else {
                return Ok(());
            };
            let cp = Checkpoint {
                segment_base: active.base_offset,
                position: st.write_position as u64,
                next_offset: st.durable_offset,
                chain: st.chain,
                mark: st.mark,
            };
            if st.checkpoint.as_ref() == Some(&cp) {
                return Ok(());
            }
            st.checkpoint_busy = true;
            (cp, st.dir.clone())
        };
        let result = write_checkpoint(&dir, &cp).await;
        let mut st = self.state.borrow_mut();
        st.checkpoint_busy = false;
        match result {
            Ok(()) => {
                st.checkpoint = Some(cp);
                st.bytes_since_checkpoint = 0;
                st.written.checkpoint_bytes += BLOCK_SIZE_BYTES as u64;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Drops whole segments every record of which is below `offset`; never the
    /// active segment. Returns how many were dropped.
    pub async fn retain_from(&self, offset: u64) -> Result<usize, LogError> {
        let doomed: Vec<(u64, PathBuf)> = {
            let st = self.state.borrow();
            if let Some(e) = st.refuse() {
                return Err(e);
            }
            let n = st.segments.len();
            (0..n.saturating_sub(1))
                .take_while(|i| st.segments[i + 1].base_offset <= offset)
                .map(|i| (st.segments[i].base_offset, st.segments[i].path.clone()))
                .collect()
        };
        if doomed.is_empty() {
            return Ok(0);
        }
        let cp_segment = self
            .state
            .borrow()
            .checkpoint
            .as_ref()
            .map(|c| c.segment_base);
        if cp_segment.is_some_and(|base| doomed.iter().any(|(b, _)| *b == base)) {
            // Keep recovery bounded: never leave the checkpoint pointing at a dropped segment.
            self.checkpoint().await?;
        }
        // Oldest first, each removal made durable before the next, so a crash
        // leaves a contiguous suffix of segments whatever order the file
        // system would otherwise persist unlinks in.
        let dir = self.state.borrow().dir.clone();
        for (base, path) in &doomed {
            glommio::io::remove(path)
                .await
                .map_err(|e| LogError::io("remove segment", path, os_error(e)))?;
            journal!(crate::journal::record(|| crate::journal::IoEvent::Remove {
                path: path.clone()
            }));
            {
                let mut st = self.state.borrow_mut();
                assert_eq!(st.segments[0].base_offset, *base);
                st.segments.remove(0);
                st.tail.drop_segment(*base);
                st.start_offset = st.segments[0].base_offset;
                let start = st.start_offset;
                st.corruptions.retain(|c| c.end_offset > start);
            }
            sync_dir(&dir).await?;
        }
        Ok(doomed.len())
    }

    /// Commits what was appended, stops the flusher and writes a checkpoint.
    pub async fn close(&self) -> Result<(), LogError> {
        let pending = {
            let st = self.state.borrow();
            if st.closed {
                return Ok(());
            }
            st.next_offset > st.durable_offset && st.poisoned.is_none()
        };
        if pending {
            self.commit_all().await?;
        }
        self.state.borrow_mut().closing = true;
        self.state.borrow_mut().wake_flusher();
        self.state.borrow_mut().wake_prewriter();
        FlusherDone { log: self }.await;
        self.prewriter_stopped().await;
        self.reserve_retry_stopped().await;
        let poisoned = self.state.borrow().poisoned.clone();
        let result = match poisoned {
            Some(cause) => Err(LogError::from(&cause)),
            None => self.checkpoint().await,
        };
        self.stats().log_writes(&self.state.borrow().dir);
        let file = {
            let mut st = self.state.borrow_mut();
            st.closed = true;
            st.lock_file = None;
            st.tail.clear();
            st.active_file.take()
        };
        if let Some(file) = file {
            if let Ok(file) = Rc::try_unwrap(file) {
                let _ = file.close().await;
            }
        }
        result
    }

    /// Stops without committing pending records or writing a checkpoint,
    /// once any write in flight has finished: the state a process crash
    /// leaves. Releases the directory so it can be reopened (crash tests).
    pub async fn abandon(self) {
        {
            let mut st = self.state.borrow_mut();
            st.abandoned = true;
            st.wake_flusher();
            st.wake_prewriter();
        }
        FlusherDone { log: &self }.await;
        // A zero write landing after a reopen could hit new records.
        self.prewriter_stopped().await;
        // A reserve being made could race the reopen's own.
        self.reserve_retry_stopped().await;
        let mut st = self.state.borrow_mut();
        st.closed = true;
        st.lock_file = None;
        st.active_file = None;
        st.open_batch = None;
        st.sealed.clear();
        st.tail.clear();
        for (_, w) in st.commit_waiters.drain(..) {
            w.wake();
        }
    }

    /// The flusher ended: wakes whoever waits for that, and every commit
    /// (each then sees the durable end, the poison, or the close).
    pub(crate) fn flusher_stopped(&self) {
        let mut st = self.state.borrow_mut();
        st.flusher_running = false;
        for w in st.flusher_done_waiters.drain(..) {
            w.wake();
        }
        for (_, w) in st.commit_waiters.drain(..) {
            w.wake();
        }
    }

    /// A batch's write and sync returned: its records are durable; caches
    /// them, wakes the commits it covers and the appenders waiting for room.
    pub(crate) fn batch_durable(&self, w: &WrittenBatch, records: bytes::Bytes, chain: [u8; 32]) {
        let mut st = self.state.borrow_mut();
        let interval = st.config.index_interval_bytes;
        let segment_base = st.segments.last().unwrap().base_offset;
        st.segments
            .last_mut()
            .unwrap()
            .index
            .note_batch(w.first_offset, w.position, interval);
        let size_bytes_max = st.limits.record_size_bytes_max;
        st.tail.insert(
            w.first_offset,
            w.record_count,
            (segment_base, w.position),
            records,
            size_bytes_max,
        );
        assert_eq!(
            st.write_position, w.position,
            "batches become durable in order"
        );
        st.write_position = w.position + w.padded;
        assert!(st.write_reserved_end >= st.write_position);
        st.prewritten_end = st.prewritten_end.max(st.write_position);
        st.wake_prewriter();
        st.durable_offset = w.first_offset + w.record_count as u64;
        st.chain = chain;
        st.bytes_since_checkpoint += w.padded as u64;
        st.written.note(w);
        st.batches_alive -= 1;
        assert!(
            st.unwritten_bytes >= w.records_bytes as u64,
            "a batch wrote more than was appended"
        );
        st.unwritten_bytes -= w.records_bytes as u64;
        let durable = st.durable_offset;
        st.commit_waiters.retain(|(offset, w)| {
            if *offset < durable {
                w.wake_by_ref();
                false
            } else {
                true
            }
        });
        for w in st.room_waiters.drain(..) {
            w.wake();
        }
    }

    /// Creates the next segment: made durable (file and directory) before use.
    pub(crate) async fn roll(
        &self,
        base_offset: u64,
        prev_chain: [u8; 32],
    ) -> Result<(), PoisonCause> {
        let (dir, segment_size) = {
            let st = self.state.borrow();
            (st.dir.clone(), st.config.segment_size_bytes)
        };
        // A full disk shows here, before anything of the batch is written:
        // the reserve's space takes the segment, and nothing is poisoned.
        let created = match create_segment(&dir, base_offset, segment_size, prev_chain).await {
            Err(LogError::StorageFull) if self.release_reserve().await => {
                create_segment(&dir, base_offset, segment_size, prev_chain).await
            }
            other => other,
        };
        let (file, map) = created.map_err(|e| match e {
            LogError::StorageFull => PoisonCause::StorageFull,
            LogError::Io { source, .. } => {
                PoisonCause::Roll(source.raw_os_error().unwrap_or(libc::EIO))
            }
            _ => PoisonCause::Roll(libc::EIO),
        })?;
        let old = {
            let mut st = self.state.borrow_mut();
            st.segments.push(SegmentEntry {
                base_offset,
                path: segment::path(&dir, base_offset),
                map: Rc::new(map),
                index: SparseIndex::default(),
                lazy: None,
            });
            st.write_position = SEGMENT_HEADER_BYTES;
            st.write_reserved_end = SEGMENT_HEADER_BYTES;
            st.prewritten_end = SEGMENT_HEADER_BYTES;
            st.segment_generation += 1;
            st.written.segment_header_bytes += SEGMENT_HEADER_BYTES as u64;
            st.wake_prewriter();
            st.active_file.replace(Rc::new(file))
        };
        if let Some(old) = old.and_then(|f| Rc::try_unwrap(f).ok()) {
            let _ = old.close().await;
        }
        Ok(())
    }
}

impl WrittenBytes {
    fn note(&mut self, w: &WrittenBatch) {
        let framing = w.record_count as usize * HEADER_SIZE_BYTES;
        assert!(w.records_bytes + w.marker_bytes <= w.padded && framing <= w.records_bytes);
        self.batches += 1;
        self.payload_bytes += (w.records_bytes - framing) as u64;
        self.framing_bytes += framing as u64;
        self.marker_bytes += w.marker_bytes as u64;
        self.padding_bytes += (w.padded - w.records_bytes - w.marker_bytes) as u64;
    }
}

/// Converts a glommio error keeping the OS errno, which glommio's own
/// conversion drops (it keeps only the kind): `ENOSPC` must stay `ENOSPC`.
pub(crate) fn os_error<T>(e: glommio::GlommioError<T>) -> std::io::Error {
    match e {
        glommio::GlommioError::EnhancedIoError { source, .. }
        | glommio::GlommioError::IoError(source) => match source.raw_os_error() {
            Some(errno) => std::io::Error::from_raw_os_error(errno),
            None => source,
        },
        other => other.into(),
    }
}

/// Returns an errno if a test fail point says this call fails.
pub(crate) fn injected(name: &str) -> Option<i32> {
    #[cfg(feature = "failpoints")]
    {
        let fire = || -> Option<i32> {
            fail::fail_point!(name, |arg: Option<String>| Some(
                arg.and_then(|a| a.parse().ok()).unwrap_or(libc::EIO)
            ));
            None
        };
        if let Some(errno) = fire() {
            return Some(errno);
        }
    }
    let _ = name;
    None
}

pub(crate) fn cause_of(e: std::io::Error, other: fn(i32) -> PoisonCause) -> PoisonCause {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => PoisonCause::StorageFull,
        Some(errno) => other(errno),
        None => other(libc::EIO),
    }
}

/// Maps a whole segment file read-only.
pub(crate) fn map_segment(
    file: &DmaFile,
    len: u64,
    path: &Path,
    random: bool,
) -> Result<Mmap, LogError> {
    use std::os::fd::AsRawFd;
    // SAFETY: the log owns the directory (held by a lock file); the mapped
    // ranges it reads are never written while mapped, see the module docs.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .len(len as usize)
            .map(file.as_raw_fd())
    }
    .map_err(|e| LogError::io("mmap segment", path, e))?;
    if random {
        // No readahead into blocks that O_DIRECT writes may fill later.
        let _ = map.advise(memmap2::Advice::Random);
    }
    Ok(map)
}

/// Creates, preallocates and syncs a new segment and its directory entry.
pub(crate) async fn create_segment(
    dir: &Path,
    base_offset: u64,
    size: u64,
    prev_chain: [u8; 32],
) -> Result<(DmaFile, Mmap), LogError> {
    let path = segment::path(dir, base_offset);
    let io = |op, e: glommio::GlommioError<()>| {
        let e = os_error(e);
        if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) {
            LogError::StorageFull
        } else {
            LogError::io(op, &path, e)
        }
    };
    if let Some(errno) = injected("storage::roll") {
        return Err(LogError::io(
            "create segment",
            &path,
            std::io::Error::from_raw_os_error(errno),
        ));
    }
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .dma_open(&path)
        .await
        .map_err(|e| io("create segment", e))?;
    let result = async {
        crate::reserve::preallocate(&file, &path, 0, size, "preallocate segment").await?;
        journal!(crate::journal::record(|| crate::journal::IoEvent::Create {
            path: path.clone(),
            size
        }));
        let mut block = glommio::allocate_dma_buffer(SEGMENT_HEADER_BYTES);
        SegmentHeader {
            segment_size_bytes: size,
            base_offset,
            prev_chain,
        }
        .encode(block.as_bytes_mut());
        #[cfg(feature = "failpoints")]
        let header_bytes = block.as_bytes().to_vec();
        let n = file
            .write_at(block, 0)
            .await
            .map_err(|e| io("write segment header", e))?;
        journal!(crate::journal::write(&path, 0, &header_bytes));
        if n != SEGMENT_HEADER_BYTES {
            return Err(LogError::io(
                "write segment header",
                &path,
                std::io::Error::from_raw_os_error(libc::EIO),
            ));
        }
        file.fdatasync().await.map_err(|e| io("sync segment", e))?;
        journal!(crate::journal::sync(&path));
        sync_dir(dir).await
    }
    .await;
    if let Err(e) = result {
        // The segment never held data; remove it so recovery does not meet it.
        let _ = file.remove().await;
        let _ = file.close().await;
        return Err(e);
    }
    let map = map_segment(&file, size, &path, true)?;
    Ok((file, map))
}

/// Makes directory entries (new or removed files) durable.
pub(crate) async fn sync_dir(dir: &Path) -> Result<(), LogError> {
    let d = glommio::io::Directory::open(dir)
        .await
        .map_err(|e| LogError::io("open directory", dir, os_error(e)))?;
    d.sync()
        .await
        .map_err(|e| LogError::io("sync directory", dir, os_error(e)))?;
    journal!(crate::journal::record(|| {
        crate::journal::IoEvent::SyncDir {
            dir: dir.to_path_buf(),
        }
    }));
    let _ = d.close().await;
    Ok(())
}

async fn write_checkpoint(dir: &Path, cp: &Checkpoint) -> Result<(), LogError> {
    let tmp = dir.join(CHECKPOINT_TMP_FILE);
    let dst = dir.join(CHECKPOINT_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .dma_open(&tmp)
        .await
        .map_err(|e| LogError::io("create checkpoint", &tmp, os_error(e)))?;
    let mut block = glommio::allocate_dma_buffer(BLOCK_SIZE_BYTES);
    cp.encode(block.as_bytes_mut());
    journal!(
        crate::journal::record(|| crate::journal::IoEvent::Create { path: tmp.clone(), size: 0 });
        crate::journal::write(&tmp, 0, block.as_bytes());
    );
    file.write_at(block, 0)
        .await
        .map_err(|e| LogError::io("write checkpoint", &tmp, os_error(e)))?;
    file.fdatasync()
        .await
        .map_err(|e| LogError::io("sync checkpoint", &tmp, os_error(e)))?;
    journal!(crate::journal::sync(&tmp));
    let _ = file.close().await;
    glommio::io::rename(&tmp, &dst)
        .await
        .map_err(|e| LogError::io("rename checkpoint", &dst, os_error(e)))?;
    journal!(crate::journal::record(|| crate::journal::IoEvent::Rename {
        from: tmp.clone(),
        to: dst.clone()
    }));
    sync_dir(dir).await
}

/// Future of [`Log::commit`].
pub struct Commit<'a> {
    log: &'a Log,
    offset: u64,
    registered: bool,
}

impl Future for Commit<'_> {
    type Output = Result<(), LogError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let log = self.log;
        let mut st = log.state.borrow_mut();
        assert!(
            self.offset < st.next_offset,
            "commit of offset {} never appended",
            self.offset
        );
        if self.offset < st.durable_offset {
            return Poll::Ready(Ok(()));
        }
        if let Some(cause) = &st.poisoned {
            return Poll::Ready(Err(LogError::from(cause)));
        }
        if st.closed || !st.flusher_running {
            return Poll::Ready(Err(LogError::Closed));
        }
        st.flush_wanted_offset = st.flush_wanted_offset.max(self.offset + 1);
        // A first poll registers without searching; only a spurious re-poll
        // looks for its earlier registration.
        let offset = self.offset;
        let existing = self.registered
            && st
                .commit_waiters
                .iter_mut()
                .find(|(o, w)| *o == offset && w.will_wake(cx.waker()))
                .map(|slot| slot.1 = cx.waker().clone())
                .is_some();
        if !existing {
            st.commit_waiters.push((offset, cx.waker().clone()));
        }
        st.wake_flusher();
        drop(st);
        self.registered = true;
        Poll::Pending
    }
}

struct RoomWait<'a> {
    log: &'a Log,
    registered: bool,
}

impl Future for RoomWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.registered {
            return Poll::Ready(());
        }
        let mut st = self.log.state.borrow_mut();
        if st.batches_alive < st.config.batch_buffers_max || st.poisoned.is_some() || st.closing {
            return Poll::Ready(());
        }
        // Records waiting in full buffers must be written for room to appear.
        st.flush_wanted_offset = st.flush_wanted_offset.max(st.next_offset);
        st.room_waiters.push(cx.waker().clone());
        st.wake_flusher();
        drop(st);
        self.registered = true;
        Poll::Pending
    }
}

struct FlusherDone<'a> {
    log: &'a Log,
}

impl Future for FlusherDone<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.log.state.borrow_mut();
        if !st.flusher_running {
            return Poll::Ready(());
        }
        st.flusher_done_waiters.push(cx.waker().clone());
        Poll::Pending
    }
}
