//! Whether real-time calls came through the hub lately, for work that
//! must yield to them: the attachment store's writes on its own thread,
//! and a connection's reads and sends of large frames on a shard's
//! executor (ADR 0022). The hub keeps one in its mesh; sessions note each
//! call they send to a shard; a reader asks [`RtRecent::recent`].
//!
//! One atomic for the whole hub, so a note stores only when the last one
//! is [`NOTE_STEP_MS`] old: at most a hundred stores a second whatever the
//! call rate, and the shards' cores read a line that rarely changes.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// A note stores at most this often, ms.
pub const NOTE_STEP_MS: u64 = 10;
/// Calls are recent while the last came within this many ms: the shards'
/// own window for holding bulk (ADR 0015, `RT_QUIET_MS`).
pub const RECENT_MS: u64 = 50;

/// When the hub last sent a real-time call to a shard.
#[derive(Debug)]
pub struct RtRecent {
    epoch: Instant,
    /// ms since `epoch` plus one at the last stored note; 0: never.
    last_ms: AtomicU64,
}

impl Default for RtRecent {
    fn default() -> Self {
        RtRecent {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl RtRecent {
    /// A real-time call goes to a shard now.
    pub fn note(&self) {
        self.note_at(self.now_ms());
    }

    /// True while the last call came within [`RECENT_MS`] (give or take
    /// [`NOTE_STEP_MS`]).
    pub fn recent(&self) -> bool {
        self.recent_at(self.now_ms())
    }

    fn now_ms(&self) -> u64 {
        // +1: 0 stays "never".
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    fn note_at(&self, now_ms: u64) {
        assert!(now_ms > 0);
        let last = self.last_ms.load(Relaxed);
        if last == 0 || now_ms.saturating_sub(last) >= NOTE_STEP_MS {
            self.last_ms.store(now_ms, Relaxed);
        }
    }

    fn recent_at(&self, now_ms: u64) -> bool {
        let last = self.last_ms.load(Relaxed);
        last != 0 && now_ms.saturating_sub(last) <= RECENT_MS + NOTE_STEP_MS
    }
}

#[cfg(test)]
mod tests {
    use super::{RtRecent, NOTE_STEP_MS, RECENT_MS};

    #[test]
    fn given_a_first_call_within_a_step_of_the_start_when_asked_then_recent() {
        let r = RtRecent::default();
        r.note_at(1);
        assert!(r.recent_at(1));
    }

    #[test]
    fn given_no_call_when_asked_then_not_recent() {
        let r = RtRecent::default();
        assert!(!r.recent_at(1));
        assert!(!r.recent_at(1_000_000));
    }

    #[test]
    fn given_a_call_when_asked_within_the_window_then_recent_and_after_it_not() {
        let r = RtRecent::default();
        r.note_at(1_000);
        assert!(r.recent_at(1_000));
        assert!(r.recent_at(1_000 + RECENT_MS + NOTE_STEP_MS));
        assert!(!r.recent_at(1_000 + RECENT_MS + NOTE_STEP_MS + 1));
    }

    #[test]
    fn given_calls_closer_than_a_step_when_noted_then_the_first_stands_until_a_step_passed() {
        let r = RtRecent::default();
        r.note_at(1_000);
        r.note_at(1_000 + NOTE_STEP_MS - 1);
        assert!(!r.recent_at(1_000 + RECENT_MS + NOTE_STEP_MS + 1));
        r.note_at(1_000 + NOTE_STEP_MS);
        assert!(r.recent_at(1_000 + RECENT_MS + NOTE_STEP_MS + 1));
    }
}
