//! The idempotency window (ADR 0010): which message a (consumer, data kind,
//! idempotency key) named, for `dedup_window_ms` after it came. Each key is
//! held as a 16-byte BLAKE3 print of the three, never as text, in slices of
//! the window by acceptance time: a slice leaves memory whole once every
//! key in it is past its window, so no key needs a timer of its own. A key
//! is a repeat only while its original is younger than the window (the
//! original's time is its id's), whatever slice still holds it.
//!
//! A print is a 128-bit cryptographic hash: two different keys share one
//! with probability about n²/2¹²⁹ (for 10¹⁰ keys, 10⁻¹⁹); a sender cannot
//! aim for a collision without breaking BLAKE3.

use super::IdMap;
use gonets_types::ids::{DataKindId, MessageId, ParticipantId};
use std::collections::VecDeque;

/// An idempotency key as the window holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPrint(pub u128);

impl KeyPrint {
    /// The print of `key` sent by `consumer` for `kind`.
    pub fn of(consumer: &ParticipantId, kind: &DataKindId, key: &str) -> KeyPrint {
        let mut h = blake3::Hasher::new();
        // Length-prefixed, so no two triples run together the same way.
        for part in [consumer.as_str(), kind.as_str(), key] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        let bytes: [u8; 16] = h.finalize().as_bytes()[..16]
            .try_into()
            .expect("16 of 32 bytes");
        KeyPrint(u128::from_le_bytes(bytes))
    }
}

/// Time slices per window: a key stays in memory at most this fraction of
/// the window past its end.
pub const WINDOW_SLICES: u64 = 24;
/// Most keys the open slice takes before it is frozen: 7/8 of 2²⁰, so its
/// hash table never outgrows 2²⁰ buckets (35 MB).
pub const OPEN_KEYS_MAX: usize = 917_504;
/// A snapshot freezes the open slice once it holds this many keys, so that
/// no snapshot writes more than this many keys of it (512 KiB) again: a
/// frozen slice is written once and referred to afterwards. Every snapshot
/// rewrites the open slice whole, and snapshots come every 25,000 records
/// (ADR 0035): at 65,536 the open slice's rewrites were most of a snapshot
/// beside bulk. The merge bound below still holds.
pub const SNAPSHOT_FREEZE_KEYS_MIN: usize = 16_384;
/// Most keys the window holds (about 2.3 GiB of tables and 1 GiB of their
/// prints in order): past it the oldest slice leaves early, and a repeat of
/// one of its keys is taken as a new request (counted:
/// `KeyWindow::dropped_early`).
pub const WINDOW_KEYS_MAX: usize = 64 << 20;
/// Keys a pending merge of two frozen slices copies per key inserted. A
/// merge copied in one go held the shard ~50 ns a key (14 ms for 300,000
/// keys, ~60 ms near a full slice, on the project VM); in steps it costs
/// each insert a few µs, and it ends within `OPEN_KEYS_MAX / 64` (14,336)
/// inserts: before a snapshot can freeze the next slice.
pub const MERGE_STEP_KEYS: usize = 64;
const _: () = assert!(OPEN_KEYS_MAX / MERGE_STEP_KEYS < SNAPSHOT_FREEZE_KEYS_MIN);

/// The slice taking new keys.
#[derive(Debug)]
struct OpenSlice {
    start_ms: u64,
    last_ms: u64,
    keys: IdMap<KeyPrint, MessageId>,
    /// Each key's print, in the order it came (a merge and a snapshot read
    /// a slice by position, never by walking its table).
    order: Vec<KeyPrint>,
}

/// A closed slice. It never changes, so a snapshot writes it once and
/// refers to those parts afterwards.
#[derive(Debug)]
struct FrozenSlice {
    /// Names it while a merge reads it (its place moves as slices leave).
    seq: u64,
    last_ms: u64,
    keys: IdMap<KeyPrint, MessageId>,
    /// Its keys' prints, each once, in the order they came.
    order: Vec<KeyPrint>,
    /// The log offsets of the snapshot parts holding it, once written.
    written_at: Option<Vec<u64>>,
}

