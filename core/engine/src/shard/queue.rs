//! A queue's volatile delivery state: FIFO order, leases and delays. The
//! messages themselves live in the shard (exchanges or answer entries);
//! a queue holds their ids.
//!
//! A request queue also holds the requests no reader has taken yet as
//! [`Parked`] entries, 40 bytes each, in log order: the log holds the rest
//! (ADR 0010). They join the members, as full exchanges, when leased (or
//! when anything else needs them whole).

use super::parked_list::{Listed, ParkedList, Pos};
use super::{IdMap, IdSet};
use gonets_types::ids::MessageId;
pub use gonets_types::QueueStats;
use std::collections::BTreeMap;

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

/// A durable request waiting in its queue that no reader has taken yet:
/// what the queue must know without reading the log. Its time is its id's
/// (`MessageId::unix_ms`), its kind the queue's; transaction code and
/// idempotency key, when it has them, are kept beside (`Shard`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parked {
    /// The id, as two halves: a `u128` field would align the entry to 16.
    id_hi: u64,
    id_lo: u64,
    /// Offset of the request record: the queue's order.
    pub offset: u64,
    /// Absolute deadline, ms.
    pub deadline_ms: u64,
    /// The consumer and the provider (as the shard's name table numbers
    /// them, [`PARKED_NAME_BITS`] each), the test flag, whether it came
    /// with an idempotency key, and its payload's size (the queue's byte
    /// quota counts it): one word, so that the entry stays 40 bytes.
    packed: u64,
}

/// Bits of a name's number in a [`Parked`] entry: a shard parks requests
/// of at most 2^18 distinct participants (more stay whole exchanges).
pub const PARKED_NAME_BITS: u32 = 18;
/// Bits of the payload size in a [`Parked`] entry: 2^26 bytes = 64 MiB,
/// the log's largest batch, so every request that fits a record fits.
const PAYLOAD_BITS: u32 = 26;
const NAME_MASK: u64 = (1 << PARKED_NAME_BITS) - 1;
const PROVIDER_SHIFT: u32 = PARKED_NAME_BITS;
const TEST_BIT: u64 = 1 << (2 * PARKED_NAME_BITS);
const KEYED_BIT: u64 = TEST_BIT << 1;
const PAYLOAD_SHIFT: u32 = 2 * PARKED_NAME_BITS + 2;
const _: () = assert!(PAYLOAD_SHIFT + PAYLOAD_BITS == 64);

impl Parked {
    /// True when names numbered `consumer` and `provider` and a payload of
    /// `payload_bytes` fit an entry (else the request stays whole).
    pub fn fits((consumer, provider): (u32, u32), payload_bytes: u32) -> bool {
        u64::from(consumer.max(provider)) <= NAME_MASK && payload_bytes >> PAYLOAD_BITS == 0
    }

    /// An entry with an empty payload; the names must fit
    /// ([`Parked::fits`]).
    pub fn new(
        id: MessageId,
        offset: u64,
        deadline_ms: u64,
        (consumer, provider): (u32, u32),
        test: bool,
        keyed: bool,
    ) -> Parked {
        assert!(Parked::fits((consumer, provider), 0), "name table overflow");
        Parked {
            id_hi: (id.0 >> 64) as u64,
            id_lo: id.0 as u64,
            offset,
            deadline_ms,
            packed: u64::from(consumer)
                | u64::from(provider) << PROVIDER_SHIFT
                | if test { TEST_BIT } else { 0 }
                | if keyed { KEYED_BIT } else { 0 },
        }
    }

    /// The entry with a payload of `payload_bytes`, which must fit.
    pub fn with_payload_bytes(self, payload_bytes: u32) -> Parked {
        assert!(Parked::fits((0, 0), payload_bytes), "payload size overflow");
        let packed = self.packed & !(u64::MAX << PAYLOAD_SHIFT);
        Parked {
            packed: packed | u64::from(payload_bytes) << PAYLOAD_SHIFT,
            ..self
        }
    }

    /// The request's id.
    pub fn id(&self) -> MessageId {
        MessageId(u128::from(self.id_hi) << 64 | u128::from(self.id_lo))
    }

    /// The consumer's number in the shard's name table.
    pub fn consumer(&self) -> u32 {
        (self.packed & NAME_MASK) as u32
    }

    /// The provider's number in the shard's name table.
    pub fn provider(&self) -> u32 {
        (self.packed >> PROVIDER_SHIFT & NAME_MASK) as u32
    }

    /// It came with an idempotency key.
    pub fn keyed(&self) -> bool {
        self.packed & KEYED_BIT != 0
    }

    /// Test traffic.
    pub fn test(&self) -> bool {
        self.packed & TEST_BIT != 0
    }

