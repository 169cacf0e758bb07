//! One upload on disk: its id, its meta file, its chunk records, and the
//! recovery that re-proves how many of its bytes are durable.
//!
//! Files (docs/storage.md, "Attachments"): `uploads/<uuid>.meta` (who, how
//! large, when), `uploads/<uuid>.data` (the bytes), `uploads/<uuid>.chunks`
//! (one 24-byte record per acknowledged chunk).

use super::files::{self, FileError, FileResult};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Bytes of one chunk record.
pub(crate) const CHUNK_RECORD_BYTES: u64 = 24;
/// First bytes of an upload's meta file.
const UPLOAD_META_MAGIC: &[u8; 8] = b"GNATUPM1";
/// The largest participant id, in bytes.
pub const OWNER_BYTES_MAX: usize = 256;
/// The largest upload meta file.
pub(crate) const UPLOAD_META_BYTES_MAX: u64 = (8 + 16 + 8 + 8 + 2 + OWNER_BYTES_MAX + 4) as u64;
/// Bytes read at a time when checking or hashing stored data.
pub(crate) const READ_BYTES_MAX: usize = 1 << 20;

/// An upload's id: 128 random bits, written as UUID text (8-4-4-4-12 hex).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct UploadId(pub u128);

impl UploadId {
    /// A fresh random id (version-4 UUID layout) from the OS's random source.
    pub(crate) fn random() -> std::io::Result<UploadId> {
        let mut bytes = [0u8; 16];
        let mut filled = 0;
        // getrandom(2) may return fewer bytes than asked when interrupted.
        while filled < bytes.len() {
            let rest = &mut bytes[filled..];
            // SAFETY: the pointer and length describe `rest`, which is writable.
            let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            filled += n as usize;
        }
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
        Ok(UploadId(u128::from_be_bytes(bytes)))
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (v >> 96) as u32,
            (v >> 80) as u16,
            (v >> 64) as u16,
            (v >> 48) as u16,
            v & 0xffff_ffff_ffff
        )
    }
}

/// Why UUID text did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an upload id (UUID text 8-4-4-4-12 hex): {0:?}")]
pub struct ParseUploadIdError(pub String);

impl FromStr for UploadId {
    type Err = ParseUploadIdError;

    fn from_str(s: &str) -> Result<UploadId, ParseUploadIdError> {
        let bad = || ParseUploadIdError(s.chars().take(64).collect());
        let groups: Vec<&str> = s.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if groups.len() != lens.len() || groups.iter().zip(lens).any(|(g, l)| g.len() != l) {
            return Err(bad());
        }
        let mut v: u128 = 0;
        for c in groups.concat().chars() {
            let d = c.to_digit(16).ok_or_else(bad)?;
            v = (v << 4) | u128::from(d);
        }
        Ok(UploadId(v))
    }
}

/// Where an upload stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadState {
    /// Its id.
    pub id: UploadId,
    /// The participant uploading.
    pub owner: String,
    /// The attachment's announced size.
    pub size_bytes: u64,
    /// Bytes stored durably (the next chunk starts here).
    pub durable_bytes: u64,
    /// When it was begun (ms).
    pub created_ms: u64,
    /// Last begin or chunk (ms); after a restart, the time of the open.
    pub touched_ms: u64,
}

/// An open upload, in memory.
#[derive(Clone, Debug)]
pub(crate) struct Upload {
    pub owner: String,
    pub size_bytes: u64,
    /// Bytes covered by the chunk records.
    pub durable_bytes: u64,
    /// Chunk records in the chunk file.
    pub records: u64,
    pub created_ms: u64,
    pub touched_ms: u64,
}

impl Upload {
    pub(crate) fn state(&self, id: UploadId) -> UploadState {
        assert!(self.durable_bytes <= self.size_bytes);
        UploadState {
            id,
            owner: self.owner.clone(),
            size_bytes: self.size_bytes,
            durable_bytes: self.durable_bytes,
            created_ms: self.created_ms,
            touched_ms: self.touched_ms,
        }
    }
}

/// The paths of one upload's files.
pub(crate) struct UploadPaths {
    pub meta: PathBuf,
    pub data: PathBuf,
    pub chunks: PathBuf,
}

impl UploadPaths {
    pub(crate) fn new(uploads_dir: &Path, id: UploadId) -> UploadPaths {
        UploadPaths {
            meta: uploads_dir.join(format!("{id}.meta")),
            data: uploads_dir.join(format!("{id}.data")),
            chunks: uploads_dir.join(format!("{id}.chunks")),
        }
    }
}