impl FrozenSlice {
    fn get(&self, print: KeyPrint) -> Option<MessageId> {
        self.keys.get(&print).copied()
    }

    /// Its `k`-th key in order, with the message it names.
    fn entry(&self, k: usize) -> (KeyPrint, MessageId) {
        let print = self.order[k];
        (print, self.keys[&print])
    }
}

/// Two neighbouring frozen slices being merged into one, a few keys per
/// insert ([`MERGE_STEP_KEYS`]). Until it ends, lookups read the two
/// sources, which do not change; the new table is read by nobody.
#[derive(Debug)]
struct Merge {
    older: u64,
    newer: u64,
    keys: IdMap<KeyPrint, MessageId>,
    order: Vec<KeyPrint>,
    /// Keys copied so far: the older's in order, then the newer's.
    copied: usize,
}

/// The keys of the last `window_ms`: one open slice taking new keys, the
/// older ones frozen.
#[derive(Debug)]
pub struct KeyWindow {
    window_ms: u64,
    slice_ms: u64,
    open: Option<OpenSlice>,
    /// Oldest first.
    frozen: VecDeque<FrozenSlice>,
    frozen_len: usize,
    dropped_early: u64,
    next_seq: u64,
    merge: Option<Merge>,
}

impl KeyWindow {
    /// An empty window of `window_ms`.
    pub fn new(window_ms: u64) -> KeyWindow {
        KeyWindow {
            window_ms,
            slice_ms: (window_ms / WINDOW_SLICES).max(1),
            open: None,
            frozen: VecDeque::new(),
            frozen_len: 0,
            dropped_early: 0,
            next_seq: 0,
            merge: None,
        }
    }

    /// Notes that `print` named `id`, accepted at `time_ms`. Times come in
    /// order; one older than the open slice (a clock absorbed backwards)
    /// joins it and only stays longer. Takes a step of a pending merge.
    pub fn insert(&mut self, print: KeyPrint, id: MessageId, time_ms: u64) {
        let start_ms = time_ms - time_ms % self.slice_ms;
        let full = self
            .open
            .as_ref()
            .is_some_and(|o| o.start_ms < start_ms || o.keys.len() >= OPEN_KEYS_MAX);
        if full {
            self.freeze();
            self.drop_passed(time_ms);
        }
        let open = self.open.get_or_insert_with(|| OpenSlice {
            start_ms,
            last_ms: time_ms,
            keys: IdMap::default(),
            order: Vec::new(),
        });
        open.last_ms = open.last_ms.max(time_ms);
        if open.keys.insert(print, id).is_none() {
            open.order.push(print);
        }
        debug_assert_eq!(open.keys.len(), open.order.len());
        self.merge_step();
    }

