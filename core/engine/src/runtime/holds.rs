//! How long the shard is held at a time: each turn of the driver's halves
//! (ADR 0032), and each snapshot appended within a turn (ADR 0011), timed
//! where it happens and counted in power-of-two microsecond buckets per
//! executor (a thread local: nothing is shared between shards), read with
//! the shard's stats and exported as `gonets_shard_hold_seconds{hold}`.
//!
//! Why: while a half holds the shard for a turn, nothing else steps it; a
//! call that arrives then waits in the inbox for the turn's end. Issue 16
//! found the tail of calls beside bulk set by such holds (snapshots of up
//! to 15 ms, ADR 0035), and each time it took a build that timed turns to
//! see it. With these an operator reads it off `/metrics`: the `inbox`
//! stage of `gonets_rt_stage_seconds` says how long calls waited, these
//! say what held the shard that long.

use gonets_storage::commit_stats::Log2Histogram;
use std::cell::RefCell;
use std::time::Instant;

/// What held the shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// A turn of the rt half: local events, the control channel, the rt
    /// inbox, and the turn's end (a snapshot's appends included).
    RtTurn,
    /// A turn of the bulk half: bulk messages while the log has room and
    /// no rt work waits, and the turn's end (a snapshot's included).
    BulkTurn,
    /// A snapshot's parts being made and appended (within a turn of
    /// either half).
    Snapshot,
}

impl Hold {
    /// Every hold, in the order [`read`] reports them.
    pub const ALL: [Hold; HOLD_COUNT] = [Hold::RtTurn, Hold::BulkTurn, Hold::Snapshot];

    /// The metric's `hold` label.
    pub fn name(self) -> &'static str {
        match self {
            Hold::RtTurn => "rt_turn",
            Hold::BulkTurn => "bulk_turn",
            Hold::Snapshot => "snapshot",
        }
    }
}

const HOLD_COUNT: usize = 3;

thread_local! {
    /// This executor's histograms, µs, since it started.
    static HOLDS: RefCell<[Log2Histogram; HOLD_COUNT]> = RefCell::new(Default::default());
}

/// Counts a `hold` that began at `since` and ends now.
pub fn note(hold: Hold, since: Instant) {
    let took_us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
    HOLDS.with(|h| h.borrow_mut()[hold as usize].note(took_us));
}

/// This executor's histograms (µs), in [`Hold::ALL`] order.
pub fn read() -> Vec<(Hold, Log2Histogram)> {
    HOLDS.with(|h| {
        let h = h.borrow();
        Hold::ALL.iter().map(|&k| (k, h[k as usize])).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn given_holds_noted_when_read_then_each_counts_in_its_own_cell() {
        let ago = Instant::now() - Duration::from_millis(4);
        note(Hold::Snapshot, ago);
        note(Hold::BulkTurn, Instant::now());
        note(Hold::BulkTurn, ago);
        let read = read();
        assert_eq!(read.len(), HOLD_COUNT);
        assert_eq!(
            read.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            Hold::ALL.to_vec()
        );
        let of = |hold| read.iter().find(|(k, _)| *k == hold).unwrap().1;
        assert_eq!(of(Hold::RtTurn).count(), 0);
        assert_eq!(of(Hold::BulkTurn).count(), 2);
        assert_eq!(of(Hold::Snapshot).count(), 1);
        assert!(
            of(Hold::Snapshot).sum() >= 4_000,
            "4 ms ago is at least 4,000 µs"
        );
        assert!(of(Hold::BulkTurn).sum() >= 4_000);
    }

    #[test]
    fn given_the_holds_when_named_then_each_label_is_distinct() {
        let mut names: Vec<&str> = Hold::ALL.iter().map(|h| h.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), HOLD_COUNT);
    }
}
