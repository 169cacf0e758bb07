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
/// no snapshot writes more than this many keys of it (2 MiB) again: a frozen
/// slice is written once and referred to afterwards.
pub const SNAPSHOT_FREEZE_KEYS_MIN: usize = 65_536;
/// Most keys the window holds (about 2.3 GiB of tables): past it the oldest
/// slice leaves early, and a repeat of one of its keys is taken as a new
/// request (counted: `KeyWindow::dropped_early`).
pub const WINDOW_KEYS_MAX: usize = 64 << 20;

/// The slice taking new keys.
#[derive(Debug)]
struct OpenSlice {
    start_ms: u64,
    last_ms: u64,
    keys: IdMap<KeyPrint, MessageId>,
}

/// A closed slice: its table shrunk to fit (a slice frozen full is at 7/8
/// load; one a time step closed at no less than 7/16). It never changes,
/// so a snapshot writes it once and refers to those parts afterwards.
#[derive(Debug)]
struct FrozenSlice {
    last_ms: u64,
    keys: IdMap<KeyPrint, MessageId>,
    /// The log offsets of the snapshot parts holding it, once written.
    written_at: Option<Vec<u64>>,
}

impl FrozenSlice {
    fn get(&self, print: KeyPrint) -> Option<MessageId> {
        self.keys.get(&print).copied()
    }
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
        }
    }

    /// Notes that `print` named `id`, accepted at `time_ms`. Times come in
    /// order; one older than the open slice (a clock absorbed backwards)
    /// joins it and only stays longer.
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
        });
        open.last_ms = open.last_ms.max(time_ms);
        open.keys.insert(print, id);
    }

    /// Before a snapshot: freezes a large open slice, then merges the two
    /// newest frozen slices while the older is at most twice the newer and
    /// the two fit one full slice (so frozen slices stay few, each key is
    /// merged a few times at most, and full ones are never touched again).
    pub fn freeze_for_snapshot(&mut self) {
        if self
            .open
            .as_ref()
            .is_none_or(|o| o.keys.len() < SNAPSHOT_FREEZE_KEYS_MIN)
        {
            return;
        }
        self.freeze();
        // Bounded: each pass merges two slices into one.
        while let [.., older, newer] = self.frozen.make_contiguous() {
            let fits = older.keys.len() + newer.keys.len() <= OPEN_KEYS_MAX;
            if !fits || older.keys.len() > 2 * newer.keys.len() {
                break;
            }
            let newer = self.frozen.pop_back().expect("two");
            let older = self.frozen.back_mut().expect("two");
            older.keys.extend(newer.keys);
            older.keys.shrink_to_fit();
            older.last_ms = older.last_ms.max(newer.last_ms);
            older.written_at = None;
        }
    }

    fn freeze(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        let mut keys = open.keys;
        keys.shrink_to_fit();
        self.frozen_len += keys.len();
        self.frozen.push_back(FrozenSlice {
            last_ms: open.last_ms,
            keys,
            written_at: None,
        });
        // Bounded: past the most keys, the oldest slices leave early.
        while self.frozen_len > WINDOW_KEYS_MAX {
            let gone = self.frozen.pop_front().expect("keys held");
            self.frozen_len -= gone.keys.len();
            self.dropped_early += gone.keys.len() as u64;
        }
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

    /// Where snapshot parts hold frozen slice `i`, once written.
    pub fn frozen_written_at(&self, i: usize) -> Option<&[u64]> {
        self.frozen[i].written_at.as_deref()
    }

    /// Frozen slice `i`'s keys (in the table's order, which never changes).
    pub fn frozen_entries(&self, i: usize) -> Vec<(KeyPrint, MessageId)> {
        self.frozen[i]
            .keys
            .iter()
            .map(|(p, id)| (*p, *id))
            .collect()
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
}
