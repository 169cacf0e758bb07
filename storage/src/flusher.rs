//! The flusher: the one task per log that writes sealed batches and makes
//! them durable, in order.
//!
//! A batch is written with one O_DIRECT write at the next block boundary;
//! durability comes from an `fdatasync` that starts after that write has
//! completed. The two overlap across batches, two deep: while one batch's
//! `fdatasync` is in flight the flusher seals and writes the next one, and
//! when the sync completes the next sync covers that batch (ADR 0001,
//! "pipelined commits"). Measured on the development VM: a serial seal +
//! write + sync cycle left the disk idle while the next batch was sealed and
//! written, and the hub's core waiting on I/O ~20 % of a bulk run; overlapped,
//! the core is busy (bench/RESULTS.md).
//!
//! The order that makes this safe:
//! - a batch counts as durable only when an `fdatasync` that *started after
//!   its write completed* has completed; batches become durable in offset
//!   order (a sync covers a prefix of the written-not-synced batches);
//! - the durable state (`write_position`, `durable_offset`, `chain`) moves
//!   only then, so a checkpoint never names a position that is not durable;
//! - at most two batches are unsynced at any moment (the one whose sync is
//!   in flight and the one written after it), so after a crash at most the
//!   last two batches of the log can be torn; recovery cuts a torn batch
//!   followed by exactly one valid batch at the end of the log as a pair
//!   (`ScanEnd::TornPair`), and treats damage earlier in the log, which a
//!   later durable batch proves was durable, as corruption, as before;
//! - a roll waits until every batch written to the old segment is durable,
//!   so one sync never has to cover two files;
//! - nothing else writes below `write_reserved_end` (the end of every batch
//!   written or being written); the prewriter starts above it.
//!
//! With [`Durability::Dsync`] the write is the sync: the batch goes through
//! a descriptor of the active segment opened `O_DSYNC`, so it is durable
//! when the write returns, and one batch is in flight at a time (ADR 0027).
//! The write is submitted inline or through an io-wq worker
//! ([`crate::DsyncWrites`], ADR 0028).
//!
//! A crash with a batch written but not synced leaves what a crash during
//! any write leaves: recovery finds the last whole batch by its marker and
//! chain and truncates after it; nothing acknowledged was in that batch.

use crate::config::Durability;
use crate::error::PoisonCause;
use crate::log::{cause_of, injected, os_error, Log};
use crate::segment::SEGMENT_HEADER_BYTES;
use glommio::io::{DmaBuffer, DmaFile};
use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Where a batch went and what its bytes hold.
pub(crate) struct WrittenBatch {
    pub(crate) first_offset: u64,
    pub(crate) record_count: u32,
    pub(crate) position: usize,
    /// Records (headers and payloads), up to the commit marker.
    pub(crate) records_bytes: usize,
    pub(crate) marker_bytes: usize,
    pub(crate) padded: usize,
}

/// A batch written and not yet covered by an `fdatasync`.
struct Unsynced {
    written: WrittenBatch,
    /// The padded bytes that were written; the tail cache takes the records.
    buf: Rc<DmaBuffer>,
    /// Chain value after this batch.
    chain: [u8; 32],
    /// When its write started (commit latency is measured from here).
    started: Instant,
}

/// The `fdatasync` in flight and how many of the oldest unsynced batches it covers.
struct SyncInFlight {
    task: glommio::Task<Result<(), PoisonCause>>,
    covers: usize,
}

/// The flusher's state between steps: at most `batch_buffers_max` batches,
/// each holding its buffer until durable.
#[derive(Default)]
struct Pipeline {
    unsynced: VecDeque<Unsynced>,
    sync: Option<SyncInFlight>,
    /// With [`Durability::Dsync`]: the active segment opened `O_DSYNC`,
    /// and the segment generation it was opened for.
    dsync: Option<(u64, Rc<DmaFile>)>,
}

/// What the flusher does next.
enum Step {
    /// A batch is due: write it.
    Write,
    /// The `fdatasync` in flight completed.
    Synced(Result<(), PoisonCause>),
    /// Closing with nothing left, poisoned, or abandoned, and no sync in flight.
    Stop,
}

