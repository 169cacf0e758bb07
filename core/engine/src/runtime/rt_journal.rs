//! The rt journal (docs/adr/0036): a second, small log per shard that holds
//! a copy of every record of a call's exchange, so a call's answer is
//! durable, and goes to its caller, without waiting for the bulk bytes the
//! shard's log writes before it.
//!
//! A journal record is the shard log's offset of the record (u64, little
//! endian) and then the record's bytes, exactly as the log holds them. The
//! journal is written in the shard log's order. Its records are redundant
//! once the log is durable past them; retention drops them by segment.
//!
//! At a start, before replay, [`fold_into`] puts every journaled record at
//! or past the log's durable end back into the log **at its own offset**,
//! filling each offset between with [`Record::Lost`] (records the crash
//! lost; nobody was told they were durable) and makes the log durable. The
//! journal keeps its records: the log now holds them all, so a later fold
//! passes over them, and retention drops them with their segments. A crash
//! during the fold leaves the journal whole, and the next start folds what
//! the log still lacks. With the journal turned off, the fold removes it.

use crate::record::Record;
use crate::runtime::committer::Commits;
use gonets_storage::{Log, LogConfig, LogError, Slot};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The journal's directory inside a shard's log directory.
pub const JOURNAL_DIR: &str = "rt-journal";
/// Bytes before a record's own bytes in a journal record (its offset).
const OFFSET_BYTES: usize = 8;
/// Segments of the journal, bytes, at most (never larger than the shard
/// log's own): it holds only what the shard's log has not made durable
/// yet, so a few segments suffice.
const JOURNAL_SEGMENT_BYTES_MAX: u64 = 16 << 20;
/// Journal records kept in memory to map the journal's offsets to the log's
/// (one per journaled record the log has not made durable yet).
const PENDING_ENTRIES_MAX: usize = 1 << 20;

/// Where a shard's journal lives.
pub fn journal_dir(shard_dir: &Path) -> PathBuf {
    shard_dir.join(JOURNAL_DIR)
}

/// The journal's log settings, from the shard log's: a batch holds one of
/// the log's largest records and its offset; segments of at most 16 MiB and
/// no larger than the log's, yet of four batches at least.
pub fn journal_config(log: &LogConfig) -> LogConfig {
    let block = 4096;
    let batch_bytes_max = log.batch_bytes_max + block;
    let segment_size_bytes = JOURNAL_SEGMENT_BYTES_MAX
        .min(log.segment_size_bytes)
        .max(4 * batch_bytes_max as u64);
    LogConfig {
        segment_size_bytes,
        batch_bytes_max,
        // Its batches are small and rt's: never handed to a worker.
        dsync_writes: gonets_storage::DsyncWrites::Inline,
        prewrite_ahead_bytes: log.prewrite_ahead_bytes.min(segment_size_bytes / 2),
        checkpoint_interval_bytes: segment_size_bytes,
        recent_bytes_max: log.recent_bytes_max.min(segment_size_bytes as usize),
        ..log.clone()
    }
}

/// A shard's open journal and what maps its offsets to the log's: the
/// shard's driver appends a copy of each call's record ([`RtJournal::append`]),
/// asks for durability ([`RtJournal::want`]), learns how far the journal is
/// durable in the log's offsets ([`RtJournal::newly_durable`]) and drops
/// what the log holds durably too ([`RtJournal::redundant_below`]).
pub struct RtJournal {
    pub(crate) log: Log,
    /// Its segment size (smaller than the shard log's), bytes.
    pub(crate) segment_size_bytes: u64,
    pub(crate) commits: Rc<Commits>,
    /// (journal offset, log offset) of the journaled records the log has
    /// not made durable yet, in order: retention keeps them.
    pending: VecDeque<(u64, u64)>,
    /// The journal offset of the last record reported durable in the
    /// journal ([`RtJournal::newly_durable`]).
    reported: Option<u64>,
    /// The last journal offset appended and not yet asked to be committed.
    appended_last: Option<u64>,
    /// Reused buffer of one record's offset.
    head: Vec<u8>,
}

