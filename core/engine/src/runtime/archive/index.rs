//! The index from message id to archived history: immutable sorted runs on
//! disk, binary-searched through a read-only map.
//!
//! A run file covers the history log's offsets `[from, to)`: every id of
//! every history recorded there, with the offset of the history's first
//! chunk. Layout: one 4 KiB header block (magic, version, entry count,
//! `from`, `to`, CRC32C of the entries, CRC32C of the header), then the
//! entries (16-byte id, 8-byte offset, little-endian), strictly ascending by
//! id, then zeros up to a 4 KiB multiple (the file is written with O_DIRECT).
//! A run is checked whole when opened: a truncated or damaged file is a
//! typed [`IndexError`], and the archive rebuilds what it covered from the
//! history log.

use gonets_types::ids::MessageId;
use std::path::{Path, PathBuf};

/// The header block's size, bytes (one O_DIRECT block).
pub(crate) const HEADER_BYTES: usize = 4096;
/// One entry's size, bytes.
pub(crate) const ENTRY_BYTES: usize = 24;
/// Most entries one run may hold (2^32: 96 GiB of index).
pub(crate) const RUN_ENTRIES_MAX: u64 = 1 << 32;
const MAGIC: &[u8; 8] = b"gnhidx01";
const VERSION: u32 = 1;
/// Bytes of the header the header's CRC covers.
const HEADER_CRC_SPAN: usize = 44;
/// Run file names: `run-<from>-<to>.idx`, 20 digits each.
const RUN_PREFIX: &str = "run-";
const RUN_SUFFIX: &str = ".idx";
/// A run being written; removed at open.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Why a run file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Shorter than its header or its entries say.
    #[error("index run {path}: truncated ({len_bytes} bytes, {needed_bytes} needed)")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len_bytes: usize,
        /// The length its header needs.
        needed_bytes: usize,
    },
    /// The header does not verify (magic, version, CRC, bounds).
    #[error("index run {path}: bad header: {what}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
    /// The entries do not match their CRC.
    #[error("index run {path}: entries damaged (CRC mismatch)")]
    BadEntries {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read or written.
    #[error("index run {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A run's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RunHeader {
    /// Entries in the run.
    pub count: u64,
    /// First history-log offset covered.
    pub from: u64,
    /// End (exclusive) of the history-log offsets covered.
    pub to: u64,
    /// CRC32C of the entries' bytes.
    pub entries_crc: u32,
}

impl RunHeader {
    /// The header block's meaningful bytes (the rest of the block is zeros).
    pub(crate) fn encode(&self) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[0..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..20].copy_from_slice(&self.count.to_le_bytes());
        b[20..28].copy_from_slice(&self.from.to_le_bytes());
        b[28..36].copy_from_slice(&self.to.to_le_bytes());
        b[36..40].copy_from_slice(&self.entries_crc.to_le_bytes());
        // 40..44 reserved, zero.
        let crc = crc32c::crc32c(&b[..HEADER_CRC_SPAN]);
        b[44..48].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

/// One entry's bytes.
pub(crate) fn encode_entry(id: u128, offset: u64) -> [u8; ENTRY_BYTES] {
    let mut b = [0u8; ENTRY_BYTES];
    b[..16].copy_from_slice(&id.to_le_bytes());
    b[16..].copy_from_slice(&offset.to_le_bytes());
    b
}

fn entry_at(bytes: &[u8], i: usize) -> (u128, u64) {
    let at = HEADER_BYTES + i * ENTRY_BYTES;
    let id = u128::from_le_bytes(bytes[at..at + 16].try_into().expect("16 bytes"));
    let off = u64::from_le_bytes(bytes[at + 16..at + 24].try_into().expect("8 bytes"));
    (id, off)
}

/// Checks a whole run's bytes; the header on success.
pub(crate) fn verify(path: &Path, bytes: &[u8]) -> Result<RunHeader, IndexError> {
    let bad = |what| IndexError::BadHeader {
        path: path.to_path_buf(),
        what,
    };
    if bytes.len() < HEADER_BYTES {
        return Err(IndexError::Truncated {
            path: path.to_path_buf(),
            len_bytes: bytes.len(),
            needed_bytes: HEADER_BYTES,
        });
    }
    let h = &bytes[..48];
    if &h[0..8] != MAGIC {
        return Err(bad("magic"));
    }
    let crc = u32::from_le_bytes(h[44..48].try_into().expect("4 bytes"));
    if crc32c::crc32c(&h[..HEADER_CRC_SPAN]) != crc {
        return Err(bad("header CRC"));
    }
    if u32::from_le_bytes(h[8..12].try_into().expect("4 bytes")) != VERSION {
        return Err(bad("version"));
    }
    let header = RunHeader {
        count: u64::from_le_bytes(h[12..20].try_into().expect("8 bytes")),
        from: u64::from_le_bytes(h[20..28].try_into().expect("8 bytes")),
        to: u64::from_le_bytes(h[28..36].try_into().expect("8 bytes")),
        entries_crc: u32::from_le_bytes(h[36..40].try_into().expect("4 bytes")),
    };
    if header.count > RUN_ENTRIES_MAX || header.from > header.to {
        return Err(bad("bounds"));
    }
    let needed = HEADER_BYTES + header.count as usize * ENTRY_BYTES;
    if bytes.len() < needed {
        return Err(IndexError::Truncated {
            path: path.to_path_buf(),
            len_bytes: bytes.len(),
            needed_bytes: needed,
        });
    }
    if crc32c::crc32c(&bytes[HEADER_BYTES..needed]) != header.entries_crc {
        return Err(IndexError::BadEntries {
            path: path.to_path_buf(),
        });
    }
    Ok(header)
}

/// The bytes of a run (tests, and the reference for the async writer).
#[cfg(test)]
pub(crate) fn encode_run(from: u64, to: u64, entries: &[(u128, u64)]) -> Vec<u8> {
    let mut body = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for w in entries.windows(2) {
        assert!(w[0].0 < w[1].0, "run entries strictly ascending");
    }
    for (id, off) in entries {
        body.extend_from_slice(&encode_entry(*id, *off));
    }
    let header = RunHeader {
        count: entries.len() as u64,
        from,
        to,
        entries_crc: crc32c::crc32c(&body),
    };
    let mut out = vec![0u8; HEADER_BYTES];
    out[..48].copy_from_slice(&header.encode());
    out.extend_from_slice(&body);
    out.resize(out.len().next_multiple_of(HEADER_BYTES), 0);
    out
}

/// Where a run's bytes live.
enum Backing {
    /// A read-only map of the file (the runtime).
    Map(memmap2::Mmap),
    /// Owned bytes (tests).
    #[cfg(test)]
    Owned(Vec<u8>),
}

/// An open, verified run.
pub(crate) struct IndexRun {
    /// Its file.
    pub path: PathBuf,
    /// Its header.
    pub header: RunHeader,
    backing: Backing,
}

impl std::fmt::Debug for IndexRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexRun")
            .field("path", &self.path)
            .field("header", &self.header)
            .finish()
    }
}

