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

/// Block size of batches: every batch starts on such a boundary.
pub const BLOCK_SIZE_BYTES: usize = 4096;
/// Unit of the marker's CRCs: the smallest write a disk is assumed to persist atomically.
pub const SECTOR_SIZE_BYTES: usize = 512;
/// Magic bytes at the very end of a marker.
pub const TRAILER_MAGIC: [u8; 4] = *b"gncm";
/// Hash chain value before the first batch of a log.
pub const CHAIN_GENESIS: [u8; 32] = [0u8; 32];
const FIXED_PAYLOAD_BYTES: usize = 80;
const TRAILER_BYTES: usize = 8;

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
    let p = &mut rest[HEADER_SIZE_BYTES..size];
    p[0..8].copy_from_slice(&first_offset.to_le_bytes());
    p[8..12].copy_from_slice(&record_count.to_le_bytes());
    p[12..16].copy_from_slice(&(sectors as u32).to_le_bytes());
    p[16..48].copy_from_slice(prev_chain);
    p[48..80].copy_from_slice(&chain);
    for (i, crc) in sector_crcs_of(records).enumerate() {
        p[80 + 4 * i..84 + 4 * i].copy_from_slice(&crc.to_le_bytes());
    }
    let t = size - HEADER_SIZE_BYTES - TRAILER_BYTES;
    p[t..t + 4].copy_from_slice(&(size as u32).to_le_bytes());
    p[t + 4..t + 8].copy_from_slice(&TRAILER_MAGIC);
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
    let sector_count = u32::from_le_bytes(payload[12..16].try_into().unwrap()) as usize;
    if payload.len() != FIXED_PAYLOAD_BYTES + 4 * sector_count + TRAILER_BYTES {
        return None;
    }
    let t = payload.len() - TRAILER_BYTES;
    if payload[t + 4..] != TRAILER_MAGIC {
        return None;
    }
    Some(Marker {
        first_offset: u64::from_le_bytes(payload[0..8].try_into().unwrap()),
        record_count: u32::from_le_bytes(payload[8..12].try_into().unwrap()),
        prev_chain: payload[16..48].try_into().unwrap(),
        chain: payload[48..80].try_into().unwrap(),
        sector_crcs: (0..sector_count)
            .map(|i| u32::from_le_bytes(payload[80 + 4 * i..84 + 4 * i].try_into().unwrap()))
            .collect(),
    })
}

/// Where a marker that ends at `end` (exclusive) would start, read from its trailer.
pub fn start_from_trailer(region: &[u8], end: usize) -> Option<usize> {
    if end < TRAILER_BYTES || end > region.len() {
        return None;
    }
    let t = &region[end - TRAILER_BYTES..end];
    if t[4..8] != TRAILER_MAGIC {
        return None;
    }
    let size = u32::from_le_bytes(t[0..4].try_into().unwrap()) as usize;
    end.checked_sub(size)
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
}
