//! The operator's repair of a damaged log (`gonets repair`): copy every
//! damaged range into `<dir>/quarantine/` with a report a person can read, and
//! record the ranges as *accepted* in a durable file, so the owner of the log
//! (the engine's replay) may skip exactly those offsets on later opens.
//!
//! Nothing in the segments is changed: the damaged bytes stay where they are
//! (evidence), the quarantine holds a copy, and the accepted file only says
//! which `Unreadable` ranges an operator has seen and accepted as lost.
//!
//! The accepted file (`accepted-damage`) is text, one range per line, each
//! line carrying its own CRC32C so a damaged line is never trusted (it is
//! skipped with a warning: that damage counts as not accepted, the safe side):
//! ```text
//! gonets-accepted-damage 1
//! <segment_base> <position> <first_offset> <end_offset> <crc32c hex of the four numbers> <what>
//! ```

use crate::error::{Corruption, LogError};
use crate::log::{sync_dir, Log};
use crate::marker::BLOCK_SIZE_BYTES;
use crate::recovery::RecoveryReport;
use crate::LogConfig;
use std::io::Write;
use std::path::{Path, PathBuf};

/// File in the log directory listing the damaged ranges an operator accepted.
pub const ACCEPTED_DAMAGE_FILE: &str = "accepted-damage";
/// Folder in the log directory holding set-aside files and copies of damaged bytes.
pub const QUARANTINE_DIR: &str = "quarantine";
const ACCEPTED_HEADER: &str = "gonets-accepted-damage 1";
/// Name of the human-readable report `repair` writes into the quarantine folder.
pub const REPAIR_REPORT_FILE: &str = "repair-report.txt";

/// What [`repair`] found and did.
#[derive(Clone, Debug)]
pub struct RepairReport {
    /// The log directory.
    pub dir: PathBuf,
    /// Every damaged range of the whole log (all segments scanned), now accepted.
    pub damaged: Vec<Corruption>,
    /// Copies of the damaged bytes written into `<dir>/quarantine/`, one per range.
    pub quarantine_files: Vec<PathBuf>,
    /// The human-readable report (None when the log had no damage).
    pub report_file: Option<PathBuf>,
    /// The durable list of accepted ranges.
    pub accepted_file: PathBuf,
    /// What the normal recovery of the open did (torn tail cut, files quarantined, ...).
    pub recovery: RecoveryReport,
}

/// Opens the log (normal recovery), copies the bytes of every damaged range it
/// reports into `<dir>/quarantine/` with a human-readable report file (what,
/// segment, position, offsets, why), and records those ranges as accepted in
/// a durable file in the log dir (tmp + fdatasync + rename + dir fsync).
/// Idempotent: running it again finds the same ranges, rewrites the same
/// files with the same content and accepts nothing new. Returns what it did.
///
/// Every segment is scanned, also those a checkpoint covers (which a normal
/// open indexes only on first read), so the report is complete. The copies
/// and the report use blocking file calls: this is an offline operator
/// command, run before the log serves anyone.
pub async fn repair(dir: &Path, config: LogConfig) -> Result<RepairReport, LogError> {
    let (log, recovery) = Log::open(dir, config).await?;
    let result = repair_open_log(&log, recovery).await;
    let closed = log.close().await;
    let report = result?;
    closed?;
    Ok(report)
}

