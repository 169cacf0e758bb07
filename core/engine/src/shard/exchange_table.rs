//! The shard's full exchanges, by request id, in fixed pages.
//!
//! An `Exchange` is ~320 bytes and a shard holds millions at rt rates (they
//! stay `finished_keep_ms` after they end). Held inline in a hash map, every
//! rehash moved them all into fresh pages, which fault slowly on a VM:
//! 11–34 ms stalls at rt 10,000/s (bench/RESULTS.md, 2026-12-04). Boxed, each
//! cost an allocation and a free. Here they live in slots of pages of
//! [`PAGE_SLOTS`], allocated once and never moved or shrunk; a freed slot is
//! reused (LIFO, so a hot slot stays in cache). The id map holds 4-byte slot
//! numbers, so its rehashes move 20-byte entries. Not the `slab` crate:
//! its one `Vec` of entries moves them all when it grows, the stall this
//! table exists to avoid.

use super::exchange::Exchange;
use super::SpreadIdMap;
use gonets_types::ids::MessageId;
use std::ops::Index;

/// Slots in one page: 256 × ~320 bytes, ~80 KiB allocated at once.
pub(crate) const PAGE_SLOTS: usize = 256;

/// Exchanges by request id, in pages that never move.
#[derive(Default)]
pub(crate) struct ExchangeTable {
    slots: SpreadIdMap<MessageId, u32>,
    pages: Vec<Vec<Option<Exchange>>>,
    /// Slots freed and not yet reused.
    free: Vec<u32>,
}

impl ExchangeTable {
    /// The exchange of request `id`, if held.
    pub(crate) fn get(&self, id: &MessageId) -> Option<&Exchange> {
        let slot = *self.slots.get(id)?;
        let ex = self.slot(slot).as_ref();
        debug_assert!(ex.is_some_and(|ex| ex.id == *id));
        ex
    }

    /// The exchange of request `id`, to change, if held.
    pub(crate) fn get_mut(&mut self, id: &MessageId) -> Option<&mut Exchange> {
        let slot = *self.slots.get(id)?;
        let ex = self.slot_mut(slot).as_mut();
        debug_assert!(ex.as_ref().is_some_and(|ex| ex.id == *id));
        ex
    }

    /// Whether request `id`'s exchange is held.
    pub(crate) fn contains_key(&self, id: &MessageId) -> bool {
        self.slots.contains_key(id)
    }

    /// Holds `ex` under `id`; the exchange it replaced, if any.
    pub(crate) fn insert(&mut self, id: MessageId, ex: Exchange) -> Option<Exchange> {
        assert_eq!(ex.id, id, "an exchange is held under its own id");
        if let Some(&slot) = self.slots.get(&id) {
            return self.slot_mut(slot).replace(ex);
        }
        let slot = self.free.pop().unwrap_or_else(|| self.grow());
        let old = self.slot_mut(slot).replace(ex);
        assert!(old.is_none(), "a free slot is empty");
        self.slots.insert(id, slot);
        None
    }

    /// Takes request `id`'s exchange out, if held.
    pub(crate) fn remove(&mut self, id: &MessageId) -> Option<Exchange> {
        let slot = self.slots.remove(id)?;
        let ex = self.slot_mut(slot).take();
        assert!(ex.is_some(), "a mapped slot holds its exchange");
        self.free.push(slot);
        ex
    }

    /// Exchanges held.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The ids held, in no order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &MessageId> + '_ {
        self.slots.keys()
    }

    /// The exchanges held, in no order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Exchange> + '_ {
        self.slots.values().map(|&slot| {
            self.slot(slot)
                .as_ref()
                .expect("a mapped slot holds its exchange")
        })
    }

    fn slot(&self, slot: u32) -> &Option<Exchange> {
        let slot = slot as usize;
        &self.pages[slot / PAGE_SLOTS][slot % PAGE_SLOTS]
    }

    fn slot_mut(&mut self, slot: u32) -> &mut Option<Exchange> {
        let slot = slot as usize;
        &mut self.pages[slot / PAGE_SLOTS][slot % PAGE_SLOTS]
    }

    /// Adds a page of empty slots; returns its first, and frees the rest
    /// (highest first, so slots are handed out in order).
    fn grow(&mut self) -> u32 {
        let first = self.pages.len() * PAGE_SLOTS;
        assert!(
            first + PAGE_SLOTS <= u32::MAX as usize,
            "exchange slots fit in u32"
        );
        let mut page = Vec::with_capacity(PAGE_SLOTS);
        page.resize_with(PAGE_SLOTS, || None);
        self.pages.push(page);
        self.free
            .extend((first as u32 + 1..(first + PAGE_SLOTS) as u32).rev());
        first as u32
    }
}

impl Index<&MessageId> for ExchangeTable {
    type Output = Exchange;

    fn index(&self, id: &MessageId) -> &Exchange {
        self.get(id).expect("exchange held")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gonets_types::ids::{DataKindId, ParticipantId};

    fn exchange(n: u128) -> Exchange {
        Exchange::accepted(
            MessageId(n),
            DataKindId::new("urn:test:k:1"),
            ParticipantId::new("C"),
            ParticipantId::new("P"),
            1,
            2,
        )
    }

    #[test]
    fn given_exchanges_held_and_removed_when_asked_then_each_is_found_under_its_id() {
        let mut t = ExchangeTable::default();
        let n = (PAGE_SLOTS * 2 + 3) as u128;
        for i in 1..=n {
            assert!(t.insert(MessageId(i), exchange(i)).is_none());
        }
        assert_eq!(t.len(), n as usize);
        assert_eq!(t.pages.len(), 3);
        for i in (1..=n).step_by(2) {
            assert_eq!(t.remove(&MessageId(i)).unwrap().id.0, i);
        }
        assert!(t.remove(&MessageId(1)).is_none(), "gone");
        for i in 1..=n {
            let id = MessageId(i);
            assert_eq!(t.contains_key(&id), i % 2 == 0);
            assert_eq!(t.get(&id).map(|ex| ex.id), (i % 2 == 0).then_some(id));
        }
        assert_eq!(t.values().count(), t.len());
        assert!(t.values().all(|ex| ex.id.0 % 2 == 0));
    }

    #[test]
    fn given_freed_slots_when_new_exchanges_come_then_slots_are_reused_before_a_page_is_added() {
        let mut t = ExchangeTable::default();
        for i in 1..=PAGE_SLOTS as u128 {
            t.insert(MessageId(i), exchange(i));
        }
        assert_eq!(t.pages.len(), 1);
        for i in 1..=10 {
            t.remove(&MessageId(i));
        }
        for i in 1000..1010 {
            t.insert(MessageId(i), exchange(i));
        }
        assert_eq!(t.pages.len(), 1, "ten freed slots took ten new exchanges");
        assert_eq!(t.len(), PAGE_SLOTS);
    }

    #[test]
    fn given_an_id_held_when_inserted_again_then_replaced_in_place() {
        let mut t = ExchangeTable::default();
        let id = MessageId(7);
        t.insert(id, exchange(7));
        t.get_mut(&id).unwrap().deadline_ms = 42;
        let old = t.insert(id, exchange(7)).expect("replaced");
        assert_eq!(old.deadline_ms, 42);
        assert_eq!(t.len(), 1);
        assert_eq!(t[&id].deadline_ms, exchange(7).deadline_ms);
    }
}
