//! The commit marker: the record that ends every batch and links it into the
//! hash chain.
//!
//! Payload layout (little-endian):
//! ```text
//! 0..8      first_offset   offset of the batch's first data record
//! 8..12     record_count   data records in the batch
//! 12..16    sector_count   512-byte sectors covered by `sector_crcs`
//! 16..48    prev_chain     chain value after the previous batch
//! 48..80    chain          BLAKE3(prev_chain ‖ first_offset ‖ record_count ‖ batch bytes)
//! 80..      sector_crcs    CRC32C of each 512-byte sector of the batch before the marker
//! last 8    trailer        marker size (u32) ‖ b"gncm"
//! ```
//! The per-sector CRCs let recovery tell a torn write (a sector that still
//! reads as zeros) from a bit flip (a sector that is there but wrong); the trailer lets
//! it find the marker from the end of the written bytes when a record length in
//! the middle of the batch is damaged.

use crate::frame::{self, RecordKind, HEADER_SIZE_BYTES};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Block size of batches: every batch starts on such a boundary.
pub const BLOCK_SIZE_BYTES: usize = 4096;
/// Unit of the marker's CRCs: the smallest write a disk is assumed to persist atomically.
pub const SECTOR_SIZE_BYTES: usize = 512;
/// Magic bytes at the very end of a marker.
pub const TRAILER_MAGIC: [u8; 4] = *b"gncm";
/// Hash chain value before the first batch of a log.
pub const CHAIN_GENESIS: [u8; 32] = [0u8; 32];
const FIXED_PAYLOAD_BYTES: usize = std::mem::size_of::<MarkerFixed>();
const TRAILER_BYTES: usize = std::mem::size_of::<Trailer>();

/// The fixed part of a marker's payload (bytes 0..80), exactly as on disk;
/// the sector CRCs (little-endian u32 each) and the [`Trailer`] follow.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub(crate) struct MarkerFixed {
    pub(crate) first_offset: U64,
    pub(crate) record_count: U32,
    pub(crate) sector_count: U32,
    pub(crate) prev_chain: [u8; 32],
    pub(crate) chain: [u8; 32],
}

/// The last 8 bytes of a marker: its size, then the magic.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct Trailer {
    size_bytes: U32,
    magic: [u8; 4],
}

/// Size in bytes of a marker record covering `sector_count` sectors.
pub fn marker_size_bytes(sector_count: usize) -> usize {
    HEADER_SIZE_BYTES + FIXED_PAYLOAD_BYTES + 4 * sector_count + TRAILER_BYTES
}

/// Number of 512-byte sectors (the last one possibly partial) in `len` bytes.
pub fn sector_count(len: usize) -> usize {
    len.div_ceil(SECTOR_SIZE_BYTES)
}

/// Rounds `len` up to a whole number of blocks.
pub fn align_up(len: usize) -> usize {
    len.div_ceil(BLOCK_SIZE_BYTES) * BLOCK_SIZE_BYTES
}

/// The decoded payload of a commit marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// Offset of the first data record of the batch.
    pub first_offset: u64,
    /// Number of data records in the batch.
    pub record_count: u32,
    /// Chain value after the previous batch.
    pub prev_chain: [u8; 32],
    /// Chain value after this batch.
    pub chain: [u8; 32],
    /// CRC32C of each sector of the batch bytes before the marker.
    pub sector_crcs: Vec<u32>,
}

/// Computes the chain value of a batch.
pub fn chain_of(
    prev_chain: &[u8; 32],
    first_offset: u64,
    record_count: u32,
    records: &[u8],
) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(prev_chain);
    hasher.update(&first_offset.to_le_bytes());
    hasher.update(&record_count.to_le_bytes());
    hasher.update(records);
    *hasher.finalize().as_bytes()
}

/// CRC32C of each sector of `records`.
pub fn sector_crcs_of(records: &[u8]) -> impl Iterator<Item = u32> + '_ {
    records.chunks(SECTOR_SIZE_BYTES).map(crc32c::crc32c)
}

/// Appends a marker for the batch `buf[..records_len]` at `buf[records_len..]`
/// and returns (marker size, chain).
pub fn write_marker(
    buf: &mut [u8],
    records_len: usize,
    first_offset: u64,
    record_count: u32,
    prev_chain: &[u8; 32],
    timestamp_ns: u64,
) -> (usize, [u8; 32]) {
    let sectors = sector_count(records_len);
    let size = marker_size_bytes(sectors);
    assert!(
        buf.len() >= records_len + size,
        "batch buffer has no room for its marker"
    );
    let chain = chain_of(prev_chain, first_offset, record_count, &buf[..records_len]);
    let (records, rest) = buf.split_at_mut(records_len);
    let payload = &mut rest[HEADER_SIZE_BYTES..size];
    let (fixed, tail) = payload.split_at_mut(FIXED_PAYLOAD_BYTES);
    let (crcs, trailer) = tail.split_at_mut(4 * sectors);
    MarkerFixed {
        first_offset: U64::new(first_offset),
        record_count: U32::new(record_count),
        sector_count: U32::new(sectors as u32),
        prev_chain: *prev_chain,
        chain,
    }
    .write_to(fixed)
    .expect("sized by marker_size_bytes");
    let crcs = <[U32]>::mut_from_bytes(crcs).expect("sized by marker_size_bytes");
    for (slot, crc) in crcs.iter_mut().zip(sector_crcs_of(records)) {
        *slot = U32::new(crc);
    }
    Trailer {
        size_bytes: U32::new(size as u32),
        magic: TRAILER_MAGIC,
    }
    .write_to(trailer)
    .expect("sized by marker_size_bytes");
    let next_offset = first_offset + record_count as u64;
    frame::seal_in_place(
        rest,
        size - HEADER_SIZE_BYTES,
        next_offset,
        timestamp_ns,
        RecordKind::Commit,
        0,
    );
    (size, chain)
}

