//! A queue's volatile delivery state: FIFO order, leases and delays. The
//! messages themselves live in the shard (exchanges or answer entries);
//! a queue holds their ids.

use gonets_types::ids::MessageId;
pub use gonets_types::QueueStats;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Who holds a message and until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The reader holding it.
    pub reader: u64,
    /// When it ends unless acked, ms.
    pub expires_ms: u64,
    /// Distinguishes this lease from later ones of the same message (stale timers).
    pub generation: u64,
}

/// Where a message stands in its queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Waiting to be delivered.
    Ready,
    /// Handed to a reader.
    Leased(Lease),
    /// Given back with a delay; ready again at the stored time.
    Delayed {
        /// Generation of the delay (stale timers).
        generation: u64,
    },
}

/// One queue: ids in FIFO order plus what is in flight.
#[derive(Debug, Default)]
pub struct Queue {
    /// Ready messages by their first-enqueue order: a redelivered message keeps its place.
    ready: BTreeMap<u64, MessageId>,
    /// Every message of the queue and where it stands, with its order key and enqueue time.
    members: HashMap<MessageId, Member>,
    next_order: u64,
    /// Messages leased now: what a disconnect scans, instead of every
    /// member of a queue that may hold a large backlog.
    leased: HashSet<MessageId>,
    next_generation: u64,
}

#[derive(Clone, Copy, Debug)]
struct Member {
    order: u64,
    place: Place,
    enqueued_ms: u64,
}

impl Queue {
    /// Adds a message at the tail, enqueued at `now_ms` (for the oldest age).
    pub fn push(&mut self, id: MessageId, now_ms: u64) {
        assert!(!self.members.contains_key(&id), "message enqueued twice");
        let order = self.next_order;
        self.next_order += 1;
        self.members.insert(
            id,
            Member {
                order,
                place: Place::Ready,
                enqueued_ms: now_ms,
            },
        );
        self.ready.insert(order, id);
    }

    /// Messages in the queue.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when nothing is in the queue.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// True when a message is ready for delivery.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Where a message stands, if it is in the queue.
    pub fn place(&self, id: MessageId) -> Option<Place> {
        self.members.get(&id).map(|m| m.place)
    }

    /// Takes the oldest ready message and leases it to `reader`.
    pub fn lease_next(&mut self, reader: u64, expires_ms: u64) -> Option<(MessageId, Lease)> {
        let (_, id) = self.ready.pop_first()?;
        let lease = Lease {
            reader,
            expires_ms,
            generation: self.generation(),
        };
        let m = self.members.get_mut(&id).expect("ready implies member");
        debug_assert_eq!(m.place, Place::Ready);
        m.place = Place::Leased(lease);
        self.leased.insert(id);
        Some((id, lease))
    }

    /// Puts a leased or delayed message back among the ready, in its old place.
    pub fn make_ready(&mut self, id: MessageId) {
        let m = self.members.get_mut(&id).expect("member");
        match m.place {
            Place::Ready => return,
            Place::Leased(_) => {
                self.leased.remove(&id);
            }
            Place::Delayed { .. } => {}
        }
        m.place = Place::Ready;
        self.ready.insert(m.order, id);
    }

    /// Moves a leased message to the delayed state; returns the delay's generation.
    pub fn delay(&mut self, id: MessageId) -> u64 {
        let generation = self.generation();
        let m = self.members.get_mut(&id).expect("member");
        match m.place {
            Place::Leased(_) => {
                self.leased.remove(&id);
            }
            Place::Ready => {
                self.ready.remove(&m.order);
            }
            Place::Delayed { .. } => {}
        }
        m.place = Place::Delayed { generation };
        generation
    }

    /// Removes a message wherever it stands; false if it was not here.
    pub fn remove(&mut self, id: MessageId) -> bool {
        let Some(m) = self.members.remove(&id) else {
            return false;
        };
        match m.place {
            Place::Ready => {
                self.ready.remove(&m.order);
            }
            Place::Leased(_) => {
                self.leased.remove(&id);
            }
            Place::Delayed { .. } => {}
        }
        true
    }

    /// Ids leased to `reader`.
    pub fn leased_to(&self, reader: u64) -> Vec<MessageId> {
        self.leased
            .iter()
            .filter(|id| matches!(self.members[id].place, Place::Leased(l) if l.reader == reader))
            .copied()
            .collect()
    }

    /// Depth, in flight and oldest age at `now_ms`.
    pub fn stats(&self, now_ms: u64) -> QueueStats {
        let oldest = self.members.values().map(|m| m.enqueued_ms).min();
        QueueStats {
            depth: self.members.len() as u64,
            in_flight: self.leased.len() as u64,
            oldest_age_ms: oldest.map_or(0, |t| now_ms.saturating_sub(t)),
        }
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> MessageId {
        MessageId::new(1, 0, n)
    }

    #[test]
    fn given_redelivered_message_when_made_ready_then_it_keeps_its_fifo_place() {
        let mut q = Queue::default();
        for n in 1..=3 {
            q.push(id(n), 0);
        }
        let (first, _) = q.lease_next(7, 100).unwrap();
        assert_eq!(first, id(1));
        q.make_ready(first);
        assert_eq!(q.lease_next(7, 100).unwrap().0, id(1));
        assert_eq!(q.stats(50).in_flight, 1);
        assert_eq!(q.stats(50).depth, 3);
        assert_eq!(q.stats(50).oldest_age_ms, 50);
    }

    #[test]
    fn given_leases_when_removed_or_delayed_then_counts_stay_exact() {
        let mut q = Queue::default();
        q.push(id(1), 0);
        q.push(id(2), 0);
        q.lease_next(1, 10);
        q.lease_next(2, 10);
        assert_eq!(q.leased_to(2), vec![id(2)]);
        q.delay(id(1));
        assert_eq!(q.stats(0).in_flight, 1);
        assert!(q.remove(id(2)));
        assert!(!q.remove(id(2)));
        assert_eq!(q.stats(0).in_flight, 0);
        q.make_ready(id(1));
        assert!(q.has_ready());
        assert_eq!(q.len(), 1);
    }
}
