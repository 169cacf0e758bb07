//! Per-segment sparse index from offset to the position of a batch start, and
//! the scan that builds it from a segment's bytes.

use crate::error::Corruption;
use crate::scan::{
    batch_at, classify_tail, next_valid_batch_within, salvage_records, BatchAt, BatchInfo, Damage,
    Fault, Limits, TailVerdict,
};

/// Sparse (offset, position) pairs of batch starts, ascending in both.
#[derive(Clone, Debug, Default)]
pub struct SparseIndex {
    entries: Vec<(u64, u32)>,
    last_position: Option<usize>,
}

impl SparseIndex {
    /// Adds a batch start if it lies at least `interval` bytes after the last entry.
    pub fn note_batch(&mut self, first_offset: u64, position: usize, interval: usize) {
        if let Some((last_offset, _)) = self.entries.last() {
            assert!(first_offset > *last_offset, "index entries must ascend");
        }
        let due = self.last_position.is_none_or(|p| position >= p + interval);
        if due {
            self.entries.push((first_offset, position as u32));
            self.last_position = Some(position);
        }
    }

    /// Adds an entry regardless of spacing (a resync point after damage).
    pub fn force(&mut self, first_offset: u64, position: usize) {
        if self.entries.last().is_none_or(|(o, _)| first_offset > *o) {
            self.entries.push((first_offset, position as u32));
            self.last_position = Some(position);
        }
    }

    /// Puts entries scanned later (of an earlier range) in front of these.
    pub fn prepend(&mut self, mut earlier: SparseIndex) {
        if let (Some(e), Some(f)) = (earlier.entries.last(), self.entries.first()) {
            assert!(e.0 < f.0);
        }
        earlier.entries.append(&mut self.entries);
        self.entries = earlier.entries;
        self.last_position = self.entries.last().map(|(_, p)| *p as usize);
    }

    /// The entry with the greatest offset not above `offset`.
    pub fn floor(&self, offset: u64) -> Option<(u64, usize)> {
        let i = self.entries.partition_point(|(o, _)| *o <= offset);
        (i > 0).then(|| (self.entries[i - 1].0, self.entries[i - 1].1 as usize))
    }
}

/// How a scan of a range of a segment ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// No more batches: the next one would start at `position`.
    Clean {
        /// Where the next batch goes.
        position: usize,
        /// Offset the next record gets.
        next_offset: u64,
        /// Chain after the last batch.
        chain: [u8; 32],
    },
    /// A batch that failed its checks with no valid batch after it in this segment.
    DamagedTail {
        /// Start of the failed batch.
        batch_start: usize,
        /// Offset its first record should have had.
        batch_first_offset: u64,
        /// Chain it should have continued.
        chain: [u8; 32],
        /// Where it failed.
        damage: Damage,
    },
    /// At the end of the log, a batch that failed its checks the way a torn
    /// write does (sectors that read as zeros, or no marker), followed by
    /// exactly one valid batch and then nothing: the valid batch was written
    /// while the torn one's `fdatasync` was in flight, so neither was ever
    /// acknowledged (a later batch's sync completes only after an earlier
    /// one's). Both are cut.
    TornPair {
        /// Start of the torn batch.
        batch_start: usize,
        /// Offset its first record would have had.
        batch_first_offset: u64,
        /// Chain it would have continued.
        chain: [u8; 32],
        /// End of the valid batch after it: the cut ends here.
        cut_end: usize,
    },
}

/// Where a scan starts: a batch boundary, the offset and chain expected there.
#[derive(Clone, Copy, Debug)]
pub struct ScanFrom {
    /// How far after damage or an apparent end to look for a later valid
    /// batch (bytes; `usize::MAX`: to the limit). Bounded only for the
    /// active segment, whose unused rest may be large.
    pub probe_bytes: usize,
    /// Position of the first batch to check.
    pub position: usize,
    /// Offset its first record must have.
    pub next_offset: u64,
    /// Chain value it must continue.
    pub chain: [u8; 32],
    /// The scan reaches the end of the log (the active segment at
    /// recovery), where the last two batches may both have been unsynced
    /// at a crash (the flusher writes one batch while the previous one's
    /// `fdatasync` is in flight): see [`ScanEnd::TornPair`].
    pub log_end: bool,
}

