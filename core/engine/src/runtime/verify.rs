//! `gonets verify`, `gonets anchors`, `gonets audit`: read-only walks of a
//! data directory's logs (docs/adr/0020-signed-anchors-and-verify.md).
//!
//! [`verify_data_dir`] checks, per shard, the shard's log then its history
//! log with storage's walk (every record's CRC and offset, every marker,
//! the chain across batches and segments), every in-log anchor's signature
//! and that its chain equals the chain recomputed at its offset, and then
//! every exported anchor given. It stops at the first break.
//! [`list_trust_records`] hands out the anchor and audit records.
//!
//! What it proves: without exported anchors, only that the logs are
//! internally consistent: whoever can write the disk can rewrite records,
//! recompute the chain and neutralise in-log anchors. With anchors kept
//! away from the disk, that the logs up to each anchor are the ones the
//! hub signed.

use crate::record::{is_lost, Record};
use crate::runtime::repair::{log_dirs, RepairError};
use crate::trust_record::{is_anchor, is_audit, AuditRecord};
use gonets_storage::verify::{self, LogSummary, VerifyError as WalkError, Visited, Visitor};
use gonets_trust::{Anchor, AnchoredLog, HubPublicKey};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the chain value at a batch boundary came from (kept for every
/// batch of a log: small).
#[derive(Clone, Copy, Debug)]
struct Boundary {
    chain: [u8; 32],
    /// Index into the log's segment paths.
    segment: u32,
    position: u64,
}

/// The chain values at a log's batch boundaries, and its segment files.
#[derive(Debug, Default)]
struct Boundaries {
    at: BTreeMap<u64, Boundary>,
    segments: Vec<PathBuf>,
}

impl Boundaries {
    fn get(&self, offset: &u64) -> Option<&Boundary> {
        self.at.get(offset)
    }

    fn segment(&self, b: &Boundary) -> &Path {
        &self.segments[b.segment as usize]
    }
}

/// A walked log's chain values at its batch boundaries, and its summary.
type Walked = (Boundaries, LogSummary);
/// The walked logs by (shard, 0 shard log | 1 history log).
type WalkedLogs = BTreeMap<(u16, u8), Walked>;

/// What one log's walk found.
#[derive(Clone, Debug)]
pub struct LogReport {
    /// The shard.
    pub shard: u16,
    /// Which of its logs.
    pub log: AnchoredLog,
    /// Its directory.
    pub dir: PathBuf,
    /// Segments, batches, records, offsets, final chain.
    pub summary: LogSummary,
    /// In-log anchors whose signature and chain were checked.
    pub anchors_checked: u64,
    /// In-log anchors whose offset retention dropped (signature checked only).
    pub anchors_unreachable: u64,
    /// The highest offset an anchor (in-log or exported) covers, checked.
    pub last_anchored: Option<u64>,
    /// Audit records.
    pub audit_records: u64,
    /// Offsets a start filled with [`Record::Lost`]: records an rt journal
    /// held and the shard log lost at a crash left gaps there (ADR 0036).
    pub lost_records: u64,
}

/// The first thing that does not check out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakReport {
    /// The shard.
    pub shard: u16,
    /// Which of its logs.
    pub log: AnchoredLog,
    /// The segment file, where the break lies in one.
    pub segment: Option<PathBuf>,
    /// Byte position in it.
    pub position: Option<usize>,
    /// The log offset.
    pub offset: u64,
    /// When an anchor's chain differs: the records rewritten lie in
    /// `[from, to)` (from the last anchor that matched to the one that did not).
    pub rewritten: Option<(u64, u64)>,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for BreakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {} {} log", self.shard, self.log.as_str())?;
        if let (Some(seg), Some(pos)) = (&self.segment, self.position) {
            write!(f, ", segment {} byte {}", seg.display(), pos)?;
        }
        write!(f, ", offset {}: {}", self.offset, self.what)?;
        if let Some((from, to)) = self.rewritten {
            write!(f, " (the records rewritten lie in offsets {from}..{to})")?;
        }
        Ok(())
    }
}

