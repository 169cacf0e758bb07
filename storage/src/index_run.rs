//! Index runs: immutable sorted files that map a 128-bit key to a `u64`
//! offset of some log, binary-searched through a read-only map. The history
//! archive keeps its message-id index in them (`shard-N/history-index/`).
//!
//! A run file covers the log offsets `[from, to)` and is named
//! `run-<from>-<to>.idx` (20 digits each). Layout (little-endian; byte
//! table, writing protocol and crash analysis in docs/storage.md §12):
//! ```text
//! 0..4096   header block:
//!   0..8      magic b"gnhidx01"
//!   8..12     version u32 = 1
//!   12..20    entry count u64
//!   20..28    from u64 (first log offset covered)
//!   28..36    to u64 (end, exclusive, of the log offsets covered)
//!   36..40    crc32c of the entries' bytes
//!   40..44    reserved, zero
//!   44..48    crc32c of bytes 0..44
//!   48..4096  zero
//! 4096..      entries: key u128, offset u64 (24 bytes each), strictly
//!             ascending by key; then zeros up to a 4 KiB multiple
//! ```
//! A run is written once, with O_DIRECT, to `<name>.tmp`, synced, renamed
//! into place and its directory synced ([`write_run`], which maps it without
//! reading it back); it is checked whole when opened ([`IndexRun::open`],
//! [`open_runs`] at start-up): a truncated or damaged file is a typed
//! [`IndexRunError`], never a panic, and the owner rebuilds what it covered
//! from its log. [`open_runs`] opens a directory of runs after a crash.

use crate::log::os_error;
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use std::path::{Path, PathBuf};
use zerocopy::little_endian::{U128, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The header block's size, bytes (one O_DIRECT block).
pub const RUN_HEADER_BYTES: usize = 4096;
/// One entry's size, bytes.
pub const RUN_ENTRY_BYTES: usize = 24;
/// Most entries one run may hold (2^32: 96 GiB of index).
pub const RUN_ENTRIES_MAX: u64 = 1 << 32;
/// Suffix of a run being written; such a file is removed by [`open_runs`].
pub const RUN_TMP_SUFFIX: &str = ".tmp";
const MAGIC: [u8; 8] = *b"gnhidx01";
const VERSION: u32 = 1;
/// Run file names: `run-<from>-<to>.idx`, 20 digits each.
const RUN_PREFIX: &str = "run-";
const RUN_SUFFIX: &str = ".idx";
/// Size of one O_DIRECT write of a run's entries: a multiple of both 4 KiB
/// and an entry.
const RUN_WRITE_BYTES: usize = 64 * 3 * RUN_HEADER_BYTES;
const _: () = assert!(
    RUN_WRITE_BYTES.is_multiple_of(RUN_ENTRY_BYTES)
        && RUN_WRITE_BYTES.is_multiple_of(RUN_HEADER_BYTES)
);

/// One read of [`IndexRun::warm`], bytes.
const WARM_READ_BYTES: usize = 1 << 20;
/// Entries written between two chances for other tasks to run: a merge or
/// a flush is background work and must not hold the reactor for long.
const ENTRIES_PER_YIELD: u64 = 1024;

/// The meaningful bytes of the header block, exactly as on disk.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct RawRunHeader {
    magic: [u8; 8],
    version: U32,
    count: U64,
    from: U64,
    to: U64,
    entries_crc: U32,
    reserved: U32,
    /// CRC32C of every byte before it.
    crc: U32,
}

/// Bytes of the header the header's CRC covers: everything before it.
const HEADER_CRC_SPAN: usize = std::mem::offset_of!(RawRunHeader, crc);

/// One entry, exactly as on disk.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct RawEntry {
    key: U128,
    offset: U64,
}

const _: () = assert!(std::mem::size_of::<RawEntry>() == RUN_ENTRY_BYTES);

/// Why a run file cannot be used (or written).
#[derive(Debug, thiserror::Error)]
pub enum IndexRunError {
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
    /// The file (or its directory) could not be read or written.
    #[error("index run {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl IndexRunError {
    fn io(path: &Path, source: std::io::Error) -> IndexRunError {
        IndexRunError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn glommio<T>(path: &Path) -> impl FnOnce(glommio::GlommioError<T>) -> IndexRunError + '_ {
        move |e| IndexRunError::io(path, os_error(e))
    }
}

