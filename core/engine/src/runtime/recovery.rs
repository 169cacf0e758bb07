//! A shard's start: open its log, replay it from the owner's mark (the
//! latest durable snapshot) into a fresh shard.
//!
//! Damage in the replayed part stops the start with
//! [`HubStartError::Damaged`], which names the range and the command that
//! sets it aside (`gonets repair`). Once the operator has accepted a range
//! that way, replay skips its records and says what it skipped.

use crate::record::Record;
use crate::registry::Registry;
use crate::runtime::start_error::HubStartError;
use crate::shard::{Shard, ShardConfig};
use gonets_storage::{Corruption, Log, LogConfig, Slot};
use std::path::Path;
use std::sync::Arc;

/// Offset ranges replay skipped because the operator accepted their loss.
#[derive(Default, Debug)]
struct Skipped {
    /// `[first, end)` ranges, in log order, merged where they touch.
    ranges: Vec<(u64, u64)>,
}

impl Skipped {
    fn add(&mut self, first: u64, end: u64) {
        assert!(first <= end, "a range ends after it starts");
        match self.ranges.last_mut() {
            Some(last) if first <= last.1 => last.1 = last.1.max(end),
            _ => self.ranges.push((first, end)),
        }
    }

    /// True when every offset in `[from, to)` lies in a skipped range.
    fn covers(&self, from: u64, to: u64) -> bool {
        let mut at = from;
        // Bounded by the ranges (ordered, merged).
        for &(first, end) in &self.ranges {
            if first <= at && at < end {
                at = end;
            }
        }
        at >= to
    }

    fn offsets(&self) -> u64 {
        self.ranges.iter().map(|(a, b)| b - a).sum()
    }
}

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
    let (log, report) = Log::open(dir, log_config.clone())
        .await
        .map_err(open_error)?;
    if !report.corruptions.is_empty() {
        tracing::warn!(shard = shard_id, dir = %dir.display(), corruptions = ?report.corruptions, "log recovery found damage");
    }
    // Whatever the setting now: a journal left by an earlier run may hold
    // calls' records the log lost (ADR 0036).
    crate::runtime::rt_journal::fold_into(&log, dir, &log_config, config.rt_journal)
        .await
        .map_err(open_error)?;
    let plan = plan(&log, shard_id, dir);
    let mut shard = Shard::new(config, registry, plan.from);
    // On failure the log is dropped unclosed: nothing is written into a
    // log whose replay failed.
    let skipped = replay_records(&log, &mut shard, dir, &plan)?;
    if !skipped.ranges.is_empty() {
        tracing::error!(
            shard = shard_id,
            dir = %dir.display(),
            lost_records = skipped.offsets(),
            ranges = ?skipped.ranges,
            "replay skipped damaged records the operator accepted with `gonets repair`: \
             what they held is lost (see the quarantine report in the log directory)"
        );
    }
    let log_next = log.stats().next_offset;
    tracing::info!(
        shard = shard_id,
        from = plan.from,
        replayed = log_next - plan.from,
        "shard recovered"
    );
    Ok((log, shard))
}

/// Where replay starts, and damage it may pass over without loss.
struct Plan {
    /// First offset replayed.
    from: u64,
    /// Ranges that held only parts of a damaged snapshot, which a replay
    /// from before that snapshot does not need.
    snapshot_damage: Skipped,
}

