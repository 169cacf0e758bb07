//! Finished attachments: a blob's meta file (who may see it, how long it is
//! kept), hashing stored bytes, and the reader that streams a blob.
//!
//! Files (docs/storage.md, "Attachments"): `blobs/<hex>.meta` and
//! `blobs/<hex>.blob`, `<hex>` the 64 lowercase hex digits of the BLAKE3
//! digest.

use super::error::AttachmentError;
use super::files::{self, FileResult};
use super::upload::{le_u32, le_u64, OWNER_BYTES_MAX, READ_BYTES_MAX};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// First bytes of a blob's meta file.
const BLOB_META_MAGIC: &[u8; 8] = b"GNATBLM1";
/// The most owners (participants who uploaded the same bytes) of one blob.
pub const BLOB_OWNERS_MAX: usize = 1024;
/// The most readers of one blob (each reference adds one; the meta file is
/// rewritten whole, so this bounds it to about 4 MiB).
pub const BLOB_READERS_MAX: usize = 16384;
/// The largest meta file accepted on open.
pub(crate) const BLOB_META_BYTES_MAX: u64 = (8 + 32 + 8 + 8 + 4 + 4 + 4)
    + ((BLOB_OWNERS_MAX + BLOB_READERS_MAX) * (2 + OWNER_BYTES_MAX)) as u64;

/// A finished attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    /// BLAKE3 of its bytes.
    pub digest: [u8; 32],
    /// Its size.
    pub size_bytes: u64,
    /// Participants who uploaded these bytes (sorted).
    pub owners: Vec<String>,
    /// Participants a message gave it to (sorted).
    pub readers: Vec<String>,
    /// Kept at least until then (ms); swept after.
    pub keep_until_ms: u64,
}

impl BlobInfo {
    /// True when `who` uploaded it or was given it.
    pub(crate) fn visible_to(&self, who: &str) -> bool {
        self.owners.iter().any(|o| o == who) || self.readers.iter().any(|r| r == who)
    }
}

/// Adds `name` to the sorted `list` unless present; `ListFull` past `max`.
/// True when added.
pub(crate) fn add_name(
    list: &mut Vec<String>,
    name: &str,
    which: &'static str,
    max: usize,
) -> Result<bool, AttachmentError> {
    match list.binary_search_by(|n| n.as_str().cmp(name)) {
        Ok(_) => Ok(false),
        Err(_) if list.len() >= max => Err(AttachmentError::ListFull { list: which, max }),
        Err(at) => {
            list.insert(at, name.to_string());
            Ok(true)
        }
    }
}

/// Lowercase hex of a digest.
pub(crate) fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 64 hex digits.
pub(crate) fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(d)
}

/// The paths of one blob's files.
pub(crate) struct BlobPaths {
    pub meta: PathBuf,
    pub blob: PathBuf,
}

impl BlobPaths {
    pub(crate) fn new(blobs_dir: &Path, digest: &[u8; 32]) -> BlobPaths {
        let h = hex(digest);
        BlobPaths {
            meta: blobs_dir.join(format!("{h}.meta")),
            blob: blobs_dir.join(format!("{h}.blob")),
        }
    }
}