impl RtJournal {
    /// Opens the journal of the shard whose log directory is `shard_dir`,
    /// after [`fold_into`] (what it still holds, the log holds too). Its
    /// directory is made durable in `shard_dir` first: a journal whose
    /// entry a power loss could take away would take acknowledged answers
    /// with it. Blocking calls: this runs once, at the shard's start.
    pub async fn open(shard_dir: &Path, log: &LogConfig) -> Result<RtJournal, LogError> {
        let config = journal_config(log);
        let segment_size_bytes = config.segment_size_bytes;
        let dir = journal_dir(shard_dir);
        gonets_storage::durable_file::create_dir_all(&dir)
            .map_err(|e| LogError::io("create the rt journal's directory", &dir, e))?;
        let (journal, _) = Log::open(dir, config).await?;
        let commits = Commits::start(journal.clone());
        Ok(RtJournal {
            log: journal,
            segment_size_bytes,
            commits,
            pending: VecDeque::new(),
            reported: None,
            appended_last: None,
            head: Vec::with_capacity(OFFSET_BYTES),
        })
    }

    /// The journal's own log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Appends a copy of the log's record at `offset`: `head` then
    /// `payload` (the parts the log was given).
    pub async fn append(
        &mut self,
        offset: u64,
        head: &[u8],
        payload: &[u8],
        timestamp_ns: u64,
    ) -> Result<(), LogError> {
        assert!(
            self.pending.len() < PENDING_ENTRIES_MAX,
            "rt journal: {PENDING_ENTRIES_MAX} records wait for its commits"
        );
        assert!(
            self.pending.back().is_none_or(|(_, o)| *o < offset),
            "journaled in the log's order"
        );
        self.head.clear();
        self.head.extend_from_slice(&offset.to_le_bytes());
        let parts: [&[u8]; 3] = [&self.head, head, payload];
        let got = match self.log.try_append_parts(&parts, timestamp_ns, 0) {
            Err(LogError::Busy) => self.log.append_parts(&parts, timestamp_ns, 0).await,
            other => other,
        }?;
        self.pending.push_back((got, offset));
        self.appended_last = Some(got);
        Ok(())
    }

    /// Asks for everything journaled so far to be made durable.
    pub fn want(&mut self) {
        if let Some(last) = self.appended_last.take() {
            self.commits.want(last);
        }
    }

    /// The exclusive end, in the log's offsets, of what the journal has
    /// made durable since the last call: `Some(last log offset + 1)`.
    pub fn newly_durable(&mut self) -> Option<u64> {
        let durable = self.commits.durable();
        // From the back: only records still in flight are passed over.
        let &(j, o) = self.pending.iter().rev().find(|(j, _)| *j < durable)?;
        if self.reported.is_some_and(|r| r >= j) {
            return None;
        }
        self.reported = Some(j);
        Some(o + 1)
    }

    /// Forgets the records the log holds durably now (its durable end is
    /// `log_durable`) and returns the journal offset below which retention
    /// may drop records: the first the log still lacks.
    pub fn redundant_below(&mut self, log_durable: u64) -> u64 {
        // Bounded by the pending records.
        while self.pending.front().is_some_and(|(_, o)| *o < log_durable) {
            self.pending.pop_front();
        }
        match self.pending.front() {
            Some((j, _)) => *j,
            None => self.log.stats().next_offset,
        }
    }
}

/// What [`fold_into`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FoldReport {
    /// Journaled records put back into the log.
    pub restored: u64,
    /// Offsets filled with [`Record::Lost`].
    pub lost: u64,
    /// Damage the journal's own recovery found (each reported in a warning;
    /// what could be read was folded).
    pub journal_damage: usize,
}

