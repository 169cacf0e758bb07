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

/// File name of the checkpoint in a log directory.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// File name the checkpoint is written to before the rename.
pub const CHECKPOINT_TMP_FILE: &str = "checkpoint.tmp";
const MAGIC: [u8; 8] = *b"gnckpt02";

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
        block[0..8].copy_from_slice(&MAGIC);
        block[8..16].copy_from_slice(&self.segment_base.to_le_bytes());
        block[16..24].copy_from_slice(&self.position.to_le_bytes());
        block[24..32].copy_from_slice(&self.next_offset.to_le_bytes());
        block[32..64].copy_from_slice(&self.chain);
        block[64..72].copy_from_slice(&self.mark.to_le_bytes());
        let crc = crc32c::crc32c(&block[0..72]);
        block[72..76].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes a block; `None` if it is not a valid checkpoint.
    pub fn decode(block: &[u8]) -> Option<Checkpoint> {
        let block = block.get(..76)?;
        if block[0..8] != MAGIC || crc32c::crc32c(&block[0..72]).to_le_bytes() != block[72..76] {
            return None;
        }
        Some(Checkpoint {
            segment_base: u64::from_le_bytes(block[8..16].try_into().unwrap()),
            position: u64::from_le_bytes(block[16..24].try_into().unwrap()),
            next_offset: u64::from_le_bytes(block[24..32].try_into().unwrap()),
            chain: block[32..64].try_into().unwrap(),
            mark: u64::from_le_bytes(block[64..72].try_into().unwrap()),
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
}
