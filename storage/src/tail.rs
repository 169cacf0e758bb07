//! The tail cache: the records of the most recent durable batches, kept in
//! memory so that a record read soon after its commit is served without
//! touching the segment map.
//!
//! Why: batches are written with O_DIRECT, so the page cache never holds
//! them; reading a fresh record through the map takes a major page fault,
//! a synchronous disk read on the reactor thread. The engine reads nearly
//! every record back soon after its commit (deliveries), so that fault was
//! paid once per message.
//!
//! Safety: a batch enters the cache only once its write (and `fdatasync`)
//! returned, so nothing served from here is non-durable; a read from here
//! checks the record's header like a read from the map, but not its CRC:
//! these bytes were sealed in this process's memory and never read back
//! from the disk, which is what the CRC guards. The cache holds the bytes
//! as they were written (the write buffer itself, `durable_batch`; a copy
//! for a small batch), not as the disk holds them: damage on disk in a
//! cached range shows once the batch has left the cache and is read from
//! the map. Bounded by `LogConfig::recent_bytes_max`,
//! oldest batch dropped first; empty after open.
//!
//! Readers far behind: when batch after batch leaves the cache unread
//! ([`COLD_EVICTIONS_MAX`] in a row), the readers are further behind the
//! tail than the cache reaches, and keeping every batch (or copying a
//! small one in) is pure cost. The cache then
//! stands aside, remembering where the batches it skipped start; a read
//! from the map that falls among the most recent of them (the range the
//! cache would hold) means a reader caught up, and the cache takes batches
//! again.

use crate::frame::{self, RecordKind, HEADER_SIZE_BYTES};
use bytes::Bytes;
use std::collections::VecDeque;

/// One durable batch's records, as written (without its commit marker).
pub(crate) struct CachedBatch {
    pub(crate) first_offset: u64,
    /// Base offset of the segment the batch was written to.
    pub(crate) segment_base: u64,
    /// Position of the batch in that segment.
    pub(crate) position: usize,
    pub(crate) bytes: Bytes,
    /// Start of each record in `bytes`, one per offset from `first_offset`.
    positions: Box<[u32]>,
    /// Reads served from this batch.
    hits: u32,
}

impl CachedBatch {
    fn end_offset(&self) -> u64 {
        self.first_offset + self.positions.len() as u64
    }
}

/// Batches in a row that left the cache unread before it stands aside.
pub const COLD_EVICTIONS_MAX: u32 = 16;

/// Skipped batches remembered while the cache stands aside: about what
/// it would hold (in batches) when batches are full.
const SKIPPED_BATCHES_MAX: usize = 64;

/// Most recent durable batches, contiguous in offsets, oldest first.
#[derive(Default)]
pub(crate) struct TailCache {
    batches: VecDeque<CachedBatch>,
    bytes: usize,
    bytes_max: usize,
    /// Batches in a row dropped without a read.
    cold_evictions: u32,
    /// While standing aside: first offsets of the latest batches skipped,
    /// oldest first (at most [`SKIPPED_BATCHES_MAX`]).
    skipped: Option<VecDeque<u64>>,
    /// Times the cache stood aside (statistics).
    pub(crate) stood_aside: u64,
}

/// Where a cached record is: its batch's bytes and its position there.
pub(crate) struct CachedRecord {
    pub(crate) bytes: Bytes,
    pub(crate) position: usize,
    pub(crate) segment_base: u64,
    /// The record's position in its segment (for a damage report).
    pub(crate) segment_position: usize,
}

impl TailCache {
    pub(crate) fn new(bytes_max: usize) -> TailCache {
        TailCache {
            batches: VecDeque::new(),
            bytes: 0,
            bytes_max,
            cold_evictions: 0,
            skipped: None,
            stood_aside: 0,
        }
    }

    /// Bytes held now.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Batches held now.
    pub(crate) fn batch_count(&self) -> usize {
        self.batches.len()
    }

    /// True when the cache may take batches at all.
    pub(crate) fn enabled(&self) -> bool {
        self.bytes_max > 0
    }