impl Log {
    /// The flusher task's body; see the module documentation.
    pub(crate) async fn run_flusher(self) {
        let mut pipe = Pipeline::default();
        // Bounded: each pass writes one batch or finishes one sync, or ends.
        loop {
            // Pipeline depth two: while a sync is in flight, one more batch
            // may be written, no more (recovery's torn-pair rule relies on
            // it: at a crash at most the last two batches are unsynced).
            let may_write = pipe
                .sync
                .as_ref()
                .is_none_or(|s| s.covers == pipe.unsynced.len());
            let step = NextStep {
                log: &self,
                sync: pipe.sync.as_mut().map(|s| &mut s.task),
                may_write,
            }
            .await;
            let outcome = match step {
                Step::Stop => break,
                Step::Synced(result) => self.synced(&mut pipe, result).await,
                Step::Write => self.write_next(&mut pipe).await,
            };
            if let Err(cause) = outcome {
                self.state.borrow_mut().poison(cause);
                break;
            }
        }
        // Never leave an fdatasync running past the flusher. What it covers
        // is not made durable here: once the log is poisoned (or abandoned)
        // its durable end no longer moves, and commits past it fail; those
        // records are at most kept unacknowledged (at-least-once).
        if let Some(sync) = pipe.sync.take() {
            let _ = sync.task.await;
        }
        close_dsync(&mut pipe).await;
        self.flusher_stopped();
    }

    /// The sync in flight completed: its batches are durable; start the next
    /// sync for what was written meanwhile; checkpoint when due.
    async fn synced(
        &self,
        pipe: &mut Pipeline,
        result: Result<(), PoisonCause>,
    ) -> Result<(), PoisonCause> {
        let sync = pipe.sync.take().expect("a sync was in flight");
        result?;
        if self.state.borrow().abandoned {
            // A crash stand-in: the durable end stays where it was, and no
            // checkpoint is written; the flusher ends at its next step.
            return Ok(());
        }
        self.durable(pipe, sync.covers);
        pipe.sync = self.start_sync(pipe);
        self.checkpoint_if_due().await;
        Ok(())
    }

    /// Writes a checkpoint when enough was committed since the last one.
    /// Never waits for a checkpoint another task is writing (the shard's
    /// after a snapshot, in the background lane): the flusher is on every
    /// commit's path, so it would wait at that task's priority. The next
    /// durable batch looks again.
    async fn checkpoint_if_due(&self) {
        let due_checkpoint = {
            let st = self.state.borrow();
            st.bytes_since_checkpoint >= st.config.checkpoint_interval_bytes && !st.checkpoint_busy
        };
        if due_checkpoint {
            if let Err(e) = self.checkpoint().await {
                // The data is durable; a missing checkpoint only lengthens recovery.
                tracing::warn!(error = %e, "checkpoint failed; recovery will scan from the previous one");
            }
        }
    }

    /// Takes the next due batch, seals and writes it; starts a sync for it
    /// unless one is in flight (the next one will cover it).
    async fn write_next(&self, pipe: &mut Pipeline) -> Result<(), PoisonCause> {
        self.commit_window().await;
        let mut batch = self.state.borrow_mut().take_due_batch();
        assert!(batch.record_count > 0);
        let (prev_chain, durability, segment_size, in_worker) = {
            let st = self.state.borrow();
            let prev_chain = pipe.unsynced.back().map_or(st.chain, |u| u.chain);
            let expected_first = pipe.unsynced.back().map_or(st.durable_offset, |u| {
                u.written.first_offset + u64::from(u.written.record_count)
            });
            assert_eq!(
                batch.first_offset, expected_first,
                "batches are written in order"
            );
            (
                prev_chain,
                st.config.durability,
                st.config.segment_size_bytes as usize,
                st.config.durability == Durability::Dsync && st.dsync_in_worker(),
            )
        };
        let (padded, marker_bytes, chain) = batch.seal(&prev_chain);
        if self.state.borrow().write_reserved_end + padded > segment_size {
            // One sync never spans two files: the old segment's batches are
            // durable before the next segment is made.
            let started = Instant::now();
            self.settle(pipe).await?;
            self.roll(batch.first_offset, prev_chain).await?;
            let took_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.state.borrow_mut().commit_stats.roll_us.note(took_us);
        }
        let position = self.state.borrow().write_reserved_end;
        // Never two writes in flight to one block: wait out a zero write there.
        self.prewrite_clear_of(position, position + padded).await;
        let (file, path) = self.reserve_write(position, padded);
        let file = match durability {
            Durability::Dsync => self.dsync_file(pipe, &path).await?,
            _ => file,
        };
        let written = WrittenBatch {
            first_offset: batch.first_offset,
            record_count: batch.record_count,
            position,
            records_bytes: batch.used(),
            marker_bytes,
            padded,
        };
        let buf = Rc::new(batch.into_padded_buffer(padded));
        let started = Instant::now();
        write_batch(&file, buf.clone(), position, &path, in_worker).await?;
        pipe.unsynced.push_back(Unsynced {
            written,
            buf,
            chain,
            started,
        });
        self.written(pipe, durability, &path).await
    }

