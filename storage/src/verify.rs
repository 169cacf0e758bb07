//! A read-only walk of a log directory that checks everything the format
//! lets one check (`gonets verify`, docs/adr/0020-signed-anchors-and-verify.md):
//! every segment header, every record's CRC and offset, every commit
//! marker, and the hash chain across batches and segments. Unlike
//! recovery it never resynchronises, cuts or quarantines: the first thing
//! that does not check out is a [`Break`], and the walk stops there.
//!
//! It opens files read-only and maps them read-only; it takes a shared
//! `flock` on the directory's `LOCK` file, so a running hub (which holds it
//! exclusively) is refused with [`VerifyError::Locked`] rather than read
//! while it writes. The engine decodes the records (the visitor).

use crate::frame::{self, Parsed, HEADER_SIZE_BYTES};
use crate::marker::{CHAIN_GENESIS, SECTOR_SIZE_BYTES};
use crate::scan::{self, BatchAt, BatchInfo, Fault, Limits};
use crate::segment::{self, SegmentHeader, SEGMENT_HEADER_BYTES};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The first thing in a log that does not check out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Break {
    /// The segment file.
    pub segment: PathBuf,
    /// Byte position in it.
    pub position: usize,
    /// The log offset the bytes there should hold.
    pub offset: u64,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} byte {} (offset {}): {}",
            self.segment.display(),
            self.position,
            self.offset,
            self.what
        )
    }
}

/// Why a log could not be walked, or where it broke.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A process (the hub) holds the log open.
    #[error("{0}: the log is open in another process (is the hub running? stop it first)")]
    Locked(PathBuf),
    /// Reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The log does not check out.
    #[error("break at {0}")]
    Break(Break),
}

/// What a walk saw, for a summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSummary {
    /// Segment files.
    pub segments: usize,
    /// Batches.
    pub batches: u64,
    /// Data records.
    pub records: u64,
    /// First offset held (retention drops older segments).
    pub first_offset: u64,
    /// Offset after the last record.
    pub next_offset: u64,
    /// Chain value after the last batch.
    pub chain: [u8; 32],
}

/// One data record, as the walk hands it to the visitor.
#[derive(Clone, Copy, Debug)]
pub struct Visited<'a> {
    /// Its segment file.
    pub segment: &'a Path,
    /// Its byte position there.
    pub position: usize,
    /// Its offset.
    pub offset: u64,
    /// Its payload (CRC checked).
    pub payload: &'a [u8],
}

/// What the caller does with what the walk finds. An `Err(what)` stops the
/// walk with a [`Break`] at that record.
pub trait Visitor {
    /// A data record of a valid batch (called before the batch's own
    /// [`Visitor::batch`]).
    fn record(&mut self, record: Visited<'_>) -> Result<(), String>;
    /// The chain value at `offset`, a batch boundary: after a valid batch
    /// (which starts at `position` of `segment`), or at the start of the
    /// first segment (`position` 0, from its header).
    fn boundary(&mut self, offset: u64, chain: &[u8; 32], segment: &Path, position: usize);
    /// A segment finished (for progress lines).
    fn segment_done(&mut self, _path: &Path, _summary: &LogSummary) {}
}

/// Walks the log in `dir` (see the module comment). Records larger than
/// the segment are impossible, so the segment size bounds every parse.
pub fn verify_log(dir: &Path, visitor: &mut dyn Visitor) -> Result<LogSummary, VerifyError> {
    let _lock = lock_shared(dir)?;
    let segments = list_segments(dir)?;
    let mut summary = LogSummary {
        chain: CHAIN_GENESIS,
        ..LogSummary::default()
    };
    let count = segments.len();
    // Bounded by the segment files.
    for (i, (base, path)) in segments.into_iter().enumerate() {
        let file = std::fs::File::open(&path).map_err(|source| VerifyError::Io {
            path: path.clone(),
            source,
        })?;
        // SAFETY: mapped read-only; the shared lock keeps the hub (the only
        // writer) from opening the log while the map is alive.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| VerifyError::Io {
            path: path.clone(),
            source,
        })?;
        if i == 0 {
            summary.first_offset = base;
            summary.next_offset = base;
        }
        let walk = SegmentWalk {
            path: &path,
            bytes: &map,
            base,
            last: i + 1 == count,
        };
        walk.check_header(&mut summary, i == 0, visitor)?;
        walk.batches(&mut summary, visitor)?;
        summary.segments += 1;
        visitor.segment_done(&path, &summary);
    }
    Ok(summary)
}

/// One segment's bytes and where it lies in the log.
struct SegmentWalk<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    base: u64,
    last: bool,
}