/// A run's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunHeader {
    /// Entries in the run.
    pub count: u64,
    /// First log offset covered.
    pub from: u64,
    /// End (exclusive) of the log offsets covered.
    pub to: u64,
    /// CRC32C of the entries' bytes.
    pub entries_crc: u32,
}

impl RunHeader {
    /// Writes the header into the start of `block` (the rest of the block
    /// is the caller's zeros).
    fn encode(&self, block: &mut [u8]) {
        let mut raw = RawRunHeader {
            magic: MAGIC,
            version: U32::new(VERSION),
            count: U64::new(self.count),
            from: U64::new(self.from),
            to: U64::new(self.to),
            entries_crc: U32::new(self.entries_crc),
            reserved: U32::ZERO,
            crc: U32::ZERO,
        };
        raw.crc = U32::new(crc32c::crc32c(&raw.as_bytes()[..HEADER_CRC_SPAN]));
        raw.write_to_prefix(block).expect("a whole header block");
    }
}

fn entry_bytes(key: u128, offset: u64) -> RawEntry {
    RawEntry {
        key: U128::new(key),
        offset: U64::new(offset),
    }
}

/// Checks a whole run's bytes; the header on success.
fn verify(path: &Path, bytes: &[u8]) -> Result<RunHeader, IndexRunError> {
    let bad = |what| IndexRunError::BadHeader {
        path: path.to_path_buf(),
        what,
    };
    let truncated = |needed_bytes| IndexRunError::Truncated {
        path: path.to_path_buf(),
        len_bytes: bytes.len(),
        needed_bytes,
    };
    if bytes.len() < RUN_HEADER_BYTES {
        return Err(truncated(RUN_HEADER_BYTES));
    }
    let (raw, _) = RawRunHeader::ref_from_prefix(bytes).expect("checked: a whole header block");
    if raw.magic != MAGIC {
        return Err(bad("magic"));
    }
    if crc32c::crc32c(&raw.as_bytes()[..HEADER_CRC_SPAN]) != raw.crc.get() {
        return Err(bad("header CRC"));
    }
    if raw.version.get() != VERSION {
        return Err(bad("version"));
    }
    let header = RunHeader {
        count: raw.count.get(),
        from: raw.from.get(),
        to: raw.to.get(),
        entries_crc: raw.entries_crc.get(),
    };
    if header.count > RUN_ENTRIES_MAX || header.from > header.to {
        return Err(bad("bounds"));
    }
    let needed = RUN_HEADER_BYTES + header.count as usize * RUN_ENTRY_BYTES;
    if bytes.len() < needed {
        return Err(truncated(needed));
    }
    if crc32c::crc32c(&bytes[RUN_HEADER_BYTES..needed]) != header.entries_crc {
        return Err(IndexRunError::BadEntries {
            path: path.to_path_buf(),
        });
    }
    Ok(header)
}

/// The bytes of a run of `entries` (strictly ascending by key) covering
/// `[from, to)`, in memory: what [`write_run`] puts on disk (tests and tools).
pub fn encode_run(from: u64, to: u64, entries: &[(u128, u64)]) -> Vec<u8> {
    for w in entries.windows(2) {
        assert!(w[0].0 < w[1].0, "run entries strictly ascending");
    }
    let mut body = Vec::with_capacity(entries.len() * RUN_ENTRY_BYTES);
    for (key, offset) in entries {
        body.extend_from_slice(entry_bytes(*key, *offset).as_bytes());
    }
    let header = RunHeader {
        count: entries.len() as u64,
        from,
        to,
        entries_crc: crc32c::crc32c(&body),
    };
    let mut out = vec![0u8; RUN_HEADER_BYTES];
    header.encode(&mut out);
    out.extend_from_slice(&body);
    out.resize(out.len().next_multiple_of(RUN_HEADER_BYTES), 0);
    out
}

/// Where a run's bytes live.
enum Backing {
    /// A read-only map of the file.
    Map(memmap2::Mmap),
    /// Owned bytes.
    Owned(Vec<u8>),
}

