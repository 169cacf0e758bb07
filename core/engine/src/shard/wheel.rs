//! A hierarchical timer wheel for the deadlines of requests out of their
//! queue's order (ADR 0012): a request whose own expiry
//! (`NewRequest::expires_in_ms`) is earlier than that of a request ahead
//! of it in its queue cannot wait for the queue's head timer, and one
//! ordered-map timer each would cost O(log n) to arm and stay armed,
//! cancelled, until due.
//!
//! Sans-IO: time is passed in. [`LEVELS`] levels of [`SLOTS`] slots; a
//! slot of level `l` spans `64^l` ms, so the levels together cover every
//! `u64` millisecond and nothing is out of range. An entry sits in the
//! level of the highest 6-bit group in which its due time differs from
//! the wheel's time, in the slot that group names; when the wheel's time
//! reaches a slot of a higher level its entries move down (at most
//! [`LEVELS`] moves in an entry's life), and those of level 0 are due at
//! exactly their millisecond: an entry is never handed out before its due
//! time, nor later than the first `pop_due` at or after it.
//!
//! Arming and cancelling are O(1) (an index by id and a doubly linked list
//! per slot in a slab of 40-byte entries, in pages that never move); a
//! cancelled entry is unlinked
//! and its slab place reused at once, so nothing stale stays. Bounded: at
//! most `entries_max` entries ([`WheelFull`] past it; the shard then falls
//! back to its ordered timers).

use super::SpreadIdMap;
use gonets_types::ids::MessageId;

/// Bits of time per level.
pub const SLOT_BITS: u32 = 6;
/// Slots per level.
pub const SLOTS: usize = 1 << SLOT_BITS;
/// Levels: 11 × 6 bits cover every `u64` time in ms.
pub const LEVELS: usize = 11;
/// The shard's bound on entries: each costs 40 bytes of slab and 33 of
/// index (up to twice that while the tables have room to grow), so 16 Mi
/// entries are 1.2–2.4 GiB.
pub const WHEEL_ENTRIES_MAX: usize = 1 << 24;

/// No entry (end of a list, an empty slot).
const NIL: u32 = u32::MAX;
/// Slab places a page, as a power of two: 4,096 × 40 bytes, 160 KiB.
const PAGE_BITS: u32 = 12;
const PAGE_ENTRIES: usize = 1 << PAGE_BITS;

/// The wheel holds its bound of entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the timer wheel holds its bound of {entries_max} entries")]
pub struct WheelFull {
    /// The bound.
    pub entries_max: usize,
}

/// One armed deadline, or a free slab place (then `next` links the free list).
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The id, as two halves: a `u128` would align the entry to 16.
    id_hi: u64,
    id_lo: u64,
    /// When it is due, ms (never before the wheel's time when armed).
    due_ms: u64,
    prev: u32,
    next: u32,
    /// `level * SLOTS + slot`, or `NIL` when free.
    slot: u32,
}

impl Entry {
    fn id(&self) -> MessageId {
        MessageId(u128::from(self.id_hi) << 64 | u128::from(self.id_lo))
    }
}

/// Request deadlines by due time, in a hierarchical wheel.
#[derive(Debug)]
pub struct Wheel {
    /// Every entry due before this has been handed out; every held one is
    /// due at or after it.
    now_ms: u64,
    /// First entry of each slot, `level * SLOTS + slot`.
    heads: Vec<u32>,
    /// Per level, a bit per non-empty slot.
    occupied: [u64; LEVELS],
    entries: Slab,
    /// First free slab place.
    free: u32,
    index: SpreadIdMap<MessageId, u32>,
    entries_max: usize,
}

/// The wheel's entries in pages that never move: one `Vec` doubling copied
/// the whole slab, 1–2 ms on the reactor at a few million entries (ADR 0030).
#[derive(Debug, Default)]
struct Slab {
    pages: Vec<Vec<Entry>>,
    len: usize,
}

impl Slab {
    /// Places in use (the free list's included).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// Adds `e` at the end; its place.
    fn push(&mut self, e: Entry) -> u32 {
        let i = self.len;
        // Places fill in order: the first place past the last page opens one.
        if i >> PAGE_BITS == self.pages.len() {
            self.pages.push(Vec::with_capacity(PAGE_ENTRIES));
        }
        let page = &mut self.pages[i >> PAGE_BITS];
        debug_assert_eq!(page.len(), i & (PAGE_ENTRIES - 1));
        page.push(e);
        self.len += 1;
        u32::try_from(i).expect("bounded below u32")
    }

    /// Empties it, keeping its first page for the next entries.
    fn clear(&mut self) {
        self.pages.truncate(1);
        if let Some(p) = self.pages.first_mut() {
            p.clear();
        }
        self.len = 0;
    }
}