/// Checks a participant id's length.
pub(crate) fn check_owner(owner: &str) -> Result<(), super::AttachmentError> {
    if owner.is_empty() || owner.len() > OWNER_BYTES_MAX {
        return Err(super::AttachmentError::OwnerInvalid {
            bytes: owner.len(),
            owner_bytes_max: OWNER_BYTES_MAX,
        });
    }
    Ok(())
}

/// The meta file's content: magic, id u128, size u64, created u64, owner
/// length u16, owner, CRC32C u32 of all before (little-endian).
pub(crate) fn encode_meta(id: UploadId, owner: &str, size_bytes: u64, created_ms: u64) -> Vec<u8> {
    assert!(!owner.is_empty() && owner.len() <= OWNER_BYTES_MAX);
    let mut b = Vec::with_capacity(8 + 16 + 8 + 8 + 2 + owner.len() + 4);
    b.extend_from_slice(UPLOAD_META_MAGIC);
    b.extend_from_slice(&id.0.to_le_bytes());
    b.extend_from_slice(&size_bytes.to_le_bytes());
    b.extend_from_slice(&created_ms.to_le_bytes());
    b.extend_from_slice(&(owner.len() as u16).to_le_bytes());
    b.extend_from_slice(owner.as_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// What an upload's meta file says.
pub(crate) struct UploadMeta {
    pub owner: String,
    pub size_bytes: u64,
    pub created_ms: u64,
}

/// Decodes a meta file of upload `id`; `Err` says what is wrong.
pub(crate) fn decode_meta(id: UploadId, b: &[u8]) -> Result<UploadMeta, String> {
    const FIXED: usize = 8 + 16 + 8 + 8 + 2;
    if b.len() < FIXED + 4 || b.len() as u64 > UPLOAD_META_BYTES_MAX {
        return Err(format!("meta file of {} bytes", b.len()));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32c::crc32c(body) != le_u32(crc) {
        return Err("meta file CRC mismatch".into());
    }
    if &body[..8] != UPLOAD_META_MAGIC || le_u128(&body[8..24]) != id.0 {
        return Err("meta file magic or id mismatch".into());
    }
    let owner_len = usize::from(u16::from_le_bytes([body[40], body[41]]));
    let owner =
        std::str::from_utf8(&body[FIXED..]).map_err(|_| "owner is not UTF-8".to_string())?;
    if owner.len() != owner_len || owner.is_empty() {
        return Err("owner length mismatch".into());
    }
    let size_bytes = le_u64(&body[24..32]);
    if size_bytes == 0 {
        return Err("size 0".into());
    }
    Ok(UploadMeta {
        owner: owner.to_string(),
        size_bytes,
        created_ms: le_u64(&body[32..40]),
    })
}

/// One chunk record: offset u64, len u32, data CRC32C u32, record CRC32C
/// u32 (of the 16 bytes before), 4 zero bytes of padding.
pub(crate) fn encode_record(offset: u64, len: u32, crc: u32) -> [u8; CHUNK_RECORD_BYTES as usize] {
    let mut r = [0u8; CHUNK_RECORD_BYTES as usize];
    r[0..8].copy_from_slice(&offset.to_le_bytes());
    r[8..12].copy_from_slice(&len.to_le_bytes());
    r[12..16].copy_from_slice(&crc.to_le_bytes());
    let rc = crc32c::crc32c(&r[0..16]);
    r[16..20].copy_from_slice(&rc.to_le_bytes());
    r
}

/// Decodes a chunk record: (offset, len, data CRC), or `None` when its
/// record CRC or padding does not check.
fn decode_record(r: &[u8]) -> Option<(u64, u32, u32)> {
    assert_eq!(r.len() as u64, CHUNK_RECORD_BYTES);
    if crc32c::crc32c(&r[0..16]) != le_u32(&r[16..20]) || r[20..24] != [0; 4] {
        return None;
    }
    Some((le_u64(&r[0..8]), le_u32(&r[8..12]), le_u32(&r[12..16])))
}

/// CRC32C of `len` bytes of `file` at `offset`, read in bounded pieces.
pub(crate) fn crc_of_range(file: &File, path: &Path, offset: u64, len: u64) -> FileResult<u32> {
    let mut buf = vec![0u8; READ_BYTES_MAX.min(len as usize)];
    let (mut crc, mut done) = (0u32, 0u64);
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        files::read_exact_at(file, path, offset + done, &mut buf[..n])?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        done += n as u64;
    }
    Ok(crc)
}

/// Proves how many bytes of an upload are durable: the longest prefix of
/// chunk records that check, are contiguous from 0, stay within
/// `size_bytes` and whose data CRC matches the data file. Cuts the data file
/// to that length and the chunk file to those records (a torn or damaged
/// tail was never acknowledged, or is damage no chunk after it can follow).
/// Returns (durable bytes, records).
pub(crate) fn recover(paths: &UploadPaths, size_bytes: u64) -> FileResult<(u64, u64)> {
    let data = files::open_rw(&paths.data)?;
    let chunks = files::open_rw(&paths.chunks)?;
    let chunks_len = file_len(&chunks, &paths.chunks)?;
    let data_len = file_len(&data, &paths.data)?;
    let (mut durable, mut records) = (0u64, 0u64);
    let mut r = [0u8; CHUNK_RECORD_BYTES as usize];
    while (records + 1) * CHUNK_RECORD_BYTES <= chunks_len {
        files::read_exact_at(&chunks, &paths.chunks, records * CHUNK_RECORD_BYTES, &mut r)?;
        let Some((offset, len, crc)) = decode_record(&r) else {
            break;
        };
        let len = u64::from(len);
        let fits = offset == durable && len > 0 && len <= size_bytes - durable;
        if !fits || offset + len > data_len {
            break;
        }
        if crc_of_range(&data, &paths.data, offset, len)? != crc {
            tracing::warn!(
                file = %paths.data.display(),
                offset,
                "attachment upload: chunk data does not match its CRC; cut back to {durable} bytes"
            );
            break;
        }
        durable += len;
        records += 1;
    }
    if data_len != durable {
        files::truncate(&data, &paths.data, durable)?;
    }
    if chunks_len != records * CHUNK_RECORD_BYTES {
        files::truncate(&chunks, &paths.chunks, records * CHUNK_RECORD_BYTES)?;
    }
    assert!(durable <= size_bytes);
    Ok((durable, records))
}

/// The length of an open file.
pub(crate) fn file_len(file: &File, path: &Path) -> FileResult<u64> {
    file.metadata().map(|m| m.len()).map_err(|e| FileError {
        step: files::Step::Other,
        what: format!("stat {}", path.display()),
        source: e,
    })
}

pub(crate) fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

pub(crate) fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn le_u128(b: &[u8]) -> u128 {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    u128::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_id_when_displayed_and_parsed_then_round_trips_as_uuid_text() {
        let id = UploadId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let s = id.to_string();
        assert_eq!(s, "01234567-89ab-cdef-0011-223344556677");
        assert_eq!(s.parse::<UploadId>(), Ok(id));
        assert!("01234567-89ab-cdef-0011-22334455667"
            .parse::<UploadId>()
            .is_err());
        assert!("0123456789abcdef0011223344556677"
            .parse::<UploadId>()
            .is_err());
        assert!("0123456g-89ab-cdef-0011-223344556677"
            .parse::<UploadId>()
            .is_err());
        let r = UploadId::random().unwrap();
        assert_eq!(r.to_string().parse::<UploadId>(), Ok(r));
        assert_ne!(r, UploadId::random().unwrap());
    }

    #[test]
    fn given_meta_when_encoded_then_decodes_and_any_flipped_byte_is_refused() {
        let id = UploadId(42);
        let b = encode_meta(id, "alice", 1000, 7);
        let m = decode_meta(id, &b).unwrap();
        assert_eq!(
            (m.owner.as_str(), m.size_bytes, m.created_ms),
            ("alice", 1000, 7)
        );
        assert!(decode_meta(UploadId(43), &b).is_err());
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x10;
            assert!(decode_meta(id, &d).is_err(), "byte {i}");
        }
    }

    #[test]
    fn given_record_when_encoded_then_decodes_and_damage_is_refused() {
        let r = encode_record(4096, 100, 0xdead_beef);
        assert_eq!(decode_record(&r), Some((4096, 100, 0xdead_beef)));
        for i in 0..r.len() {
            let mut d = r;
            d[i] ^= 1;
            assert_eq!(decode_record(&d), None, "byte {i}");
        }
    }
}