    /// A batch's write returned: with `fdatasync`, a sync starts for it
    /// unless one is in flight (the next one covers it); otherwise it is
    /// durable now (dsync: the write was the sync; none: no sync at all).
    async fn written(
        &self,
        pipe: &mut Pipeline,
        durability: Durability,
        _path: &Path,
    ) -> Result<(), PoisonCause> {
        if durability == Durability::Fdatasync {
            if pipe.sync.is_none() {
                pipe.sync = self.start_sync(pipe);
            }
            return Ok(());
        }
        if durability == Durability::Dsync {
            // The journal records it as a write and its sync. The sync's
            // fail point fires here: written, not durable, as after a
            // failed fdatasync.
            if let Some(errno) = injected("storage::fdatasync") {
                return Err(PoisonCause::Sync(errno));
            }
            journal!(crate::journal::sync(_path));
        }
        // One batch in flight: everything unsynced is this batch.
        let all = pipe.unsynced.len();
        self.durable(pipe, all);
        self.checkpoint_if_due().await;
        Ok(())
    }

    /// The active segment opened `O_DSYNC` for batch writes (ADR 0027):
    /// opened once per segment, on its first batch; the previous segment's
    /// is closed then. A failed open poisons the log like a failed write.
    async fn dsync_file(
        &self,
        pipe: &mut Pipeline,
        path: &Path,
    ) -> Result<Rc<DmaFile>, PoisonCause> {
        let generation = self.state.borrow().segment_generation;
        if let Some((g, file)) = &pipe.dsync {
            if *g == generation {
                return Ok(file.clone());
            }
        }
        close_dsync(pipe).await;
        let file = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DSYNC)
            .dma_open(path)
            .await
            .map_err(|e| cause_of(os_error(e), PoisonCause::Write))?;
        let file = Rc::new(file);
        pipe.dsync = Some((generation, file.clone()));
        Ok(file)
    }

    /// Waits until every batch written is durable (before a roll).
    async fn settle(&self, pipe: &mut Pipeline) -> Result<(), PoisonCause> {
        // The sync in flight, then one for whatever was written after it
        // started (at most one batch: two deep).
        if let Some(sync) = pipe.sync.take() {
            sync.task.await?;
            self.durable(pipe, sync.covers);
        }
        if let Some(sync) = self.start_sync(pipe) {
            sync.task.await?;
            self.durable(pipe, sync.covers);
        }
        assert!(pipe.unsynced.is_empty() && pipe.sync.is_none());
        Ok(())
    }

    /// With a commit window configured and little to write, waits it out so
    /// one write carries more.
    async fn commit_window(&self) {
        let (window_us, short) = {
            let st = self.state.borrow();
            (st.config.commit_window_us, st.commit_window_short())
        };
        if window_us > 0 && short {
            glommio::timer::sleep(Duration::from_micros(window_us)).await;
        }
    }

    /// Starts an `fdatasync` of the active segment covering every unsynced
    /// batch (all written, all in that segment); none when nothing is unsynced.
    fn start_sync(&self, pipe: &Pipeline) -> Option<SyncInFlight> {
        if pipe.unsynced.is_empty() {
            return None;
        }
        let (file, path) = self.state.borrow().active_segment();
        Some(SyncInFlight {
            task: glommio::spawn_local(sync_file(file, path)),
            covers: pipe.unsynced.len(),
        })
    }

    /// The oldest `count` unsynced batches are durable: in order, each one's
    /// records join the tail cache and its commits are woken.
    fn durable(&self, pipe: &mut Pipeline, count: usize) {
        assert!(count <= pipe.unsynced.len());
        let allocated = self.state.borrow().config.batch_bytes_max;
        // Bounded by `count`, at most the batches alive.
        for u in pipe.unsynced.drain(..count) {
            let took_us = u64::try_from(u.started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let records =
                crate::durable_batch::records_of(u.buf, u.written.records_bytes, allocated);
            self.batch_durable(&u.written, records, u.chain);
            let mut st = self.state.borrow_mut();
            st.commit_stats.latency_us.note(took_us);
            st.commit_stats.batch_bytes.note(u.written.padded as u64);
        }
    }

    /// Claims `[position, position + padded)` of the active segment for the
    /// batch write; returns the segment's file and path.
    fn reserve_write(&self, position: usize, padded: usize) -> (Rc<DmaFile>, PathBuf) {
        let mut st = self.state.borrow_mut();
        assert_eq!(
            st.write_reserved_end, position,
            "one flusher moves the write position"
        );
        assert!(position >= st.write_position && position >= SEGMENT_HEADER_BYTES);
        assert!(
            !st.prewrite_overlaps(position, position + padded),
            "never two writes in flight to one block"
        );
        st.write_reserved_end = position + padded;
        st.active_segment()
    }
}

