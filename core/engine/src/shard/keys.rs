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

use gonets_types::ids::{DataKindId, MessageId, ParticipantId};
use std::collections::{HashMap, VecDeque};

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

/// Slices per window: a key stays in memory at most this fraction of the
/// window past its end.
pub const WINDOW_SLICES: u64 = 24;
/// Most slices held (a clock step forward may leave a gap, never more).
const SLICES_MAX: usize = WINDOW_SLICES as usize + 2;

/// One slice: keys accepted in `[start_ms, start_ms + slice_ms)`.
#[derive(Debug)]
struct Slice {
    start_ms: u64,
    keys: HashMap<KeyPrint, MessageId>,
}

/// The keys of the last `window_ms`, sliced by acceptance time.
#[derive(Debug)]
pub struct KeyWindow {
    window_ms: u64,
    slice_ms: u64,
    /// Oldest first; starts ascending.
    slices: VecDeque<Slice>,
}

impl KeyWindow {
    /// An empty window of `window_ms`.
    pub fn new(window_ms: u64) -> KeyWindow {
        KeyWindow {
            window_ms,
            slice_ms: (window_ms / WINDOW_SLICES).max(1),
            slices: VecDeque::new(),
        }
    }

    /// Notes that `print` named `id`, accepted at `time_ms` (times come in
    /// order, except in replay of a snapshot's keys, also in order).
    pub fn insert(&mut self, print: KeyPrint, id: MessageId, time_ms: u64) {
        let start_ms = time_ms - time_ms % self.slice_ms;
        let newest = self.slices.back().map(|s| s.start_ms);
        if newest.is_none_or(|n| n < start_ms) {
            self.slices.push_back(Slice {
                start_ms,
                keys: HashMap::new(),
            });
            self.drop_passed(time_ms);
        }
        // A time older than the newest slice (a clock absorbed backwards)
        // joins the newest: it only stays longer.
        let slice = self.slices.back_mut().expect("a slice");
        slice.keys.insert(print, id);
        assert!(self.slices.len() <= SLICES_MAX);
    }

    /// The message `print` named, newest first, if any slice still has it.
    pub fn get(&self, print: KeyPrint) -> Option<MessageId> {
        self.slices
            .iter()
            .rev()
            .find_map(|s| s.keys.get(&print).copied())
    }

    /// Drops the slices whose every key is past its window at `now_ms`.
    pub fn drop_passed(&mut self, now_ms: u64) {
        while self.slices.len() > 1
            && self.slices[0].start_ms + self.slice_ms + self.window_ms <= now_ms
        {
            self.slices.pop_front();
        }
        // Bounded: a slice per `slice_ms`, and those past the window go.
        while self.slices.len() > SLICES_MAX - 1 {
            self.slices.pop_front();
        }
    }

    /// Keys held (some may be past their window until their slice goes).
    pub fn len(&self) -> usize {
        self.slices.iter().map(|s| s.keys.len()).sum()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.slices.iter().all(|s| s.keys.is_empty())
    }

    /// Every key held, oldest slice first (for snapshots).
    pub fn entries(&self) -> impl Iterator<Item = (KeyPrint, MessageId)> + '_ {
        self.slices
            .iter()
            .flat_map(|s| s.keys.iter().map(|(p, id)| (*p, *id)))
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
    fn given_window_when_time_passes_then_slices_leave_whole_and_bounded() {
        let mut w = KeyWindow::new(2_400);
        for n in 0..10_000u64 {
            let t = 1_000_000 + n;
            w.insert(KeyPrint(u128::from(n)), id(n, t), t);
        }
        assert!(w.slices.len() <= SLICES_MAX);
        // Everything before now - window - slice is gone.
        assert_eq!(w.get(KeyPrint(0)), None);
        assert!(w.get(KeyPrint(9_999 - 2_400)).is_some());
        w.drop_passed(1_000_000 + 9_999 + 2_400 + 100 + 1);
        assert_eq!(w.len(), w.slices[0].keys.len());
    }
}
