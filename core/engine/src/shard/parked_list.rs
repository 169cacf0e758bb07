//! A queue's parked requests in log order, in chunks of at most
//! [`CHUNK_ENTRIES`] allocated once each: a `VecDeque` doubles its buffer,
//! so ten million 40-byte entries would hold up to 16.7 million slots
//! (670 MB); chunks waste at most one chunk.

use super::queue::Parked;
use gonets_types::ids::MessageId;
use std::collections::VecDeque;

/// What a [`ParkedList`] holds: entries ordered by their request record's
/// offset, found by their id (whose time never goes down with the offset).
pub trait Listed: Copy {
    /// Offset of the request record: the list's order.
    fn offset(&self) -> u64;
    /// The request's id.
    fn id(&self) -> MessageId;
}

impl Listed for Parked {
    fn offset(&self) -> u64 {
        self.offset
    }

    fn id(&self) -> MessageId {
        Parked::id(self)
    }
}

/// Entries per chunk (160 KiB of 40-byte entries).
pub const CHUNK_ENTRIES: usize = 4096;

/// Where an entry is: a chunk and a place in it. Valid until the list
/// changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    chunk: usize,
    at: usize,
}

/// Entries of one chunk, and where a snapshot wrote them as they are now.
/// Queues are taken from the front: a removal there moves `head` instead
/// of shifting up to [`CHUNK_ENTRIES`] entries (160 KiB) down.
#[derive(Debug)]
struct Chunk<T> {
    /// Live entries are `slots[head..]`.
    slots: Vec<T>,
    head: usize,
    /// The log offset of a snapshot part holding exactly these entries;
    /// any change clears it (a later snapshot then writes them again).
    written_at: Option<u64>,
}

impl<T: Listed> Chunk<T> {
    fn with(entry: T) -> Chunk<T> {
        let mut slots = Vec::with_capacity(CHUNK_ENTRIES);
        slots.push(entry);
        Chunk {
            slots,
            head: 0,
            written_at: None,
        }
    }

    fn entries(&self) -> &[T] {
        &self.slots[self.head..]
    }

    fn last(&self) -> &T {
        self.slots.last().expect("never empty")
    }

    /// Room at the back without reallocating.
    fn has_room(&self) -> bool {
        self.slots.len() < CHUNK_ENTRIES
    }

    fn push(&mut self, entry: T) {
        self.written_at = None;
        self.slots.push(entry);
    }

    fn insert(&mut self, at: usize, entry: T) {
        self.written_at = None;
        self.slots.insert(self.head + at, entry);
    }

    fn remove(&mut self, at: usize) -> T {
        self.written_at = None;
        assert!(self.head + at < self.slots.len());
        if at == 0 {
            let entry = self.slots[self.head];
            self.head += 1;
            entry
        } else {
            self.slots.remove(self.head + at)
        }
    }

    fn is_empty(&self) -> bool {
        self.head == self.slots.len()
    }
}

/// Entries, offsets ascending (parked requests by default).
#[derive(Debug)]
pub struct ParkedList<T = Parked> {
    /// Never an empty chunk.
    chunks: VecDeque<Chunk<T>>,
    len: usize,
}