/// Puts the journaled records the shard's `log` lacks back into it at their
/// own offsets (module doc) and makes the log durable; then, unless `keep`
/// (the journal stays on), removes the journal's files. Without a journal
/// directory, does nothing.
pub async fn fold_into(
    log: &Log,
    shard_dir: &Path,
    log_config: &LogConfig,
    keep: bool,
) -> Result<FoldReport, LogError> {
    let dir = journal_dir(shard_dir);
    if !dir.exists() {
        return Ok(FoldReport::default());
    }
    let (journal, recovery) = Log::open(&dir, journal_config(log_config)).await?;
    if !recovery.corruptions.is_empty() {
        // A damaged journal record was never the only copy anybody was
        // told of unless the log lost it too; what can be read is folded.
        tracing::warn!(dir = %dir.display(), corruptions = ?recovery.corruptions, "rt journal recovery found damage");
    }
    let report = restore(log, &journal).await;
    let closed = journal.close().await;
    let mut report = report?;
    report.journal_damage = recovery.corruptions.len();
    closed?;
    if !keep {
        // Only once the log holds them durably: a crash before this folds again.
        remove_journal(&dir);
    }
    if report.restored > 0 {
        tracing::warn!(restored = report.restored, lost = report.lost, dir = %dir.display(),
            "restored calls' records from the rt journal that the shard log lost at a crash");
    }
    Ok(report)
}

/// Appends every journaled record at or past `log`'s end, with `Lost`
/// fills, and commits.
async fn restore(log: &Log, journal: &Log) -> Result<FoldReport, LogError> {
    let mut report = FoldReport::default();
    let mut lost = Vec::new();
    Record::Lost.encode(&mut lost);
    let start = journal.stats().start_offset;
    // Bounded by the journal's durable records.
    for slot in journal.iter_from(start) {
        let Slot::Present(r) = slot else {
            continue;
        };
        let bytes = r.payload();
        if bytes.len() < OFFSET_BYTES {
            continue;
        }
        let (offset, record) = bytes.split_at(OFFSET_BYTES);
        let offset = u64::from_le_bytes(offset.try_into().expect("8 bytes"));
        let next = log.stats().next_offset;
        if offset < next {
            continue; // the log has it
        }
        // Bounded by the records the log had not made durable at the crash.
        for _ in next..offset {
            log.append(&lost, r.timestamp_ns(), 0).await?;
            report.lost += 1;
        }
        let got = log.append(record, r.timestamp_ns(), 0).await?;
        assert_eq!(
            got, offset,
            "a journaled record goes back to its own offset"
        );
        report.restored += 1;
    }
    if report.restored > 0 {
        log.commit_all().await?;
    }
    Ok(report)
}

