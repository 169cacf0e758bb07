//! Byte layout of one record: a 32-byte header and its payload.
//!
//! ```text
//! 0..4    crc32c     over bytes 4..size_bytes (the rest of the header and the payload)
//! 4..8    size_bytes u32, header + payload; 0 and anything < 32 are invalid
//! 8..16   offset     u64, the record's own logical offset
//! 16..24  timestamp  u64, nanoseconds since the Unix epoch, given by the writer
//! 24      kind       u8: 1 data, 2 commit marker
//! 25      flags      u8, free for the caller (data) / 0 (marker)
//! 26..28  version    u16 = 1
//! 28..32  magic      b"gnrc"
//! ```
//! All integers are little-endian. A zeroed region has size 0 and parses as
//! `Parsed::Zero`; a half-written one fails its CRC.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of a record header in bytes.
pub const HEADER_SIZE_BYTES: usize = 32;
/// Magic number at the end of every record header.
pub const RECORD_MAGIC: [u8; 4] = *b"gnrc";
/// Record format version written into every header.
pub const RECORD_VERSION: u16 = 1;

/// A record header exactly as on disk (the table above).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct RawHeader {
    /// CRC32C of every byte after it, up to the record's end.
    crc: U32,
    size_bytes: U32,
    offset: U64,
    timestamp_ns: U64,
    kind: u8,
    flags: u8,
    version: U16,
    magic: [u8; 4],
}

const _: () = assert!(std::mem::size_of::<RawHeader>() == HEADER_SIZE_BYTES);

/// Where the CRC's span starts: the byte after the CRC.
const CRC_SPAN_START: usize = std::mem::offset_of!(RawHeader, size_bytes);

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A caller's record.
    Data,
    /// The commit marker that ends a batch.
    Commit,
}

impl RecordKind {
    fn code(self) -> u8 {
        match self {
            RecordKind::Data => 1,
            RecordKind::Commit => 2,
        }
    }

    fn from_code(code: u8) -> Option<RecordKind> {
        match code {
            1 => Some(RecordKind::Data),
            2 => Some(RecordKind::Commit),
            _ => None,
        }
    }
}

/// The decoded header of a record that passed every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Header + payload, in bytes.
    pub size_bytes: u32,
    /// The record's logical offset.
    pub offset: u64,
    /// Writer's timestamp, ns since the Unix epoch.
    pub timestamp_ns: u64,
    /// Data or commit marker.
    pub kind: RecordKind,
    /// Caller flags.
    pub flags: u8,
}

impl Header {
    /// Payload length in bytes.
    pub fn payload_len(&self) -> usize {
        self.size_bytes as usize - HEADER_SIZE_BYTES
    }
}

/// Why bytes at a position are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Fewer bytes than a header remain in the region.
    Truncated,
    /// The size field is below the header size or above the allowed maximum.
    BadSize,
    /// Magic or version do not match.
    BadMagic,
    /// The CRC does not match the bytes.
    BadCrc,
    /// The kind code is unknown.
    BadKind,
}

/// Result of trying to parse a record at a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A record whose header and payload passed the CRC.
    Record(Header),
    /// The whole header is zero bytes: nothing was ever written here.
    Zero,
    /// Something is here, but it is not a valid record.
    Invalid(Invalid),
}

/// Encodes a header for `payload` into `out[..32]` and returns the record size.
///
/// The payload must already sit at `out[32..32 + payload_len]`; the CRC is
/// computed over it in place, so the caller copies the payload once.
pub fn seal_in_place(
    out: &mut [u8],
    payload_len: usize,
    offset: u64,
    timestamp_ns: u64,
    kind: RecordKind,
    flags: u8,
) -> usize {
    let size_bytes = HEADER_SIZE_BYTES + payload_len;
    assert!(size_bytes <= u32::MAX as usize);
    assert!(out.len() >= size_bytes);
    RawHeader {
        crc: U32::ZERO,
        size_bytes: U32::new(size_bytes as u32),
        offset: U64::new(offset),
        timestamp_ns: U64::new(timestamp_ns),
        kind: kind.code(),
        flags,
        version: U16::new(RECORD_VERSION),
        magic: RECORD_MAGIC,
    }
    .write_to_prefix(out)
    .expect("checked: out holds the record");
    let crc = crc32c::crc32c(&out[CRC_SPAN_START..size_bytes]);
    out[..CRC_SPAN_START].copy_from_slice(&crc.to_le_bytes());
    size_bytes
}

