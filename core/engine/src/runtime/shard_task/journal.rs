//! The driver's side of the rt journal (docs/adr/0036): copies of calls'
//! records appended as the shard asks, the journal's durability fed to the
//! shard, its failure, and its retention.

use super::ShardTask;
use crate::runtime::lanes::{self, Lane};
use crate::shard::Input;

impl ShardTask {
    /// Copies the record just appended at `offset` (its `head` and
    /// `payload`) into the journal.
    pub(super) async fn journal_append(&mut self, offset: u64, head_len: usize, payload: &[u8]) {
        let timestamp_ns = self.clock.now_ms().saturating_mul(1_000_000);
        let Some(j) = self.journal.as_mut() else {
            unreachable!("shard {} asked to journal without a journal", self.id);
        };
        let head = &self.encoded[..head_len];
        if let Err(e) = j.append(offset, head, payload, timestamp_ns).await {
            tracing::error!(shard = self.id, offset, error = %e, "rt journal append failed; the shard accepts nothing more");
            self.fail_storage(
                matches!(e, gonets_storage::LogError::StorageFull),
                format!("rt journal: append: {e}"),
            );
        }
    }

    /// Tells the shard how far the journal is durable, reports its failure,
    /// and drops the segments whose records the log holds durably too.
    pub(super) async fn settle_journal(&mut self) {
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        let newly = j.newly_durable();
        let failure = j.commits.take_failure();
        let cause = j.commits.failure_cause();
        if let Some(durable_offset) = newly {
            if !self.log_failed {
                self.feed(Input::Journaled { durable_offset }).await;
            }
        }
        if let Some(full) = failure {
            self.fail_storage(full, format!("rt journal: {}", cause.unwrap_or_default()));
            self.feed_local().await;
        }
        self.retain_journal();
    }

    /// Starts dropping the journal's segments below what the log holds
    /// durably, in the background lane, one pass at a time.
    fn retain_journal(&mut self) {
        let log_durable = self.log.durable_offset();
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        let below = j.redundant_below(log_durable);
        if self.journal_retaining.get() || self.log_failed {
            return;
        }
        let stats = j.log.stats();
        if stats.segments < 2 || below <= stats.start_offset {
            return;
        }
        let log = j.log.clone();
        let busy = self.journal_retaining.clone();
        busy.set(true);
        let shard = self.id;
        lanes::spawn(Lane::Background, async move {
            if let Err(e) = log.retain_from(below).await {
                tracing::warn!(shard, error = %e, "rt journal retention failed; it is tried again");
            }
            busy.set(false);
        })
        .detach();
    }
}