/// Removes a journal no longer kept (everything in it is in the log, so a
/// failure only leaves files behind, and the next start tries again).
/// Blocking calls: this runs once, at the shard's start, before it serves.
fn remove_journal(dir: &Path) {
    let removed = std::fs::remove_dir_all(dir).and_then(|()| match dir.parent() {
        Some(parent) => std::fs::File::open(parent)?.sync_all(),
        None => Ok(()),
    });
    if let Err(e) = removed {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove the rt journal no longer kept");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::test_executor::run_local;

    /// A record whose bytes say which it is.
    fn record(n: u8) -> Vec<u8> {
        let mut out = Vec::new();
        Record::SnapshotPart(bytes::Bytes::from(vec![n; 3])).encode(&mut out);
        out
    }

    async fn log_with(dir: &Path, n: u8) -> Log {
        let (log, _) = Log::open(dir, LogConfig::small_for_tests()).await.unwrap();
        for i in 0..n {
            log.append(&record(i), 1, 0).await.unwrap();
        }
        log.commit_all().await.unwrap();
        log
    }

    async fn journal_with(dir: &Path, entries: &[u64]) -> RtJournal {
        let mut j = RtJournal::open(dir, &LogConfig::small_for_tests())
            .await
            .unwrap();
        for &o in entries {
            let r = record(o as u8);
            j.append(o, &r, &[], 1).await.unwrap();
        }
        j.want();
        // Bounded by one commit.
        while !j.commits.settled() {
            j.commits.wake_driver.wait().await;
        }
        j
    }

    fn at(log: &Log, offset: u64) -> Record {
        let r = log.read(offset).present().expect("present");
        Record::decode(r.payload()).expect("a record")
    }

    #[test]
    fn given_journal_ahead_of_the_log_when_folded_then_its_records_are_back_at_their_offsets() {
        run_local(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = log_with(dir.path(), 3).await;
            let j = journal_with(dir.path(), &[1, 5, 7]).await;
            j.commits.stop();
            j.log.close().await.unwrap();
            let config = LogConfig::small_for_tests();
            let report = fold_into(&log, dir.path(), &config, true).await.unwrap();
            assert_eq!(
                report,
                FoldReport {
                    restored: 2,
                    lost: 3,
                    journal_damage: 0,
                }
            );
            assert_eq!(log.durable_offset(), 8, "made durable");
            for (offset, want) in [(3, None), (4, None), (5, Some(5)), (6, None), (7, Some(7))] {
                let got = at(&log, offset);
                match want {
                    None => assert_eq!(got, Record::Lost, "offset {offset}"),
                    Some(n) => assert_eq!(got, Record::decode(&record(n)).unwrap()),
                }
            }
            assert_eq!(
                at(&log, 1),
                Record::decode(&record(1)).unwrap(),
                "the log's own"
            );
            // Folding again finds nothing the log lacks; the journal stays.
            let again = fold_into(&log, dir.path(), &config, true).await.unwrap();
            assert_eq!(again, FoldReport::default());
            assert!(journal_dir(dir.path()).exists());
            log.close().await.unwrap();
        });
    }

    #[test]
    fn given_a_fold_that_filled_gaps_when_verified_then_the_lost_offsets_are_counted() {
        let data = tempfile::tempdir().unwrap();
        let shard_dir = data.path().join("shard-0");
        std::fs::create_dir(&shard_dir).unwrap();
        let dir = shard_dir.clone();
        run_local(move || async move {
            let shard_dir = dir;
            let log = log_with(&shard_dir, 3).await;
            let j = journal_with(&shard_dir, &[4, 6]).await;
            j.commits.stop();
            j.log.close().await.unwrap();
            let config = LogConfig::small_for_tests();
            let report = fold_into(&log, &shard_dir, &config, false).await.unwrap();
            assert_eq!(
                report,
                FoldReport {
                    restored: 2,
                    lost: 2,
                    journal_damage: 0,
                }
            );
            log.close().await.unwrap();
        });
        let key = gonets_trust::HubKey::generate().public();
        let verdict = crate::runtime::verify::verify_data_dir(data.path(), &key, None, &mut |_| {})
            .expect("a data directory");
        let crate::runtime::verify::Verdict::Verified { logs, .. } = verdict else {
            panic!("the folded log checks out: {verdict:?}");
        };
        assert_eq!(logs.len(), 1, "the journal's directory was removed");
        assert_eq!(logs[0].summary.records, 7);
        assert_eq!(logs[0].lost_records, 2, "offsets 3 and 5");
    }

    #[test]
    fn given_journal_no_longer_kept_when_folded_then_restored_and_removed() {
        run_local(|| async {
            let dir = tempfile::tempdir().unwrap();
            let log = log_with(dir.path(), 2).await;
            let j = journal_with(dir.path(), &[2]).await;
            j.commits.stop();
            j.log.close().await.unwrap();
            let config = LogConfig::small_for_tests();
            let report = fold_into(&log, dir.path(), &config, false).await.unwrap();
            assert_eq!(report.restored, 1);
            assert!(!journal_dir(dir.path()).exists());
            assert_eq!(at(&log, 2), Record::decode(&record(2)).unwrap());
            log.close().await.unwrap();
        });
    }

    #[test]
    fn given_records_journaled_when_durable_then_reported_in_the_logs_offsets() {
        run_local(|| async {
            let dir = tempfile::tempdir().unwrap();
            let mut j = journal_with(dir.path(), &[10, 12]).await;
            assert_eq!(j.newly_durable(), Some(13));
            assert_eq!(j.newly_durable(), None, "reported once");
            // Durable in the journal is not enough to drop: the log must be too.
            assert_eq!(
                j.redundant_below(11),
                1,
                "the copy of 12 stays while the log lacks it"
            );
            assert_eq!(j.newly_durable(), None);
            assert_eq!(
                j.redundant_below(13),
                2,
                "all of it is in the log once the log passes 12"
            );
            j.commits.stop();
            j.log.close().await.unwrap();
        });
    }
}