/// An open, verified run.
pub struct IndexRun {
    path: PathBuf,
    header: RunHeader,
    backing: Backing,
    /// Its first and last key (`None` when empty): a key outside them is
    /// answered without touching the entries (most lookups are of ids newer
    /// than every run, and a page not in memory is a disk read).
    keys: Option<(u128, u128)>,
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
    /// Maps and verifies the run at `path`. Blocking (open and mmap): for
    /// start-up, or for a file just written.
    pub fn open(path: &Path) -> Result<IndexRun, IndexRunError> {
        let map = map_file(path, RUN_HEADER_BYTES)?;
        let header = verify(path, &map)?;
        Ok(IndexRun {
            path: path.to_path_buf(),
            header,
            backing: Backing::Map(map),
            keys: None,
        }
        .with_keys_read())
    }

    /// Maps the run [`write_run`] has just written and synced, whose header
    /// it computed from the bytes it wrote: nothing is read back. Reading a
    /// run written with O_DIRECT goes to the disk, and through a map that is
    /// page faults: a reactor blocked for milliseconds per MiB (a merged run
    /// of 800,000 entries took 11.7 ms to verify on the project VM). Every
    /// run is verified whole when [`open_runs`] opens it at start-up.
    fn map_written(
        path: &Path,
        header: RunHeader,
        keys: Option<(u128, u128)>,
    ) -> Result<IndexRun, IndexRunError> {
        let map = map_file(
            path,
            RUN_HEADER_BYTES + header.count as usize * RUN_ENTRY_BYTES,
        )?;
        assert_eq!(
            keys.is_none(),
            header.count == 0,
            "keys given for every entry"
        );
        Ok(IndexRun {
            path: path.to_path_buf(),
            header,
            backing: Backing::Map(map),
            keys,
        })
    }

    /// Notes its first and last key from its entries (verified, so in memory).
    fn with_keys_read(mut self) -> IndexRun {
        let entries = self.entries();
        self.keys = match (entries.first(), entries.last()) {
            (Some(a), Some(b)) => Some((a.key.get(), b.key.get())),
            _ => None,
        };
        self
    }

    /// Reads the run's file through the page cache with asynchronous reads,
    /// `WARM_READ_BYTES` at a time, so that lookups and merges that walk its
    /// map find its pages there instead of blocking the reactor on page
    /// faults that read the disk (a run is written with O_DIRECT, past the
    /// page cache). A run held in memory has nothing to warm.
    pub async fn warm(&self) -> Result<(), IndexRunError> {
        let Backing::Map(map) = &self.backing else {
            return Ok(());
        };
        let len = map.len() as u64;
        let file = glommio::io::BufferedFile::open(&self.path)
            .await
            .map_err(IndexRunError::glommio(&self.path))?;
        let mut pos = 0u64;
        // Bounded: len / WARM_READ_BYTES reads, each at least one byte.
        while pos < len {
            let want = WARM_READ_BYTES.min((len - pos) as usize);
            let read = file
                .read_at(pos, want)
                .await
                .map_err(IndexRunError::glommio(&self.path))?;
            if read.is_empty() {
                break; // the file is shorter than its map: nothing more to read
            }
            pos += read.len() as u64;
        }
        let _ = file.close().await;
        Ok(())
    }

    /// Verifies a run held in memory (its path reads `<memory>`).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<IndexRun, IndexRunError> {
        let path = PathBuf::from("<memory>");
        let header = verify(&path, &bytes)?;
        Ok(IndexRun {
            path,
            header,
            backing: Backing::Owned(bytes),
            keys: None,
        }
        .with_keys_read())
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its header.
    pub fn header(&self) -> RunHeader {
        self.header
    }

    /// Entries in the run.
    pub fn len(&self) -> u64 {
        self.header.count
    }

    /// True when the run holds no entry.
    pub fn is_empty(&self) -> bool {
        self.header.count == 0
    }

    /// The entries, as verified at open.
    fn entries(&self) -> &[RawEntry] {
        let bytes = match &self.backing {
            Backing::Map(m) => &m[..],
            Backing::Owned(v) => &v[..],
        };
        let end = RUN_HEADER_BYTES + self.header.count as usize * RUN_ENTRY_BYTES;
        <[RawEntry]>::ref_from_bytes(&bytes[RUN_HEADER_BYTES..end]).expect("verified at open")
    }

