//! Appending what the trust side of a shard makes off the rt path: the
//! chain anchors the anchor task signed (to the shard's log and, as a
//! copy kept for ever, to the history log), and the audit bound's
//! summaries of suppressed refusals (docs/adr/0020).

use super::ShardTask;
use gonets_storage::LogError;
use gonets_trust::AnchoredLog;

impl ShardTask {
    /// Appends the anchors signed since the last turn: a shard-log anchor
    /// to the shard's log and the history log, a history-log anchor to the
    /// history log. Their commits ride with the turn's.
    pub(super) async fn append_anchors(&mut self) {
        let Some(anchorer) = self.anchors.clone() else {
            return;
        };
        // Bounded: at most two anchors a signing.
        for anchor in anchorer.take_signed() {
            if self.log_failed {
                return;
            }
            if anchor.log == AnchoredLog::Shard {
                let record = crate::record::Record::Anchor(anchor.clone());
                let (offset, record) = self.shard.log_only(record);
                self.append(offset, &record, false).await;
                anchorer.appended(AnchoredLog::Shard, offset);
            }
            let timestamp_ns = self.clock.now_ms().saturating_mul(1_000_000);
            match self.archive.append_anchor(&anchor, timestamp_ns).await {
                Ok(offset) => anchorer.appended(AnchoredLog::History, offset),
                Err(e) => {
                    tracing::error!(shard = self.id, error = %e, "history log: anchor append failed; the shard accepts nothing more");
                    self.fail_storage(
                        matches!(e, LogError::StorageFull),
                        format!("history log: append: {e}"),
                    );
                }
            }
        }
    }

    /// Writes the audit bound's summary once its second is over.
    pub(super) async fn flush_audit(&mut self) {
        let now_ms = self.clock.now_ms();
        let mut outputs = std::mem::take(&mut self.outputs);
        self.shard.audit_flush(now_ms, &mut outputs);
        if !outputs.is_empty() {
            self.execute_all(&mut outputs).await;
        }
        self.outputs = outputs;
    }
}
