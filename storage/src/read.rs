//! Reads: zero-copy slices of the tail cache (recent durable batches) or of
//! the memory-mapped segments, every record's CRC checked before it is served.

use crate::error::Corruption;
use crate::frame::{self, Header, Parsed, RecordKind, HEADER_SIZE_BYTES};
use crate::index::{scan_segment, ScanEnd, ScanFrom};
use crate::log::{Log, State};
use crate::marker::align_up;
use crate::segment::SEGMENT_HEADER_BYTES;
use bytes::Bytes;
use memmap2::Mmap;
use std::rc::Rc;

/// A record served from the tail cache or a segment map; holds its source
/// alive, copies nothing.
#[derive(Clone)]
pub struct RecordRef {
    source: Source,
    position: usize,
    header: Header,
}

/// Where a record's bytes are.
#[derive(Clone)]
enum Source {
    /// A segment's read-only map.
    Map(Rc<Mmap>),
    /// A durable batch's records, held by the tail cache (shared: a
    /// payload handed out is a slice of them, not a copy).
    Memory(Bytes),
}

impl Source {
    fn bytes(&self) -> &[u8] {
        match self {
            Source::Map(m) => m,
            Source::Memory(b) => b,
        }
    }
}

impl RecordRef {
    /// The record's offset.
    pub fn offset(&self) -> u64 {
        self.header.offset
    }

    /// The writer's timestamp, ns since the Unix epoch.
    pub fn timestamp_ns(&self) -> u64 {
        self.header.timestamp_ns
    }

    /// The caller's flags.
    pub fn flags(&self) -> u8 {
        self.header.flags
    }

    /// The payload bytes, straight from the tail cache or the map.
    pub fn payload(&self) -> &[u8] {
        &self.source.bytes()
            [self.position + HEADER_SIZE_BYTES..self.position + self.header.size_bytes as usize]
    }

    /// `range` of the payload as bytes that may leave this thread: a slice
    /// of the tail cache's batch (no copy; it holds the batch's memory until
    /// dropped), or a copy out of the map (whose pages may go with the
    /// segment).
    pub fn payload_slice(&self, range: std::ops::Range<usize>) -> Bytes {
        let start = self.position + HEADER_SIZE_BYTES;
        assert!(
            range.start <= range.end
                && start + range.end <= self.position + self.header.size_bytes as usize,
            "payload range {range:?} beyond the record's {} bytes",
            self.header.size_bytes
        );
        match &self.source {
            Source::Memory(b) => b.slice(start + range.start..start + range.end),
            Source::Map(m) => Bytes::copy_from_slice(&m[start + range.start..start + range.end]),
        }
    }

    /// True when the record was served from the tail cache (memory), false
    /// when from a segment map.
    pub fn from_memory(&self) -> bool {
        matches!(self.source, Source::Memory(_))
    }
}

impl std::fmt::Debug for RecordRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordRef")
            .field("offset", &self.offset())
            .field("len", &self.payload().len())
            .finish()
    }
}

/// What a read finds at an offset: the three cases need different handling,
/// so they are never folded into an `Option`.
#[derive(Debug, Clone)]
pub enum Slot {
    /// The record, intact.
    Present(RecordRef),
    /// Nothing durable here yet (at or past the durable end).
    Empty,
    /// Dropped by retention (below the log's start).
    Gone,
    /// Committed once, but damaged now: never served.
    Unreadable(Corruption),
}

impl Slot {
    /// The record, if present.
    pub fn present(self) -> Option<RecordRef> {
        match self {
            Slot::Present(r) => Some(r),
            _ => None,
        }
    }
}

fn covering(st: &State, offset: u64) -> Option<Corruption> {
    st.corruptions
        .iter()
        .find(|c| c.first_offset <= offset && offset < c.end_offset)
        .cloned()
}

fn segment_of(st: &State, offset: u64) -> usize {
    let i = st.segments.partition_point(|s| s.base_offset <= offset);
    assert!(i > 0, "offset {offset} is below the first segment");
    i - 1
}