async fn repair_open_log(log: &Log, recovery: RecoveryReport) -> Result<RepairReport, LogError> {
    let damaged = log.scan_all();
    let dir = log.state.borrow().dir.clone();
    let accepted_file = dir.join(ACCEPTED_DAMAGE_FILE);
    let mut report = RepairReport {
        dir: dir.clone(),
        damaged: damaged.clone(),
        quarantine_files: vec![],
        report_file: None,
        accepted_file: accepted_file.clone(),
        recovery,
    };
    if damaged.is_empty() {
        tracing::info!(dir = %dir.display(), "repair: no damaged range in the log");
        return Ok(report);
    }
    let qdir = dir.join(QUARANTINE_DIR);
    std::fs::create_dir_all(&qdir).map_err(|e| LogError::io("create quarantine", &qdir, e))?;
    let mut text = format!(
        "gonets repair report\nlog directory: {}\nwritten at: {} s since the Unix epoch\n\
         damaged ranges: {}\n\nEach range's offsets are lost: their records are never served.\n\
         The segment files are unchanged; a copy of each range's bytes is beside this report.\n\n",
        dir.display(),
        unix_now_s(),
        damaged.len()
    );
    for c in &damaged {
        let (path, start, end) = log.damaged_extent(c);
        let copy = qdir.join(format!(
            "damage-{:020}-{:010}-{}-{}.bin",
            c.segment_base, start, c.first_offset, c.end_offset
        ));
        copy_range(&path, start, end, &copy)?;
        text.push_str(&format!(
            "- offsets [{}, {}) ({} records) lost\n  segment file: {}\n  position: {} (bytes {}..{} copied to {})\n  why: {}\n",
            c.first_offset,
            c.end_offset,
            c.end_offset - c.first_offset,
            path.display(),
            c.position,
            start,
            end,
            copy.file_name().unwrap_or_default().to_string_lossy(),
            c.what
        ));
        tracing::error!(dir = %dir.display(), file = %path.display(), position = c.position,
            first_offset = c.first_offset, end_offset = c.end_offset, what = %c.what,
            "repair: damaged range copied to quarantine and accepted as lost");
        report.quarantine_files.push(copy);
    }
    let report_path = qdir.join(REPAIR_REPORT_FILE);
    write_durably(&qdir, &report_path, text.as_bytes())?;
    sync_dir(&qdir).await?;
    let mut accepted = log.state.borrow().accepted.clone();
    for c in &damaged {
        if !accepted.iter().any(|a| covers(a, c)) {
            accepted.push(c.clone());
        }
    }
    write_durably(&dir, &accepted_file, encode_accepted(&accepted).as_bytes())?;
    sync_dir(&dir).await?;
    log.state.borrow_mut().accepted = accepted;
    report.report_file = Some(report_path);
    Ok(report)
}

impl Log {
    /// True when the operator accepted this damaged range with [`repair`]
    /// (the accepted file is read at open): its offsets lie inside a range
    /// the operator accepted.
    pub fn is_damage_accepted(&self, c: &Corruption) -> bool {
        self.state.borrow().accepted.iter().any(|a| covers(a, c))
    }

    /// The ranges accepted with [`repair`], as read at open.
    pub fn accepted_damage(&self) -> Vec<Corruption> {
        self.state.borrow().accepted.clone()
    }

    /// Indexes every segment not scanned yet and returns every damaged range.
    fn scan_all(&self) -> Vec<Corruption> {
        let mut st = self.state.borrow_mut();
        for i in 0..st.segments.len() {
            crate::read::ensure_indexed(&mut st, i);
        }
        let mut all = st.corruptions.clone();
        all.sort_by_key(|c| (c.first_offset, c.segment_base, c.position));
        all.dedup();
        all
    }

    /// The file and byte range holding a damaged range: from the block of its
    /// first damaged byte to the next intact record the index knows (or the end
    /// of the segment).
    fn damaged_extent(&self, c: &Corruption) -> (PathBuf, u64, u64) {
        let st = self.state.borrow();
        let seg = st.segments.iter().find(|s| s.base_offset == c.segment_base);
        let Some(seg) = seg else {
            return (
                crate::segment::path(&st.dir, c.segment_base),
                c.position,
                c.position,
            );
        };
        let start = c.position - c.position % BLOCK_SIZE_BYTES as u64;
        let len = seg.map.len() as u64;
        let end = match seg.index.floor(c.end_offset) {
            Some((o, p)) if o == c.end_offset && p as u64 > start => p as u64,
            _ => len,
        };
        let end = end.max((start + BLOCK_SIZE_BYTES as u64).min(len));
        (seg.path.clone(), start, end)
    }
}

/// True when `a` (accepted) contains the offsets of `c`. Offsets alone decide:
/// the same loss may be reported against the next segment by a full scan and
/// against its own by a lazy one.
fn covers(a: &Corruption, c: &Corruption) -> bool {
    a.first_offset <= c.first_offset
        && c.end_offset <= a.end_offset.max(a.first_offset)
        && (c.first_offset < a.end_offset || c.first_offset == c.end_offset)
}

fn unix_now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn line_crc(c: &Corruption) -> u32 {
    let nums = format!(
        "{} {} {} {}",
        c.segment_base, c.position, c.first_offset, c.end_offset
    );
    crc32c::crc32c(nums.as_bytes())
}