/// What a scan found.
#[derive(Clone, Debug)]
pub struct ScanOutcome {
    /// Index of the batches found.
    pub index: SparseIndex,
    /// Damage inside the range that valid batches follow (so it was durable).
    pub corruptions: Vec<Corruption>,
    /// How the range ended.
    pub end: ScanEnd,
    /// Data records found in valid batches.
    pub records: u64,
    /// Valid batches found.
    pub batches: u64,
}

impl ScanOutcome {
    /// Counts a valid batch; returns where the scan goes on (position,
    /// next offset, chain).
    fn count(&mut self, b: &BatchInfo) -> (usize, u64, [u8; 32]) {
        self.records += b.record_count as u64;
        self.batches += 1;
        (b.end, b.next_offset(), b.chain)
    }

    /// Damage at the batch that should start at `at` (segment base,
    /// position, offset) with the valid batch `b` after it: the damage was
    /// durable, so its lost records are reported (the intact ones inside
    /// it stay readable) and the scan resumes at `b`.
    fn skip_damage(
        &mut self,
        seg: &[u8],
        (segment_base, position, next_offset): (u64, usize, u64),
        damage: Damage,
        b: &BatchInfo,
        limits: Limits,
    ) {
        // Records of the damaged batch before the damage stay readable.
        self.index.force(next_offset, position);
        let what = format!(
            "{:?} at a committed batch followed by later batches",
            damage.fault
        );
        record_loss(
            &mut self.index,
            &mut self.corruptions,
            seg,
            segment_base,
            damage.position,
            b.start,
            (damage.offset, b.first_offset),
            &what,
            limits,
        );
        self.index.force(b.first_offset, b.start);
    }
}

/// True when the scan's end at `position` is the clean end of the data:
/// zeros where a batch should start, and nothing written within one batch
/// size after them (`seg` is cut at the scan's limit).
/// True when the damaged batch at `at` (position, expected first offset)
/// and the valid batch `b` after it are the pair the pipelined flusher can
/// leave at a crash (see [`ScanEnd::TornPair`]): `b` starts within one batch
/// size of the damage, nothing but zeros follows `b` for a batch size, and
/// the damaged bytes before `b` classify as torn, not as a bit flip.
fn torn_pair(seg: &[u8], at: (usize, u64), b: &BatchInfo, limits: Limits) -> bool {
    let (position, next_offset) = at;
    let adjacent = b.start > position && b.start - position <= limits.batch_bytes_max;
    let after_end = seg.len().min(b.end.saturating_add(limits.batch_bytes_max));
    let nothing_after = b.end <= seg.len() && seg[b.end..after_end].iter().all(|x| *x == 0);
    adjacent
        && nothing_after
        && matches!(
            classify_tail(&seg[..b.start], position, next_offset, limits),
            TailVerdict::Torn
        )
}

fn is_clean_end(seg: &[u8], position: usize, damage: &Damage, limits: Limits) -> bool {
    let window_end = seg.len().min(position + limits.batch_bytes_max);
    let stray = seg[position..window_end].iter().any(|x| *x != 0);
    damage.fault == Fault::Zero && damage.position == position && !stray
}