/// Parses the record at `region[pos..]`, checking size bounds before anything
/// else so a damaged length never makes us read (or allocate) past the region.
pub fn parse(region: &[u8], pos: usize, size_bytes_max: usize) -> Parsed {
    parse_checked(region, pos, size_bytes_max, true)
}

/// [`parse`] for records that never left memory since they were sealed
/// (the tail cache's batches, as this process wrote them): every check
/// but the CRC, which guards the bytes' trip through the disk and would
/// cost a second pass over every payload a reader takes from the cache
/// (3 % of the hub's CPU in the bulk benchmark). Debug builds still check it.
pub fn parse_in_memory(region: &[u8], pos: usize, size_bytes_max: usize) -> Parsed {
    let parsed = parse_checked(region, pos, size_bytes_max, false);
    debug_assert!(
        !matches!(parsed, Parsed::Record(_))
            || matches!(
                parse_checked(region, pos, size_bytes_max, true),
                Parsed::Record(_)
            ),
        "a record sealed in memory fails its CRC"
    );
    parsed
}

fn parse_checked(region: &[u8], pos: usize, size_bytes_max: usize, check_crc: bool) -> Parsed {
    let Some(head) = region.get(pos..pos + HEADER_SIZE_BYTES) else {
        return Parsed::Invalid(Invalid::Truncated);
    };
    if head.iter().all(|b| *b == 0) {
        return Parsed::Zero;
    }
    let head = RawHeader::ref_from_bytes(head).expect("a header's bytes");
    if head.magic != RECORD_MAGIC || head.version.get() != RECORD_VERSION {
        return Parsed::Invalid(Invalid::BadMagic);
    }
    let size_bytes = head.size_bytes.get() as usize;
    if size_bytes < HEADER_SIZE_BYTES || size_bytes > size_bytes_max {
        return Parsed::Invalid(Invalid::BadSize);
    }
    let Some(record) = region.get(pos..pos + size_bytes) else {
        return Parsed::Invalid(Invalid::Truncated);
    };
    if check_crc && crc32c::crc32c(&record[CRC_SPAN_START..]) != head.crc.get() {
        return Parsed::Invalid(Invalid::BadCrc);
    }
    let Some(kind) = RecordKind::from_code(head.kind) else {
        return Parsed::Invalid(Invalid::BadKind);
    };
    Parsed::Record(Header {
        size_bytes: size_bytes as u32,
        offset: head.offset.get(),
        timestamp_ns: head.timestamp_ns.get(),
        kind,
        flags: head.flags,
    })
}

/// A header's size and offset fields wherever its magic matches, trusting
/// nothing else (no version, bounds or CRC check): for listing what damaged
/// bytes seem to hold (`gonets repair`'s report), never for serving them.
pub fn sniff(region: &[u8], pos: usize) -> Option<(usize, u64)> {
    let head = region.get(pos..pos.checked_add(HEADER_SIZE_BYTES)?)?;
    let head = RawHeader::ref_from_bytes(head).expect("a header's bytes");
    (head.magic == RECORD_MAGIC).then(|| (head.size_bytes.get() as usize, head.offset.get()))
}