impl SegmentWalk<'_> {
    fn broke(&self, position: usize, offset: u64, what: impl Into<String>) -> VerifyError {
        VerifyError::Break(Break {
            segment: self.path.to_path_buf(),
            position,
            offset,
            what: what.into(),
        })
    }

    /// The header block: valid, naming the file's base offset and size,
    /// continuing the chain and the offsets of the segment before. The
    /// first segment's chain is taken from its header (retention dropped
    /// what came before), which must be the genesis value at offset 0.
    fn check_header(
        &self,
        summary: &mut LogSummary,
        first: bool,
        visitor: &mut dyn Visitor,
    ) -> Result<(), VerifyError> {
        let header = self
            .bytes
            .get(..SEGMENT_HEADER_BYTES)
            .and_then(SegmentHeader::decode)
            .ok_or_else(|| self.broke(0, self.base, "segment header block damaged"))?;
        if header.base_offset != self.base {
            return Err(self.broke(0, self.base, "segment header names another base offset"));
        }
        if header.segment_size_bytes != self.bytes.len() as u64 {
            return Err(self.broke(0, self.base, "segment file size differs from its header"));
        }
        if self.bytes[60..SEGMENT_HEADER_BYTES].iter().any(|&b| b != 0) {
            return Err(self.broke(60, self.base, "non-zero bytes in the header's padding"));
        }
        if first {
            if self.base == 0 && header.prev_chain != CHAIN_GENESIS {
                return Err(self.broke(24, 0, "the first segment's chain is not the genesis"));
            }
            summary.chain = header.prev_chain;
            visitor.boundary(self.base, &header.prev_chain, self.path, 0);
            return Ok(());
        }
        if self.base != summary.next_offset {
            let what = format!(
                "segment starts at offset {} but the one before ends at {}",
                self.base, summary.next_offset
            );
            return Err(self.broke(0, self.base, what));
        }
        if header.prev_chain != summary.chain {
            return Err(self.broke(24, self.base, "segment header breaks the chain"));
        }
        Ok(())
    }

    /// Every batch from the header block on, then only zeros.
    fn batches(
        &self,
        summary: &mut LogSummary,
        visitor: &mut dyn Visitor,
    ) -> Result<(), VerifyError> {
        let limits = Limits {
            record_size_bytes_max: self.bytes.len(),
            batch_bytes_max: self.bytes.len(),
        };
        let mut pos = SEGMENT_HEADER_BYTES;
        // Bounded: every valid batch advances `pos` by at least a block.
        while pos + HEADER_SIZE_BYTES <= self.bytes.len() {
            let expected = summary.next_offset;
            match scan::batch_at(self.bytes, pos, expected, Some(&summary.chain), limits) {
                BatchAt::Valid(b) => {
                    self.visit_records(&b, visitor)?;
                    summary.batches += 1;
                    summary.records += u64::from(b.record_count);
                    summary.next_offset = b.next_offset();
                    summary.chain = b.chain;
                    visitor.boundary(b.next_offset(), &b.chain, self.path, b.start);
                    pos = b.end;
                }
                BatchAt::Empty => return self.only_zeros_after(pos, expected),
                BatchAt::Damaged(d) => {
                    return Err(self.broke(d.position, d.offset, fault_text(d.fault)))
                }
            }
        }
        Ok(())
    }

    fn visit_records(&self, b: &BatchInfo, visitor: &mut dyn Visitor) -> Result<(), VerifyError> {
        let mut pos = b.start;
        let mut offset = b.first_offset;
        // Bounded by the batch's records, which batch_at checked.
        while pos < b.marker_start {
            let Parsed::Record(h) = frame::parse(self.bytes, pos, self.bytes.len()) else {
                unreachable!("batch_at checked every record of a valid batch");
            };
            let end = pos + h.size_bytes as usize;
            let visited = Visited {
                segment: self.path,
                position: pos,
                offset,
                payload: &self.bytes[pos + HEADER_SIZE_BYTES..end],
            };
            visitor
                .record(visited)
                .map_err(|what| self.broke(pos, offset, what))?;
            pos = end;
            offset += 1;
        }
        Ok(())
    }

    /// Nothing was written after the log's end in this segment: a later
    /// batch there (or any non-zero byte) means something was dropped or
    /// a write was torn (recovery cuts a torn tail at the next open).
    fn only_zeros_after(&self, pos: usize, offset: u64) -> Result<(), VerifyError> {
        let rest = &self.bytes[pos..];
        if let Some(i) = rest.iter().position(|&b| b != 0) {
            let at = pos + i / SECTOR_SIZE_BYTES * SECTOR_SIZE_BYTES;
            let what = if self.last {
                "non-zero bytes after the end of the log (a torn write the hub's next start \
                 would cut, or records removed before them)"
            } else {
                "non-zero bytes after the last batch of a sealed segment"
            };
            return Err(self.broke(at, offset, what));
        }
        Ok(())
    }
}

fn fault_text(fault: Fault) -> String {
    match fault {
        Fault::Record(why) => format!("record fails its check ({why:?})"),
        Fault::Zero => "zeros inside a batch".into(),
        Fault::WrongOffset => "record carries another offset than its place".into(),
        Fault::BadMarker => "commit marker does not match its records".into(),
        Fault::BadChain => "batch's chain value does not match its bytes".into(),
        Fault::ChainBreak => "batch does not continue the chain of the batch before".into(),
        Fault::Unterminated => "batch has no commit marker".into(),
    }
}

/// The segment files of `dir` by base offset.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, VerifyError> {
    let io = |source| VerifyError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    // Bounded by the directory's entries.
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if let Some(base) = entry
            .file_name()
            .to_str()
            .and_then(segment::parse_file_name)
        {
            out.push((base, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// A shared lock on `dir/LOCK` (not created when missing: nothing is
/// written). The hub holds it exclusively while the log is open.
fn lock_shared(dir: &Path) -> Result<Option<std::fs::File>, VerifyError> {
    let path = dir.join("LOCK");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(VerifyError::Io { path, source }),
    };
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } != 0 {
        return Err(VerifyError::Locked(dir.to_path_buf()));
    }
    Ok(Some(file))
}