/// Records the loss of offsets `[lost_from, end_offset)` whose bytes lie in
/// `seg[damage_position..to_position]`, minus every intact record found
/// there ([`salvage_records`]): each run of lost offsets becomes one
/// [`Corruption`], each salvaged record that does not directly follow the one
/// before gets an index entry so reads find it.
#[allow(clippy::too_many_arguments)]
pub fn record_loss(
    index: &mut SparseIndex,
    corruptions: &mut Vec<Corruption>,
    seg: &[u8],
    segment_base: u64,
    damage_position: usize,
    to_position: usize,
    lost: (u64, u64),
    what: &str,
    limits: Limits,
) {
    let (lost_from, end_offset) = lost;
    let found = salvage_records(
        seg,
        damage_position,
        to_position,
        lost_from,
        end_offset,
        limits,
    );
    let mut next = lost_from;
    let mut gap_position = damage_position;
    let mut prev_end: Option<usize> = None;
    let reported = corruptions.len();
    let push =
        |corruptions: &mut Vec<Corruption>, position: usize, first_offset: u64, end_offset: u64| {
            corruptions.push(Corruption {
                segment_base,
                position: position as u64,
                first_offset,
                end_offset,
                what: what.to_string(),
            })
        };
    for s in &found {
        if s.offset > next {
            push(corruptions, gap_position, next, s.offset);
        }
        if prev_end != Some(s.position) {
            index.force(s.offset, s.position);
        }
        next = s.offset + 1;
        gap_position = s.position + s.size;
        prev_end = Some(gap_position);
    }
    if next < end_offset {
        push(corruptions, gap_position, next, end_offset);
    }
    if corruptions.len() == reported {
        // Damage where no record is lost (a marker, the chain): still reported.
        push(corruptions, damage_position, lost_from, lost_from);
    }
}

/// Scans batches from `position` up to `limit_position` (exclusive), checking
/// CRCs, offsets and the chain. Damage followed by a valid batch is recorded
/// as corruption (minus the intact records found inside it) and skipped; a
/// zero block where a batch should start is the clean end only if no valid
/// batch follows and no byte within one batch size after it is non-zero.
/// Damage with nothing valid after it ends the scan as a damaged tail.
pub fn scan_segment(
    seg: &[u8],
    segment_base: u64,
    from: ScanFrom,
    limit_position: usize,
    limits: Limits,
    index_interval: usize,
) -> ScanOutcome {
    let ScanFrom {
        mut position,
        mut next_offset,
        mut chain,
        probe_bytes,
        log_end,
    } = from;
    let mut out = ScanOutcome {
        index: SparseIndex::default(),
        corruptions: vec![],
        end: ScanEnd::Clean {
            position,
            next_offset,
            chain,
        },
        records: 0,
        batches: 0,
    };
    let limit = limit_position.min(seg.len());
    // Bounded: each step moves `position` forward by at least one block.
    while position < limit {
        let damage = match batch_at(&seg[..limit], position, next_offset, Some(&chain), limits) {
            BatchAt::Valid(b) => {
                out.index
                    .note_batch(b.first_offset, b.start, index_interval);
                (position, next_offset, chain) = out.count(&b);
                continue;
            }
            BatchAt::Empty => Damage {
                position,
                offset: next_offset,
                fault: Fault::Zero,
            },
            BatchAt::Damaged(damage) => damage,
        };
        let search_end = position.saturating_add(probe_bytes);
        let found =
            next_valid_batch_within(&seg[..limit], position, next_offset, search_end, limits);
        match found {
            Some(b) if log_end && torn_pair(&seg[..limit], (position, next_offset), &b, limits) => {
                out.end = ScanEnd::TornPair {
                    batch_start: position,
                    batch_first_offset: next_offset,
                    chain,
                    cut_end: b.end,
                };
                return out;
            }
            Some(b) => {
                let at = (segment_base, position, next_offset);
                out.skip_damage(seg, at, damage, &b, limits);
                (position, next_offset, chain) = out.count(&b);
            }
            None if is_clean_end(&seg[..limit], position, &damage, limits) => break,
            None => {
                out.end = ScanEnd::DamagedTail {
                    batch_start: position,
                    batch_first_offset: next_offset,
                    chain,
                    damage,
                };
                return out;
            }
        }
    }
    out.end = ScanEnd::Clean {
        position,
        next_offset,
        chain,
    };
    out
}
