//! Pure checks over the bytes of a segment: is there a valid batch at a
//! position, where does the next one start, and is damage a torn tail or
//! corruption. No I/O here, so every rule is unit-testable.

use crate::frame::{self, Invalid, Parsed, RecordKind, HEADER_SIZE_BYTES};
use crate::marker::{
    self, align_up, sector_count, MarkerFixed, BLOCK_SIZE_BYTES, SECTOR_SIZE_BYTES,
};
use zerocopy::FromBytes;

/// Bounds used while parsing untrusted bytes.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest record (header + payload) that may exist.
    pub record_size_bytes_max: usize,
    /// Largest batch (records + marker) that may exist.
    pub batch_bytes_max: usize,
}

/// A batch that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    /// Position of its first record (block aligned).
    pub start: usize,
    /// Position of its commit marker.
    pub marker_start: usize,
    /// Position after its padding: where the next batch starts.
    pub end: usize,
    /// Offset of its first data record.
    pub first_offset: u64,
    /// Number of data records.
    pub record_count: u32,
    /// Chain value before it.
    pub prev_chain: [u8; 32],
    /// Chain value after it.
    pub chain: [u8; 32],
}

impl BatchInfo {
    /// The offset after its last record.
    pub fn next_offset(&self) -> u64 {
        self.first_offset + self.record_count as u64
    }
}

/// Why a batch failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A record failed to parse.
    Record(Invalid),
    /// Zero bytes where a record was expected inside a batch.
    Zero,
    /// A record carries another offset than its place in the log says.
    WrongOffset,
    /// The marker does not agree with the records before it.
    BadMarker,
    /// The batch's chain value does not match its bytes.
    BadChain,
    /// The batch does not continue the chain of the batch before it.
    ChainBreak,
    /// No marker within the largest batch size.
    Unterminated,
}

/// Where a batch check first failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Position of the first bad byte range (a record or marker start).
    pub position: usize,
    /// Offset the record at `position` should have had.
    pub offset: u64,
    /// What was wrong.
    pub fault: Fault,
}

/// What lies at a batch position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchAt {
    /// A whole, valid batch.
    Valid(BatchInfo),
    /// Nothing was ever written here (a zero header).
    Empty,
    /// Something is here but it is not a valid batch.
    Damaged(Damage),
}

/// Checks the batch at `start`, which must hold `expected_offset` first and,
/// when `prev_chain` is given, continue that chain.
pub fn batch_at(
    seg: &[u8],
    start: usize,
    expected_offset: u64,
    prev_chain: Option<&[u8; 32]>,
    limits: Limits,
) -> BatchAt {
    assert!(start.is_multiple_of(BLOCK_SIZE_BYTES));
    let window_end = seg.len().min(start + limits.batch_bytes_max);
    let window = &seg[..window_end];
    let mut pos = start;
    let mut offset = expected_offset;
    let damaged = |position, offset, fault| {
        BatchAt::Damaged(Damage {
            position,
            offset,
            fault,
        })
    };
    // Bounded: every step advances by at least a header and stays inside the window.
    loop {
        match frame::parse(window, pos, limits.record_size_bytes_max) {
            Parsed::Zero if pos == start => return BatchAt::Empty,
            Parsed::Zero => return damaged(pos, offset, Fault::Zero),
            Parsed::Invalid(Invalid::Truncated) => {
                return damaged(pos, offset, Fault::Unterminated)
            }
            Parsed::Invalid(why) => return damaged(pos, offset, Fault::Record(why)),
            Parsed::Record(h) if h.offset != offset => {
                return damaged(pos, offset, Fault::WrongOffset)
            }
            Parsed::Record(h) if h.kind == RecordKind::Data => {
                pos += h.size_bytes as usize;
                offset += 1;
            }
            Parsed::Record(h) => {
                let batch = (start, expected_offset, offset - expected_offset);
                return check_marker(window, batch, pos, h.size_bytes as usize, prev_chain);
            }
        }
    }
}

