//! Opening a log: find its segments, start from the checkpoint, check every
//! batch after it, cut a torn tail, report damage inside the durable part.

use crate::checkpoint::{Checkpoint, CHECKPOINT_FILE, CHECKPOINT_TMP_FILE};
use crate::config::LogConfig;
use crate::error::{Corruption, LogError};
use crate::frame::HEADER_SIZE_BYTES;
use crate::index::{record_loss, scan_segment, ScanEnd, ScanFrom, SparseIndex};
use crate::log::{create_segment, map_segment, os_error, LazyRange, SegmentEntry, State};
use crate::marker::{align_up, CHAIN_GENESIS};
use crate::repair::QUARANTINE_DIR;
use crate::scan::{classify_tail, next_valid_batch, Limits, TailVerdict, TAIL_PROBE_BATCHES};
use crate::segment::{self, SegmentHeader, SEGMENT_HEADER_BYTES};
use glommio::io::{DmaFile, OpenOptions};
use memmap2::Mmap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What recovery found and did when the log was opened.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// Segment files in the log after recovery.
    pub segments: usize,
    /// True when scanning started from a checkpoint.
    pub from_checkpoint: bool,
    /// Data records checked by the scan (those after the checkpoint).
    pub records_scanned: u64,
    /// Batches checked by the scan.
    pub batches_scanned: u64,
    /// Bytes of segments the scan covered.
    pub bytes_scanned: u64,
    /// First offset held.
    pub start_offset: u64,
    /// Offset the next append gets: every record below it is recovered or reported.
    pub next_offset: u64,
    /// The torn tail that was cut, if any.
    pub torn_tail: Option<TornTail>,
    /// Bytes zeroed when cutting the torn tail.
    pub bytes_cut: u64,
    /// Damage inside the durable part: reported, never served, never cut.
    pub corruptions: Vec<Corruption>,
    /// Original paths of the files set aside into `<dir>/quarantine/` (see
    /// `quarantined` for where and why): segments proven to hold no committed
    /// batch, i.e. whose creation a crash interrupted. Nothing is deleted.
    pub removed_files: Vec<PathBuf>,
    /// Files moved into `<dir>/quarantine/`, with where, the report file and why.
    pub quarantined: Vec<Quarantined>,
    /// Segments whose header block fails its check (magic, CRC or base offset):
    /// kept, their records read by content (each batch checked by its
    /// records' CRCs, offsets and commit marker). Logged at WARN.
    pub damaged_headers: Vec<PathBuf>,
    /// Segments shorter than the segment size: kept and readable up to their
    /// end, closed to writes. Logged at WARN.
    pub short_segments: Vec<PathBuf>,
    /// The last segment, kept but closed to writes because its header is
    /// damaged or it is short: the next batch goes to a new segment, so the
    /// committed bytes in it are never rewritten.
    pub sealed_last_segment: Option<PathBuf>,
    /// Why the checkpoint file was not used (fails its check, names a missing
    /// or damaged segment or an impossible position); recovery then scanned
    /// every segment and wrote a new checkpoint. Logged at WARN.
    pub checkpoint_rejected: Option<String>,
    /// Time recovery took.
    pub elapsed: Duration,
}

/// A file recovery set aside: moved (never deleted) into `<dir>/quarantine/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// Where it was.
    pub from: PathBuf,
    /// Where it is now.
    pub to: PathBuf,
    /// The human-readable report written beside it.
    pub report: PathBuf,
    /// Why it was set aside.
    pub why: String,
}

/// A batch that was being written when the process stopped: never acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Segment holding it.
    pub segment_base: u64,
    /// Where it started (the log continues from here).
    pub position: u64,
    /// Offset its first record would have had.
    pub first_offset: u64,
}

struct Found {
    base: u64,
    path: PathBuf,
    file: DmaFile,
    /// The whole file mapped (up to the segment size): reads stop at its end.
    map: Rc<Mmap>,
    header: Option<SegmentHeader>,
    /// Chain value its first batch continues: from the header, or (header
    /// damaged) from the first valid batch's marker.
    start_chain: Option<[u8; 32]>,
    /// Damaged header or short file: kept, closed to writes.
    sealed: bool,
}

fn lock_dir(dir: &Path) -> Result<std::fs::File, LogError> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LogError::io("open lock file", &path, e))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(LogError::Locked(dir.to_path_buf()));
    }
    Ok(file)
}