impl std::ops::Index<usize> for Slab {
    type Output = Entry;
    fn index(&self, i: usize) -> &Entry {
        debug_assert!(i < self.len);
        &self.pages[i >> PAGE_BITS][i & (PAGE_ENTRIES - 1)]
    }
}

impl std::ops::IndexMut<usize> for Slab {
    fn index_mut(&mut self, i: usize) -> &mut Entry {
        debug_assert!(i < self.len);
        &mut self.pages[i >> PAGE_BITS][i & (PAGE_ENTRIES - 1)]
    }
}

impl Wheel {
    /// An empty wheel at time 0 holding at most `entries_max` entries.
    pub fn new(entries_max: usize) -> Wheel {
        assert!(entries_max < NIL as usize, "slab places fit u32");
        Wheel {
            now_ms: 0,
            heads: vec![NIL; LEVELS * SLOTS],
            occupied: [0; LEVELS],
            entries: Slab::default(),
            free: NIL,
            index: SpreadIdMap::default(),
            entries_max,
        }
    }

    /// Entries armed.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when none is armed.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The wheel's time, ms.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// When `id` is due, if armed (a time before the wheel's when armed
    /// reads as the wheel's time then).
    pub fn due_ms(&self, id: MessageId) -> Option<u64> {
        self.index
            .get(&id)
            .map(|&i| self.entries[i as usize].due_ms)
    }

    /// Arms `id` for `due_ms` (for the wheel's time if that is earlier),
    /// replacing an earlier arming of it. O(1).
    pub fn arm(&mut self, id: MessageId, due_ms: u64) -> Result<(), WheelFull> {
        self.cancel(id);
        if self.index.len() >= self.entries_max {
            return Err(WheelFull {
                entries_max: self.entries_max,
            });
        }
        let entry = Entry {
            id_hi: (id.0 >> 64) as u64,
            id_lo: id.0 as u64,
            due_ms: due_ms.max(self.now_ms),
            prev: NIL,
            next: NIL,
            slot: NIL,
        };
        let i = if self.free == NIL {
            self.entries.push(entry)
        } else {
            let i = self.free;
            self.free = self.entries[i as usize].next;
            self.entries[i as usize] = entry;
            i
        };
        self.index.insert(id, i);
        self.link(i);
        Ok(())
    }

    /// Cancels `id`'s arming: true when it was armed. O(1); its place is
    /// free at once.
    pub fn cancel(&mut self, id: MessageId) -> bool {
        if self.index.is_empty() {
            return false; // the usual case: no id to hash
        }
        let Some(i) = self.index.remove(&id) else {
            return false;
        };
        self.unlink(i);
        let e = &mut self.entries[i as usize];
        e.slot = NIL;
        e.next = self.free;
        self.free = i;
        if self.index.is_empty() {
            // Nothing armed: the slab starts again from its first place.
            self.entries.clear();
            self.free = NIL;
        }
        true
    }

    /// When the shard should look again: the earliest due time when it is
    /// in level 0, else the time the earliest slot's entries move down (a
    /// lower bound of their due times).
    pub fn next_due_ms(&self) -> Option<u64> {
        let level = self.occupied.iter().position(|bits| *bits != 0)?;
        Some(self.slot_start_ms(level, self.occupied[level].trailing_zeros()))
    }