impl IndexRun {
    /// Maps and verifies the run at `path`. Blocking (open and mmap); the
    /// caller does it at start or for a file it just wrote.
    pub(crate) fn open(path: &Path) -> Result<IndexRun, IndexError> {
        let io = |source| IndexError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len() as usize;
        if len < HEADER_BYTES {
            return Err(IndexError::Truncated {
                path: path.to_path_buf(),
                len_bytes: len,
                needed_bytes: HEADER_BYTES,
            });
        }
        // SAFETY: run files are immutable once renamed into place and only
        // this process (holding the shard's log lock) touches the directory.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let header = verify(path, &map)?;
        Ok(IndexRun {
            path: path.to_path_buf(),
            header,
            backing: Backing::Map(map),
        })
    }

    /// A run over owned bytes (tests).
    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Result<IndexRun, IndexError> {
        let path = PathBuf::from("<memory>");
        let header = verify(&path, &bytes)?;
        Ok(IndexRun {
            path,
            header,
            backing: Backing::Owned(bytes),
        })
    }

    fn bytes(&self) -> &[u8] {
        match &self.backing {
            Backing::Map(m) => m,
            #[cfg(test)]
            Backing::Owned(v) => v,
        }
    }

    /// Entries in the run.
    pub(crate) fn len(&self) -> u64 {
        self.header.count
    }

    /// The `i`th entry (`i < len`).
    pub(crate) fn entry(&self, i: u64) -> (u128, u64) {
        assert!(i < self.header.count);
        entry_at(self.bytes(), i as usize)
    }