    /// Size of the request's payload, bytes.
    pub fn payload_bytes(&self) -> u32 {
        (self.packed >> PAYLOAD_SHIFT) as u32
    }
}

/// A request its provider acked and has not answered yet (ADR 0011): its
/// parked entry and the times of its one delivery and of the ack; 56 bytes
/// instead of a full exchange, for as long as the answer takes (often until
/// the deadline). Its history is exactly `Accepted`, `Delivered` (the
/// first), `Acked`; any other stays a full exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Awaiting {
    /// What a parked request holds.
    pub parked: Parked,
    /// When it was delivered, hub time ms.
    pub delivered_ms: u64,
    /// When its provider acked it, hub time ms.
    pub acked_ms: u64,
}

impl Listed for Awaiting {
    fn offset(&self) -> u64 {
        self.parked.offset
    }

    fn id(&self) -> MessageId {
        self.parked.id()
    }
}

/// One queue: ids in FIFO order plus what is in flight.
#[derive(Debug, Default)]
pub struct Queue {
    /// Ready messages by their order (a request's offset): a redelivered
    /// message keeps its place.
    ready: BTreeMap<u64, MessageId>,
    /// Requests no reader has taken yet, by offset (never below a ready
    /// member's order when both were enqueued live: see `lease_next`).
    parked: ParkedList,
    /// When the head timer that counts is due (`Timer::ParkedHead`): one
    /// armed for another time is stale.
    pub head_timer_ms: Option<u64>,
    /// Requests acked by their provider and not answered, by offset: out
    /// of the queue (no reader sees them), held here for their answer.
    awaiting: ParkedList<Awaiting>,
    /// The latest deadline parked at the tail since the parked requests
    /// were last none (ADR 0012): a request parked with an earlier one
    /// would wait behind it for the head timer, so the wheel watches it.
    pub parked_deadline_max_ms: u64,
    /// Every message of the queue and where it stands, with its order key and enqueue time.
    members: IdMap<MessageId, Member>,
    next_order: u64,
    /// Messages leased now: what a disconnect scans, instead of every
    /// member of a queue that may hold a large backlog.
    leased: IdSet<MessageId>,
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
    /// For answer queues, whose messages have no offset here.
    pub fn push(&mut self, id: MessageId, now_ms: u64) {
        let order = self.next_order;
        self.next_order += 1;
        self.push_at(id, order, now_ms);
    }

    /// Adds a request at its place `order` (its record's offset), enqueued
    /// at `now_ms`.
    pub fn push_at(&mut self, id: MessageId, order: u64, now_ms: u64) {
        assert!(!self.members.contains_key(&id), "message enqueued twice");
        self.next_order = self.next_order.max(order + 1);
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

    /// Parks a request at its place in log order; true when that is the
    /// tail (the usual case: requests park as they become durable). One
    /// made whole and parked again later (a restart) goes back in between.
    pub fn park(&mut self, entry: Parked) -> bool {
        if self.parked.back().is_none_or(|b| b.offset < entry.offset) {
            self.parked.push_back(entry);
            return true;
        }
        self.parked.insert_sorted(entry);
        false
    }

    /// The parked requests, in log order.
    pub fn parked(&self) -> &ParkedList {
        &self.parked
    }

    /// The parked requests, to note what a snapshot wrote.
    pub fn parked_mut(&mut self) -> &mut ParkedList {
        &mut self.parked
    }

    /// Where `id` is among the parked requests.
    pub fn parked_position(&self, id: MessageId) -> Option<Pos> {
        self.parked.find(id)
    }

    /// Takes a parked request out (it becomes a member, or leaves): O(1) at
    /// the head (leases, expiry), one chunk's shift elsewhere.
    pub fn unpark_at(&mut self, position: Pos) -> Parked {
        self.parked.remove(position)
    }

    /// Holds an acked request for its answer, at its place in log order.
    pub fn hold_awaiting(&mut self, entry: Awaiting) {
        if self
            .awaiting
            .back()
            .is_none_or(|b| b.offset() < entry.offset())
        {
            self.awaiting.push_back(entry);
        } else {
            self.awaiting.insert_sorted(entry);
        }
    }

    /// The acked requests awaiting their answer, in log order.
    pub fn awaiting(&self) -> &ParkedList<Awaiting> {
        &self.awaiting
    }

    /// The awaiting requests, to note what a snapshot wrote.
    pub fn awaiting_mut(&mut self) -> &mut ParkedList<Awaiting> {
        &mut self.awaiting
    }

    /// Where `id` is among the awaiting requests.
    pub fn awaiting_position(&self, id: MessageId) -> Option<Pos> {
        self.awaiting.find(id)
    }

    /// Takes an awaiting request out (it becomes a full exchange again).
    pub fn take_awaiting_at(&mut self, position: Pos) -> Awaiting {
        self.awaiting.remove(position)
    }

    /// Messages in the queue.
    pub fn len(&self) -> usize {
        self.members.len() + self.parked.len()
    }

    /// True when nothing is in the queue.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.parked.is_empty()
    }

