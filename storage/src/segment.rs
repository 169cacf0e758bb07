//! A segment file: fixed size, named by its first offset, a 4 KiB header block
//! and then batches.
//!
//! Header block layout (little-endian):
//! ```text
//! 0..8    magic b"gnseg001"
//! 8..16   segment_size_bytes u64
//! 16..24  base_offset u64 (the file name says the same)
//! 24..56  prev_chain: chain value after the last batch before this segment
//! 56..60  crc32c of bytes 0..56
//! 60..4096 zero
//! ```

use crate::marker::BLOCK_SIZE_BYTES;
use std::path::{Path, PathBuf};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of the header block at the start of every segment.
pub const SEGMENT_HEADER_BYTES: usize = BLOCK_SIZE_BYTES;
const SEGMENT_MAGIC: [u8; 8] = *b"gnseg001";
const SEGMENT_SUFFIX: &str = ".seg";

/// The meaningful bytes of a header block, exactly as on disk (the table
/// above); the rest of the block is zeros.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct RawSegmentHeader {
    magic: [u8; 8],
    segment_size_bytes: U64,
    base_offset: U64,
    prev_chain: [u8; 32],
    /// CRC32C of every byte before it.
    crc: U32,
}

/// Bytes of the header block the CRC covers: everything before the CRC.
const CRC_SPAN_BYTES: usize = std::mem::offset_of!(RawSegmentHeader, crc);

/// The decoded header block of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Total file size in bytes.
    pub segment_size_bytes: u64,
    /// Offset of the first record this segment may hold.
    pub base_offset: u64,
    /// Chain value this segment's first batch continues.
    pub prev_chain: [u8; 32],
}

impl SegmentHeader {
    /// Encodes into a header block.
    pub fn encode(&self, block: &mut [u8]) {
        assert!(block.len() >= SEGMENT_HEADER_BYTES);
        block[..SEGMENT_HEADER_BYTES].fill(0);
        let mut raw = RawSegmentHeader {
            magic: SEGMENT_MAGIC,
            segment_size_bytes: U64::new(self.segment_size_bytes),
            base_offset: U64::new(self.base_offset),
            prev_chain: self.prev_chain,
            crc: U32::ZERO,
        };
        raw.crc = U32::new(crc32c::crc32c(&raw.as_bytes()[..CRC_SPAN_BYTES]));
        raw.write_to_prefix(block).expect("checked: a whole block");
    }

    /// Decodes a header block; `None` if it is not a valid one.
    pub fn decode(block: &[u8]) -> Option<SegmentHeader> {
        let (raw, _) = RawSegmentHeader::ref_from_prefix(block).ok()?;
        if raw.magic != SEGMENT_MAGIC
            || crc32c::crc32c(&raw.as_bytes()[..CRC_SPAN_BYTES]) != raw.crc.get()
        {
            return None;
        }
        Some(SegmentHeader {
            segment_size_bytes: raw.segment_size_bytes.get(),
            base_offset: raw.base_offset.get(),
            prev_chain: raw.prev_chain,
        })
    }
}

/// The file name of the segment whose first offset is `base_offset`.
pub fn file_name(base_offset: u64) -> String {
    format!("{base_offset:020}{SEGMENT_SUFFIX}")
}

/// The path of a segment in `dir`.
pub fn path(dir: &Path, base_offset: u64) -> PathBuf {
    dir.join(file_name(base_offset))
}

/// The base offset a segment file name encodes, if it is one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_header_when_encoded_then_decodes_and_rejects_flips() {
        let h = SegmentHeader {
            segment_size_bytes: 1 << 20,
            base_offset: 77,
            prev_chain: [3; 32],
        };
        let mut block = vec![0u8; SEGMENT_HEADER_BYTES];
        h.encode(&mut block);
        assert_eq!(SegmentHeader::decode(&block), Some(h));
        block[20] ^= 1;
        assert_eq!(SegmentHeader::decode(&block), None);
    }

    #[test]
    fn given_header_layout_when_measured_then_matches_documented_offsets() {
        use std::mem::{offset_of, size_of};
        // docs/storage.md §2 and the table at the top of this file.
        assert_eq!(offset_of!(RawSegmentHeader, magic), 0);
        assert_eq!(offset_of!(RawSegmentHeader, segment_size_bytes), 8);
        assert_eq!(offset_of!(RawSegmentHeader, base_offset), 16);
        assert_eq!(offset_of!(RawSegmentHeader, prev_chain), 24);
        assert_eq!(offset_of!(RawSegmentHeader, crc), 56);
        assert_eq!(size_of::<RawSegmentHeader>(), 60);
        assert_eq!(std::mem::align_of::<RawSegmentHeader>(), 1);
        let mut block = vec![0xeeu8; SEGMENT_HEADER_BYTES];
        SegmentHeader {
            segment_size_bytes: 0x0102_0304_0506_0708,
            base_offset: 0x1112_1314_1516_1718,
            prev_chain: [0x21; 32],
        }
        .encode(&mut block);
        assert_eq!(&block[0..8], b"gnseg001");
        assert_eq!(block[8..16], 0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(block[16..24], 0x1112_1314_1516_1718u64.to_le_bytes());
        assert_eq!(block[24..56], [0x21; 32]);
        assert_eq!(block[56..60], crc32c::crc32c(&block[0..56]).to_le_bytes());
        assert!(block[60..].iter().all(|b| *b == 0));
    }

    #[test]
    fn given_names_when_parsed_then_only_segment_names_accepted() {
        assert_eq!(parse_file_name(&file_name(12345)), Some(12345));
        assert_eq!(parse_file_name("checkpoint"), None);
        assert_eq!(parse_file_name("0000000000000000001x.seg"), None);
    }
}