    /// The history offset of `id`, by binary search (at most 33 probes).
    pub(crate) fn lookup(&self, id: MessageId) -> Option<u64> {
        let (mut lo, mut hi) = (0u64, self.header.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (k, off) = self.entry(mid);
            match k.cmp(&id.0) {
                std::cmp::Ordering::Equal => return Some(off),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        None
    }
}

/// The file name of the run covering `[from, to)`.
pub(crate) fn run_file_name(from: u64, to: u64) -> String {
    format!("{RUN_PREFIX}{from:020}-{to:020}{RUN_SUFFIX}")
}

/// `(from, to)` of a run file name, `None` for any other name.
pub(crate) fn parse_run_file_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix(RUN_PREFIX)?.strip_suffix(RUN_SUFFIX)?;
    let (a, b) = rest.split_once('-')?;
    if a.len() != 20 || b.len() != 20 {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Merges two runs' entries, ascending; on a repeated id the newer run
/// (`newer`) wins. Bounded by the two runs' lengths.
pub(crate) fn merge_entries<'a>(
    older: &'a IndexRun,
    newer: &'a IndexRun,
) -> impl Iterator<Item = (u128, u64)> + 'a {
    let (mut i, mut j) = (0u64, 0u64);
    std::iter::from_fn(move || {
        let a = (i < older.len()).then(|| older.entry(i));
        let b = (j < newer.len()).then(|| newer.entry(j));
        match (a, b) {
            (None, None) => None,
            (Some(x), None) => {
                i += 1;
                Some(x)
            }
            (None, Some(y)) => {
                j += 1;
                Some(y)
            }
            (Some(x), Some(y)) => {
                if x.0 < y.0 {
                    i += 1;
                    Some(x)
                } else {
                    if x.0 == y.0 {
                        i += 1;
                    }
                    j += 1;
                    Some(y)
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(from: u64, to: u64, entries: &[(u128, u64)]) -> IndexRun {
        IndexRun::from_bytes(encode_run(from, to, entries)).expect("valid run")
    }

    #[test]
    fn given_run_when_looked_up_then_hits_and_misses() {
        let entries: Vec<(u128, u64)> = (0..1000u128).map(|i| (i * 3 + 1, i as u64 * 2)).collect();
        let r = run(0, 2000, &entries);
        assert_eq!(r.len(), 1000);
        for (id, off) in &entries {
            assert_eq!(r.lookup(MessageId(*id)), Some(*off));
        }
        for miss in [0u128, 2, 3, 2999, 3001, u128::MAX] {
            assert_eq!(r.lookup(MessageId(miss)), None, "{miss}");
        }
        let empty = run(5, 5, &[]);
        assert_eq!(empty.lookup(MessageId(1)), None);
    }

    #[test]
    fn given_two_runs_when_merged_then_sorted_union_newer_wins() {
        let a = run(0, 10, &[(1, 0), (5, 2), (9, 4)]);
        let b = run(10, 20, &[(2, 10), (5, 12), (10, 14)]);
        let merged: Vec<_> = merge_entries(&a, &b).collect();
        assert_eq!(merged, vec![(1, 0), (2, 10), (5, 12), (9, 4), (10, 14)]);
        let m = run(0, 20, &merged);
        assert_eq!(m.lookup(MessageId(5)), Some(12));
        assert_eq!(m.lookup(MessageId(9)), Some(4));
    }

    #[test]
    fn given_truncated_run_when_verified_then_truncated_error_not_panic() {
        let bytes = encode_run(0, 10, &[(1, 0), (2, 1), (3, 2)]);
        let real_len = HEADER_BYTES + 3 * ENTRY_BYTES;
        for cut in [0, 10, 47, HEADER_BYTES - 1, HEADER_BYTES, real_len - 1] {
            let r = IndexRun::from_bytes(bytes[..cut].to_vec());
            assert!(
                matches!(r, Err(IndexError::Truncated { .. })),
                "cut {cut}: {r:?}"
            );
        }
    }

    #[test]
    fn given_damaged_run_when_verified_then_typed_error_not_panic() {
        let bytes = encode_run(0, 10, &[(1, 0), (2, 1), (3, 2)]);
        let mut magic = bytes.clone();
        magic[0] ^= 1;
        assert!(matches!(
            IndexRun::from_bytes(magic),
            Err(IndexError::BadHeader { what: "magic", .. })
        ));
        let mut header = bytes.clone();
        header[20] ^= 1; // `from`
        assert!(matches!(
            IndexRun::from_bytes(header),
            Err(IndexError::BadHeader {
                what: "header CRC",
                ..
            })
        ));
        let mut entry = bytes.clone();
        entry[HEADER_BYTES + 30] ^= 0x40;
        assert!(matches!(
            IndexRun::from_bytes(entry),
            Err(IndexError::BadEntries { .. })
        ));
        assert!(IndexRun::from_bytes(vec![0xff; 3 * HEADER_BYTES]).is_err());
    }

    #[test]
    fn given_run_file_names_when_parsed_then_only_run_names_match() {
        let n = run_file_name(7, 1234);
        assert_eq!(parse_run_file_name(&n), Some((7, 1234)));
        assert_eq!(parse_run_file_name(&format!("{n}{TMP_SUFFIX}")), None);
        assert_eq!(parse_run_file_name("run-1-2.idx"), None);
        assert_eq!(parse_run_file_name("checkpoint"), None);
    }

    #[test]
    fn given_damaged_file_on_disk_when_opened_then_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(run_file_name(0, 3));
        let bytes = encode_run(0, 3, &[(1, 0), (2, 1)]);
        std::fs::write(&path, &bytes[..HEADER_BYTES + 10]).unwrap();
        assert!(matches!(
            IndexRun::open(&path),
            Err(IndexError::Truncated { .. })
        ));
        std::fs::write(&path, &bytes).unwrap();
        let r = IndexRun::open(&path).expect("intact file opens");
        assert_eq!(r.lookup(MessageId(2)), Some(1));
    }
}