/// Checks the commit marker of `size_bytes` at `pos` that ends the batch
/// `(start, first offset, data records)`: it must count those records,
/// cover their sectors, continue `prev_chain` (when given) and carry the
/// chain value of their bytes.
fn check_marker(
    window: &[u8],
    (start, first_offset, record_count): (usize, u64, u64),
    pos: usize,
    size_bytes: usize,
    prev_chain: Option<&[u8; 32]>,
) -> BatchAt {
    let damaged = |fault| {
        BatchAt::Damaged(Damage {
            position: pos,
            offset: first_offset + record_count,
            fault,
        })
    };
    let payload = &window[pos + HEADER_SIZE_BYTES..pos + size_bytes];
    let Some(m) = marker::decode(payload) else {
        return damaged(Fault::BadMarker);
    };
    if m.first_offset != first_offset
        || m.record_count as u64 != record_count
        || record_count == 0
        || m.sector_crcs.len() != sector_count(pos - start)
    {
        return damaged(Fault::BadMarker);
    }
    if prev_chain.is_some_and(|c| *c != m.prev_chain) {
        return damaged(Fault::ChainBreak);
    }
    let chain = marker::chain_of(
        &m.prev_chain,
        m.first_offset,
        m.record_count,
        &window[start..pos],
    );
    if chain != m.chain {
        return damaged(Fault::BadChain);
    }
    BatchAt::Valid(BatchInfo {
        start,
        marker_start: pos,
        end: align_up(pos + size_bytes),
        first_offset,
        record_count: m.record_count,
        prev_chain: m.prev_chain,
        chain,
    })
}

/// The first valid batch at a block boundary after `after` whose first offset
/// is at least `min_offset`: evidence that damage before it was durable.
pub fn next_valid_batch(
    seg: &[u8],
    after: usize,
    min_offset: u64,
    limits: Limits,
) -> Option<BatchInfo> {
    next_valid_batch_within(seg, after, min_offset, seg.len(), limits)
}

/// [`next_valid_batch`] looking only at batch starts below `search_end`.
pub fn next_valid_batch_within(
    seg: &[u8],
    after: usize,
    min_offset: u64,
    search_end: usize,
    limits: Limits,
) -> Option<BatchInfo> {
    let mut q = align_up(after + 1);
    while q + HEADER_SIZE_BYTES <= seg.len().min(search_end) {
        if let Parsed::Record(h) = frame::parse(seg, q, limits.record_size_bytes_max) {
            if h.kind == RecordKind::Data && h.offset >= min_offset {
                if let BatchAt::Valid(b) = batch_at(seg, q, h.offset, None, limits) {
                    return Some(b);
                }
            }
        }
        q += BLOCK_SIZE_BYTES;
    }
    None
}

/// How far past the apparent end of the active segment (in batches of
/// `batch_bytes_max`) the scan looks for a valid batch that would prove the
/// bytes before it durable. Reading the whole unused rest of a 64 MiB
/// segment made every open ~100x slower (prewritten zero blocks are real
/// reads); a zeroed range longer than this, starting exactly at a batch
/// boundary of the active segment, is taken for the end (docs/storage.md §10).
pub const TAIL_PROBE_BATCHES: usize = 4;

/// An intact data record found inside damaged bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Salvaged {
    /// Its offset.
    pub offset: u64,
    /// Its position in the segment.
    pub position: usize,
    /// Its size in bytes (header + payload).
    pub size: usize,
}

/// Intact data records in `seg[from..to]` with offsets in `[lost_from,
/// end_offset)`, ascending: the resynchronisation inside a damaged batch (or
/// a damaged range of batches). Records are not aligned inside a batch, so
/// every byte position is tried; a candidate must carry the record magic,
/// pass its CRC and carry an offset above every one found before it, so a
/// damaged record is never taken and the offsets found are exactly those
/// still intact. Bounded by `to - from` steps.
pub fn salvage_records(
    seg: &[u8],
    from: usize,
    to: usize,
    lost_from: u64,
    end_offset: u64,
    limits: Limits,
) -> Vec<Salvaged> {
    let to = to.min(seg.len());
    let region = &seg[..to];
    let mut found = vec![];
    let mut next = lost_from;
    let mut q = from;
    while q + HEADER_SIZE_BYTES <= to && next < end_offset {
        if region[q + 28..q + 32] == frame::RECORD_MAGIC {
            if let Parsed::Record(h) = frame::parse(region, q, limits.record_size_bytes_max) {
                if h.kind == RecordKind::Data && h.offset >= next && h.offset < end_offset {
                    found.push(Salvaged {
                        offset: h.offset,
                        position: q,
                        size: h.size_bytes as usize,
                    });
                    next = h.offset + 1;
                    q += h.size_bytes as usize;
                    continue;
                }
            }
        }
        q += 1;
    }
    found
}