    /// The `i`th entry, `(key, offset)` (`i < len`).
    pub fn entry(&self, i: u64) -> (u128, u64) {
        assert!(i < self.header.count);
        let e = &self.entries()[i as usize];
        (e.key.get(), e.offset.get())
    }

    /// The offset of `key`, by binary search (at most 33 probes).
    pub fn lookup(&self, key: u128) -> Option<u64> {
        let (first, last) = self.keys?;
        if key < first || key > last {
            return None;
        }
        let entries = self.entries();
        entries
            .binary_search_by(|e| e.key.get().cmp(&key))
            .ok()
            .map(|i| entries[i].offset.get())
    }
}

/// Maps the run file at `path`, which must hold at least `needed_bytes`
/// (`Truncated` otherwise). Blocking: open, stat and mmap, no page read.
fn map_file(path: &Path, needed_bytes: usize) -> Result<memmap2::Mmap, IndexRunError> {
    let io = |source| IndexRunError::io(path, source);
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len() as usize;
    if len < needed_bytes {
        return Err(IndexRunError::Truncated {
            path: path.to_path_buf(),
            len_bytes: len,
            needed_bytes,
        });
    }
    // SAFETY: run files are immutable once renamed into place, and only
    // their owner (holding its log's lock) touches the directory.
    unsafe { memmap2::Mmap::map(&file) }.map_err(io)
}

/// The file name of the run covering `[from, to)`.
pub fn run_file_name(from: u64, to: u64) -> String {
    format!("{RUN_PREFIX}{from:020}-{to:020}{RUN_SUFFIX}")
}

/// `(from, to)` of a run file name, `None` for any other name.
pub fn parse_run_file_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix(RUN_PREFIX)?.strip_suffix(RUN_SUFFIX)?;
    let (a, b) = rest.split_once('-')?;
    if a.len() != 20 || b.len() != 20 {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Merges two runs' entries, ascending; on a repeated key the newer run
/// (`newer`) wins. Bounded by the two runs' lengths.
pub fn merge_entries<'a>(
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

/// The runs of a directory after [`open_runs`]: the chain that starts at
/// offset 0, oldest first.
#[derive(Debug, Default)]
pub struct OpenedRuns {
    /// The runs, contiguous: each one's `from` is the previous one's `to`.
    pub runs: Vec<IndexRun>,
    /// The end of the offsets the runs cover (0 when there is none): the
    /// owner indexes its log from here.
    pub covered_to: u64,
    /// Files removed: unfinished writes, runs a merged run covers, runs
    /// past a gap, and damaged runs (logged at WARN).
    pub removed: Vec<PathBuf>,
}

/// Opens the runs in `dir` that chain from offset 0 and removes every other
/// run file and every unfinished write (`*.tmp`); the removals are made
/// durable (directory synced) before it returns, so nothing new is written
/// beside a file that may come back. What the removed runs covered is the
/// owner's to rebuild from its log. Blocking (listing, removals, maps):
/// once at start, before the owner serves anyone.
pub fn open_runs(dir: &Path) -> Result<OpenedRuns, IndexRunError> {
    let io = |source| IndexRunError::io(dir, source);
    let mut out = OpenedRuns::default();
    let mut names = Vec::new();
    // Bounded by the directory's entries.
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let name = entry
            .map_err(io)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(RUN_TMP_SUFFIX) {
            remove_at_start(&dir.join(&name), &mut out)?;
        } else if let Some((from, to)) = parse_run_file_name(&name) {
            // The widest run first among those starting at one offset.
            names.push((from, std::cmp::Reverse(to), name));
        }
    }
    names.sort();
    for (from, std::cmp::Reverse(to), name) in names {
        let path = dir.join(&name);
        if from != out.covered_to {
            // Covered by a merged run (its inputs outlived a crash), or
            // past a gap left by a damaged run: rebuilt from the log.
            remove_at_start(&path, &mut out)?;
            continue;
        }
        match IndexRun::open(&path) {
            Ok(r) if (r.header.from, r.header.to) == (from, to) => {
                out.covered_to = to;
                out.runs.push(r);
            }
            Ok(_) => {
                tracing::warn!(path = %path.display(), "index run's header disagrees with its name; removed, rebuilt from the log");
                remove_at_start(&path, &mut out)?;
            }
            Err(e) => {
                tracing::warn!(error = %e, "index run unusable; removed, rebuilt from the log");
                remove_at_start(&path, &mut out)?;
            }
        }
    }
    if !out.removed.is_empty() {
        // Removals durable before anything new is written beside them.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        journal!(crate::journal::record(|| {
            crate::journal::IoEvent::SyncDir {
                dir: dir.to_path_buf(),
            }
        }));
    }
    Ok(out)
}