/// Closes the `O_DSYNC` file of an earlier segment, if one is open and no
/// write holds it.
async fn close_dsync(pipe: &mut Pipeline) {
    if let Some((_, file)) = pipe.dsync.take() {
        if let Ok(file) = Rc::try_unwrap(file) {
            let _ = file.close().await;
        }
    }
}

/// Writes a sealed batch (`buf` is exactly its padded bytes) at `position`
/// with O_DIRECT; `in_worker`: through an io-wq worker (ADR 0028).
async fn write_batch(
    file: &DmaFile,
    buf: Rc<DmaBuffer>,
    position: usize,
    _path: &Path,
    in_worker: bool,
) -> Result<(), PoisonCause> {
    let padded = buf.len();
    #[cfg(feature = "failpoints")]
    let journal_bytes = crate::journal::active().then(|| buf.as_bytes().to_vec());
    if let Some(errno) = injected("storage::write") {
        return Err(PoisonCause::Write(errno));
    }
    let written = if in_worker {
        file.write_rc_at_in_worker(buf, position as u64).await
    } else {
        file.write_rc_at(buf, position as u64).await
    };
    match written {
        Ok(n) if n == padded => {}
        Ok(_) => return Err(PoisonCause::Write(libc::EIO)),
        Err(e) => return Err(cause_of(os_error(e), PoisonCause::Write)),
    }
    journal!(if let Some(bytes) = journal_bytes {
        crate::journal::write(_path, position as u64, &bytes);
    });
    Ok(())
}

/// `fdatasync`s a segment: every write to it that completed before this
/// started is durable when this returns `Ok`.
async fn sync_file(file: Rc<DmaFile>, _path: PathBuf) -> Result<(), PoisonCause> {
    if let Some(errno) = injected("storage::fdatasync") {
        return Err(PoisonCause::Sync(errno));
    }
    file.fdatasync()
        .await
        .map_err(|e| cause_of(os_error(e), PoisonCause::Sync))?;
    journal!(crate::journal::sync(&_path));
    Ok(())
}

/// The flusher's wait: for the sync in flight to complete or a batch to be
/// due, whichever comes first; a stopping log waits for the sync only.
struct NextStep<'a> {
    log: &'a Log,
    sync: Option<&'a mut glommio::Task<Result<(), PoisonCause>>>,
    /// False while a batch written after the sync in flight started waits
    /// for the next sync: the pipeline is full.
    may_write: bool,
}

impl Future for NextStep<'_> {
    type Output = Step;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Step> {
        if let Some(task) = self.sync.as_mut() {
            if let Poll::Ready(result) = Pin::new(&mut **task).poll(cx) {
                return Poll::Ready(Step::Synced(result));
            }
        }
        let syncing = self.sync.is_some();
        let mut st = self.log.state.borrow_mut();
        let stop = st.poisoned.is_some() || st.abandoned;
        if !stop && self.may_write && st.flush_due(syncing) {
            return Poll::Ready(Step::Write);
        }
        if (stop || st.closing) && !syncing {
            return Poll::Ready(Step::Stop);
        }
        // The sync task wakes this too (it was polled above with `cx`).
        st.set_flusher_waker(cx.waker().clone());
        Poll::Pending
    }
}