/// The outcome of [`verify_data_dir`].
#[derive(Debug)]
pub enum Verdict {
    /// Everything checked out.
    Verified {
        /// Per log.
        logs: Vec<LogReport>,
        /// Exported anchors checked against the logs (`None`: none given).
        exported_checked: Option<usize>,
        /// Exported anchors whose offset retention dropped (signature checked only).
        exported_unreachable: usize,
    },
    /// A break, and what was verified before it.
    Broken {
        /// The break.
        at: BreakReport,
        /// The logs walked whole before it.
        logs: Vec<LogReport>,
    },
}

impl Verdict {
    /// The process exit status: 0 verified, 1 a break.
    pub fn exit_code(&self) -> u8 {
        match self {
            Verdict::Verified { .. } => 0,
            Verdict::Broken { .. } => 1,
        }
    }
}

/// Why a data directory could not be checked (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Not a data directory, or unreadable.
    #[error(transparent)]
    DataDir(#[from] RepairError),
    /// A log is open in another process.
    #[error(
        "{0}: the log is open in another process: stop the hub before verifying its data directory"
    )]
    Locked(PathBuf),
    /// Reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// One log of a data directory.
#[derive(Clone, Debug)]
struct LogDir {
    shard: u16,
    log: AnchoredLog,
    dir: PathBuf,
}

/// The logs of `data_dir`, each shard's log before its history log.
fn logs_of(data_dir: &Path) -> Result<Vec<LogDir>, VerifyError> {
    let mut out = Vec::new();
    for dir in log_dirs(data_dir)? {
        let (log, shard_dir) = if dir.ends_with("history") {
            (AnchoredLog::History, dir.parent().unwrap_or(&dir))
        } else {
            (AnchoredLog::Shard, dir.as_path())
        };
        let shard = shard_of(shard_dir);
        out.push(LogDir { shard, log, dir });
    }
    Ok(out)
}

/// The shard a `shard-N` directory holds (`u16::MAX` for another name).
pub(crate) fn shard_of(shard_dir: &Path) -> u16 {
    shard_dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("shard-"))
        .and_then(|n| n.parse::<u16>().ok())
        .unwrap_or(u16::MAX)
}

/// The visitor of one log's walk.
struct Checker<'a> {
    at: &'a LogDir,
    key: &'a HubPublicKey,
    /// Chain values at this log's batch boundaries.
    boundaries: Boundaries,
    /// The shard log's boundaries (when walking its history log).
    shard_boundaries: Option<&'a Walked>,
    report: LogReport,
    progress: &'a mut dyn FnMut(&str),
    /// A break found by an anchor, with its range.
    rewritten: Option<(u64, u64)>,
}

impl Checker<'_> {
    /// Checks an anchor against `boundaries` of the log it is about.
    fn check_anchor(&mut self, a: &Anchor, own_offset: u64) -> Result<(), String> {
        if !a.verifies(self.key) {
            return Err(format!(
                "anchor of offset {} does not verify with hub key {}",
                a.offset, self.key.key_id
            ));
        }
        if a.shard != self.at.shard {
            return Err(format!(
                "anchor of shard {} in shard {}",
                a.shard, self.at.shard
            ));
        }
        let (boundaries, first, next) = if a.log == self.at.log {
            if a.offset > own_offset {
                return Err(format!(
                    "anchor of offset {} after its own record",
                    a.offset
                ));
            }
            (&self.boundaries, self.first_offset(), own_offset)
        } else if let Some((b, s)) = self.shard_boundaries {
            (b, s.first_offset, s.next_offset)
        } else {
            return Err("a history-log anchor in the shard's log".into());
        };
        let last_good = self.report.last_anchored.unwrap_or(first);
        match anchor_matches(a, boundaries, first, next) {
            AnchorCheck::Matches => {
                if a.log == self.at.log {
                    self.report.anchors_checked += 1;
                    self.report.last_anchored = Some(a.offset.max(last_good));
                }
                Ok(())
            }
            AnchorCheck::Unreachable => {
                self.report.anchors_unreachable += 1;
                Ok(())
            }
            AnchorCheck::Differs(what) if a.log == self.at.log => {
                self.rewritten = Some((last_good, a.offset));
                Err(what)
            }
            AnchorCheck::Differs(what) => Err(format!(
                "the history log's copy of a shard-log anchor does not match the shard's log: {what}"
            )),
        }
    }

    fn first_offset(&self) -> u64 {
        self.boundaries.at.keys().next().copied().unwrap_or(0)
    }
}