    /// Takes an entry due at or before `now_ms` (the earliest first), with
    /// its due time, moving entries down the levels as the wheel's time
    /// reaches their slots; `None` when nothing is due by `now_ms` (the
    /// wheel's time is then `now_ms`). Times passed in must not go back.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<(u64, MessageId)> {
        let due_ms = self.peek_due(now_ms)?;
        let slot = self.occupied[0].trailing_zeros() as usize;
        let i = self.heads[slot];
        let id = self.entries[i as usize].id();
        self.cancel(id);
        Some((due_ms, id))
    }

    /// The due time of the earliest entry if it is at or before `now_ms`:
    /// the next [`Wheel::pop_due`] takes it. Moves entries down (and the
    /// wheel's time on) as `pop_due` does.
    pub fn peek_due(&mut self, now_ms: u64) -> Option<u64> {
        // Bounded: each turn empties a slot of level 1 or more into lower
        // levels, at most `LEVELS` moves per entry.
        loop {
            let Some(level) = self.occupied.iter().position(|bits| *bits != 0) else {
                self.now_ms = self.now_ms.max(now_ms);
                return None;
            };
            let slot = self.occupied[level].trailing_zeros();
            let start_ms = self.slot_start_ms(level, slot);
            if start_ms > now_ms {
                self.now_ms = self.now_ms.max(now_ms);
                return None;
            }
            assert!(start_ms >= self.now_ms, "a slot behind the wheel's time");
            self.now_ms = start_ms;
            if level == 0 {
                return Some(start_ms);
            }
            self.cascade(level, slot as usize);
        }
    }

    /// Moves every entry of `level`'s `slot` (whose time the wheel has
    /// reached) to the level its due time now names, always a lower one.
    fn cascade(&mut self, level: usize, slot: usize) {
        let at = level * SLOTS + slot;
        let mut i = std::mem::replace(&mut self.heads[at], NIL);
        self.occupied[level] &= !(1 << slot);
        // Bounded by the slot's entries.
        while i != NIL {
            let next = self.entries[i as usize].next;
            self.link(i);
            assert!(
                self.entries[i as usize].slot < at as u32,
                "an entry moves down"
            );
            i = next;
        }
    }

    /// Puts entry `i` at the head of the slot its due time names.
    fn link(&mut self, i: u32) {
        let due_ms = self.entries[i as usize].due_ms;
        assert!(due_ms >= self.now_ms, "never armed in the past");
        let differing = (due_ms ^ self.now_ms) | (SLOTS as u64 - 1);
        let level = ((63 - differing.leading_zeros()) / SLOT_BITS) as usize;
        let slot = ((due_ms >> (SLOT_BITS as usize * level)) as usize) & (SLOTS - 1);
        let at = level * SLOTS + slot;
        let head = self.heads[at];
        let e = &mut self.entries[i as usize];
        e.slot = at as u32;
        e.prev = NIL;
        e.next = head;
        if head != NIL {
            self.entries[head as usize].prev = i;
        }
        self.heads[at] = i;
        self.occupied[level] |= 1 << slot;
    }

    /// Takes entry `i` out of its slot's list.
    fn unlink(&mut self, i: u32) {
        let Entry {
            prev, next, slot, ..
        } = self.entries[i as usize];
        if prev == NIL {
            self.heads[slot as usize] = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        if self.heads[slot as usize] == NIL {
            let (level, at) = (slot as usize / SLOTS, slot as usize % SLOTS);
            self.occupied[level] &= !(1 << at);
        }
    }

    /// The first ms of `level`'s `slot` in the wheel's current span of
    /// that level (every occupied slot is at or after the wheel's time).
    fn slot_start_ms(&self, level: usize, slot: u32) -> u64 {
        let low_bits = SLOT_BITS as usize * level;
        let span_bits = low_bits + SLOT_BITS as usize;
        let above = if span_bits >= 64 {
            0
        } else {
            (self.now_ms >> span_bits) << span_bits
        };
        above | (u64::from(slot) << low_bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn id(n: u64) -> MessageId {
        MessageId::new(1_000, 0, n)
    }

    /// Every entry popped by `now_ms`, in order.
    fn drain(w: &mut Wheel, now_ms: u64) -> Vec<(u64, MessageId)> {
        std::iter::from_fn(|| w.pop_due(now_ms)).collect()
    }

    #[test]
    fn given_an_entry_then_it_takes_40_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
    }

    #[test]
    fn given_entries_on_every_level_when_time_passes_then_each_fires_at_its_ms() {
        let mut w = Wheel::new(64);
        let start_ms = 1_764_000_000_123;
        w.pop_due(start_ms);
        // Due times 1 ms to about 2 years ahead: levels 0 to 6.
        let offsets_ms = [0, 1, 63, 64, 65, 4_095, 4_097, 262_200, 16_777_300, 7 << 36];
        for (n, off) in offsets_ms.iter().enumerate() {
            w.arm(id(n as u64), start_ms + off).unwrap();
        }
        assert_eq!(w.len(), offsets_ms.len());
        for (n, off) in offsets_ms.iter().enumerate() {
            let due_ms = start_ms + off;
            if due_ms > start_ms {
                assert_eq!(w.pop_due(due_ms - 1), None, "entry {n} early");
            }
            assert_eq!(w.pop_due(due_ms), Some((due_ms, id(n as u64))));
            assert_eq!(w.pop_due(due_ms), None);
        }
        assert!(w.is_empty());
        assert_eq!(w.next_due_ms(), None);
    }

    #[test]
    fn given_a_big_jump_when_popped_then_every_entry_comes_in_due_order() {
        let mut w = Wheel::new(1_000);
        let mut dues: Vec<u64> = (0..1_000u64).map(|n| (n * 7_919) % 100_003).collect();
        for (n, due) in dues.iter().enumerate() {
            w.arm(id(n as u64), *due).unwrap();
        }
        let got: Vec<u64> = drain(&mut w, 200_000).iter().map(|(d, _)| *d).collect();
        dues.sort_unstable();
        assert_eq!(got, dues);
        assert_eq!(w.now_ms(), 200_000);
    }

    #[test]
    fn given_entries_over_several_slab_pages_when_half_cancelled_then_the_rest_fire_in_order() {
        let n_max = 3 * PAGE_ENTRIES as u64 + 17;
        let mut w = Wheel::new(n_max as usize);
        for n in 0..n_max {
            w.arm(id(n), 5 + n).unwrap();
        }
        for n in (0..n_max).step_by(2) {
            assert!(w.cancel(id(n)));
        }
        // Freed places are reused before the slab grows: no new page.
        let pages = w.entries.pages.len();
        for n in (0..n_max).step_by(2) {
            w.arm(id(n), 10 * n_max + n).unwrap();
        }
        assert_eq!(w.entries.pages.len(), pages);
        let fired = drain(&mut w, 20 * n_max);
        let odd = (1..n_max).step_by(2).map(|n| (5 + n, id(n)));
        let even = (0..n_max).step_by(2).map(|n| (10 * n_max + n, id(n)));
        assert_eq!(fired, odd.chain(even).collect::<Vec<_>>());
        assert!(w.is_empty());
        assert_eq!((w.entries.len(), w.entries.pages.len()), (0, 1));
    }

    #[test]
    fn given_cancelled_entries_when_time_passes_then_only_the_others_fire() {
        let mut w = Wheel::new(100);
        for n in 0..100 {
            w.arm(id(n), 10 + n * 100).unwrap();
        }
        for n in (0..100).step_by(2) {
            assert!(w.cancel(id(n)));
        }
        assert!(!w.cancel(id(0)), "cancelled once");
        assert_eq!(w.len(), 50);
        let fired: Vec<MessageId> = drain(&mut w, 20_000).into_iter().map(|(_, i)| i).collect();
        assert_eq!(fired, (1..100).step_by(2).map(id).collect::<Vec<_>>());
        // Nothing stale stays: the slab starts again.
        assert!(w.is_empty());
        assert_eq!(w.entries.len(), 0);
        assert!(w.occupied.iter().all(|b| *b == 0));
    }

    #[test]
    fn given_an_entry_armed_again_when_due_then_only_its_last_time_counts() {
        let mut w = Wheel::new(4);
        w.arm(id(1), 5_000).unwrap();
        w.arm(id(1), 70).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w.due_ms(id(1)), Some(70));
        assert_eq!(drain(&mut w, 10_000), vec![(70, id(1))]);
    }

    #[test]
    fn given_a_time_in_the_past_when_armed_then_it_is_due_at_once() {
        let mut w = Wheel::new(4);
        assert_eq!(w.pop_due(1_000), None);
        w.arm(id(1), 10).unwrap();
        assert_eq!(w.next_due_ms(), Some(1_000));
        assert_eq!(w.pop_due(1_000), Some((1_000, id(1))));
    }

    #[test]
    fn given_the_bound_when_one_more_is_armed_then_wheel_full_and_nothing_changes() {
        let mut w = Wheel::new(3);
        for n in 0..3 {
            w.arm(id(n), 100).unwrap();
        }
        assert_eq!(w.arm(id(9), 50), Err(WheelFull { entries_max: 3 }));
        // Armed again in place: no new entry.
        w.arm(id(2), 60).unwrap();
        assert_eq!(w.len(), 3);
        assert!(w.cancel(id(0)));
        w.arm(id(9), 50).unwrap();
        let fired: Vec<MessageId> = drain(&mut w, 100).into_iter().map(|(_, i)| i).collect();
        assert_eq!(fired, vec![id(9), id(2), id(1)]);
    }

    #[test]
    fn given_many_entries_armed_and_cancelled_while_time_moves_then_each_fires_once_on_time() {
        // A deterministic mix of arms, re-arms and cancels against a model.
        let mut w = Wheel::new(10_000);
        let mut model: HashMap<MessageId, u64> = HashMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut now_ms = 1_000_000;
        for _ in 0..20_000 {
            let r = next();
            let n = id(r % 5_000);
            match r % 4 {
                0 | 1 => {
                    let due_ms = now_ms + (next() % (1 << (next() % 30)));
                    w.arm(n, due_ms).unwrap();
                    model.insert(n, due_ms);
                }
                2 => assert_eq!(w.cancel(n), model.remove(&n).is_some()),
                _ => {
                    now_ms += next() % 5_000;
                    for (due_ms, fired) in drain(&mut w, now_ms) {
                        assert_eq!(model.remove(&fired), Some(due_ms), "fired once, on time");
                        assert!(due_ms <= now_ms);
                    }
                    assert!(model.values().all(|d| *d > now_ms), "nothing due left");
                }
            }
            assert_eq!(w.len(), model.len());
        }
        assert!(w.entries.len() <= 5_000, "places reused");
    }
}