/// Removes a file at start (blocking; before the owner serves anyone).
fn remove_at_start(path: &Path, out: &mut OpenedRuns) -> Result<(), IndexRunError> {
    std::fs::remove_file(path).map_err(|source| IndexRunError::io(path, source))?;
    journal!(crate::journal::record(|| crate::journal::IoEvent::Remove {
        path: path.to_path_buf()
    }));
    out.removed.push(path.to_path_buf());
    Ok(())
}

/// Writes a run of `entries` (strictly ascending by key) covering
/// `[from, to)` into `dir`: the entries, then the header, to
/// `<name>.tmp` with O_DIRECT; `fdatasync`; renamed into place; the
/// directory synced. Only then is the run there for [`open_runs`], whole.
/// Returns the run, mapped but not read back ([`IndexRun::map_written`]).
pub async fn write_run(
    dir: &Path,
    from: u64,
    to: u64,
    entries: impl Iterator<Item = (u128, u64)>,
) -> Result<IndexRun, IndexRunError> {
    let name = run_file_name(from, to);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}{RUN_TMP_SUFFIX}"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .dma_open(&tmp)
        .await
        .map_err(IndexRunError::glommio(&tmp))?;
    journal!(crate::journal::record(|| crate::journal::IoEvent::Create {
        path: tmp.clone(),
        size: 0
    }));
    let (header, keys) = write_entries(&file, &tmp, from, to, entries).await?;
    let mut head = glommio::allocate_dma_buffer(RUN_HEADER_BYTES);
    head.as_bytes_mut().fill(0);
    header.encode(head.as_bytes_mut());
    write_all(&file, head, 0, RUN_HEADER_BYTES, &tmp).await?;
    file.fdatasync()
        .await
        .map_err(IndexRunError::glommio(&tmp))?;
    journal!(crate::journal::sync(&tmp));
    let _ = file.close().await;
    glommio::io::rename(&tmp, &path)
        .await
        .map_err(IndexRunError::glommio(&path))?;
    journal!(crate::journal::record(|| crate::journal::IoEvent::Rename {
        from: tmp.clone(),
        to: path.clone()
    }));
    sync_dir(dir).await?;
    IndexRun::map_written(&path, header, keys)
}

/// Writes the entries after the header block, in `RUN_WRITE_BYTES` writes
/// (the last one padded with zeros to a block); returns the header that
/// describes them and the first and last key written.
async fn write_entries(
    file: &DmaFile,
    tmp: &Path,
    from: u64,
    to: u64,
    entries: impl Iterator<Item = (u128, u64)>,
) -> Result<(RunHeader, Option<(u128, u128)>), IndexRunError> {
    let mut first: Option<u128> = None;
    let mut crc = 0u32;
    let mut count = 0u64;
    let mut previous: Option<u128> = None;
    let mut pos = RUN_HEADER_BYTES as u64;
    let mut buf = glommio::allocate_dma_buffer(RUN_WRITE_BYTES);
    let mut fill = 0usize;
    // Bounded by the entries given.
    for (key, offset) in entries {
        assert!(
            previous.is_none_or(|p| p < key),
            "run entries strictly ascending"
        );
        previous = Some(key);
        first.get_or_insert(key);
        let e = entry_bytes(key, offset);
        crc = crc32c::crc32c_append(crc, e.as_bytes());
        e.write_to(&mut buf.as_bytes_mut()[fill..fill + RUN_ENTRY_BYTES])
            .expect("one entry's bytes");
        fill += RUN_ENTRY_BYTES;
        count += 1;
        if count.is_multiple_of(ENTRIES_PER_YIELD) {
            glommio::yield_if_needed().await;
        }
        if fill == RUN_WRITE_BYTES {
            write_all(file, buf, pos, RUN_WRITE_BYTES, tmp).await?;
            pos += RUN_WRITE_BYTES as u64;
            buf = glommio::allocate_dma_buffer(RUN_WRITE_BYTES);
            fill = 0;
        }
    }
    assert!(count <= RUN_ENTRIES_MAX);
    if fill > 0 {
        let len = fill.next_multiple_of(RUN_HEADER_BYTES);
        buf.as_bytes_mut()[fill..len].fill(0);
        write_all(file, buf, pos, len, tmp).await?;
    }
    let header = RunHeader {
        count,
        from,
        to,
        entries_crc: crc,
    };
    Ok((header, first.zip(previous)))
}