/// Chooses where replay starts. Normally at the owner's mark (the latest
/// durable snapshot). A snapshot that fails its check is never trusted: when
/// the log still holds every record from offset 0, replay starts there and
/// rebuilds the state from the records instead; otherwise replay meets the
/// damage and the start is refused (or skips it, once the operator accepted it).
fn plan(log: &Log, shard: u16, dir: &Path) -> Plan {
    let start = log.stats().start_offset;
    let mut mark = log.mark();
    if mark < start {
        // The checkpoint that carried the mark was not usable.
        mark = latest_snapshot(log, start).unwrap_or(start);
        tracing::warn!(shard, dir = %dir.display(), mark, "the log's mark lies before its start: replaying from the latest snapshot found by a scan");
    }
    let intact = Plan {
        from: mark,
        snapshot_damage: Skipped::default(),
    };
    let Some(damage) = damaged_snapshot(log, mark) else {
        return intact;
    };
    if start != 0 || mark == 0 {
        tracing::error!(shard, dir = %dir.display(), mark, ranges = ?damage.ranges, "the snapshot at the mark is damaged and the records before it were dropped by retention");
        return intact;
    }
    tracing::warn!(shard, dir = %dir.display(), mark, ranges = ?damage.ranges, "the snapshot at the mark is damaged: not trusted; rebuilding the state from the whole log");
    Plan {
        from: 0,
        snapshot_damage: damage,
    }
}

/// The damaged ranges inside the snapshot that starts at `mark`, when the
/// damage lies wholly inside it (its end record, read intact, proves where
/// it ends); `None` when the snapshot is intact or its extent is unknown.
fn damaged_snapshot(log: &Log, mark: u64) -> Option<Skipped> {
    let mut damage = Skipped::default();
    // Bounded by the snapshot's parts (the first other record ends it) and
    // by the log's durable end.
    for slot in log.iter_from(mark) {
        match slot {
            Slot::Unreadable(c) => {
                let (first, end) = lost_range(&c);
                damage.add(first, end);
            }
            Slot::Present(r) => match Record::decode(r.payload()) {
                Ok(Record::SnapshotPart(_)) => {}
                Ok(Record::SnapshotEnd { first_offset, .. }) if first_offset == mark => {
                    let end = r.offset();
                    let inside = damage.ranges.iter().all(|&(_, e)| e <= end);
                    return (!damage.ranges.is_empty() && inside).then_some(damage);
                }
                _ => return None,
            },
            Slot::Gone | Slot::Empty => return None,
        }
    }
    None
}

/// The first offset of the latest intact snapshot at or after `start`.
fn latest_snapshot(log: &Log, start: u64) -> Option<u64> {
    let mut latest = None;
    // Bounded by the log's durable end.
    for slot in log.iter_from(start) {
        if let Slot::Present(r) = slot {
            if let Ok(Record::SnapshotEnd { first_offset, .. }) = Record::decode(r.payload()) {
                latest = Some(first_offset).filter(|f| *f >= start);
            }
        }
    }
    latest
}

/// Feeds every record from `mark` to the log's durable end into `shard`.
fn replay_records(
    log: &Log,
    shard: &mut Shard,
    dir: &Path,
    plan: &Plan,
) -> Result<Skipped, HubStartError> {
    let mark = plan.from;
    let shard_id = shard.config().shard;
    let fail = |offset: u64, reason: String| replay_error(shard_id, offset, reason);
    let mut skipped = Skipped::default();
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
                expected = pass_unreadable(log, plan, &c, &mut skipped, expected)
                    .ok_or_else(|| damaged_error(shard_id, dir, &c))?;
                continue;
            }
            Slot::Empty => return Err(fail(expected, "no durable record".into())),
        };
        let offset = record.offset();
        if offset != expected
            && !(offset > expected && passed_over(&skipped, plan, expected, offset))
        {
            return Err(fail(offset, format!("expected offset {expected}")));
        }
        let decoded = Record::decode(record.payload()).map_err(|e| fail(offset, e.to_string()))?;
        shard
            .replay_resolving(offset, decoded, |at| read_record(log, at))
            .map_err(|e| fail(offset, e))?;
        expected = offset + 1;
    }
    replay_tail(log, shard, plan, &skipped, expected)?;
    Ok(skipped)
}