fn encode_accepted(ranges: &[Corruption]) -> String {
    let mut s = format!("{ACCEPTED_HEADER}\n");
    for c in ranges {
        let what: String = c
            .what
            .chars()
            .map(|ch| if ch.is_control() { ' ' } else { ch })
            .collect();
        s.push_str(&format!(
            "{} {} {} {} {:08x} {}\n",
            c.segment_base,
            c.position,
            c.first_offset,
            c.end_offset,
            line_crc(c),
            what
        ));
    }
    s
}

/// Reads the accepted ranges of a log directory; a line that fails its check
/// is skipped (its damage counts as not accepted) and logged.
pub(crate) fn read_accepted(dir: &Path) -> Result<Vec<Corruption>, LogError> {
    let path = dir.join(ACCEPTED_DAMAGE_FILE);
    let text = match std::fs::read(&path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(LogError::io("read accepted damage", &path, e)),
    };
    let mut lines = text.lines();
    if lines.next() != Some(ACCEPTED_HEADER) {
        tracing::warn!(dir = %dir.display(), file = %path.display(),
            "accepted-damage file has no valid header: ignored, no damage counts as accepted");
        return Ok(vec![]);
    }
    let mut out = vec![];
    for (n, line) in lines.enumerate() {
        match parse_line(line) {
            Some(c) => out.push(c),
            None => tracing::warn!(dir = %dir.display(), file = %path.display(), line = n + 2,
                "accepted-damage line fails its check: ignored (that damage counts as not accepted)"),
        }
    }
    Ok(out)
}

fn parse_line(line: &str) -> Option<Corruption> {
    let mut parts = line.splitn(6, ' ');
    let mut num = || parts.next()?.parse::<u64>().ok();
    let (segment_base, position, first_offset, end_offset) = (num()?, num()?, num()?, num()?);
    let crc = u32::from_str_radix(parts.next()?, 16).ok()?;
    let c = Corruption {
        segment_base,
        position,
        first_offset,
        end_offset,
        what: parts.next().unwrap_or("").to_string(),
    };
    (line_crc(&c) == crc && first_offset <= end_offset).then_some(c)
}

/// Writes `bytes` to `path` atomically: a temporary file, fdatasync, rename.
/// The caller syncs the directory.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let tmp = dir.join(format!(
        "{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(|e| LogError::io("create", &tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| LogError::io("write", &tmp, e))?;
    f.sync_data().map_err(|e| LogError::io("sync", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| LogError::io("rename", path, e))
}

/// Copies bytes `[start, end)` of `from` into a new file `to`, durably (the
/// caller syncs the directory).
fn copy_range(from: &Path, start: u64, end: u64, to: &Path) -> Result<(), LogError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut src = std::fs::File::open(from).map_err(|e| LogError::io("open", from, e))?;
    src.seek(SeekFrom::Start(start))
        .map_err(|e| LogError::io("seek", from, e))?;
    let mut bytes = vec![];
    src.take(end.saturating_sub(start))
        .read_to_end(&mut bytes)
        .map_err(|e| LogError::io("read", from, e))?;
    let dir = to.parent().unwrap_or(Path::new("."));
    write_durably(dir, to, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_accepted_ranges_when_encoded_then_parse_back_and_reject_damaged_lines() {
        let c = Corruption {
            segment_base: 100,
            position: 8192,
            first_offset: 120,
            end_offset: 130,
            what: "BadCrc\nin a batch".into(),
        };
        let text = encode_accepted(std::slice::from_ref(&c));
        let line = text.lines().nth(1).unwrap();
        let back = parse_line(line).unwrap();
        assert_eq!(
            (back.segment_base, back.first_offset, back.end_offset),
            (100, 120, 130)
        );
        assert!(parse_line(&line.replace("120", "121")).is_none());
    }

    #[test]
    fn given_accepted_range_when_checked_then_contained_ranges_only() {
        let a = Corruption {
            segment_base: 0,
            position: 4096,
            first_offset: 10,
            end_offset: 20,
            what: String::new(),
        };
        let mut c = a.clone();
        c.first_offset = 12;
        c.end_offset = 15;
        assert!(covers(&a, &c));
        c.end_offset = 21;
        assert!(!covers(&a, &c));
        c.first_offset = 5;
        c.end_offset = 9;
        assert!(!covers(&a, &c));
    }
}