/// What an anchor says of a log.
enum AnchorCheck {
    Matches,
    /// Its offset lies before the log's first segment (retention).
    Unreachable,
    Differs(String),
}

fn anchor_matches(a: &Anchor, boundaries: &Boundaries, first: u64, next: u64) -> AnchorCheck {
    if a.offset < first {
        return AnchorCheck::Unreachable;
    }
    if a.offset > next {
        return AnchorCheck::Differs(format!(
            "the log no longer reaches anchored offset {} (it ends at {next}): records were removed",
            a.offset
        ));
    }
    match boundaries.get(&a.offset) {
        None => AnchorCheck::Differs(format!(
            "anchored offset {} is not a batch boundary of the log",
            a.offset
        )),
        Some(b) if b.chain != a.chain => AnchorCheck::Differs(format!(
            "the chain recomputed at anchored offset {} (batch at {} byte {}) differs from the \
             one the hub signed at {} ms: records before it were rewritten",
            a.offset,
            boundaries.segment(b).display(),
            b.position,
            a.time_ms
        )),
        Some(_) => AnchorCheck::Matches,
    }
}

impl Visitor for Checker<'_> {
    fn record(&mut self, r: Visited<'_>) -> Result<(), String> {
        if is_anchor(r.payload) {
            match Record::decode(r.payload) {
                Ok(Record::Anchor(a)) => self.check_anchor(&a, r.offset)?,
                _ => return Err("anchor record undecodable".into()),
            }
        } else if is_audit(r.payload) && self.at.log == AnchoredLog::Shard {
            self.report.audit_records += 1;
        } else if is_lost(r.payload) && self.at.log == AnchoredLog::Shard {
            self.report.lost_records += 1;
        }
        Ok(())
    }

    fn boundary(&mut self, offset: u64, chain: &[u8; 32], segment: &Path, position: usize) {
        let segments = &mut self.boundaries.segments;
        if segments.last().map(PathBuf::as_path) != Some(segment) {
            segments.push(segment.to_path_buf());
        }
        let b = Boundary {
            chain: *chain,
            segment: (segments.len() - 1) as u32,
            position: position as u64,
        };
        self.boundaries.at.insert(offset, b);
    }

    fn segment_done(&mut self, path: &Path, summary: &LogSummary) {
        (self.progress)(&format!(
            "verify: {} done: {} records, {} batches so far",
            path.display(),
            summary.records,
            summary.batches
        ));
    }
}

/// Checks every log of `data_dir` (read-only; refused while the hub runs)
/// and then every anchor of `exported`, against `key`. `progress` gets a
/// line per segment (the caller decides how often to show one).
pub fn verify_data_dir(
    data_dir: &Path,
    key: &HubPublicKey,
    exported: Option<&[Anchor]>,
    progress: &mut dyn FnMut(&str),
) -> Result<Verdict, VerifyError> {
    let mut reports = Vec::new();
    // The shard log's boundaries, kept while its history log is walked
    // and for the exported anchors: (shard, log) → them.
    let mut kept: WalkedLogs = BTreeMap::new();
    for at in logs_of(data_dir)? {
        let shard_key = (at.shard, 0);
        let shard_side = if at.log == AnchoredLog::History {
            kept.get(&shard_key)
        } else {
            None
        };
        let mut checker = Checker {
            at: &at,
            key,
            boundaries: Boundaries::default(),
            shard_boundaries: shard_side,
            report: LogReport {
                shard: at.shard,
                log: at.log,
                dir: at.dir.clone(),
                summary: LogSummary::default(),
                anchors_checked: 0,
                anchors_unreachable: 0,
                last_anchored: None,
                audit_records: 0,
                lost_records: 0,
            },
            progress: &mut *progress,
            rewritten: None,
        };
        match verify::verify_log(&at.dir, &mut checker) {
            Ok(summary) => {
                checker.report.summary = summary.clone();
                let boundaries = std::mem::take(&mut checker.boundaries);
                reports.push(checker.report);
                let log_key = (at.shard, u8::from(at.log == AnchoredLog::History));
                kept.insert(log_key, (boundaries, summary));
            }
            Err(WalkError::Break(b)) => {
                let at = BreakReport {
                    shard: at.shard,
                    log: at.log,
                    segment: Some(b.segment),
                    position: Some(b.position),
                    offset: b.offset,
                    rewritten: checker.rewritten,
                    what: b.what,
                };
                return Ok(Verdict::Broken { at, logs: reports });
            }
            Err(WalkError::Locked(dir)) => return Err(VerifyError::Locked(dir)),
            Err(WalkError::Io { path, source }) => return Err(VerifyError::Io { path, source }),
        }
    }
    let Some(exported) = exported else {
        return Ok(Verdict::Verified {
            logs: reports,
            exported_checked: None,
            exported_unreachable: 0,
        });
    };
    check_exported(exported, key, &kept, reports)
}

