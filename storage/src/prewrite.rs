//! Background zero writes ahead of the write position in the active segment.
//!
//! A segment is preallocated with `fallocate`, which on ext4 (and XFS) leaves
//! *unwritten* extents: the first write to a block must also convert its
//! extent, so the `fdatasync` that follows has metadata to journal. Measured
//! on the development VM (ADR 0001): a 4 KiB O_DIRECT write + `fdatasync`
//! into unwritten blocks p50 296 µs against 189 µs into written ones.
//! Overwriting the blocks with zeros before a batch gets there moves that
//! cost off the commit path. Zeros are what a preallocated block reads as
//! anyway, so a crash at any moment leaves the same bytes whether or not a
//! zero write happened; nothing waits for these writes to be durable, and
//! they are never retried.
//!
//! Zero writes go only into idle time (no batch written or waiting): under a
//! backlog they would take disk time from batches. So a log written flat out
//! writes into unwritten blocks, and a lightly loaded one overwrites zeros.
//!
//! And only while commits come slowly (ADR 0037): the flusher must also
//! have taken its batches at least `prewrite_batch_interval_us_min` apart,
//! smoothed. With commits back to back (rt at 10,000 calls/s, ~3,700
//! commits a second) zeros in their short gaps slowed every commit on the
//! project VM (call p50 0.70 against 0.46 ms without them); with commits
//! ~1 ms apart the zeros help (p50 ~0.03 ms lower).
//!
//! Only one write is in flight per block: the prewriter never starts below
//! the end of the batch write in flight, and the flusher waits out a zero
//! write overlapping the range it is about to write (and asserts it did).

use crate::log::os_error;
use crate::log::{Log, State};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// One zero write the prewriter is about to issue.
struct PrewriteJob {
    file: Rc<glommio::io::DmaFile>,
    generation: u64,
    start: usize,
    end: usize,
}

impl State {
    /// True when a zero write in flight covers part of `[start, end)` of the
    /// active segment.
    pub(crate) fn prewrite_overlaps(&self, start: usize, end: usize) -> bool {
        matches!(self.prewrite_in_flight,
            Some((generation, s, e)) if generation == self.segment_generation && s < end && start < e)
    }
}

impl Log {
    /// Starts the prewriter task, if the configuration asks for one.
    pub(crate) fn start_prewriter(&self) {
        {
            let mut st = self.state.borrow_mut();
            st.prewritten_end = st.write_position;
            st.write_reserved_end = st.write_position;
            if st.config.prewrite_ahead_bytes == 0 {
                return;
            }
            st.prewriter_running = true;
        }
        let log = self.clone();
        glommio::spawn_local(async move { log.run_prewriter().await }).detach();
    }

    async fn run_prewriter(self) {
        let chunk_bytes = self.state.borrow().config.prewrite_chunk_bytes;
        // Bounded: each pass writes one chunk of the active segment, which
        // only moves forward, or exits when the log stops.
        while let Some(job) = (NextPrewrite { log: &self }).await {
            let len = job.end - job.start;
            assert!(len > 0 && len <= chunk_bytes);
            let mut buf = job.file.alloc_dma_buffer(len);
            buf.as_bytes_mut().fill(0);
            let result = job.file.write_at(buf, job.start as u64).await;
            let mut st = self.state.borrow_mut();
            st.prewrite_in_flight = None;
            for w in st.prewrite_waiters.drain(..) {
                w.wake();
            }
            match result {
                Ok(n) if n == len => {
                    st.prewritten_bytes += len as u64;
                    if job.generation == st.segment_generation {
                        st.prewritten_end = st.prewritten_end.max(job.end);
                    }
                }
                other => {
                    // Not a durability failure: batches still write into the
                    // preallocated blocks themselves. A real disk fault will
                    // show in the flusher's own write or sync, which poisons.
                    let error = match other {
                        Ok(n) => format!("short write of {n} of {len} bytes"),
                        Err(e) => os_error(e).to_string(),
                    };
                    tracing::warn!(dir = %st.dir.display(), %error, "zero write ahead of the log failed; no more prewrites");
                    break;
                }
            }
        }
        let mut st = self.state.borrow_mut();
        st.prewriter_running = false;
        for w in st.prewrite_waiters.drain(..) {
            w.wake();
        }
    }

    /// Waits until no zero write overlaps `[start, end)` of the active segment.
    pub(crate) async fn prewrite_clear_of(&self, start: usize, end: usize) {
        {
            let mut st = self.state.borrow_mut();
            if st.prewrite_overlaps(start, end) {
                st.prewrite_waits += 1;
            }
        }
        PrewriteClear {
            log: self,
            start,
            end,
        }
        .await
    }

    /// Waits until the prewriter task has ended (it ends once the log stops).
    pub(crate) async fn prewriter_stopped(&self) {
        PrewriterStopped { log: self }.await
    }
}

struct NextPrewrite<'a> {
    log: &'a Log,
}

impl Future for NextPrewrite<'_> {
    type Output = Option<PrewriteJob>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PrewriteJob>> {
        let mut st = self.log.state.borrow_mut();
        if st.stopping() {
            return Poll::Ready(None);
        }
        assert!(st.prewrite_in_flight.is_none(), "one zero write at a time");
        let segment_size = st.config.segment_size_bytes as usize;
        let start = st.prewritten_end.max(st.write_reserved_end);
        let horizon = (st.write_position as u64 + st.config.prewrite_ahead_bytes)
            .min(segment_size as u64) as usize;
        // Only into idle time: under a backlog the zero writes would take
        // disk time from batches (measured: 220 -> 133 MB/s flat out, 64 MiB
        // segments), and the inode lock their extent conversion holds.
        let flusher_idle = st.write_reserved_end == st.write_position && !st.batches_waiting();
        let commits_sparse = st.batch_interval_us >= st.config.prewrite_batch_interval_us_min;
        let file = st.active_file.clone();
        match file {
            Some(file) if start < horizon && flusher_idle && commits_sparse => {
                assert!(start.is_multiple_of(crate::marker::BLOCK_SIZE_BYTES));
                let end = (start + st.config.prewrite_chunk_bytes).min(segment_size);
                let generation = st.segment_generation;
                st.prewrite_in_flight = Some((generation, start, end));
                Poll::Ready(Some(PrewriteJob {
                    file,
                    generation,
                    start,
                    end,
                }))
            }
            _ => {
                st.prewriter_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

struct PrewriteClear<'a> {
    log: &'a Log,
    start: usize,
    end: usize,
}

impl Future for PrewriteClear<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.log.state.borrow_mut();
        if st.prewrite_overlaps(self.start, self.end) {
            st.prewrite_waiters.push(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

struct PrewriterStopped<'a> {
    log: &'a Log,
}

impl Future for PrewriterStopped<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.log.state.borrow_mut();
        if !st.prewriter_running {
            return Poll::Ready(());
        }
        st.prewrite_waiters.push(cx.waker().clone());
        Poll::Pending
    }
}