/// Scans a segment range that recovery skipped because a checkpoint covered it.
pub(crate) fn ensure_indexed(st: &mut State, i: usize) {
    let Some(lazy) = st.segments[i].lazy.take() else {
        return;
    };
    let seg = &st.segments[i];
    advise_range_ahead(st, &seg.map, SEGMENT_HEADER_BYTES, lazy.until_position);
    let seg = &st.segments[i];
    let out = scan_segment(
        &seg.map,
        seg.base_offset,
        ScanFrom {
            position: SEGMENT_HEADER_BYTES,
            next_offset: seg.base_offset,
            chain: lazy.prev_chain,
            probe_bytes: usize::MAX,
            log_end: false,
        },
        lazy.until_position,
        st.limits,
        st.config.index_interval_bytes,
    );
    let base = seg.base_offset;
    let map = seg.map.clone();
    let known = st.corruptions.len();
    let mut index = out.index;
    st.corruptions.extend(out.corruptions);
    match out.end {
        ScanEnd::Clean {
            next_offset,
            position,
            ..
        } if next_offset < lazy.until_offset => st.corruptions.push(Corruption {
            segment_base: base,
            position: position as u64,
            first_offset: next_offset,
            end_offset: lazy.until_offset,
            what: "segment ends before the offsets that follow it".into(),
        }),
        ScanEnd::Clean { .. } => {}
        ScanEnd::TornPair { .. } => unreachable!("a lazy range is never the end of the log"),
        ScanEnd::DamagedTail { damage, .. } => crate::index::record_loss(
            &mut index,
            &mut st.corruptions,
            &map,
            base,
            damage.position,
            lazy.until_position,
            (damage.offset, lazy.until_offset.max(damage.offset)),
            &format!("{:?} in a committed batch", damage.fault),
            st.limits,
        ),
    }
    st.segments[i].index.prepend(index);
    for c in &st.corruptions[known..] {
        tracing::error!(dir = %st.dir.display(), file = %st.segments[i].path.display(),
            position = c.position, first_offset = c.first_offset, end_offset = c.end_offset, what = %c.what,
            "damaged committed records found on first read: reported, not served");
    }
}

/// Asks the kernel to read `[from, to)` of `map` in the background, in
/// chunks of `readahead_bytes` (one `madvise` reads at most the device's
/// read-ahead window): the scan that follows would otherwise fault each
/// 4 KiB page in synchronously (the maps are `MADV_RANDOM`).
fn advise_range_ahead(st: &State, map: &memmap2::Mmap, from: usize, to: usize) {
    let chunk = st.config.readahead_bytes;
    if chunk == 0 {
        return;
    }
    let to = to.min(map.len());
    // Bounded: (to - from) / chunk calls.
    for at in (from..to).step_by(chunk) {
        let len = chunk.min(to - at);
        // Advice only: a failure costs the read-ahead, never the read.
        let _ = map.advise_range(memmap2::Advice::WillNeed, at, len);
    }
}

fn found_damage(st: &mut State, i: usize, position: usize, offset: u64, what: &str) -> Corruption {
    let c = Corruption {
        segment_base: st.segments[i].base_offset,
        position: position as u64,
        first_offset: offset,
        end_offset: offset + 1,
        what: what.into(),
    };
    if covering(st, offset).is_none() {
        tracing::error!(dir = %st.dir.display(), file = %st.segments[i].path.display(),
            position, offset, what, "damaged committed record found on read: reported, not served");
        st.corruptions.push(c.clone());
    }
    c
}

/// Finds the position of `offset`, or the slot that says why there is none.
fn locate(st: &mut State, offset: u64) -> Result<(usize, usize), Slot> {
    if offset < st.start_offset {
        return Err(Slot::Gone);
    }
    if offset >= st.durable_offset {
        return Err(Slot::Empty);
    }
    let i = segment_of(st, offset);
    ensure_indexed(st, i);
    if let Some(c) = covering(st, offset) {
        return Err(Slot::Unreadable(c));
    }
    let seg = &st.segments[i];
    let (mut cur, mut pos) = seg
        .index
        .floor(offset)
        .unwrap_or((seg.base_offset, SEGMENT_HEADER_BYTES));
    let max = st.limits.record_size_bytes_max;
    let steps_max = st.config.segment_size_bytes as usize / HEADER_SIZE_BYTES;
    for _ in 0..steps_max {
        match frame::peek(&seg.map, pos, max) {
            Some((_, o, RecordKind::Data)) if o == offset => return Ok((i, pos)),
            Some((size, o, RecordKind::Data)) if o == cur && o < offset => {
                pos += size;
                cur += 1;
            }
            Some((size, o, RecordKind::Commit)) if o == cur => pos = align_up(pos + size),
            _ => break,
        }
    }
    Err(Slot::Unreadable(found_damage(
        st,
        i,
        pos,
        offset,
        "record not found where the index leads",
    )))
}

