//! The shard's timers: deadlines, leases, long-poll waits, nack delays and
//! idempotency windows, ordered by due time. Cancelled timers are not
//! removed; each fires into a check of the state it was armed for.

use gonets_types::ids::{MessageId, QueueId};
use std::collections::BTreeMap;

/// What a timer is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Timer {
    /// A request's deadline.
    Deadline(MessageId),
    /// A lease's end.
    Lease {
        /// The queue.
        queue: QueueId,
        /// The message.
        id: MessageId,
        /// The lease's generation.
        generation: u64,
    },
    /// A nack delay's end.
    Delay {
        /// The queue.
        queue: QueueId,
        /// The message.
        id: MessageId,
        /// The delay's generation.
        generation: u64,
    },
    /// A long-poll fetch's wait ends.
    FetchWait(u64),
    /// A finished exchange leaves memory.
    Evict(MessageId),
    /// The oldest async request still committing may be past its deadline.
    CommittingHead {
        /// When it was armed for (a later arming makes it stale).
        at_ms: u64,
    },
    /// The first parked request of a queue may be past its deadline.
    ParkedHead {
        /// The queue.
        queue: QueueId,
        /// When it was armed for (a later arming makes it stale).
        at_ms: u64,
    },
}

/// Timers by due time.
#[derive(Debug, Default)]
pub struct Timers {
    due: BTreeMap<(u64, u64), Timer>,
    next_seq: u64,
}

impl Timers {
    /// Arms `timer` for `at_ms`.
    pub fn arm(&mut self, at_ms: u64, timer: Timer) {
        self.next_seq += 1;
        self.due.insert((at_ms, self.next_seq), timer);
    }

    /// The earliest due time.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.due.first_key_value().map(|((at, _), _)| *at)
    }

    /// Takes the earliest timer due at or before `now_ms`.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<(u64, Timer)> {
        let ((at, _), _) = self.due.first_key_value()?;
        if *at > now_ms {
            return None;
        }
        self.due.pop_first().map(|((at, _), t)| (at, t))
    }

    /// Number of armed timers (cancelled ones included until they fire).
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// True when none is armed.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}