/// Checks exported anchors, each log's in ascending offsets, so that a
/// mismatch names the range since the last anchor that matched.
fn check_exported(
    exported: &[Anchor],
    key: &HubPublicKey,
    kept: &WalkedLogs,
    mut reports: Vec<LogReport>,
) -> Result<Verdict, VerifyError> {
    let mut sorted: Vec<&Anchor> = exported.iter().collect();
    sorted.sort_by_key(|a| (a.shard, a.log == AnchoredLog::History, a.offset));
    let (mut checked, mut unreachable) = (0usize, 0usize);
    for a in sorted {
        let log_key = (a.shard, u8::from(a.log == AnchoredLog::History));
        let broken = |what: String, rewritten| BreakReport {
            shard: a.shard,
            log: a.log,
            segment: None,
            position: None,
            offset: a.offset,
            rewritten,
            what,
        };
        if !a.verifies(key) {
            let what = format!(
                "exported anchor does not verify with hub key {}: the export file was changed, \
                 or another key signed it",
                key.key_id
            );
            return Ok(Verdict::Broken {
                at: broken(what, None),
                logs: reports,
            });
        }
        let Some((boundaries, summary)) = kept.get(&log_key) else {
            let what = "exported anchor of a log the data directory does not hold".into();
            return Ok(Verdict::Broken {
                at: broken(what, None),
                logs: reports,
            });
        };
        let report = reports
            .iter_mut()
            .find(|r| r.shard == a.shard && r.log == a.log)
            .expect("a kept log has its report");
        let last_good = report.last_anchored.unwrap_or(summary.first_offset);
        match anchor_matches(a, boundaries, summary.first_offset, summary.next_offset) {
            AnchorCheck::Matches => {
                checked += 1;
                report.last_anchored = Some(last_good.max(a.offset));
            }
            AnchorCheck::Unreachable => unreachable += 1,
            AnchorCheck::Differs(what) => {
                let mut at = broken(what, Some((last_good.min(a.offset), a.offset)));
                if let Some(b) = boundaries.get(&a.offset) {
                    at.segment = Some(boundaries.segment(b).to_path_buf());
                    at.position = Some(b.position as usize);
                }
                return Ok(Verdict::Broken { at, logs: reports });
            }
        }
    }
    Ok(Verdict::Verified {
        logs: reports,
        exported_checked: Some(checked),
        exported_unreachable: unreachable,
    })
}

/// A trust record found in a log.
#[derive(Debug)]
pub enum TrustRecord {
    /// A chain anchor.
    Anchor(Anchor),
    /// An audit record, with its shard and offset.
    Audit(u16, u64, AuditRecord),
}

/// Why a listing stopped.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The directory could not be read (exit status 2).
    #[error(transparent)]
    Unreadable(#[from] VerifyError),
    /// A log does not verify: the listing stops there (exit status 1).
    #[error("shard {shard} {} log: {brk}", log.as_str())]
    Break {
        /// The shard.
        shard: u16,
        /// Which log.
        log: AnchoredLog,
        /// Where and what.
        brk: verify::Break,
    },
}