/// The meta file's content: magic, digest, size u64, keep_until u64, owner
/// count u32, reader count u32, each name as length u16 + bytes, CRC32C u32
/// of all before (little-endian).
pub(crate) fn encode_meta(info: &BlobInfo) -> Vec<u8> {
    assert!(!info.owners.is_empty() && info.owners.len() <= BLOB_OWNERS_MAX);
    assert!(info.readers.len() <= BLOB_READERS_MAX);
    let mut b = Vec::with_capacity(128);
    b.extend_from_slice(BLOB_META_MAGIC);
    b.extend_from_slice(&info.digest);
    b.extend_from_slice(&info.size_bytes.to_le_bytes());
    b.extend_from_slice(&info.keep_until_ms.to_le_bytes());
    b.extend_from_slice(&(info.owners.len() as u32).to_le_bytes());
    b.extend_from_slice(&(info.readers.len() as u32).to_le_bytes());
    for name in info.owners.iter().chain(&info.readers) {
        assert!(!name.is_empty() && name.len() <= OWNER_BYTES_MAX);
        b.extend_from_slice(&(name.len() as u16).to_le_bytes());
        b.extend_from_slice(name.as_bytes());
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    assert!(b.len() as u64 <= BLOB_META_BYTES_MAX);
    b
}

/// Decodes a blob meta file; `Err` says what is wrong.
pub(crate) fn decode_meta(b: &[u8]) -> Result<BlobInfo, String> {
    const FIXED: usize = 8 + 32 + 8 + 8 + 4 + 4;
    if b.len() < FIXED + 4 || b.len() as u64 > BLOB_META_BYTES_MAX {
        return Err(format!("meta file of {} bytes", b.len()));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32c::crc32c(body) != le_u32(crc) || &body[..8] != BLOB_META_MAGIC {
        return Err("meta file CRC or magic mismatch".into());
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&body[8..40]);
    let (owners_n, readers_n) = (
        le_u32(&body[56..60]) as usize,
        le_u32(&body[60..64]) as usize,
    );
    if owners_n == 0 || owners_n > BLOB_OWNERS_MAX || readers_n > BLOB_READERS_MAX {
        return Err(format!("{owners_n} owners, {readers_n} readers"));
    }
    let mut rest = &body[FIXED..];
    let mut names = Vec::with_capacity(owners_n + readers_n);
    for _ in 0..owners_n + readers_n {
        let (name, tail) = take_name(rest)?;
        names.push(name);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err("bytes after the last name".into());
    }
    let mut readers = names.split_off(owners_n);
    // Written sorted; kept so for the binary searches of `add_name`.
    names.sort();
    names.dedup();
    readers.sort();
    readers.dedup();
    Ok(BlobInfo {
        digest,
        size_bytes: le_u64(&body[40..48]),
        owners: names,
        readers,
        keep_until_ms: le_u64(&body[48..56]),
    })
}

/// One length-prefixed name off the front of `b`.
fn take_name(b: &[u8]) -> Result<(String, &[u8]), String> {
    if b.len() < 2 {
        return Err("name cut".into());
    }
    let len = usize::from(u16::from_le_bytes([b[0], b[1]]));
    if len == 0 || len > OWNER_BYTES_MAX || b.len() < 2 + len {
        return Err(format!("name of {len} bytes"));
    }
    let name = std::str::from_utf8(&b[2..2 + len]).map_err(|_| "name is not UTF-8".to_string())?;
    Ok((name.to_string(), &b[2 + len..]))
}

/// BLAKE3 of the first `size_bytes` of `file`, read in 1 MiB pieces.
pub(crate) fn hash_file(file: &File, path: &Path, size_bytes: u64) -> FileResult<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; READ_BYTES_MAX.min(size_bytes as usize)];
    let mut done = 0u64;
    while done < size_bytes {
        let n = (size_bytes - done).min(buf.len() as u64) as usize;
        files::read_exact_at(file, path, done, &mut buf[..n])?;
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    Ok(*hasher.finalize().as_bytes())
}

/// Streams one blob: an open file and its size. The file stays readable
/// even if the blob is swept meanwhile (the open file keeps its bytes).
#[derive(Debug)]
pub struct BlobReader {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) size_bytes: u64,
}

impl BlobReader {
    /// The blob's size.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Reads up to `buf.len()` bytes at `offset`, fully (short only at the
    /// blob's end; 0 at or past it). A file shorter than the blob is `Corrupt`.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, AttachmentError> {
        if offset >= self.size_bytes {
            return Ok(0);
        }
        let n = (self.size_bytes - offset).min(buf.len() as u64) as usize;
        let mut done = 0;
        while done < n {
            match self.file.read_at(&mut buf[done..n], offset + done as u64) {
                Ok(0) => {
                    return Err(AttachmentError::Corrupt {
                        what: format!(
                            "{} ends at {} bytes, its meta says {}",
                            self.path.display(),
                            offset + done as u64,
                            self.size_bytes
                        ),
                    })
                }
                Ok(k) => done += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(AttachmentError::io(
                        format!("read {}", self.path.display()),
                        e,
                    ))
                }
            }
        }
        assert!(done == n && n <= buf.len());
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> BlobInfo {
        BlobInfo {
            digest: [7; 32],
            size_bytes: 12345,
            owners: vec!["alice".into(), "bob".into()],
            readers: vec!["carol".into()],
            keep_until_ms: 99,
        }
    }

    #[test]
    fn given_meta_when_encoded_then_decodes_and_any_flipped_byte_is_refused() {
        let b = encode_meta(&info());
        assert_eq!(decode_meta(&b), Ok(info()));
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x04;
            assert!(decode_meta(&d).is_err(), "byte {i}");
        }
    }

    #[test]
    fn given_digest_when_hexed_then_parses_back() {
        let d: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(parse_hex(&hex(&d)), Some(d));
        assert_eq!(parse_hex("zz"), None);
    }

    #[test]
    fn given_full_list_when_name_added_then_list_full() {
        let mut l = vec!["b".to_string()];
        assert!(add_name(&mut l, "a", "readers", 2).unwrap());
        assert!(!add_name(&mut l, "b", "readers", 2).unwrap());
        assert!(matches!(
            add_name(&mut l, "c", "readers", 2),
            Err(AttachmentError::ListFull { max: 2, .. })
        ));
        assert_eq!(l, vec!["a", "b"]);
    }
}
