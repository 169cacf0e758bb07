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

/// Size of the header block at the start of every segment.
pub const SEGMENT_HEADER_BYTES: usize = BLOCK_SIZE_BYTES;
const SEGMENT_MAGIC: [u8; 8] = *b"gnseg001";
const SEGMENT_SUFFIX: &str = ".seg";

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
        block[0..8].copy_from_slice(&SEGMENT_MAGIC);
        block[8..16].copy_from_slice(&self.segment_size_bytes.to_le_bytes());
        block[16..24].copy_from_slice(&self.base_offset.to_le_bytes());
        block[24..56].copy_from_slice(&self.prev_chain);
        let crc = crc32c::crc32c(&block[0..56]);
        block[56..60].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes a header block; `None` if it is not a valid one.
    pub fn decode(block: &[u8]) -> Option<SegmentHeader> {
        let block = block.get(..60)?;
        if block[0..8] != SEGMENT_MAGIC
            || crc32c::crc32c(&block[0..56]).to_le_bytes() != block[56..60]
        {
            return None;
        }
        Some(SegmentHeader {
            segment_size_bytes: u64::from_le_bytes(block[8..16].try_into().unwrap()),
            base_offset: u64::from_le_bytes(block[16..24].try_into().unwrap()),
            prev_chain: block[24..56].try_into().unwrap(),
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
    fn given_names_when_parsed_then_only_segment_names_accepted() {
        assert_eq!(parse_file_name(&file_name(12345)), Some(12345));
        assert_eq!(parse_file_name("checkpoint"), None);
        assert_eq!(parse_file_name("0000000000000000001x.seg"), None);
    }
}