/// Walks every log of `data_dir` (read-only) and hands out its anchors
/// (each once: the history log's copies of shard-log anchors are the same
/// anchors) and its audit records, in log order. Stops at a break.
pub fn list_trust_records(
    data_dir: &Path,
    each: &mut dyn FnMut(TrustRecord),
) -> Result<(), ListError> {
    let mut seen = std::collections::HashSet::new();
    for at in logs_of(data_dir)? {
        let mut lister = Lister {
            shard: at.shard,
            seen: &mut seen,
            each: &mut *each,
        };
        match verify::verify_log(&at.dir, &mut lister) {
            Ok(_) => {}
            Err(WalkError::Break(brk)) => {
                return Err(ListError::Break {
                    shard: at.shard,
                    log: at.log,
                    brk,
                })
            }
            Err(WalkError::Locked(d)) => return Err(VerifyError::Locked(d).into()),
            Err(WalkError::Io { path, source }) => {
                return Err(VerifyError::Io { path, source }.into())
            }
        }
    }
    Ok(())
}

struct Lister<'a> {
    shard: u16,
    seen: &'a mut std::collections::HashSet<Vec<u8>>,
    each: &'a mut dyn FnMut(TrustRecord),
}

impl Visitor for Lister<'_> {
    fn record(&mut self, r: Visited<'_>) -> Result<(), String> {
        if !is_anchor(r.payload) && !is_audit(r.payload) {
            return Ok(());
        }
        match Record::decode(r.payload) {
            Ok(Record::Anchor(a)) => {
                if self.seen.insert(a.signature.to_vec()) {
                    (self.each)(TrustRecord::Anchor(a));
                }
            }
            Ok(Record::Audit(a)) => (self.each)(TrustRecord::Audit(self.shard, r.offset, a)),
            _ => return Err("trust record undecodable".into()),
        }
        Ok(())
    }

    fn boundary(&mut self, _: u64, _: &[u8; 32], _: &Path, _: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boundaries() -> Boundaries {
        let mut b = Boundaries::default();
        b.segments.push(PathBuf::from("00000000000000000100.seg"));
        for (offset, chain) in [(100u64, [1u8; 32]), (110, [2; 32]), (125, [3; 32])] {
            let at = Boundary {
                chain,
                segment: 0,
                position: offset * 10,
            };
            b.at.insert(offset, at);
        }
        b
    }

    #[test]
    fn given_anchors_when_matched_against_a_log_then_each_case_is_told_apart() {
        let key = gonets_trust::HubKey::generate();
        let b = boundaries();
        let anchor = |offset, chain| Anchor::signed(&key, 0, offset, chain, 1);
        let check = |a: &Anchor| anchor_matches(a, &b, 100, 125);
        assert!(matches!(check(&anchor(110, [2; 32])), AnchorCheck::Matches));
        assert!(matches!(check(&anchor(125, [3; 32])), AnchorCheck::Matches));
        assert!(matches!(
            check(&anchor(90, [9; 32])),
            AnchorCheck::Unreachable
        ));
        let differs = |a: &Anchor| match check(a) {
            AnchorCheck::Differs(what) => what,
            _ => panic!("{a:?} must not match"),
        };
        assert!(differs(&anchor(110, [9; 32])).contains("rewritten"));
        assert!(differs(&anchor(111, [2; 32])).contains("not a batch boundary"));
        assert!(differs(&anchor(130, [2; 32])).contains("no longer reaches"));
    }

    #[test]
    fn given_a_break_report_when_shown_then_it_names_shard_log_place_and_range() {
        let at = BreakReport {
            shard: 3,
            log: AnchoredLog::History,
            segment: Some(PathBuf::from("x.seg")),
            position: Some(8192),
            offset: 40,
            rewritten: Some((20, 40)),
            what: "w".into(),
        };
        assert_eq!(
            at.to_string(),
            "shard 3 history log, segment x.seg byte 8192, offset 40: w \
             (the records rewritten lie in offsets 20..40)"
        );
    }
}