/// Verdict on damage in the last batch of the log, with nothing valid after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailVerdict {
    /// The batch was never completely written: it was not acknowledged; cut it.
    Torn,
    /// The batch was completely written and then damaged: report, do not cut.
    /// Carries the batch's record count and where the next batch may start,
    /// when the marker still tells them.
    Corrupt {
        /// Records in the damaged batch, from its marker.
        record_count: Option<u32>,
        /// Where the next batch may start.
        end: Option<usize>,
        /// The chain value its marker claims.
        chain: Option<[u8; 32]>,
    },
}

/// Tells a torn last batch from a damaged durable one.
///
/// A batch is written as one request and acknowledged only after `fdatasync`.
/// A crash during that write leaves blocks that still read as zeros (space is
/// preallocated and cut regions are zeroed), and usually no marker trailer at
/// the end of the written bytes. A bit flip in a durable batch leaves every
/// block written: the marker is found from its trailer, and the blocks whose
/// CRC fails are not zero.
pub fn classify_tail(
    seg: &[u8],
    start: usize,
    expected_offset: u64,
    limits: Limits,
) -> TailVerdict {
    let window_end = seg.len().min(start + limits.batch_bytes_max);
    let Some(last_nonzero) = seg[start..window_end].iter().rposition(|b| *b != 0) else {
        return TailVerdict::Torn;
    };
    let end = start + last_nonzero + 1;
    let Some(ms) = marker::start_from_trailer(seg, end).filter(|ms| *ms >= start) else {
        return TailVerdict::Torn;
    };
    let end_of_batch = Some(align_up(end));
    if let Parsed::Record(h) = frame::parse(seg, ms, limits.record_size_bytes_max) {
        let m = marker::decode(&seg[ms + HEADER_SIZE_BYTES..ms + h.size_bytes as usize]);
        if let Some(m) = m.filter(|m| {
            m.first_offset == expected_offset && m.sector_crcs.len() == sector_count(ms - start)
        }) {
            let (mut zero_blocks, mut bad_blocks) = (0, 0);
            for (i, crc) in m.sector_crcs.iter().enumerate() {
                let block = &seg
                    [start + i * SECTOR_SIZE_BYTES..(start + (i + 1) * SECTOR_SIZE_BYTES).min(ms)];
                if crc32c::crc32c(block) != *crc {
                    if block.iter().all(|b| *b == 0) {
                        zero_blocks += 1;
                    } else {
                        bad_blocks += 1;
                    }
                }
            }
            if bad_blocks == 0 && zero_blocks > 0 {
                return TailVerdict::Torn;
            }
            return TailVerdict::Corrupt {
                record_count: Some(m.record_count),
                end: end_of_batch,
                chain: Some(m.chain),
            };
        }
    }
    // The trailer is there but the marker is damaged. A torn write leaves a
    // sector of zeros somewhere in the batch; a flipped marker does not.
    let zero_sector = seg[start..end]
        .chunks(512)
        .any(|s| s.len() == SECTOR_SIZE_BYTES && s.iter().all(|b| *b == 0));
    if zero_sector {
        return TailVerdict::Torn;
    }
    let raw = seg
        .get(ms + HEADER_SIZE_BYTES..)
        .map(MarkerFixed::ref_from_prefix);
    let fields = raw.and_then(|r| r.ok()).and_then(|(m, _)| {
        let (first, count) = (m.first_offset.get(), m.record_count.get());
        (first == expected_offset
            && count > 0
            && (count as usize) <= limits.batch_bytes_max / HEADER_SIZE_BYTES)
            .then_some((count, m.chain))
    });
    TailVerdict::Corrupt {
        record_count: fields.map(|f| f.0),
        end: end_of_batch,
        chain: fields.map(|f| f.1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::seal_in_place;
    use crate::marker::{write_marker, CHAIN_GENESIS};

    const LIMITS: Limits = Limits {
        record_size_bytes_max: 16 * 1024,
        batch_bytes_max: 16 * 1024,
    };

    /// Builds a segment body holding batches of the given payload sizes, one Vec per batch.
    fn segment(batches: &[Vec<usize>]) -> (Vec<u8>, Vec<BatchInfo>) {
        let mut seg = vec![0u8; 64 * 1024];
        let mut pos = 0;
        let mut offset = 0u64;
        let mut chain = CHAIN_GENESIS;
        let mut infos = vec![];
        for sizes in batches {
            let start = pos;
            let first = offset;
            for (i, size) in sizes.iter().enumerate() {
                seg[pos + HEADER_SIZE_BYTES..pos + HEADER_SIZE_BYTES + size]
                    .fill(1 + (i as u8 % 200));
                pos += seal_in_place(&mut seg[pos..], *size, offset, 5, RecordKind::Data, 0);
                offset += 1;
            }
            let (msize, next) = write_marker(
                &mut seg[start..],
                pos - start,
                first,
                sizes.len() as u32,
                &chain,
                5,
            );
            infos.push(BatchInfo {
                start,
                marker_start: pos,
                end: align_up(pos + msize),
                first_offset: first,
                record_count: sizes.len() as u32,
                prev_chain: chain,
                chain: next,
            });
            chain = next;
            pos = align_up(pos + msize);
        }
        (seg, infos)
    }

    #[test]
    fn given_written_batches_when_checked_then_each_valid_and_chained() {
        let (seg, infos) = segment(&[vec![10, 20], vec![5000], vec![1]]);
        let mut chain = CHAIN_GENESIS;
        for info in &infos {
            assert_eq!(
                batch_at(&seg, info.start, info.first_offset, Some(&chain), LIMITS),
                BatchAt::Valid(info.clone())
            );
            chain = info.chain;
        }
        assert_eq!(
            batch_at(&seg, infos[2].end, 4, Some(&chain), LIMITS),
            BatchAt::Empty
        );
    }

    #[test]
    fn given_wrong_prev_chain_when_checked_then_chain_break() {
        let (seg, infos) = segment(&[vec![10], vec![10]]);
        let got = batch_at(&seg, infos[1].start, 1, Some(&[9u8; 32]), LIMITS);
        assert!(matches!(
            got,
            BatchAt::Damaged(Damage {
                fault: Fault::ChainBreak,
                ..
            })
        ));
    }

    #[test]
    fn given_batch_cut_at_every_byte_when_classified_then_torn() {
        let (full, infos) = segment(&[vec![100], vec![300]]);
        let last = &infos[1];
        for cut in last.start..last.marker_start + 120 {
            let mut seg = full.clone();
            seg[cut..].fill(0);
            match batch_at(&seg, last.start, 1, Some(&infos[0].chain), LIMITS) {
                BatchAt::Empty => assert_eq!(cut, last.start),
                BatchAt::Damaged(_) => assert_eq!(
                    classify_tail(&seg, last.start, 1, LIMITS),
                    TailVerdict::Torn,
                    "cut {cut}"
                ),
                BatchAt::Valid(_) => panic!("cut at {cut} still valid"),
            }
        }
    }

    #[test]
    fn given_bit_flip_in_record_of_last_batch_when_classified_then_corrupt() {
        let (full, infos) = segment(&[vec![100], vec![3000, 3000]]);
        let last = &infos[1];
        for pos in (last.start..last.marker_start).step_by(97) {
            let mut seg = full.clone();
            seg[pos] ^= 0x10;
            assert!(matches!(
                batch_at(&seg, last.start, 1, Some(&infos[0].chain), LIMITS),
                BatchAt::Damaged(_)
            ));
            assert_eq!(
                classify_tail(&seg, last.start, 1, LIMITS),
                TailVerdict::Corrupt {
                    record_count: Some(2),
                    end: Some(last.end),
                    chain: Some(last.chain)
                },
                "flip at {pos}"
            );
        }
    }

    #[test]
    fn given_middle_block_never_written_when_classified_then_torn() {
        let (mut seg, infos) = segment(&[vec![12000]]);
        seg[4096..8192].fill(0);
        assert!(matches!(
            batch_at(&seg, 0, 0, None, LIMITS),
            BatchAt::Damaged(_)
        ));
        assert_eq!(classify_tail(&seg, 0, 0, LIMITS), TailVerdict::Torn);
        let _ = infos;
    }

    #[test]
    fn given_one_damaged_record_in_a_batch_when_salvaged_then_every_other_record_found() {
        let (mut seg, infos) = segment(&[vec![300, 300, 300, 300, 300]]);
        let b = &infos[0];
        // The second record starts at 332; damage its payload.
        seg[332 + 100] ^= 0x01;
        let found = salvage_records(&seg, 332, b.marker_start, 1, 5, LIMITS);
        let offsets: Vec<u64> = found.iter().map(|s| s.offset).collect();
        assert_eq!(offsets, vec![2, 3, 4]);
        assert_eq!(found[0].position, 2 * 332);
    }

    #[test]
    fn given_damage_followed_by_valid_batch_when_searched_then_found() {
        let (mut seg, infos) = segment(&[vec![100], vec![100], vec![100]]);
        seg[infos[1].start + 40] ^= 1;
        let next = next_valid_batch(&seg, infos[1].start, 2, LIMITS).unwrap();
        assert_eq!(next, infos[2]);
    }

    /// Scans `seg` from its start as the tail of a log (`log_end`) or not.
    fn scan(seg: &[u8], log_end: bool) -> crate::index::ScanOutcome {
        let from = crate::index::ScanFrom {
            probe_bytes: usize::MAX,
            position: 0,
            next_offset: 0,
            chain: CHAIN_GENESIS,
            log_end,
        };
        crate::index::scan_segment(seg, 0, from, seg.len(), LIMITS, 4096)
    }

    /// The scan reported one damaged range and went on to the clean end at `next_offset`.
    fn assert_one_corruption_then_clean_end(out: &crate::index::ScanOutcome, next_offset: u64) {
        match out.end {
            crate::index::ScanEnd::Clean { next_offset: n, .. } => assert_eq!(n, next_offset),
            ref other => panic!("expected a clean end, got {other:?}"),
        }
        assert_eq!(out.corruptions.len(), 1, "{:?}", out.corruptions);
    }

    #[test]
    fn given_torn_batch_then_one_valid_batch_at_log_end_when_scanned_then_torn_pair() {
        let (mut seg, infos) = segment(&[vec![100], vec![12000], vec![50]]);
        // The middle batch's second block never reached the disk; the batch
        // after it, written while its sync was in flight, did.
        seg[infos[1].start + 4096..infos[1].start + 8192].fill(0);
        let out = scan(&seg, true);
        match out.end {
            crate::index::ScanEnd::TornPair {
                batch_start,
                batch_first_offset,
                chain,
                cut_end,
            } => {
                assert_eq!(batch_start, infos[1].start);
                assert_eq!(batch_first_offset, 1);
                assert_eq!(chain, infos[0].chain);
                assert_eq!(cut_end, infos[2].end);
            }
            other => panic!("expected a torn pair, got {other:?}"),
        }
        assert!(out.corruptions.is_empty(), "a torn pair is not damage");
    }

    #[test]
    fn given_torn_batch_then_one_valid_batch_inside_the_log_when_scanned_then_corruption() {
        let (mut seg, infos) = segment(&[vec![100], vec![12000], vec![50]]);
        seg[infos[1].start + 4096..infos[1].start + 8192].fill(0);
        let out = scan(&seg, false);
        assert_one_corruption_then_clean_end(&out, 3);
        assert_eq!(out.corruptions[0].first_offset, 1);
    }

    #[test]
    fn given_torn_batch_then_two_valid_batches_at_log_end_when_scanned_then_corruption() {
        // Two valid batches after it: the first one's sync completed, which
        // only happens after the damaged batch's own: it was durable.
        let (mut seg, infos) = segment(&[vec![100], vec![12000], vec![50], vec![60]]);
        seg[infos[1].start + 4096..infos[1].start + 8192].fill(0);
        let out = scan(&seg, true);
        assert_one_corruption_then_clean_end(&out, 4);
    }

    #[test]
    fn given_bit_flip_then_one_valid_batch_at_log_end_when_scanned_then_corruption() {
        // A flipped bit is not what a crash leaves: reported, never cut.
        let (mut seg, infos) = segment(&[vec![100], vec![12000], vec![50]]);
        seg[infos[1].start + 5000] ^= 0x04;
        let out = scan(&seg, true);
        assert_one_corruption_then_clean_end(&out, 3);
    }
}