/// The record at `offset`, decoded, for a snapshot part that refers to it.
fn read_record(log: &Log, offset: u64) -> Result<Record, String> {
    match log.read(offset) {
        Slot::Present(r) => Record::decode(r.payload()).map_err(|e| e.to_string()),
        Slot::Empty => Err(format!("the part it refers to at {offset} is not durable")),
        Slot::Gone => Err(format!(
            "the part it refers to at {offset} was dropped by retention"
        )),
        Slot::Unreadable(c) => Err(format!(
            "the part it refers to at {offset} is damaged: {}",
            c.what
        )),
    }
}

/// An unreadable range met in replay: passes it (giving the offset
/// expected next) when it is part of a damaged snapshot this replay does
/// not use or a loss the operator accepted (then recorded in `skipped`);
/// `None` when it is damage that must stop the start.
fn pass_unreadable(
    log: &Log,
    plan: &Plan,
    c: &Corruption,
    skipped: &mut Skipped,
    expected: u64,
) -> Option<u64> {
    let (first, end) = lost_range(c);
    // Parts of a damaged snapshot this replay does not use pass;
    // anything else only once the operator accepted its loss.
    if !plan.snapshot_damage.covers(first, end) {
        if !log.is_damage_accepted(c) {
            return None;
        }
        skipped.add(first, end);
    }
    if (first..end).contains(&expected) {
        Some(expected + 1)
    } else {
        Some(expected)
    }
}

/// After the last durable record: moves the shard past lost records at the
/// log's end and checks that it ends where the log does.
fn replay_tail(
    log: &Log,
    shard: &mut Shard,
    plan: &Plan,
    skipped: &Skipped,
    expected: u64,
) -> Result<(), HubStartError> {
    let log_next = log.stats().next_offset;
    if expected < log_next && passed_over(skipped, plan, expected, log_next) {
        // The log's last records were lost: the shard goes on after them.
        shard.replay_skipped(log_next);
    }
    if shard.next_offset() != log_next {
        return Err(replay_error(
            shard.config().shard,
            shard.next_offset(),
            format!(
                "replay ended at {} but the log's next offset is {log_next}",
                shard.next_offset()
            ),
        ));
    }
    Ok(())
}

/// Replay could not go on at `offset`.
fn replay_error(shard: u16, offset: u64, reason: String) -> HubStartError {
    HubStartError::Replay {
        shard,
        offset,
        reason,
    }
}

/// Damage the operator has not accepted: names the range and the directory
/// `gonets repair` needs.
fn damaged_error(shard: u16, dir: &Path, c: &Corruption) -> HubStartError {
    HubStartError::Damaged {
        shard,
        dir: dir.to_path_buf(),
        first_offset: c.first_offset,
        end_offset: c.end_offset,
        what: c.what.clone(),
    }
}

/// The offsets a damaged range makes unreadable (at least the first: a
/// range reported with no length still stands for the record met there).
fn lost_range(c: &Corruption) -> (u64, u64) {
    (c.first_offset, c.end_offset.max(c.first_offset + 1))
}

/// True when replay may pass over `[from, to)`: lost records the operator
/// accepted, or parts of a damaged snapshot this replay does not use.
fn passed_over(skipped: &Skipped, plan: &Plan, from: u64, to: u64) -> bool {
    skipped.covers(from, to) || plan.snapshot_damage.covers(from, to)
}

#[cfg(test)]
mod tests {
    use super::Skipped;

    #[test]
    fn given_touching_ranges_when_added_then_merged_and_cover_spans_them() {
        let mut s = Skipped::default();
        s.add(10, 12);
        s.add(12, 15);
        s.add(20, 21);
        assert_eq!(s.ranges, vec![(10, 15), (20, 21)]);
        assert!(s.covers(10, 15));
        assert!(s.covers(11, 13));
        assert!(!s.covers(14, 16));
        assert!(!s.covers(9, 11));
        assert!(s.covers(20, 21));
        assert_eq!(s.offsets(), 6);
    }
}