/// Decodes a marker payload; `None` when its fields disagree with its size.
pub fn decode(payload: &[u8]) -> Option<Marker> {
    if payload.len() < FIXED_PAYLOAD_BYTES + TRAILER_BYTES {
        return None;
    }
    let (fixed, rest) = MarkerFixed::ref_from_prefix(payload).ok()?;
    let sector_count = fixed.sector_count.get() as usize;
    if payload.len() != FIXED_PAYLOAD_BYTES + 4 * sector_count + TRAILER_BYTES {
        return None;
    }
    let (crcs, trailer) = <[U32]>::ref_from_prefix_with_elems(rest, sector_count).ok()?;
    if Trailer::ref_from_bytes(trailer).ok()?.magic != TRAILER_MAGIC {
        return None;
    }
    Some(Marker {
        first_offset: fixed.first_offset.get(),
        record_count: fixed.record_count.get(),
        prev_chain: fixed.prev_chain,
        chain: fixed.chain,
        sector_crcs: crcs.iter().map(|c| c.get()).collect(),
    })
}

/// Where a marker that ends at `end` (exclusive) would start, read from its trailer.
pub fn start_from_trailer(region: &[u8], end: usize) -> Option<usize> {
    if end < TRAILER_BYTES || end > region.len() {
        return None;
    }
    let t = Trailer::ref_from_bytes(&region[end - TRAILER_BYTES..end]).ok()?;
    if t.magic != TRAILER_MAGIC {
        return None;
    }
    end.checked_sub(t.size_bytes.get() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{parse, Parsed};

    #[test]
    fn given_written_marker_when_decoded_then_fields_round_trip() {
        let mut buf = vec![0u8; 3 * BLOCK_SIZE_BYTES];
        buf[..5000].fill(0xab);
        let (size, chain) = write_marker(&mut buf, 5000, 10, 3, &CHAIN_GENESIS, 1);
        let Parsed::Record(h) = parse(&buf, 5000, 1 << 20) else {
            panic!()
        };
        assert_eq!(h.kind, RecordKind::Commit);
        assert_eq!(h.offset, 13);
        assert_eq!(h.size_bytes as usize, size);
        let m = decode(&buf[5000 + HEADER_SIZE_BYTES..5000 + size]).unwrap();
        assert_eq!(m.first_offset, 10);
        assert_eq!(m.record_count, 3);
        assert_eq!(m.chain, chain);
        assert_eq!(m.sector_crcs.len(), 10);
        assert_eq!(start_from_trailer(&buf, 5000 + size), Some(5000));
    }

    #[test]
    fn given_marker_layout_when_measured_then_matches_documented_offsets() {
        use std::mem::{offset_of, size_of};
        // docs/storage.md §4 and the table at the top of this file.
        assert_eq!(offset_of!(MarkerFixed, first_offset), 0);
        assert_eq!(offset_of!(MarkerFixed, record_count), 8);
        assert_eq!(offset_of!(MarkerFixed, sector_count), 12);
        assert_eq!(offset_of!(MarkerFixed, prev_chain), 16);
        assert_eq!(offset_of!(MarkerFixed, chain), 48);
        assert_eq!(size_of::<MarkerFixed>(), 80);
        assert_eq!(offset_of!(Trailer, size_bytes), 0);
        assert_eq!(offset_of!(Trailer, magic), 4);
        assert_eq!(size_of::<Trailer>(), 8);
        let mut buf = vec![0u8; 2 * BLOCK_SIZE_BYTES];
        buf[..600].fill(7);
        let prev = [9u8; 32];
        let (size, chain) = write_marker(&mut buf, 600, 0x0102_0304_0506_0708, 5, &prev, 1);
        assert_eq!(size, HEADER_SIZE_BYTES + 80 + 4 * 2 + 8);
        let p = &buf[600 + HEADER_SIZE_BYTES..600 + size];
        assert_eq!(p[0..8], 0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(p[8..12], 5u32.to_le_bytes());
        assert_eq!(p[12..16], 2u32.to_le_bytes());
        assert_eq!(p[16..48], prev);
        assert_eq!(p[48..80], chain);
        assert_eq!(p[80..84], crc32c::crc32c(&buf[..512]).to_le_bytes());
        assert_eq!(p[84..88], crc32c::crc32c(&buf[512..600]).to_le_bytes());
        assert_eq!(p[88..92], (size as u32).to_le_bytes());
        assert_eq!(&p[92..96], b"gncm");
    }
}