/// Reads a header's size, offset and kind without checking the CRC: for
/// walking from an index entry to a record whose own CRC is checked after.
pub fn peek(region: &[u8], pos: usize, size_bytes_max: usize) -> Option<(usize, u64, RecordKind)> {
    let head = region.get(pos..pos + HEADER_SIZE_BYTES)?;
    let head = RawHeader::ref_from_bytes(head).expect("a header's bytes");
    if head.magic != RECORD_MAGIC {
        return None;
    }
    let size = head.size_bytes.get() as usize;
    if size < HEADER_SIZE_BYTES || size > size_bytes_max || pos + size > region.len() {
        return None;
    }
    Some((size, head.offset.get(), RecordKind::from_code(head.kind)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: &[u8], offset: u64) -> Vec<u8> {
        let mut buf = vec![0u8; HEADER_SIZE_BYTES + payload.len()];
        buf[HEADER_SIZE_BYTES..].copy_from_slice(payload);
        seal_in_place(&mut buf, payload.len(), offset, 7, RecordKind::Data, 3);
        buf
    }

    #[test]
    fn given_sealed_record_when_parsed_then_header_round_trips() {
        let buf = record(b"hello", 42);
        let Parsed::Record(h) = parse(&buf, 0, 1 << 20) else {
            panic!()
        };
        assert_eq!(h.offset, 42);
        assert_eq!(h.timestamp_ns, 7);
        assert_eq!(h.flags, 3);
        assert_eq!(h.kind, RecordKind::Data);
        assert_eq!(h.payload_len(), 5);
    }

    #[test]
    fn given_zero_region_when_parsed_then_zero_not_record() {
        assert_eq!(parse(&[0u8; 64], 0, 1 << 20), Parsed::Zero);
    }

    #[test]
    fn given_any_single_bit_flip_when_parsed_then_never_a_record() {
        let buf = record(b"payload bytes", 9);
        for bit in 0..buf.len() * 8 {
            let mut damaged = buf.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(parse(&damaged, 0, 1 << 20), Parsed::Record(_)),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn given_huge_size_field_when_parsed_then_bad_size_without_reading() {
        let mut buf = record(b"x", 1);
        buf[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&buf, 0, 1 << 20), Parsed::Invalid(Invalid::BadSize));
    }

    #[test]
    fn given_record_cut_short_when_parsed_then_truncated() {
        let buf = record(b"0123456789", 1);
        for len in HEADER_SIZE_BYTES..buf.len() {
            assert_eq!(
                parse(&buf[..len], 0, 1 << 20),
                Parsed::Invalid(Invalid::Truncated)
            );
        }
    }

    #[test]
    fn given_header_layout_when_measured_then_matches_documented_offsets() {
        use std::mem::{offset_of, size_of};
        // docs/storage.md §3 and the table at the top of this file.
        assert_eq!(offset_of!(RawHeader, crc), 0);
        assert_eq!(offset_of!(RawHeader, size_bytes), 4);
        assert_eq!(offset_of!(RawHeader, offset), 8);
        assert_eq!(offset_of!(RawHeader, timestamp_ns), 16);
        assert_eq!(offset_of!(RawHeader, kind), 24);
        assert_eq!(offset_of!(RawHeader, flags), 25);
        assert_eq!(offset_of!(RawHeader, version), 26);
        assert_eq!(offset_of!(RawHeader, magic), 28);
        assert_eq!(size_of::<RawHeader>(), 32);
        assert_eq!(std::mem::align_of::<RawHeader>(), 1);
        let mut buf = vec![0u8; HEADER_SIZE_BYTES + 3];
        buf[HEADER_SIZE_BYTES..].copy_from_slice(b"abc");
        seal_in_place(
            &mut buf,
            3,
            0x0102_0304_0506_0708,
            0x1112_1314_1516_1718,
            RecordKind::Commit,
            9,
        );
        assert_eq!(buf[0..4], crc32c::crc32c(&buf[4..]).to_le_bytes());
        assert_eq!(buf[4..8], 35u32.to_le_bytes());
        assert_eq!(buf[8..16], 0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(buf[16..24], 0x1112_1314_1516_1718u64.to_le_bytes());
        assert_eq!(buf[24], 2);
        assert_eq!(buf[25], 9);
        assert_eq!(buf[26..28], 1u16.to_le_bytes());
        assert_eq!(&buf[28..32], b"gnrc");
    }
}