impl<T> Default for ParkedList<T> {
    fn default() -> Self {
        ParkedList {
            chunks: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T: Listed> ParkedList<T> {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first (lowest offset) entry.
    pub fn front(&self) -> Option<&T> {
        self.chunks.front().map(|c| &c.entries()[0])
    }

    /// Where the first entry is.
    pub fn front_pos(&self) -> Option<Pos> {
        (!self.is_empty()).then_some(Pos { chunk: 0, at: 0 })
    }

    /// The last (highest offset) entry.
    pub fn back(&self) -> Option<&T> {
        self.chunks.back().map(Chunk::last)
    }

    /// Adds an entry above every held one.
    pub fn push_back(&mut self, entry: T) {
        assert!(self.back().is_none_or(|b| b.offset() < entry.offset()));
        match self.chunks.back_mut() {
            Some(c) if c.has_room() => c.push(entry),
            _ => self.chunks.push_back(Chunk::with(entry)),
        }
        self.len += 1;
    }

    /// Adds an entry at its place by offset (not above every held one).
    /// A chunk may grow past [`CHUNK_ENTRIES`] here; it is rare (a request
    /// parked again after a restart).
    pub fn insert_sorted(&mut self, entry: T) {
        let chunk = self
            .chunks
            .partition_point(|c| c.last().offset() < entry.offset());
        assert!(chunk < self.chunks.len(), "push_back takes the tail");
        let c = &mut self.chunks[chunk];
        let at = c.entries().partition_point(|p| p.offset() < entry.offset());
        assert!(
            c.entries()[at].offset() != entry.offset(),
            "a request parked twice"
        );
        c.insert(at, entry);
        self.len += 1;
    }

    /// The entry at `pos`.
    pub fn get(&self, pos: Pos) -> &T {
        &self.chunks[pos.chunk].entries()[pos.at]
    }

    /// Takes the entry at `pos` out.
    pub fn remove(&mut self, pos: Pos) -> T {
        let c = &mut self.chunks[pos.chunk];
        let entry = c.remove(pos.at);
        if c.is_empty() {
            self.chunks.remove(pos.chunk);
        }
        self.len -= 1;
        entry
    }

    /// Where `id` is. Entries are in log order, so their ids' times never
    /// go down (the hub clock does not run backwards, not even across
    /// restarts): a binary search on the time over chunks, then in one,
    /// then a scan of the entries of that millisecond.
    pub fn find(&self, id: MessageId) -> Option<Pos> {
        let ms = id.unix_ms();
        let time = |p: &T| p.id().unix_ms();
        let mut chunk = self.chunks.partition_point(|c| time(c.last()) < ms);
        let mut at = self
            .chunks
            .get(chunk)?
            .entries()
            .partition_point(|p| time(p) < ms);
        // Bounded by the entries of one millisecond.
        while let Some(p) = self.chunks.get(chunk).and_then(|c| c.entries().get(at)) {
            if time(p) != ms {
                return None;
            }
            if p.id() == id {
                return Some(Pos { chunk, at });
            }
            at += 1;
            if at == self.chunks[chunk].entries().len() {
                (chunk, at) = (chunk + 1, 0);
            }
        }
        None
    }

    /// Every entry, in log order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flat_map(|c| c.entries().iter())
    }

    /// Chunks held.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Chunk `i`'s entries, and where a snapshot part holds them as they
    /// are, if one does.
    pub fn chunk(&self, i: usize) -> (&[T], Option<u64>) {
        let c = &self.chunks[i];
        (c.entries(), c.written_at)
    }

    /// Notes that the snapshot part at `offset` holds chunk `i` as it is.
    pub fn chunk_written(&mut self, i: usize, offset: u64) {
        self.chunks[i].written_at = Some(offset);
    }

    /// The lowest offset of a part some chunk is written at.
    pub fn written_floor(&self) -> Option<u64> {
        self.chunks.iter().filter_map(|c| c.written_at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u64, ms: u64) -> Parked {
        Parked::new(
            MessageId::new(ms, 0, offset),
            offset,
            0,
            (0, 0),
            false,
            false,
        )
    }

    #[test]
    fn given_many_entries_when_found_and_removed_then_chunks_stay_exact() {
        let mut l = ParkedList::default();
        let n = CHUNK_ENTRIES as u64 * 3 + 7;
        // Ten entries per millisecond, so one millisecond spans chunks.
        for o in 0..n {
            l.push_back(entry(o, 1_000 + o / 10));
        }
        assert_eq!(l.len(), n as usize);
        assert_eq!(l.chunk_count(), 4);
        for o in [0, 1, 4095, 4096, 4097, n - 1] {
            let pos = l.find(entry(o, 1_000 + o / 10).id()).expect("found");
            assert_eq!(l.get(pos).offset, o);
        }
        assert_eq!(l.find(entry(n, 1_000 + n / 10).id()), None);
        let pos = l.find(entry(4096, 1_000 + 409).id()).unwrap();
        assert_eq!(l.remove(pos).offset, 4096);
        assert_eq!(l.find(entry(4096, 1_000 + 409).id()), None);
        l.insert_sorted(entry(4096, 1_000 + 409));
        assert!(l.iter().map(|p| p.offset).eq(0..n));
        assert_eq!(l.front().unwrap().offset, 0);
        assert_eq!(l.back().unwrap().offset, n - 1);
    }

    #[test]
    fn given_chunk_emptied_when_removed_then_no_empty_chunk_stays() {
        let mut l = ParkedList::default();
        l.push_back(entry(1, 5));
        let pos = l.find(entry(1, 5).id()).unwrap();
        l.remove(pos);
        assert!(l.is_empty());
        assert_eq!(l.chunk_count(), 0);
        assert_eq!(l.find(entry(1, 5).id()), None);
    }

    #[test]
    fn given_front_taken_when_found_inserted_and_chunked_then_entries_stay_exact() {
        let mut l = ParkedList::default();
        let n = CHUNK_ENTRIES as u64 + 10;
        for o in 0..n {
            l.push_back(entry(o * 2, 1_000 + o));
        }
        // Take the first hundred from the front, as a reader does.
        for o in 0..100 {
            assert_eq!(l.remove(l.front_pos().unwrap()).offset, o * 2);
        }
        assert_eq!(l.len(), (n - 100) as usize);
        assert_eq!(l.front().unwrap().offset, 200);
        let pos = l
            .find(entry(300, 1_150).id())
            .expect("found after the head moved");
        assert_eq!(l.get(pos).offset, 300);
        // A request parked again lands at its place in the trimmed chunk.
        l.insert_sorted(entry(199, 1_099));
        assert_eq!(l.front().unwrap().offset, 199);
        assert_eq!(l.chunk(0).0.len(), CHUNK_ENTRIES - 99);
        assert_eq!(l.chunk(0).0[1].offset, 200);
        // The first chunk is full at the back: new entries open a chunk.
        assert_eq!(l.chunk_count(), 2);
        assert!(l
            .iter()
            .map(|p| p.offset)
            .eq(std::iter::once(199).chain((100..n).map(|o| o * 2))));
    }
}
