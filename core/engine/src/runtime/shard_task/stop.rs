//! Clean shutdown of a shard: commit what was appended, snapshot, close the log.

use super::snapshots::checkpoint_and_retain;
use super::{ShardTask, SETTLE_POLL_MS, SHUTDOWN_COMMIT_ROUNDS_MAX};
use std::time::Duration;

impl ShardTask {
    /// Commits what was appended and feeds the commits, a bounded number of rounds.
    async fn settle_commits(&mut self) {
        for _ in 0..SHUTDOWN_COMMIT_ROUNDS_MAX {
            if let Some(last) = self.appended_last.take() {
                self.commits.want(last);
            }
            if let Some(j) = self.journal.as_mut() {
                j.want();
            }
            self.archive.end_turn();
            // Bounded by one commit of each log (or its failure).
            while !self.commits.settled() || !self.archive.commits.settled() {
                futures_lite::future::or(
                    futures_lite::future::or(
                        self.commits.wake_driver.wait(),
                        self.archive.commits.wake_driver.wait(),
                    ),
                    // Looks again even if a wake-up went missing (seen,
                    // rarely, under heavy CPU oversubscription).
                    glommio::timer::sleep(Duration::from_millis(SETTLE_POLL_MS)),
                )
                .await;
            }
            self.settle_local().await;
            if self.appended_last.is_none() && self.archive.settled() {
                return;
            }
        }
        tracing::warn!(
            shard = self.id,
            "shutdown: appends kept coming after {SHUTDOWN_COMMIT_ROUNDS_MAX} commit rounds"
        );
    }

    /// Clean stop: commit, snapshot, close the log.
    pub(super) async fn shutdown(mut self) -> Result<(), String> {
        self.draining = true;
        self.timer_at_ms = None;
        self.settle_commits().await;
        // Bounded by one checkpoint and retention pass.
        while self.maintenance_busy.get() {
            glommio::timer::sleep(Duration::from_millis(SETTLE_POLL_MS)).await;
        }
        if !self.log_failed {
            self.snapshot = None;
            self.begin_snapshot().await;
            self.settle_commits().await;
            if let Some(p) = self.snapshot {
                tracing::warn!(
                    shard = self.id,
                    first = p.first,
                    "shutdown snapshot not durable"
                );
            } else if !self.log_failed {
                // The checkpoint makes the new mark durable before retention
                // may drop the segment the old mark points into.
                let floor = self.shard.retention_floor();
                checkpoint_and_retain(
                    self.log.clone(),
                    floor,
                    self.maintenance_busy.clone(),
                    self.id,
                )
                .await;
            }
        }
        if let Some(a) = self.anchors.clone() {
            // The last anchor covers everything this run wrote; one the
            // task signed meanwhile (after the snapshot) is appended too.
            a.stop();
            if !self.log_failed {
                a.sign_due();
                self.append_anchors().await;
                self.settle_commits().await;
            }
        }
        if let Err(e) = self.archive.close().await {
            if !self.log_failed {
                tracing::warn!(shard = self.id, error = %e, "closing the history log");
            }
        }
        if let Some(j) = self.journal.take() {
            // Everything it holds, the log holds durably by now (or the log
            // failed and nothing more counts): closing just ends its tasks.
            j.commits.stop();
            if let Err(e) = j.log.close().await {
                if !self.log_failed {
                    tracing::warn!(shard = self.id, error = %e, "closing the rt journal");
                }
            }
        }
        self.outbox.stop();
        self.commits.stop();
        self.alarm.stop();
        let closed = self.log.close().await;
        // Bounded by the committer noticing the stop.
        while self.commits.running() {
            futures_lite::future::or(
                self.commits.wake_driver.wait(),
                glommio::timer::sleep(Duration::from_millis(SETTLE_POLL_MS)),
            )
            .await;
        }
        // Sessions still waiting hear `Unavailable` as their reply channels drop here.
        self.replies.clear();
        self.pushes.clear();
        match closed {
            Ok(()) => Ok(()),
            Err(_) if self.log_failed => Ok(()), // already reported when it failed
            Err(e) => Err(format!("shard {}: closing the log: {e}", self.id)),
        }
    }
}