    /// Takes a durable batch's records (`records` is the batch's bytes up
    /// to its commit marker, usually its write buffer itself), dropping the
    /// oldest batches to stay within the bound. A batch larger than the
    /// bound empties the cache: what it holds stays contiguous.
    pub(crate) fn insert(
        &mut self,
        first_offset: u64,
        record_count: u32,
        (segment_base, position): (u64, usize),
        records: Bytes,
        size_bytes_max: usize,
    ) {
        if !self.enabled() {
            return;
        }
        if let Some(skipped) = &mut self.skipped {
            if skipped.len() == SKIPPED_BATCHES_MAX {
                skipped.pop_front();
            }
            skipped.push_back(first_offset);
            return;
        }
        let contiguous = self
            .batches
            .back()
            .is_none_or(|b| b.end_offset() == first_offset);
        if !contiguous || records.len() > self.bytes_max {
            self.clear();
        }
        if records.len() > self.bytes_max {
            return;
        }
        let positions = record_positions(&records, first_offset, record_count, size_bytes_max);
        // Bounded by the number of batches held.
        while self.bytes + records.len() > self.bytes_max {
            let old = self.batches.pop_front().expect("bytes held by some batch");
            self.bytes -= old.bytes.len();
            self.cold_evictions = if old.hits == 0 {
                self.cold_evictions + 1
            } else {
                0
            };
        }
        if self.cold_evictions >= COLD_EVICTIONS_MAX {
            self.stand_aside(first_offset);
            return;
        }
        self.bytes += records.len();
        self.batches.push_back(CachedBatch {
            first_offset,
            segment_base,
            position,
            bytes: records,
            positions,
            hits: 0,
        });
    }

    /// Stops taking batches from the one at `first_offset` on.
    fn stand_aside(&mut self, first_offset: u64) {
        self.clear();
        self.skipped = Some(VecDeque::from([first_offset]));
        self.stood_aside += 1;
    }

    /// True while the cache stands aside for readers far behind.
    pub(crate) fn standing_aside(&self) -> bool {
        self.skipped.is_some()
    }

    /// A read at `offset` missed the cache: if the cache stands aside and
    /// `offset` is among the batches it would hold, it takes batches again.
    pub(crate) fn missed(&mut self, offset: u64) {
        let near_tail = self
            .skipped
            .as_ref()
            .and_then(|s| s.front())
            .is_some_and(|oldest| offset >= *oldest);
        if near_tail {
            self.skipped = None;
            self.cold_evictions = 0;
        }
    }

    /// The cached record at `offset`, if its batch is held.
    pub(crate) fn find(&mut self, offset: u64) -> Option<CachedRecord> {
        let first = self.batches.front()?.first_offset;
        let end = self.batches.back()?.end_offset();
        if offset < first || offset >= end {
            return None;
        }
        let i = self.batches.partition_point(|b| b.first_offset <= offset) - 1;
        let b = &mut self.batches[i];
        b.hits = b.hits.saturating_add(1);
        assert!(b.first_offset <= offset && offset < b.end_offset());
        let position = b.positions[(offset - b.first_offset) as usize] as usize;
        Some(CachedRecord {
            bytes: b.bytes.clone(),
            position,
            segment_base: b.segment_base,
            segment_position: b.position + position,
        })
    }

    /// Drops the batches written to the segment based at `segment_base`
    /// (retention removed it).
    pub(crate) fn drop_segment(&mut self, segment_base: u64) {
        let (bytes, batches) = (&mut self.bytes, &mut self.batches);
        batches.retain(|b| {
            let keep = b.segment_base != segment_base;
            if !keep {
                *bytes -= b.bytes.len();
            }
            keep
        });
    }

    /// Drops everything.
    pub(crate) fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }
}

/// Where each record of a batch starts; the batch was sealed by this log,
/// so each header is where the previous record ends.
fn record_positions(
    records: &[u8],
    first_offset: u64,
    record_count: u32,
    size_bytes_max: usize,
) -> Box<[u32]> {
    let mut positions = Vec::with_capacity(record_count as usize);
    let mut pos = 0;
    for i in 0..u64::from(record_count) {
        let (size, offset, kind) = frame::peek(records, pos, size_bytes_max)
            .expect("a sealed batch holds a record header here");
        assert!(offset == first_offset + i && kind == RecordKind::Data);
        assert!(size >= HEADER_SIZE_BYTES);
        positions.push(u32::try_from(pos).expect("a batch is below 4 GiB"));
        pos += size;
    }
    assert_eq!(
        pos,
        records.len(),
        "the records fill the batch up to its marker"
    );
    positions.into_boxed_slice()
}