    /// Before a snapshot: freezes a large open slice, then starts merging
    /// the two newest frozen slices if the older is at most twice the newer
    /// and the two fit one full slice (so frozen slices stay few, each key
    /// is merged a few times at most, and full ones are never touched
    /// again). The merge goes on a few keys per insert ([`MERGE_STEP_KEYS`]);
    /// when it ends the next pair is looked at.
    pub fn freeze_for_snapshot(&mut self) {
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.keys.len() >= SNAPSHOT_FREEZE_KEYS_MIN)
        {
            self.freeze();
        }
        self.start_merge();
    }

    fn freeze(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        self.frozen_len += open.keys.len();
        self.frozen.push_back(FrozenSlice {
            seq: self.next_seq,
            last_ms: open.last_ms,
            keys: open.keys,
            order: open.order,
            written_at: None,
        });
        self.next_seq += 1;
        // Bounded: past the most keys, the oldest slices leave early.
        while self.frozen_len > WINDOW_KEYS_MAX {
            let gone = self.frozen.pop_front().expect("keys held");
            self.frozen_len -= gone.keys.len();
            self.dropped_early += gone.keys.len() as u64;
        }
    }

    /// Starts merging the two newest frozen slices when they qualify and
    /// no merge is under way.
    fn start_merge(&mut self) {
        if self.merge.is_some() {
            return;
        }
        let [.., older, newer] = self.frozen.make_contiguous() else {
            return;
        };
        let fits = older.keys.len() + newer.keys.len() <= OPEN_KEYS_MAX;
        if !fits || older.keys.len() > 2 * newer.keys.len() {
            return;
        }
        let len = older.keys.len() + newer.keys.len();
        self.merge = Some(Merge {
            older: older.seq,
            newer: newer.seq,
            keys: IdMap::with_capacity_and_hasher(len, Default::default()),
            order: Vec::with_capacity(len),
            copied: 0,
        });
    }

    /// Copies up to [`MERGE_STEP_KEYS`] keys of the pending merge; ends it
    /// when all are copied. A merge whose source left (its window passed,
    /// or the window's bound) is dropped.
    fn merge_step(&mut self) {
        let Some((older_seq, newer_seq)) = self.merge.as_ref().map(|m| (m.older, m.newer)) else {
            return;
        };
        let place = |seq| self.frozen.iter().position(|s| s.seq == seq);
        let (Some(oi), Some(ni)) = (place(older_seq), place(newer_seq)) else {
            self.merge = None;
            return;
        };
        assert_eq!(oi + 1, ni, "a merge reads two neighbouring slices");
        let (older, newer) = (&self.frozen[oi], &self.frozen[ni]);
        let total = older.order.len() + newer.order.len();
        let m = self.merge.as_mut().expect("pending");
        let end = (m.copied + MERGE_STEP_KEYS).min(total);
        for k in m.copied..end {
            let (print, id) = match k.checked_sub(older.order.len()) {
                None => older.entry(k),
                Some(kn) => newer.entry(kn),
            };
            // A print in both (re-accepted after its window): the newer wins,
            // as lookups newest first did.
            if m.keys.insert(print, id).is_none() {
                m.order.push(print);
            }
        }
        m.copied = end;
        if end == total {
            self.finish_merge(oi);
        }
    }

    /// Puts the merged slice in place of its two sources (at `oi` and the
    /// next place), then looks at the next pair.
    fn finish_merge(&mut self, oi: usize) {
        let m = self.merge.take().expect("pending");
        let newer = self.frozen.remove(oi + 1).expect("the newer source");
        let older = &mut self.frozen[oi];
        assert_eq!((older.seq, newer.seq), (m.older, m.newer));
        assert_eq!(m.keys.len(), m.order.len());
        assert!(m.keys.len() <= older.keys.len() + newer.keys.len());
        self.frozen_len -= older.keys.len() + newer.keys.len() - m.keys.len();
        older.seq = self.next_seq;
        older.last_ms = older.last_ms.max(newer.last_ms);
        older.keys = m.keys;
        older.order = m.order;
        // The merged slice holds its sources' keys: where both are written,
        // a snapshot refers to their parts (the older's first, so on replay a
        // print in both names the newer's message, as here) instead of
        // writing it again (tens of ms for a full slice).
        older.written_at = match (older.written_at.take(), newer.written_at) {
            (Some(mut parts), Some(newer_parts)) => {
                parts.extend(newer_parts);
                Some(parts)
            }
            _ => None,
        };
        self.next_seq += 1;
        self.start_merge();
    }

    /// The message `print` named, newest first, if a slice still has it.
    pub fn get(&self, print: KeyPrint) -> Option<MessageId> {
        if let Some(id) = self.open.as_ref().and_then(|o| o.keys.get(&print)) {
            return Some(*id);
        }
        self.frozen.iter().rev().find_map(|s| s.get(print))
    }

    /// Drops the slices whose every key is past its window at `now_ms`.
    pub fn drop_passed(&mut self, now_ms: u64) {
        while let Some(s) = self
            .frozen
            .front()
            .filter(|s| s.last_ms.saturating_add(self.window_ms) <= now_ms)
        {
            self.frozen_len -= s.keys.len();
            self.frozen.pop_front();
        }
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.last_ms.saturating_add(self.window_ms) <= now_ms)
        {
            self.open = None;
        }
    }

    /// Keys held (some may be past their window until their slice goes).
    pub fn len(&self) -> usize {
        self.frozen_len + self.open.as_ref().map_or(0, |o| o.keys.len())
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys dropped before their window ended ([`WINDOW_KEYS_MAX`]).
    pub fn dropped_early(&self) -> u64 {
        self.dropped_early
    }

    /// Frozen slices held (oldest first).
    pub fn frozen_count(&self) -> usize {
        self.frozen.len()
    }

    /// Keys of frozen slice `i`.
    pub fn frozen_len_of(&self, i: usize) -> usize {
        self.frozen[i].order.len()
    }

    /// Where snapshot parts hold frozen slice `i`, once written.
    pub fn frozen_written_at(&self, i: usize) -> Option<&[u64]> {
        self.frozen[i].written_at.as_deref()
    }

    /// Up to `len` keys of frozen slice `i` from its `start`-th, in the
    /// order they came (the tests' view of a slice's order; a snapshot
    /// takes [`KeyWindow::frozen_table_entries`]).
    #[cfg(test)]
    pub fn frozen_entries(&self, i: usize, start: usize, len: usize) -> Vec<(KeyPrint, MessageId)> {
        let slice = &self.frozen[i];
        let end = start.saturating_add(len).min(slice.order.len());
        (start..end).map(|k| slice.entry(k)).collect()
    }

    /// Every key of frozen slice `i`, in its table's order: a walk of the
    /// table, not a lookup a key (~60 ns each on the project VM, where a
    /// snapshot writes a new slice of 16,384 keys or more while the shard
    /// takes no input). A slice never changes, so the order holds for as
    /// long as the slice does.
    pub fn frozen_table_entries(&self, i: usize) -> Vec<(KeyPrint, MessageId)> {
        let slice = &self.frozen[i];
        let entries: Vec<_> = slice.keys.iter().map(|(p, id)| (*p, *id)).collect();
        assert_eq!(
            entries.len(),
            slice.order.len(),
            "a slice holds each print once"
        );
        entries
    }

    /// Notes the snapshot parts that hold frozen slice `i`.
    pub fn frozen_written(&mut self, i: usize, offsets: Vec<u64>) {
        self.frozen[i].written_at = Some(offsets);
    }

    /// The open slice's keys.
    pub fn open_entries(&self) -> Vec<(KeyPrint, MessageId)> {
        self.open
            .iter()
            .flat_map(|o| o.keys.iter().map(|(p, id)| (*p, *id)))
            .collect()
    }

    /// Every key held, oldest slice first.
    pub fn entries(&self) -> impl Iterator<Item = (KeyPrint, MessageId)> + '_ {
        let frozen = self
            .frozen
            .iter()
            .flat_map(|s| s.keys.iter().map(|(p, id)| (*p, *id)));
        let open = self
            .open
            .iter()
            .flat_map(|o| o.keys.iter().map(|(p, id)| (*p, *id)));
        frozen.chain(open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64, ms: u64) -> MessageId {
        MessageId::new(ms, 0, n)
    }

    #[test]
    fn given_keys_when_prints_taken_then_each_part_counts() {
        let (c, k) = (ParticipantId::new("MFC"), DataKindId::new("urn:k"));
        let a = KeyPrint::of(&c, &k, "key-1");
        assert_eq!(a, KeyPrint::of(&c, &k, "key-1"));
        assert_ne!(a, KeyPrint::of(&c, &k, "key-2"));
        assert_ne!(a, KeyPrint::of(&ParticipantId::new("SFR"), &k, "key-1"));
        assert_ne!(a, KeyPrint::of(&c, &DataKindId::new("urn:j"), "key-1"));
        // "ab"+"c" and "a"+"bc" are different triples.
        let ab = KeyPrint::of(&ParticipantId::new("ab"), &DataKindId::new("c"), "");
        let a_bc = KeyPrint::of(&ParticipantId::new("a"), &DataKindId::new("bc"), "");
        assert_ne!(ab, a_bc);
    }

    #[test]
    fn given_window_when_time_passes_then_slices_leave_whole() {
        let mut w = KeyWindow::new(2_400);
        for n in 0..10_000u64 {
            let t = 1_000_000 + n;
            w.insert(KeyPrint(u128::from(n)), id(n, t), t);
        }
        // Everything a window and a slice before the last insert is gone.
        assert_eq!(w.get(KeyPrint(0)), None);
        let recent: u64 = 9_999 - 2_400;
        let want = Some(id(recent, 1_000_000 + recent));
        assert_eq!(w.get(KeyPrint(u128::from(recent))), want);
        assert!(w.len() <= 2_400 + 100 + 1);
        w.drop_passed(1_000_000 + 9_999 + 2_400);
        assert!(w.is_empty());
    }

    #[test]
    fn given_many_keys_in_one_slice_when_full_then_frozen_and_still_found() {
        let mut w = KeyWindow::new(24 * 3_600_000);
        let n = OPEN_KEYS_MAX as u64 + 10;
        for k in 0..n {
            w.insert(KeyPrint(u128::from(k) * 7919), id(k, 5_000), 5_000);
        }
        assert_eq!(w.frozen.len(), 1, "the open slice froze once full");
        assert!(w.frozen[0].keys.capacity() >= OPEN_KEYS_MAX);
        assert!(
            w.frozen[0].keys.capacity() < 2 * OPEN_KEYS_MAX,
            "no table doubled"
        );
        for k in [0, 1, OPEN_KEYS_MAX as u64 - 1, OPEN_KEYS_MAX as u64, n - 1] {
            assert_eq!(w.get(KeyPrint(u128::from(k) * 7919)), Some(id(k, 5_000)));
        }
        assert_eq!(w.get(KeyPrint(3)), None);
        assert_eq!(w.len(), n as usize);
        assert_eq!(w.entries().count(), n as usize);
        assert_eq!(w.dropped_early(), 0);
    }

    #[test]
    fn given_snapshots_when_the_open_slice_is_large_then_frozen_and_merged_in_tiers() {
        let mut w = KeyWindow::new(24 * 3_600_000);
        let per = SNAPSHOT_FREEZE_KEYS_MIN as u64;
        let mut k = 0u64;
        for _ in 0..12 {
            for _ in 0..per {
                w.insert(KeyPrint(u128::from(k) * 31), id(k, 9_000), 9_000);
                k += 1;
            }
            w.freeze_for_snapshot();
            assert!(w.open.is_none(), "frozen at the snapshot");
        }
        // 12 × 64 Ki keys: merged into tiers, none past a full slice.
        assert!(w.frozen.len() <= 4, "{} slices", w.frozen.len());
        assert!(w.frozen.iter().all(|s| s.keys.len() <= OPEN_KEYS_MAX));
        assert_eq!(w.len(), k as usize);
        for probe in [0, per, 5 * per + 7, k - 1] {
            assert_eq!(
                w.get(KeyPrint(u128::from(probe) * 31)),
                Some(id(probe, 9_000))
            );
        }
        // A small open slice stays open.
        w.insert(KeyPrint(1), id(1, 9_001), 9_001);
        w.freeze_for_snapshot();
        assert!(w.open.is_some());
    }

    /// A window with two frozen slices of `older` and `newer` keys (prints
    /// `0..older`, then `older..older + newer`, times 1,000 and 2,000) and a
    /// merge of them started.
    fn merging(older: u64, newer: u64) -> KeyWindow {
        let mut w = KeyWindow::new(24 * 3_600_000);
        for k in 0..older {
            w.insert(KeyPrint(u128::from(k)), id(k, 1_000), 1_000);
        }
        w.freeze();
        for k in older..older + newer {
            w.insert(KeyPrint(u128::from(k)), id(k, 2_000), 2_000);
        }
        w.freeze();
        w.start_merge();
        assert!(w.merge.is_some(), "the two slices qualify");
        w
    }

    #[test]
    fn given_a_merge_under_way_when_keys_come_then_each_copies_a_step_and_every_key_is_found() {
        let (older, newer) = (3_000u64, 2_000u64);
        let mut w = merging(older, newer);
        let mut next = 1_000_000u64;
        // Bounded: each insert copies a step; the merge ends within this many.
        let steps = (older + newer).div_ceil(MERGE_STEP_KEYS as u64);
        for step in 1..steps {
            w.insert(KeyPrint(u128::from(next)), id(next, 3_000), 3_000);
            next += 1;
            let m = w.merge.as_ref().expect("still under way");
            assert_eq!(m.copied as u64, step * MERGE_STEP_KEYS as u64);
            assert_eq!(w.frozen.len(), 2, "the sources stay until it ends");
            for k in [0, older - 1, older, older + newer - 1] {
                let at = if k < older { 1_000 } else { 2_000 };
                assert_eq!(w.get(KeyPrint(u128::from(k))), Some(id(k, at)));
            }
        }
        w.insert(KeyPrint(u128::from(next)), id(next, 3_000), 3_000);
        assert!(w.merge.is_none(), "ended");
        assert_eq!(w.frozen.len(), 1);
        assert_eq!(w.frozen_len, (older + newer) as usize);
        assert_eq!(w.len(), (older + newer + steps) as usize);
        assert_eq!(w.frozen_written_at(0), None, "a source was never written");
        let parts: Vec<_> = (0..older + newer)
            .step_by(1_000)
            .flat_map(|start| w.frozen_entries(0, start as usize, 1_000))
            .collect();
        let want: Vec<_> = (0..older)
            .map(|k| (KeyPrint(u128::from(k)), id(k, 1_000)))
            .chain((older..older + newer).map(|k| (KeyPrint(u128::from(k)), id(k, 2_000))))
            .collect();
        assert_eq!(parts, want, "in the order the keys came");
    }

    #[test]
    fn given_a_print_in_both_sources_when_merged_then_held_once_with_the_newer_message() {
        let mut w = KeyWindow::new(24 * 3_600_000);
        w.insert(KeyPrint(7), id(1, 1_000), 1_000);
        w.insert(KeyPrint(8), id(2, 1_000), 1_000);
        w.freeze();
        w.insert(KeyPrint(7), id(3, 2_000), 2_000);
        w.freeze();
        w.start_merge();
        w.insert(KeyPrint(9), id(4, 3_000), 3_000);
        assert!(w.merge.is_none());
        assert_eq!(w.frozen.len(), 1);
        assert_eq!(w.get(KeyPrint(7)), Some(id(3, 2_000)));
        assert_eq!(w.frozen_entries(0, 0, 10).len(), 2);
        assert_eq!(w.frozen_len, 2);
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn given_a_merge_source_past_its_window_when_a_step_comes_then_the_merge_is_dropped() {
        let mut w = merging(3_000, 2_000);
        // The older source (last key at 1,000) leaves; the newer stays.
        let later = 1_000 + 24 * 3_600_000;
        w.drop_passed(later);
        assert_eq!(w.frozen.len(), 1);
        w.insert(KeyPrint(1 << 40), id(9, later), later);
        assert!(w.merge.is_none(), "dropped with its source");
        assert_eq!(w.get(KeyPrint(0)), None);
        assert_eq!(w.get(KeyPrint(3_000)), Some(id(3_000, 2_000)));
        assert_eq!(w.len(), 2_001);
    }

    #[test]
    fn given_both_sources_written_when_merged_then_the_merged_slice_refers_to_their_parts() {
        let mut w = merging(3_000, 2_000);
        w.frozen_written(0, vec![10, 11]);
        w.frozen_written(1, vec![20]);
        w.merge_step();
        // Bounded: 5,000 keys in steps.
        while w.merge.is_some() {
            w.merge_step();
        }
        assert_eq!(w.frozen_written_at(0), Some(&[10, 11, 20][..]));
        let mut half = merging(3_000, 2_000);
        half.frozen_written(0, vec![10, 11]);
        while half.merge.is_some() {
            half.merge_step();
        }
        assert_eq!(half.frozen_written_at(0), None, "written whole again");
    }
}