/// Reads the checkpoint; a file that fails its check is reported, never trusted.
fn read_checkpoint(dir: &Path) -> Result<(Option<Checkpoint>, Option<String>), LogError> {
    let path = dir.join(CHECKPOINT_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => match Checkpoint::decode(&bytes) {
            Some(cp) => Ok((Some(cp), None)),
            None => Ok((
                None,
                Some(format!(
                    "checkpoint file fails its check ({} bytes; magic, length or CRC wrong)",
                    bytes.len()
                )),
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((None, None)),
        Err(e) => Err(LogError::io("read checkpoint", path, e)),
    }
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut bases = vec![];
    for entry in std::fs::read_dir(dir).map_err(|e| LogError::io("list log directory", dir, e))? {
        let entry = entry.map_err(|e| LogError::io("list log directory", dir, e))?;
        if let Some(base) = entry
            .file_name()
            .to_str()
            .and_then(segment::parse_file_name)
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Opens every segment file. A file whose header fails its check or which is
/// shorter than the segment size is kept (its batches are read by content),
/// except at the end of the log when every byte after its header block is
/// zero: then it provably holds no committed batch (a crash interrupted its
/// creation, see docs/storage.md §7.1) and is moved into quarantine. (Such a
/// file in the middle stays in place: the offsets it should hold are reported
/// missing, and reads say `Unreadable`, not `Gone`.)
async fn open_segments(
    dir: &Path,
    bases: Vec<u64>,
    config: &LogConfig,
    limits: Limits,
    report: &mut RecoveryReport,
) -> Result<Vec<Found>, LogError> {
    let mut found: Vec<(Found, u64, bool)> = vec![];
    for base in bases {
        found.push(open_segment(dir, base, config, limits).await?);
    }
    // Bounded by the number of files.
    while found.last().is_some_and(|(f, _, empty)| f.sealed && *empty) {
        let (f, size, _) = found.pop().expect("checked");
        let _ = f.file.close().await;
        let why = format!(
            "segment file of {size} bytes (expected {}) with {} header and no byte written after its \
             header block: no committed batch (a crash interrupted its creation)",
            config.segment_size_bytes,
            if f.header.is_some() { "a valid" } else { "a damaged or missing" }
        );
        let q = quarantine(dir, &f.path, &why).await?;
        report.removed_files.push(f.path);
        report.quarantined.push(q);
    }
    report.removed_files.reverse();
    report.quarantined.reverse();
    let mut out = vec![];
    for (f, size, _) in found {
        let sizes = (size, config.segment_size_bytes);
        report_damaged_file(dir, &f.path, &f.map, f.header.is_some(), sizes, report);
        out.push(f);
    }
    Ok(out)
}

/// Opens and maps one segment file; also says its size and whether nothing
/// was ever written after its header block.
async fn open_segment(
    dir: &Path,
    base: u64,
    config: &LogConfig,
    limits: Limits,
) -> Result<(Found, u64, bool), LogError> {
    let segment_size = config.segment_size_bytes;
    let path = segment::path(dir, base);
    // Writable: if the last file is set aside, the one before becomes active.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(&path)
        .await
        .map_err(|e| LogError::io("open segment", &path, os_error(e)))?;
    let size = file
        .file_size()
        .await
        .map_err(|e| LogError::io("stat segment", &path, os_error(e)))?;
    let map_len = size.min(segment_size);
    // Random access: a plain fault reads ahead up to the device's
    // read_ahead_kb (8 MiB on the development VM), which made each header
    // cost 4-15 ms on a cold open. A file too small to hold a batch reads as
    // one block of zeros (nothing written).
    let map = if map_len > SEGMENT_HEADER_BYTES as u64 {
        map_segment(&file, map_len, &path, true)?
    } else {
        memmap2::MmapMut::map_anon(SEGMENT_HEADER_BYTES)
            .and_then(|m| m.make_read_only())
            .map_err(|e| LogError::io("map an empty segment", &path, e))?
    };
    let header = (map_len > SEGMENT_HEADER_BYTES as u64)
        .then(|| SegmentHeader::decode(&map))
        .flatten()
        .filter(|h| h.base_offset == base);
    if let Some(h) = &header {
        if h.segment_size_bytes != segment_size {
            return Err(LogError::Config(format!(
                "{} has segment size {} but the log is configured for {segment_size}",
                path.display(),
                h.segment_size_bytes
            )));
        }
    }
    let sealed = header.is_none() || size < segment_size;
    // Read the whole body only for a damaged file (rare): a sound one is never set aside.
    let empty = sealed && !map[SEGMENT_HEADER_BYTES..].iter().any(|b| *b != 0);
    let start_chain = match &header {
        Some(h) => Some(h.prev_chain),
        None => {
            next_valid_batch(&map, SEGMENT_HEADER_BYTES - 1, base, limits).map(|b| b.prev_chain)
        }
    };
    let found = Found {
        base,
        path,
        file,
        map: Rc::new(map),
        sealed,
        header,
        start_chain,
    };
    Ok((found, size, empty))
}

/// Reports (WARN and the recovery report) a kept segment whose header block
/// is damaged or which is short.
fn report_damaged_file(
    dir: &Path,
    path: &Path,
    map: &[u8],
    header_ok: bool,
    (size, segment_size): (u64, u64),
    report: &mut RecoveryReport,
) {
    // Bytes 60..4096 of the header block are zero by format; the CRC does
    // not cover them, so a damaged byte there is found only by looking.
    let padding_damaged = header_ok
        && map
            .get(60..SEGMENT_HEADER_BYTES)
            .is_some_and(|p| p.iter().any(|b| *b != 0));
    if !header_ok || padding_damaged {
        tracing::warn!(dir = %dir.display(), file = %path.display(), position = 0,
            padding_only = padding_damaged,
            "segment header block damaged: kept, its records read by content (each batch checked by CRCs, offsets and marker)");
        report.damaged_headers.push(path.to_path_buf());
    }
    if size < segment_size {
        tracing::warn!(dir = %dir.display(), file = %path.display(), size_bytes = size, expected_bytes = segment_size,
            "segment file is short: kept, readable up to its end, closed to writes");
        report.short_segments.push(path.to_path_buf());
    }
}

/// Moves a file that holds no committed data into `<dir>/quarantine/` with a
/// report beside it, then syncs both directories. Never deletes.
async fn quarantine(dir: &Path, path: &Path, why: &str) -> Result<Quarantined, LogError> {
    let qdir = dir.join(QUARANTINE_DIR);
    std::fs::create_dir_all(&qdir).map_err(|e| LogError::io("create quarantine", &qdir, e))?;
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    // Bounded: a free name is found within as many tries as files quarantined before.
    let mut n = 0u32;
    let (to, report) = loop {
        let stem = if n == 0 {
            name.clone()
        } else {
            format!("{name}.{n}")
        };
        let to = qdir.join(&stem);
        let report = qdir.join(format!("{stem}.report.txt"));
        if !to.exists() && !report.exists() {
            break (to, report);
        }
        n += 1;
        assert!(n < 100_000, "quarantine name space exhausted");
    };
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let text = format!(
        "gonets recovery set a file aside\nwhat: segment file {name} ({size} bytes)\n\
         from: {}\nto: {}\nwhy: {why}\nwhen: {now_s} s since the Unix epoch\n\
         No acknowledged record was in it; it is kept here as evidence and may be deleted by an operator.\n",
        path.display(),
        to.display()
    );
    let mut f = std::fs::File::create(&report)
        .map_err(|e| LogError::io("create quarantine report", &report, e))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .and_then(|_| f.sync_data())
        .map_err(|e| LogError::io("write quarantine report", &report, e))?;
    std::fs::rename(path, &to).map_err(|e| LogError::io("move to quarantine", path, e))?;
    journal!(crate::journal::record(|| crate::journal::IoEvent::Rename {
        from: path.to_path_buf(),
        to: to.clone()
    }));
    crate::log::sync_dir(&qdir).await?;
    crate::log::sync_dir(dir).await?;
    tracing::warn!(dir = %dir.display(), file = %path.display(), to = %to.display(), report = %report.display(), why,
        "recovery moved a segment holding no committed batch into quarantine");
    Ok(Quarantined {
        from: path.to_path_buf(),
        to,
        report,
        why: why.to_string(),
    })
}

/// Which segment the checkpoint lets recovery start in, or why it is not used.
fn checkpoint_start(cp: &Checkpoint, found: &[Found], segment_size: u64) -> Result<usize, String> {
    let Some(i) = found.iter().position(|f| f.base == cp.segment_base) else {
        return Err(format!(
            "checkpoint names segment {} which is not in the log",
            cp.segment_base
        ));
    };
    let pos_ok = cp.position >= SEGMENT_HEADER_BYTES as u64
        && cp.position <= segment_size
        && (cp.position as usize).is_multiple_of(crate::marker::BLOCK_SIZE_BYTES);
    if !pos_ok || cp.next_offset < cp.segment_base {
        return Err(format!(
            "checkpoint names an impossible point: position {} offset {} in segment {}",
            cp.position, cp.next_offset, cp.segment_base
        ));
    }
    Ok(i)
}

/// A directory without segments: the first one is created.
async fn fresh_log(
    st: &mut State,
    report: &mut RecoveryReport,
    checkpoint: Option<&Checkpoint>,
) -> Result<(), LogError> {
    let dir = st.dir.clone();
    if let Some(cp) = checkpoint.filter(|c| c.next_offset > 0) {
        return Err(LogError::Unrecoverable {
            path: dir,
            what: format!(
                "checkpoint at offset {} but no segment files",
                cp.next_offset
            ),
        });
    }
    // Offsets never go back: after a quarantined (empty) segment, the log
    // starts at its base.
    let base = report
        .removed_files
        .iter()
        .filter_map(|p| p.file_name()?.to_str().and_then(segment::parse_file_name))
        .min()
        .unwrap_or(0);
    let segment_size = st.config.segment_size_bytes;
    let (file, map) = create_segment(&dir, base, segment_size, CHAIN_GENESIS).await?;
    st.written.segment_header_bytes += crate::segment::SEGMENT_HEADER_BYTES as u64;
    st.segments.push(SegmentEntry {
        base_offset: base,
        path: segment::path(&dir, base),
        map: Rc::new(map),
        index: SparseIndex::default(),
        lazy: None,
    });
    st.active_file = Some(Rc::new(file));
    st.next_offset = base;
    st.durable_offset = base;
    st.flush_wanted_offset = base;
    st.start_offset = base;
    report.segments = 1;
    report.start_offset = base;
    report.next_offset = base;
    Ok(())
}

/// Where the scan stands between segments.
struct Cursor {
    position: usize,
    /// `None` after a damaged last batch of a sealed segment: the next
    /// segment's base tells where the offsets go on.
    offset: Option<u64>,
    chain: [u8; 32],
    /// Close the segment to writes (its end is not known for sure).
    seal: bool,
}

/// Opening happens before the log serves anyone, so the few blocking calls
/// here (directory listing, lock file, reading the checkpoint, quarantine
/// reports) do not stall a reactor that has work.
pub(crate) async fn recover(
    dir: &Path,
    config: LogConfig,
) -> Result<(State, RecoveryReport), LogError> {
    let started = Instant::now();
    let mut st = lock_and_clean(dir, &config)?;
    let mut report = RecoveryReport::default();
    let (checkpoint, rejected) = read_checkpoint(dir)?;
    let bases = list_segments(dir)?;
    let found = open_segments(dir, bases, &config, st.limits, &mut report).await?;

    if found.is_empty() {
        fresh_log(&mut st, &mut report, checkpoint.as_ref()).await?;
        report.checkpoint_rejected = rejected;
        report.elapsed = started.elapsed();
        return Ok((st, report));
    }

    let start = choose_start(checkpoint, rejected, &found, config.segment_size_bytes);
    report.from_checkpoint = start.index.is_some();
    let (cursor, sealed_last) = scan_segments(&mut st, &mut report, found, &start).await?;
    let from_checkpoint = start.index.is_some();
    finish(
        &mut st,
        &mut report,
        cursor,
        sealed_last,
        start.checkpoint,
        from_checkpoint,
    );
    if let Some(why) = &start.rejected {
        tracing::warn!(dir = %dir.display(), file = %dir.join(CHECKPOINT_FILE).display(), why = %why,
            "checkpoint not used: scanned every segment; a new checkpoint is written after recovery");
    }
    report.checkpoint_rejected = start.rejected;
    report.elapsed = started.elapsed();
    log_outcome(dir, &report);
    Ok((st, report))
}

/// Creates and locks the directory, reads the accepted damage, and removes
/// a checkpoint write a crash interrupted: the state recovery fills in.
fn lock_and_clean(dir: &Path, config: &LogConfig) -> Result<State, LogError> {
    std::fs::create_dir_all(dir).map_err(|e| LogError::io("create log directory", dir, e))?;
    let lock = lock_dir(dir)?;
    let mut st = State::new(dir.to_path_buf(), config.clone());
    st.lock_file = Some(lock);
    st.accepted = crate::repair::read_accepted(dir)?;
    let tmp = dir.join(CHECKPOINT_TMP_FILE);
    if tmp.exists() {
        // A checkpoint write a crash interrupted; it holds no log data.
        tracing::info!(dir = %dir.display(), file = %tmp.display(), "removing an unfinished checkpoint write");
        std::fs::remove_file(&tmp).map_err(|e| LogError::io("remove stale checkpoint", &tmp, e))?;
        journal!(crate::journal::record(|| crate::journal::IoEvent::Remove {
            path: tmp.clone()
        }));
    }
    Ok(st)
}

/// Where the scan starts: at the checkpoint when it names a possible point.
struct ScanStart {
    /// The checkpoint, if read and usable.
    checkpoint: Option<Checkpoint>,
    /// The segment the checkpoint points into; `None`: scan every segment.
    index: Option<usize>,
    /// Why the checkpoint was not used.
    rejected: Option<String>,
}

/// Checks the checkpoint against the segments found.
fn choose_start(
    checkpoint: Option<Checkpoint>,
    rejected: Option<String>,
    found: &[Found],
    segment_size: u64,
) -> ScanStart {
    let Some(cp) = checkpoint else {
        return ScanStart {
            checkpoint: None,
            index: None,
            rejected,
        };
    };
    match checkpoint_start(&cp, found, segment_size) {
        Ok(i) => ScanStart {
            checkpoint: Some(cp),
            index: Some(i),
            rejected,
        },
        Err(why) => ScanStart {
            checkpoint: None,
            index: None,
            rejected: Some(why),
        },
    }
}

/// Scans the segments in order; returns where the log goes on and whether
/// the last segment is closed to writes.
async fn scan_segments(
    st: &mut State,
    report: &mut RecoveryReport,
    found: Vec<Found>,
    start: &ScanStart,
) -> Result<(Cursor, bool), LogError> {
    let mut cursor = Cursor {
        position: SEGMENT_HEADER_BYTES,
        offset: Some(found[0].base),
        chain: found[0].start_chain.unwrap_or(CHAIN_GENESIS),
        seal: false,
    };
    let n = found.len();
    let mut sealed_last = false;
    // Bounded by the number of segment files.
    for (i, f) in found.into_iter().enumerate() {
        let last = i + 1 == n;
        sealed_last = last && f.sealed;
        cursor.seal = false;
        let at = SegmentAt { i, last };
        scan_one(st, report, f, at, start, &mut cursor).await?;
    }
    Ok((cursor, sealed_last))
}

/// Starts the scan at the checkpoint; the part of its segment before it is
/// indexed on first read.
fn start_at_checkpoint(cp: &Checkpoint, f: &Found, entry: &mut SegmentEntry, cursor: &mut Cursor) {
    cursor.position = cp.position as usize;
    cursor.offset = Some(cp.next_offset);
    cursor.chain = cp.chain;
    if cursor.position > SEGMENT_HEADER_BYTES {
        entry.lazy = Some(LazyRange {
            until_position: cursor.position,
            until_offset: cp.next_offset,
            prev_chain: f.start_chain.unwrap_or(CHAIN_GENESIS),
        });
    }
}

/// Checks that segment `f` continues where the previous one ended.
fn link_segment(st: &mut State, f: &Found, i: usize, cursor: &mut Cursor) -> Result<(), LogError> {
    let base = f.base;
    let linked = cursor.offset == Some(base);
    match cursor.offset {
        None => {
            // After a damaged last batch of the previous segment.
            if let Some(c) = st
                .corruptions
                .iter_mut()
                .rev()
                .find(|c| c.end_offset == u64::MAX)
            {
                c.end_offset = base.max(c.first_offset);
            }
        }
        Some(o) if base > o => st.corruptions.push(Corruption {
            segment_base: base,
            position: 0,
            first_offset: o,
            end_offset: base,
            what: "records missing between segments".into(),
        }),
        Some(o) if base < o => {
            return Err(LogError::Unrecoverable {
                path: f.path.clone(),
                what: format!("segment starts at offset {base} but the previous one ends at {o}"),
            })
        }
        Some(_) => {}
    }
    if let Some(h) = &f.header {
        if i > 0 && linked && h.prev_chain != cursor.chain {
            st.corruptions.push(Corruption {
                segment_base: base,
                position: 0,
                first_offset: base,
                end_offset: base,
                what: "hash chain broken at segment start".into(),
            });
        }
    }
    // A damaged header: the previous segment's end is the best expectation
    // (it proves the link); else what the first valid batch claims.
    cursor.chain = match (&f.header, linked && i > 0) {
        (Some(h), _) => h.prev_chain,
        (None, true) => cursor.chain,
        (None, false) => f.start_chain.unwrap_or(CHAIN_GENESIS),
    };
    cursor.offset = Some(base);
    cursor.position = SEGMENT_HEADER_BYTES;
    Ok(())
}

/// Which segment of the log is being scanned.
#[derive(Clone, Copy)]
struct SegmentAt {
    /// Its place among the segment files, oldest first.
    i: usize,
    /// True for the newest segment: the active one, where a torn tail may be.
    last: bool,
}

/// Scans one segment from where the cursor says and adds it to the log.
async fn scan_one(
    st: &mut State,
    report: &mut RecoveryReport,
    f: Found,
    at: SegmentAt,
    start: &ScanStart,
    cursor: &mut Cursor,
) -> Result<(), LogError> {
    let mut entry = SegmentEntry {
        base_offset: f.base,
        path: f.path.clone(),
        map: f.map.clone(),
        index: SparseIndex::default(),
        lazy: None,
    };
    if at.i < start.index.unwrap_or(0) {
        // Covered by the checkpoint: indexed on first read.
        entry.lazy = Some(LazyRange {
            until_position: st.config.segment_size_bytes as usize,
            until_offset: u64::MAX,
            prev_chain: f.start_chain.unwrap_or(CHAIN_GENESIS),
        });
        st.segments.push(entry);
        let _ = f.file.close().await;
        return Ok(());
    }
    match (&start.checkpoint, start.index == Some(at.i)) {
        (Some(cp), true) => start_at_checkpoint(cp, &f, &mut entry, cursor),
        _ => link_segment(st, &f, at.i, cursor)?,
    }
    let scan_from = cursor.position;
    let probe_end = scan_records(st, report, &f, &mut entry, at.last, cursor).await?;
    if at.last {
        drop_cached_tail(&entry.map, &f.file, cursor.position, probe_end);
    }
    report.bytes_scanned += cursor.position.saturating_sub(scan_from) as u64;
    st.segments.push(entry);
    if at.last {
        st.active_file = Some(Rc::new(f.file));
    } else {
        let _ = f.file.close().await;
    }
    Ok(())
}

/// Checks every batch of the segment from the cursor on, indexes them and
/// moves the cursor to where the next segment (or the next append) starts.
/// Returns how far the scan read into the map.
async fn scan_records(
    st: &mut State,
    report: &mut RecoveryReport,
    f: &Found,
    entry: &mut SegmentEntry,
    last: bool,
    cursor: &mut Cursor,
) -> Result<usize, LogError> {
    let limits = st.limits;
    let offset = cursor.offset.expect("linked");
    if last {
        // Read-ahead for the probe past the end (prewritten zeros are real
        // reads; one by one they cost ~100 ms per open). Dropped after.
        let _ = entry.map.advise(memmap2::Advice::Sequential);
    }
    let out = scan_segment(
        &entry.map,
        f.base,
        ScanFrom {
            position: cursor.position,
            next_offset: offset,
            chain: cursor.chain,
            probe_bytes: if last {
                TAIL_PROBE_BATCHES * limits.batch_bytes_max
            } else {
                usize::MAX
            },
            log_end: last,
        },
        f.map.len(),
        limits,
        st.config.index_interval_bytes,
    );
    if last {
        let _ = entry.map.advise(memmap2::Advice::Random);
    }
    let probe_end = entry.map.len();
    report.records_scanned += out.records;
    report.batches_scanned += out.batches;
    entry.index.prepend(out.index);
    st.corruptions.extend(out.corruptions);
    scan_end(st, report, f, entry, out.end, last, cursor).await?;
    Ok(probe_end)
}

/// Drops the page-cache pages the scan read beyond the end of the active
/// segment's data, so that, as before the scan, no block an O_DIRECT batch
/// write will fill has a cached copy (the kernel invalidates those after a
/// direct write anyway; this keeps the invariant in docs/storage.md without
/// relying on it). The pages are clean: never written through the map.
fn drop_cached_tail(map: &Mmap, file: &DmaFile, from: usize, to: usize) {
    let page = 4096;
    let from = from.div_ceil(page) * page;
    if from >= to {
        return;
    }
    // SAFETY: MADV_DONTNEED on a shared, read-only file mapping only drops
    // page-table entries; a later access faults the page in again from the
    // file, so no reference into the map is invalidated.
    let _ =
        unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from) };
    // SAFETY: posix_fadvise on a descriptor we own; advisory only.
    unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            from as libc::off_t,
            (to - from) as libc::off_t,
            libc::POSIX_FADV_DONTNEED,
        );
    }
}

/// Where the scan of one segment ended decides where the next one starts.
async fn scan_end(
    st: &mut State,
    report: &mut RecoveryReport,
    f: &Found,
    entry: &mut SegmentEntry,
    end: ScanEnd,
    last: bool,
    cursor: &mut Cursor,
) -> Result<(), LogError> {
    let (limits, map_len) = (st.limits, entry.map.len());
    match end {
        ScanEnd::Clean {
            position,
            next_offset,
            chain,
        } => {
            *cursor = Cursor {
                position,
                offset: Some(next_offset),
                chain,
                seal: false,
            };
        }
        ScanEnd::TornPair {
            batch_start,
            batch_first_offset,
            chain,
            cut_end,
        } => {
            assert!(last, "a torn pair is only looked for at the end of the log");
            let batch = (batch_start, batch_first_offset, chain);
            cut_torn(report, f, batch, cut_end, cursor).await?;
        }
        ScanEnd::DamagedTail { damage, .. } if !last => {
            // A later segment exists, so this batch was durable before the roll.
            record_loss(
                &mut entry.index,
                &mut st.corruptions,
                &entry.map,
                f.base,
                damage.position,
                map_len,
                (damage.offset, u64::MAX), // up to the next segment's base, set then
                &format!("{:?} in the last batch of a sealed segment", damage.fault),
                limits,
            );
            cursor.offset = None;
        }
        ScanEnd::DamagedTail {
            batch_start,
            batch_first_offset,
            chain,
            damage,
        } => {
            damaged_tail(
                st,
                report,
                f,
                entry,
                (batch_start, batch_first_offset, chain),
                damage,
                cursor,
            )
            .await?;
        }
    }
    Ok(())
}

/// The last batch of the log failed its checks and nothing valid follows:
/// cut it if it is torn (never acknowledged), report it if it is damage.
async fn damaged_tail(
    st: &mut State,
    report: &mut RecoveryReport,
    f: &Found,
    entry: &mut SegmentEntry,
    batch: (usize, u64, [u8; 32]),
    damage: crate::scan::Damage,
    cursor: &mut Cursor,
) -> Result<(), LogError> {
    let (batch_start, batch_first_offset, _) = batch;
    let limits = st.limits;
    match classify_tail(&entry.map, batch_start, batch_first_offset, limits) {
        TailVerdict::Torn => {
            // Rounded up to a block for O_DIRECT. In a short file this may
            // extend it, with zeros only, up to the next block: zeros are what
            // "nothing written" reads as, and the segment is closed to writes.
            let cut_end = written_end(&entry.map, batch_start, limits);
            cut_torn(report, f, batch, cut_end, cursor).await?;
        }
        TailVerdict::Corrupt {
            record_count,
            end,
            chain: claimed,
        } => {
            let known = record_count.zip(end).map(|(k, e)| (k, e, claimed));
            *cursor = corrupt_tail(st, f, entry, batch, damage, known);
        }
    }
    Ok(())
}

/// Cuts a torn tail, `[batch_start, cut_end)` (one torn batch, or a torn
/// batch and the unacknowledged one after it): zeros it so no stale fragment
/// can pass for a later batch, reports it, and goes on from `batch_start`.
async fn cut_torn(
    report: &mut RecoveryReport,
    f: &Found,
    (batch_start, batch_first_offset, chain): (usize, u64, [u8; 32]),
    cut_end: usize,
    cursor: &mut Cursor,
) -> Result<(), LogError> {
    assert!(cut_end > batch_start && cut_end.is_multiple_of(crate::marker::BLOCK_SIZE_BYTES));
    zero_range(&f.file, batch_start, cut_end, &f.path).await?;
    report.bytes_cut = (cut_end - batch_start) as u64;
    report.torn_tail = Some(TornTail {
        segment_base: f.base,
        position: batch_start as u64,
        first_offset: batch_first_offset,
    });
    *cursor = Cursor {
        position: batch_start,
        offset: Some(batch_first_offset),
        chain,
        seal: false,
    };
    Ok(())
}

/// A last batch completely written and then damaged: its loss is recorded
/// (never cut); returns where the log goes on. `known` is the record count,
/// end and chain its marker still tells, if it does.
fn corrupt_tail(
    st: &mut State,
    f: &Found,
    entry: &mut SegmentEntry,
    (batch_start, batch_first_offset, chain): (usize, u64, [u8; 32]),
    damage: crate::scan::Damage,
    known: Option<(u32, usize, Option<[u8; 32]>)>,
) -> Cursor {
    let limits = st.limits;
    let (e, end_offset, chain, seal, note) = match known {
        Some((k, e, claimed)) => (
            e,
            batch_first_offset + k as u64,
            claimed.unwrap_or(CHAIN_GENESIS),
            false,
            "",
        ),
        None => {
            // The marker no longer says how many records the batch
            // holds. Never reuse an offset a committed record may
            // have had: go on past the most records its bytes could
            // hold, in a new segment.
            let e = written_end(&entry.map, batch_start, limits);
            let upper = batch_first_offset + ((e - batch_start) / HEADER_SIZE_BYTES) as u64;
            let note =
                "; its marker is damaged, so offsets up to the most it could hold are reported";
            (e, upper, chain, true, note)
        }
    };
    entry.index.force(batch_first_offset, batch_start);
    record_loss(
        &mut entry.index,
        &mut st.corruptions,
        &entry.map,
        f.base,
        damage.position,
        e,
        (damage.offset, end_offset),
        &format!("{:?} in the last committed batch{note}", damage.fault),
        limits,
    );
    Cursor {
        position: e,
        offset: Some(end_offset),
        chain,
        seal,
    }
}

/// Closes open ranges, sets where the log goes on.
fn finish(
    st: &mut State,
    report: &mut RecoveryReport,
    cursor: Cursor,
    sealed_last: bool,
    checkpoint: Option<Checkpoint>,
    from_checkpoint: bool,
) {
    // Close the ranges left open ("up to the next segment's base").
    let bases: Vec<u64> = st.segments.iter().map(|s| s.base_offset).collect();
    for c in st.corruptions.iter_mut() {
        if c.end_offset == u64::MAX {
            let next = bases.iter().find(|b| **b > c.segment_base).copied();
            c.end_offset = next.unwrap_or(c.first_offset).max(c.first_offset);
        }
    }
    // Lazy ranges of sealed segments end where the next segment starts.
    for i in 0..st.segments.len() {
        let next = st.segments.get(i + 1).map(|s| s.base_offset);
        if let (Some(lazy), Some(next)) = (st.segments[i].lazy.as_mut(), next) {
            if lazy.until_offset == u64::MAX {
                lazy.until_offset = next;
            }
        }
    }
    let offset = cursor
        .offset
        .expect("the last segment's scan ends at a known offset");
    st.write_position = cursor.position;
    if sealed_last || cursor.seal {
        // Never write into a segment whose header is damaged or which is
        // short: the next batch rolls to a new segment.
        st.write_position = st.config.segment_size_bytes as usize;
        report.sealed_last_segment = st.segments.last().map(|s| s.path.clone());
    }
    st.next_offset = offset;
    st.durable_offset = offset;
    st.flush_wanted_offset = offset;
    st.start_offset = st.segments[0].base_offset;
    st.chain = cursor.chain;
    st.mark = checkpoint.as_ref().map_or(0, |c| c.mark);
    st.checkpoint = checkpoint.filter(|_| from_checkpoint);
    report.segments = st.segments.len();
    report.start_offset = st.start_offset;
    report.next_offset = offset;
    report.corruptions = st.corruptions.clone();
}

fn log_outcome(dir: &Path, report: &RecoveryReport) {
    tracing::info!(
        dir = %dir.display(),
        segments = report.segments,
        next_offset = report.next_offset,
        from_checkpoint = report.from_checkpoint,
        bytes_scanned = report.bytes_scanned,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "log recovered"
    );
    if let Some(t) = &report.torn_tail {
        tracing::warn!(
            dir = %dir.display(),
            file = %segment::path(dir, t.segment_base).display(),
            position = t.position,
            first_offset = t.first_offset,
            bytes_cut = report.bytes_cut,
            "cut a torn tail (never acknowledged): zeroed"
        );
    }
    if let Some(p) = &report.sealed_last_segment {
        tracing::warn!(dir = %dir.display(), file = %p.display(),
            "last segment kept but closed to writes (damaged header or short file); the next batch starts a new segment");
    }
    for c in &report.corruptions {
        tracing::error!(dir = %dir.display(), file = %segment::path(dir, c.segment_base).display(),
            position = c.position, first_offset = c.first_offset, end_offset = c.end_offset, what = %c.what,
            "damaged committed records: reported, not served");
    }
}

async fn zero_range(file: &DmaFile, start: usize, end: usize, path: &Path) -> Result<(), LogError> {
    let mut pos = start;
    // Bounded by end - start, which is at most one batch.
    while pos < end {
        let len = (end - pos).min(1 << 20);
        let mut buf = glommio::allocate_dma_buffer(len);
        buf.as_bytes_mut().fill(0);
        journal!(crate::journal::write(path, pos as u64, buf.as_bytes()));
        let n = file
            .write_at(buf, pos as u64)
            .await
            .map_err(|e| LogError::io("zero torn tail", path, os_error(e)))?;
        if n != len {
            return Err(LogError::io(
                "zero torn tail",
                path,
                std::io::Error::from_raw_os_error(libc::EIO),
            ));
        }
        pos += len;
    }
    file.fdatasync()
        .await
        .map_err(|e| LogError::io("sync torn tail", path, os_error(e)))?;
    journal!(crate::journal::sync(path));
    Ok(())
}

/// The block boundary after the last non-zero byte within one batch size
/// from `batch_start`: where the written bytes of a last batch end.
fn written_end(map: &[u8], batch_start: usize, limits: Limits) -> usize {
    let window_end = map.len().min(batch_start + limits.batch_bytes_max);
    let last_nonzero = map[batch_start..window_end]
        .iter()
        .rposition(|b| *b != 0)
        .unwrap_or(0);
    align_up(batch_start + last_nonzero + 1)
}
