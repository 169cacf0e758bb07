//! Snapshots: append the shard's state, and once durable set the log's mark
//! there, checkpoint and drop older segments.

use super::{PendingSnapshot, ShardTask};
use crate::runtime::holds::{self, Hold};
use crate::runtime::lanes::{self, Lane};
use gonets_storage::Log;
use std::cell::Cell;
use std::rc::Rc;

impl ShardTask {
    /// Appends a snapshot of the shard's state, one part at a time, and
    /// asks for its commit. The shard takes no input until its last part,
    /// so the parts describe one state; other tasks (connections, the
    /// flusher) run in between.
    pub(super) async fn begin_snapshot(&mut self) {
        let started = std::time::Instant::now();
        let first = self.shard.next_offset();
        let mut cursor = self.shard.snapshot_begin(first);
        let mut made = started.elapsed();
        let begin_us = made.as_micros() as u64;
        let mut end = first;
        // Bounded: the cursor ends after the snapshot's end record.
        loop {
            let making = std::time::Instant::now();
            let Some(record) = self.shard.snapshot_next(&mut cursor) else {
                break;
            };
            made += making.elapsed();
            self.append(end, &record, false).await;
            end += 1;
            glommio::yield_if_needed().await;
        }
        // While the parts are appended the shard takes no input: how long
        // that was is what a snapshot costs the calls waiting behind it
        // (made: the shard's own work, begin: choosing what to write, which
        // walks every exchange held; the rest waits in appends and yields).
        holds::note(Hold::Snapshot, started);
        tracing::debug!(
            shard = self.id,
            parts = cursor.parts(),
            appended_us = started.elapsed().as_micros() as u64,
            made_us = made.as_micros() as u64,
            begin_us,
            exchanges = self.shard.held().exchanges,
            "snapshot appended"
        );
        self.records_since_snapshot = 0;
        if self.log_failed {
            return;
        }
        self.snapshot = Some(PendingSnapshot { first, end });
        if let Some(last) = self.appended_last.take() {
            self.commits.want(last);
        }
    }

    /// Once the pending snapshot is durable: tell the shard, set the log's
    /// mark there, then checkpoint and drop what is older in the background.
    pub(super) fn finish_snapshot(&mut self) {
        let Some(p) = self.snapshot else {
            return;
        };
        if self.shard.durable_offset() < p.end {
            return;
        }
        self.snapshot = None;
        self.snapshot_durable_ms = Some(self.clock.now_ms());
        self.shard.snapshot_durable(p.first);
        self.log.set_mark(p.first);
        if let Some(a) = &self.anchors {
            a.checkpointed();
        }
        if self.draining {
            return; // shutdown checkpoints on its own
        }
        let floor = self.shard.retention_floor();
        self.maintenance_busy.set(true);
        lanes::spawn(
            Lane::Background,
            checkpoint_and_retain(
                self.log.clone(),
                floor,
                self.maintenance_busy.clone(),
                self.id,
            ),
        )
        .detach();
    }
}

/// Writes a checkpoint (carrying the new mark) and only then drops segments
/// below `floor`: a crash between the two must find a mark whose records exist.
pub(super) async fn checkpoint_and_retain(log: Log, floor: u64, busy: Rc<Cell<bool>>, shard: u16) {
    match log.checkpoint().await {
        Err(e) => tracing::warn!(shard, error = %e, "checkpoint after snapshot failed"),
        Ok(()) => match log.retain_from(floor).await {
            Ok(dropped) => tracing::debug!(shard, floor, dropped, "retention after snapshot"),
            Err(e) => tracing::warn!(shard, error = %e, "retention after snapshot failed"),
        },
    }
    busy.set(false);
}
