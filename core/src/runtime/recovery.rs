//! A shard's start: open its log, replay it from the owner's mark (the
//! latest durable snapshot) into a fresh shard.

use crate::record::Record;
use crate::registry::Registry;
use crate::runtime::start_error::HubStartError;
use crate::shard::{Shard, ShardConfig};
use gonets_storage::{Log, LogConfig, Slot};
use std::path::Path;
use std::sync::Arc;

/// Opens the log in `dir` and rebuilds the shard's durable state from it.
pub(crate) async fn replay(
    dir: &Path,
    log_config: LogConfig,
    config: ShardConfig,
    registry: Arc<Registry>,
) -> Result<(Log, Shard), HubStartError> {
    let shard_id = config.shard;
    let open_error = |source| HubStartError::Log {
        shard: shard_id,
        source,
    };
    let (log, report) = Log::open(dir, log_config).await.map_err(open_error)?;
    if !report.removed_files.is_empty() {
        tracing::warn!(shard = shard_id, removed = ?report.removed_files, "recovery removed an interrupted segment");
    }
    if !report.corruptions.is_empty() {
        tracing::warn!(shard = shard_id, corruptions = ?report.corruptions, "log recovery found damage");
    }
    let mark = log.mark();
    let mut shard = Shard::new(config, registry, mark);
    let fail = |offset: u64, reason: String| HubStartError::Replay {
        shard: shard_id,
        offset,
        reason,
    };
    let mut expected = mark;
    // Bounded by the log's durable end (the iterator stops there).
    for slot in log.iter_from(mark) {
        let record = match slot {
            Slot::Present(r) => r,
            Slot::Gone => {
                return Err(fail(
                    expected,
                    format!("records from the snapshot mark {mark} on were dropped by retention"),
                ))
            }
            Slot::Unreadable(c) => {
                return Err(fail(expected, format!("damaged record: {}", c.what)))
            }
            Slot::Empty => return Err(fail(expected, "no durable record".into())),
        };
        let offset = record.offset();
        if offset != expected {
            return Err(fail(offset, format!("expected offset {expected}")));
        }
        let decoded = Record::decode(record.payload()).map_err(|e| fail(offset, e.to_string()))?;
        shard
            .replay(offset, decoded)
            .map_err(|e| fail(offset, e.to_string()))?;
        expected = offset + 1;
    }
    let log_next = log.stats().next_offset;
    if shard.next_offset() != log_next {
        return Err(fail(
            shard.next_offset(),
            format!(
                "replay ended at {} but the log's next offset is {log_next}",
                shard.next_offset()
            ),
        ));
    }
    tracing::info!(
        shard = shard_id,
        mark,
        replayed = log_next - mark,
        "shard recovered"
    );
    Ok((log, shard))
}