/// The record at `offset` from the tail cache, its header checked (not its
/// CRC: the cache's bytes never went through the disk); `None` when its
/// batch is not cached.
fn read_cached(st: &mut State, offset: u64) -> Option<Slot> {
    let rec = st.tail.find(offset)?;
    debug_assert!(st.start_offset <= offset && offset < st.durable_offset);
    st.reads_from_memory += 1;
    Some(
        match frame::parse_in_memory(&rec.bytes, rec.position, st.limits.record_size_bytes_max) {
            Parsed::Record(h) if h.offset == offset && h.kind == RecordKind::Data => {
                Slot::Present(RecordRef {
                    source: Source::Memory(rec.bytes),
                    position: rec.position,
                    header: h,
                })
            }
            other => {
                let i = st
                    .segments
                    .iter()
                    .position(|s| s.base_offset == rec.segment_base)
                    .expect("retention drops the cached batches of a dropped segment");
                Slot::Unreadable(found_damage(
                    st,
                    i,
                    rec.segment_position,
                    offset,
                    &format!("cached record fails its checks on read: {other:?}"),
                ))
            }
        },
    )
}

/// Asks the kernel to read `[pos, pos + readahead_bytes)` of segment `i`
/// into the page cache in the background, unless an earlier call covers
/// most of it. A read from the map far behind the tail (a backlog's head)
/// would otherwise take one synchronous 4 KiB disk read per page fault on
/// the reactor: the segments are mapped `MADV_RANDOM`, and O_DIRECT writes
/// leave nothing in the page cache. `MADV_WILLNEED` only starts the reads.
/// Never beyond the durable end of the active segment: no page of a block
/// an O_DIRECT write may still fill is brought in.
fn read_ahead(st: &mut State, i: usize, pos: usize) {
    let ahead = st.config.readahead_bytes;
    if ahead == 0 {
        return;
    }
    let seg = &st.segments[i];
    let base = seg.base_offset;
    let from = match st.readahead_end {
        Some((b, end)) if b == base && end > pos => {
            if end - pos > ahead / 2 {
                return;
            }
            end
        }
        _ => pos,
    };
    let limit = if i + 1 == st.segments.len() {
        st.write_position
    } else {
        seg.map.len()
    };
    let to = (pos + ahead).min(limit);
    if to <= from {
        return;
    }
    // Advice only: a failure costs the read-ahead, never the read.
    let _ = seg
        .map
        .advise_range(memmap2::Advice::WillNeed, from, to - from);
    st.readahead_end = Some((base, to));
    st.readahead_advices += 1;
}

fn read_at(st: &mut State, i: usize, pos: usize, offset: u64) -> Slot {
    st.reads_from_map += 1;
    st.tail.missed(offset);
    read_ahead(st, i, pos);
    let seg = &st.segments[i];
    match frame::parse(&seg.map, pos, st.limits.record_size_bytes_max) {
        Parsed::Record(h) if h.offset == offset && h.kind == RecordKind::Data => {
            Slot::Present(RecordRef {
                source: Source::Map(seg.map.clone()),
                position: pos,
                header: h,
            })
        }
        other => Slot::Unreadable(found_damage(
            st,
            i,
            pos,
            offset,
            &format!("record fails its checks on read: {other:?}"),
        )),
    }
}

