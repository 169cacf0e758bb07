//! The checkpoint file: where recovery may start scanning.
//!
//! It names a batch boundary below which everything was durable and verified
//! when it was written, so recovery scans only what came after it. Layout
//! (one 4 KiB block, little-endian):
//! ```text
//! 0..8    magic b"gnckpt02"
//! 8..16   segment base offset
//! 16..24  position of the next batch in that segment
//! 24..32  next offset
//! 32..64  chain value at that point
//! 64..72  the owner's mark (an offset the engine replays from; 0 = none)
//! 72..76  crc32c of bytes 0..72
//! ```
//! It is replaced atomically: written to `checkpoint.tmp`, synced, renamed
//! over `checkpoint`, and the directory synced.

use crate::marker::BLOCK_SIZE_BYTES;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// File name of the checkpoint in a log directory.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// File name the checkpoint is written to before the rename.
pub const CHECKPOINT_TMP_FILE: &str = "checkpoint.tmp";
const MAGIC: [u8; 8] = *b"gnckpt02";

/// The meaningful bytes of the checkpoint block, exactly as on disk (the
/// table above); the rest of the block is zeros.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct RawCheckpoint {
    magic: [u8; 8],
    segment_base: U64,
    position: U64,
    next_offset: U64,
    chain: [u8; 32],
    mark: U64,
    /// CRC32C of every byte before it.
    crc: U32,
}

/// Bytes of the block the CRC covers: everything before the CRC.
const CRC_SPAN_BYTES: usize = std::mem::offset_of!(RawCheckpoint, crc);

/// A point in the log below which everything is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Base offset of the segment holding the point.
    pub segment_base: u64,
    /// Position of the next batch in that segment.
    pub position: u64,
    /// Offset of the next record.
    pub next_offset: u64,
    /// Chain value after the last batch before the point.
    pub chain: [u8; 32],
    /// The log owner's mark: an offset it asked to be kept with the checkpoint.
    pub mark: u64,
}

impl Checkpoint {
    /// Encodes into one block.
    pub fn encode(&self, block: &mut [u8]) {
        assert!(block.len() >= BLOCK_SIZE_BYTES);
        block[..BLOCK_SIZE_BYTES].fill(0);
        let mut raw = RawCheckpoint {
            magic: MAGIC,
            segment_base: U64::new(self.segment_base),
            position: U64::new(self.position),
            next_offset: U64::new(self.next_offset),
            chain: self.chain,
            mark: U64::new(self.mark),
            crc: U32::ZERO,
        };
        raw.crc = U32::new(crc32c::crc32c(&raw.as_bytes()[..CRC_SPAN_BYTES]));
        raw.write_to_prefix(block).expect("checked: a whole block");
    }

    /// Decodes a block; `None` if it is not a valid checkpoint.
    pub fn decode(block: &[u8]) -> Option<Checkpoint> {
        let (raw, _) = RawCheckpoint::ref_from_prefix(block).ok()?;
        if raw.magic != MAGIC || crc32c::crc32c(&raw.as_bytes()[..CRC_SPAN_BYTES]) != raw.crc.get()
        {
            return None;
        }
        Some(Checkpoint {
            segment_base: raw.segment_base.get(),
            position: raw.position.get(),
            next_offset: raw.next_offset.get(),
            chain: raw.chain,
            mark: raw.mark.get(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_checkpoint_when_encoded_then_round_trips_and_rejects_damage() {
        let c = Checkpoint {
            segment_base: 5,
            position: 8192,
            next_offset: 99,
            chain: [1; 32],
            mark: 7,
        };
        let mut block = vec![0u8; BLOCK_SIZE_BYTES];
        c.encode(&mut block);
        assert_eq!(Checkpoint::decode(&block), Some(c));
        block[30] ^= 4;
        assert_eq!(Checkpoint::decode(&block), None);
    }

    #[test]
    fn given_checkpoint_layout_when_measured_then_matches_documented_offsets() {
        use std::mem::{offset_of, size_of};
        // docs/storage.md §5 and the table at the top of this file.
        assert_eq!(offset_of!(RawCheckpoint, magic), 0);
        assert_eq!(offset_of!(RawCheckpoint, segment_base), 8);
        assert_eq!(offset_of!(RawCheckpoint, position), 16);
        assert_eq!(offset_of!(RawCheckpoint, next_offset), 24);
        assert_eq!(offset_of!(RawCheckpoint, chain), 32);
        assert_eq!(offset_of!(RawCheckpoint, mark), 64);
        assert_eq!(offset_of!(RawCheckpoint, crc), 72);
        assert_eq!(size_of::<RawCheckpoint>(), 76);
        let mut block = vec![0xeeu8; BLOCK_SIZE_BYTES];
        Checkpoint {
            segment_base: 1,
            position: 2,
            next_offset: 3,
            chain: [4; 32],
            mark: 5,
        }
        .encode(&mut block);
        assert_eq!(&block[0..8], b"gnckpt02");
        assert_eq!(block[8..16], 1u64.to_le_bytes());
        assert_eq!(block[16..24], 2u64.to_le_bytes());
        assert_eq!(block[24..32], 3u64.to_le_bytes());
        assert_eq!(block[32..64], [4; 32]);
        assert_eq!(block[64..72], 5u64.to_le_bytes());
        assert_eq!(block[72..76], crc32c::crc32c(&block[0..72]).to_le_bytes());
        assert!(block[76..].iter().all(|b| *b == 0));
    }
}