    /// True when a message is ready for delivery.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.parked.is_empty()
    }

    /// Where a message stands, if it is in the queue.
    pub fn place(&self, id: MessageId) -> Option<Place> {
        match self.members.get(&id) {
            Some(m) => Some(m.place),
            None => self.parked_position(id).map(|_| Place::Ready),
        }
    }

    /// True when the next message to lease is parked (its offset is below
    /// every ready member's): the shard makes it a member first.
    pub fn next_is_parked(&self) -> bool {
        match (self.parked.front(), self.ready.first_key_value()) {
            (Some(p), Some((order, _))) => p.offset < *order,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Takes the oldest ready member and leases it to `reader` (parked
    /// requests are made members first: see `next_is_parked`).
    pub fn lease_next(&mut self, reader: u64, expires_ms: u64) -> Option<(MessageId, Lease)> {
        debug_assert!(!self.next_is_parked());
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
            let Some(i) = self.parked_position(id) else {
                return false;
            };
            self.unpark_at(i);
            return true;
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

    /// When the oldest message waiting for a reader (ready or parked; not
    /// leased, not delayed) joined the queue, ms: O(log n), for the
    /// provider-unreachable rule.
    pub fn oldest_waiting_ms(&self) -> Option<u64> {
        let parked = self.parked.front().map(|p| p.id().unix_ms());
        let ready = self
            .ready
            .first_key_value()
            .and_then(|(_, id)| self.members.get(id))
            .map(|m| m.enqueued_ms);
        match (parked, ready) {
            (Some(p), Some(r)) => Some(p.min(r)),
            (p, r) => p.or(r),
        }
    }

    /// Depth, in flight and oldest age at `now_ms`.
    pub fn stats(&self, now_ms: u64) -> QueueStats {
        let parked = self.parked.front().map(|p| p.id().unix_ms());
        let oldest = self
            .members
            .values()
            .map(|m| m.enqueued_ms)
            .chain(parked)
            .min();
        QueueStats {
            depth: self.len() as u64,
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

    fn parked(n: u64) -> Parked {
        Parked::new(
            MessageId::new(1_000 + n, 0, n),
            n,
            5_000 + n,
            (0, 1),
            false,
            false,
        )
    }

    #[test]
    fn given_parked_requests_when_one_parks_again_between_then_log_order_holds() {
        let mut q = Queue::default();
        assert!(q.park(parked(1)));
        assert!(q.park(parked(3)));
        assert!(!q.park(parked(2)), "not the tail");
        let offsets: Vec<u64> = q.parked().iter().map(|p| p.offset).collect();
        assert_eq!(offsets, vec![1, 2, 3]);
        assert_eq!(
            q.parked()
                .get(q.parked_position(parked(2).id()).unwrap())
                .offset,
            2
        );
        assert_eq!(q.place(parked(3).id()), Some(Place::Ready));
        assert!(q.next_is_parked());
        assert!(q.remove(parked(2).id()));
        assert_eq!(q.len(), 2);
        assert_eq!(q.stats(1_010).oldest_age_ms, 9);
    }

    #[test]
    fn given_parked_entry_when_built_then_forty_bytes_and_fields_round_trip() {
        assert_eq!(std::mem::size_of::<Parked>(), 40);
        let id = MessageId::new(1_700_000_000_000, 7, 99);
        let names_max = (1 << PARKED_NAME_BITS) - 1;
        let payload_max = (1 << 26) - 1;
        let p = Parked::new(id, 12, 34, (names_max, names_max), true, true)
            .with_payload_bytes(payload_max);
        assert_eq!(
            (p.id(), p.offset, p.deadline_ms, p.consumer()),
            (id, 12, 34, names_max)
        );
        assert_eq!((p.provider(), p.payload_bytes()), (names_max, payload_max));
        assert!(p.test() && p.keyed());
        let q = Parked::new(id, 12, 34, (5, 6), false, false).with_payload_bytes(4096);
        assert!(!q.test() && !q.keyed());
        assert_eq!(
            (q.consumer(), q.provider(), q.payload_bytes()),
            (5, 6, 4096)
        );
        assert_eq!(q.with_payload_bytes(7).payload_bytes(), 7, "replaced");
        assert!(
            !Parked::fits((names_max + 1, 0), 0),
            "a name past the table's bits"
        );
        assert!(
            !Parked::fits((0, 0), payload_max + 1),
            "a payload past 64 MiB"
        );
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