impl Log {
    /// Reads the record at `offset`.
    pub fn read(&self, offset: u64) -> Slot {
        let mut st = self.state.borrow_mut();
        if let Some(slot) = read_cached(&mut st, offset) {
            return slot;
        }
        match locate(&mut st, offset) {
            Ok((i, pos)) => read_at(&mut st, i, pos, offset),
            Err(slot) => slot,
        }
    }

    /// Iterates durable offsets from `offset` to the durable end (as of each
    /// step), yielding exactly one [`Slot`] per offset, in order:
    ///
    /// - `Present(r)` with `r.offset()` equal to that offset, CRC checked;
    /// - `Unreadable(c)` for an offset that was committed but is damaged: one
    ///   item for **each** lost offset in `[c.first_offset, c.end_offset)`
    ///   (the same `c` each time), and then the iteration goes on with the
    ///   next offset, so the intact records after a damaged range are yielded
    ///   (the log resynchronises on the next valid record or batch);
    /// - `Gone` once, when `offset` is below the log's start (retention), and
    ///   then the iteration goes on at the start offset.
    ///
    /// It never yields `Empty`: it ends at the durable end. A caller that
    /// must not skip damage (the engine's replay) checks each `Unreadable`,
    /// e.g. with [`Log::is_damage_accepted`].
    pub fn iter_from(&self, offset: u64) -> LogIter {
        LogIter {
            log: self.clone(),
            next_offset: offset,
            cursor: None,
        }
    }
}

/// Iterator of [`Log::iter_from`]: walks segments in order without an index
/// lookup per record. Each offset of a damaged range is yielded as
/// `Unreadable`, a retained range once as `Gone`.
pub struct LogIter {
    log: Log,
    next_offset: u64,
    cursor: Option<(u64, usize)>,
}

impl Iterator for LogIter {
    type Item = Slot;

    fn next(&mut self) -> Option<Slot> {
        let log = self.log.clone();
        let mut st = log.state.borrow_mut();
        if self.next_offset >= st.durable_offset {
            return None;
        }
        if self.next_offset < st.start_offset {
            self.next_offset = st.start_offset;
            self.cursor = None;
            return Some(Slot::Gone);
        }
        if let Some(c) = covering(&st, self.next_offset) {
            self.next_offset += 1;
            self.cursor = None;
            return Some(Slot::Unreadable(c));
        }
        // A cached record needs no cursor: the cache finds it by offset.
        if let Some(slot) = read_cached(&mut st, self.next_offset) {
            self.next_offset += 1;
            self.cursor = None;
            return Some(slot);
        }
        // Bounded: each pass moves the cursor past one marker or one segment end.
        for _ in 0..(st.segments.len() + 2) * 2 {
            let Some((base, pos)) = self.cursor else {
                break;
            };
            let Some(i) = st.segments.iter().position(|s| s.base_offset == base) else {
                break;
            };
            let seg = &st.segments[i];
            match frame::peek(&seg.map, pos, st.limits.record_size_bytes_max) {
                Some((size, o, RecordKind::Data)) if o == self.next_offset => {
                    let slot = read_at(&mut st, i, pos, o);
                    self.cursor = Some((base, pos + size));
                    self.next_offset += 1;
                    return Some(slot);
                }
                Some((size, o, RecordKind::Commit)) if o == self.next_offset => {
                    self.cursor = Some((base, align_up(pos + size)));
                }
                _ => match st.segments.get(i + 1) {
                    Some(next) if next.base_offset == self.next_offset => {
                        self.cursor = Some((next.base_offset, SEGMENT_HEADER_BYTES));
                    }
                    _ => break,
                },
            }
        }
        self.cursor = None;
        let offset = self.next_offset;
        match locate(&mut st, offset) {
            Ok((i, pos)) => {
                let slot = read_at(&mut st, i, pos, offset);
                if let Slot::Present(r) = &slot {
                    self.cursor = Some((
                        st.segments[i].base_offset,
                        pos + HEADER_SIZE_BYTES + r.payload().len(),
                    ));
                }
                self.next_offset += 1;
                Some(slot)
            }
            Err(Slot::Unreadable(c)) => {
                self.next_offset = offset + 1;
                Some(Slot::Unreadable(c))
            }
            Err(slot) => {
                self.next_offset += 1;
                Some(slot)
            }
        }
    }
}