async fn write_all(
    file: &DmaFile,
    mut buf: DmaBuffer,
    pos: u64,
    len: usize,
    path: &Path,
) -> Result<(), IndexRunError> {
    buf.trim_to_size(len);
    journal!(crate::journal::write(path, pos, &buf.as_bytes()[..len]));
    let written = file
        .write_at(buf, pos)
        .await
        .map_err(IndexRunError::glommio(path))?;
    if written != len {
        return Err(IndexRunError::io(
            path,
            std::io::Error::other(format!("short write: {written} of {len} bytes")),
        ));
    }
    Ok(())
}

/// Removes a run file (a merge's input, once the merged run is durable and
/// in place). Its directory is synced by the caller ([`sync_dir`]).
pub async fn remove_run(path: &Path) -> Result<(), IndexRunError> {
    glommio::io::remove(path)
        .await
        .map_err(IndexRunError::glommio(path))?;
    journal!(crate::journal::record(|| crate::journal::IoEvent::Remove {
        path: path.to_path_buf()
    }));
    Ok(())
}

/// Makes the directory's entries (new, renamed and removed runs) durable.
pub async fn sync_dir(dir: &Path) -> Result<(), IndexRunError> {
    // glommio opens a directory through io_uring relative to no working
    // directory: a relative one fails with EBADF (issue 14), so it is made
    // absolute here (a lookup of the working directory only then).
    let absolute;
    let dir = if dir.is_relative() {
        absolute = std::path::absolute(dir).map_err(|e| IndexRunError::io(dir, e))?;
        &absolute
    } else {
        dir
    };
    let d = glommio::io::Directory::open(dir)
        .await
        .map_err(IndexRunError::glommio(dir))?;
    d.sync().await.map_err(IndexRunError::glommio(dir))?;
    journal!(crate::journal::record(|| {
        crate::journal::IoEvent::SyncDir {
            dir: dir.to_path_buf(),
        }
    }));
    let _ = d.close().await;
    Ok(())
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
            assert_eq!(r.lookup(*id), Some(*off));
        }
        for miss in [0u128, 2, 3, 2999, 3001, u128::MAX] {
            assert_eq!(r.lookup(miss), None, "{miss}");
        }
        let empty = run(5, 5, &[]);
        assert_eq!(empty.lookup(1), None);
    }

    #[test]
    fn given_two_runs_when_merged_then_sorted_union_newer_wins() {
        let a = run(0, 10, &[(1, 0), (5, 2), (9, 4)]);
        let b = run(10, 20, &[(2, 10), (5, 12), (10, 14)]);
        let merged: Vec<_> = merge_entries(&a, &b).collect();
        assert_eq!(merged, vec![(1, 0), (2, 10), (5, 12), (9, 4), (10, 14)]);
        let m = run(0, 20, &merged);
        assert_eq!(m.lookup(5), Some(12));
        assert_eq!(m.lookup(9), Some(4));
    }

    #[test]
    fn given_truncated_run_when_verified_then_truncated_error_not_panic() {
        let bytes = encode_run(0, 10, &[(1, 0), (2, 1), (3, 2)]);
        let real_len = RUN_HEADER_BYTES + 3 * RUN_ENTRY_BYTES;
        for cut in [
            0,
            10,
            47,
            RUN_HEADER_BYTES - 1,
            RUN_HEADER_BYTES,
            real_len - 1,
        ] {
            let r = IndexRun::from_bytes(bytes[..cut].to_vec());
            assert!(
                matches!(r, Err(IndexRunError::Truncated { .. })),
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
            Err(IndexRunError::BadHeader { what: "magic", .. })
        ));
        let mut header = bytes.clone();
        header[20] ^= 1; // `from`
        assert!(matches!(
            IndexRun::from_bytes(header),
            Err(IndexRunError::BadHeader {
                what: "header CRC",
                ..
            })
        ));
        let mut entry = bytes.clone();
        entry[RUN_HEADER_BYTES + 30] ^= 0x40;
        assert!(matches!(
            IndexRun::from_bytes(entry),
            Err(IndexRunError::BadEntries { .. })
        ));
        assert!(IndexRun::from_bytes(vec![0xff; 3 * RUN_HEADER_BYTES]).is_err());
    }

    #[test]
    fn given_run_file_names_when_parsed_then_only_run_names_match() {
        let n = run_file_name(7, 1234);
        assert_eq!(parse_run_file_name(&n), Some((7, 1234)));
        assert_eq!(parse_run_file_name(&format!("{n}{RUN_TMP_SUFFIX}")), None);
        assert_eq!(parse_run_file_name("run-1-2.idx"), None);
        assert_eq!(parse_run_file_name("checkpoint"), None);
    }

    #[test]
    fn given_damaged_file_on_disk_when_opened_then_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(run_file_name(0, 3));
        let bytes = encode_run(0, 3, &[(1, 0), (2, 1)]);
        std::fs::write(&path, &bytes[..RUN_HEADER_BYTES + 10]).unwrap();
        assert!(matches!(
            IndexRun::open(&path),
            Err(IndexRunError::Truncated { .. })
        ));
        std::fs::write(&path, &bytes).unwrap();
        let r = IndexRun::open(&path).expect("intact file opens");
        assert_eq!(r.lookup(2), Some(1));
    }

    #[test]
    fn given_run_layout_when_measured_then_matches_documented_offsets() {
        use std::mem::{offset_of, size_of};
        // docs/storage.md §12 and the table at the top of this file.
        assert_eq!(offset_of!(RawRunHeader, magic), 0);
        assert_eq!(offset_of!(RawRunHeader, version), 8);
        assert_eq!(offset_of!(RawRunHeader, count), 12);
        assert_eq!(offset_of!(RawRunHeader, from), 20);
        assert_eq!(offset_of!(RawRunHeader, to), 28);
        assert_eq!(offset_of!(RawRunHeader, entries_crc), 36);
        assert_eq!(offset_of!(RawRunHeader, reserved), 40);
        assert_eq!(offset_of!(RawRunHeader, crc), 44);
        assert_eq!(size_of::<RawRunHeader>(), 48);
        assert_eq!(offset_of!(RawEntry, key), 0);
        assert_eq!(offset_of!(RawEntry, offset), 16);
        assert_eq!(size_of::<RawEntry>(), 24);
        let key = 0x0102_0304_0506_0708_1112_1314_1516_1718u128;
        let b = encode_run(7, 9, &[(key, 0x2122_2324_2526_2728)]);
        assert_eq!(b.len(), 2 * RUN_HEADER_BYTES);
        assert_eq!(&b[0..8], b"gnhidx01");
        assert_eq!(b[8..12], 1u32.to_le_bytes());
        assert_eq!(b[12..20], 1u64.to_le_bytes());
        assert_eq!(b[20..28], 7u64.to_le_bytes());
        assert_eq!(b[28..36], 9u64.to_le_bytes());
        let entries = &b[RUN_HEADER_BYTES..RUN_HEADER_BYTES + 24];
        assert_eq!(b[36..40], crc32c::crc32c(entries).to_le_bytes());
        assert_eq!(b[40..44], [0; 4]);
        assert_eq!(b[44..48], crc32c::crc32c(&b[0..44]).to_le_bytes());
        assert!(b[48..RUN_HEADER_BYTES].iter().all(|x| *x == 0));
        assert_eq!(entries[0..16], key.to_le_bytes());
        assert_eq!(entries[16..24], 0x2122_2324_2526_2728u64.to_le_bytes());
        assert!(b[RUN_HEADER_BYTES + 24..].iter().all(|x| *x == 0));
    }
}
