//! `gonets verify`'s walk of the rt journals (docs/adr/0036): each shard's
//! `rt-journal/` log, present while the journal is kept, checked with
//! storage's walk (every record's CRC and offset, every marker, the chain)
//! and every record's offset prefix. The journal holds copies of calls'
//! records the shard log may not have made durable yet; it carries no
//! anchors, so the walk proves its consistency only.

use crate::runtime::repair::log_dirs;
use crate::runtime::rt_journal::journal_dir;
use crate::runtime::verify::{shard_of, VerifyError};
use gonets_storage::verify::{self, Break, LogSummary, VerifyError as WalkError, Visited, Visitor};
use std::path::{Path, PathBuf};

/// Bytes of the shard-log offset before a journal record's own bytes.
const OFFSET_BYTES: usize = 8;

/// One journal's walk.
#[derive(Clone, Debug)]
pub struct JournalReport {
    /// The shard.
    pub shard: u16,
    /// Its directory.
    pub dir: PathBuf,
    /// Segments, batches, records, offsets, final chain.
    pub summary: LogSummary,
}

/// The first thing in a journal that does not check out.
#[derive(Clone, Debug)]
pub struct JournalBreak {
    /// The shard.
    pub shard: u16,
    /// Where, and what.
    pub at: Break,
}

impl std::fmt::Display for JournalBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {} rt journal, {}", self.shard, self.at)
    }
}

/// What [`verify_rt_journals`] found: the journals walked whole, and the
/// first break, where one was found (the walk stops there).
#[derive(Clone, Debug, Default)]
pub struct JournalWalk {
    /// Per journal, in shard order.
    pub journals: Vec<JournalReport>,
    /// The first break.
    pub broken: Option<JournalBreak>,
}

struct Checker<'a> {
    progress: &'a mut dyn FnMut(&str),
}

impl Visitor for Checker<'_> {
    fn record(&mut self, r: Visited<'_>) -> Result<(), String> {
        if r.payload.len() < OFFSET_BYTES {
            return Err(format!(
                "a journal record of {} bytes, shorter than its {OFFSET_BYTES}-byte offset",
                r.payload.len()
            ));
        }
        Ok(())
    }

    fn boundary(&mut self, _: u64, _: &[u8; 32], _: &Path, _: usize) {}

    fn segment_done(&mut self, path: &Path, summary: &LogSummary) {
        (self.progress)(&format!(
            "verify: {} done: {} records so far",
            path.display(),
            summary.records
        ));
    }
}

/// Walks every shard's rt journal in `data_dir` (read-only; refused while
/// the hub runs). Shards without one are passed over.
pub fn verify_rt_journals(
    data_dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<JournalWalk, VerifyError> {
    let mut walk = JournalWalk::default();
    // Bounded by the shards (each shard's log directory, then its history).
    for shard_dir in log_dirs(data_dir)?
        .iter()
        .filter(|d| !d.ends_with("history"))
    {
        let dir = journal_dir(shard_dir);
        if !dir.is_dir() {
            continue;
        }
        let shard = shard_of(shard_dir);
        let mut checker = Checker {
            progress: &mut *progress,
        };
        match verify::verify_log(&dir, &mut checker) {
            Ok(summary) => walk.journals.push(JournalReport {
                shard,
                dir,
                summary,
            }),
            Err(WalkError::Break(at)) => {
                walk.broken = Some(JournalBreak { shard, at });
                return Ok(walk);
            }
            Err(WalkError::Locked(dir)) => return Err(VerifyError::Locked(dir)),
            Err(WalkError::Io { path, source }) => return Err(VerifyError::Io { path, source }),
        }
    }
    Ok(walk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::rt_journal::RtJournal;
    use crate::runtime::test_executor::run_local;
    use gonets_storage::LogConfig;

    /// A data directory whose shard 0 keeps a journal of `records` copies.
    fn data_dir_with_journal(records: u64) -> tempfile::TempDir {
        let data = tempfile::tempdir().unwrap();
        let shard_dir = data.path().join("shard-0");
        std::fs::create_dir(&shard_dir).unwrap();
        run_local(move || async move {
            let config = LogConfig::small_for_tests();
            let (log, _) = gonets_storage::Log::open(&shard_dir, config.clone())
                .await
                .unwrap();
            log.close().await.unwrap();
            let mut j = RtJournal::open(&shard_dir, &config).await.unwrap();
            for offset in 0..records {
                j.append(offset, b"a call's record", &[], 1).await.unwrap();
            }
            j.log().commit_all().await.unwrap();
            j.log().close().await.unwrap();
        });
        data
    }

    #[test]
    fn given_a_kept_journal_when_verified_then_it_is_walked_whole() {
        let data = data_dir_with_journal(5);
        let walk = verify_rt_journals(data.path(), &mut |_| {}).expect("a data directory");
        assert!(walk.broken.is_none(), "{walk:?}");
        assert_eq!(walk.journals.len(), 1);
        assert_eq!(walk.journals[0].shard, 0);
        assert_eq!(walk.journals[0].summary.records, 5);
    }

    #[test]
    fn given_a_damaged_journal_when_verified_then_the_break_names_the_shard_and_place() {
        let data = data_dir_with_journal(5);
        let segment = std::fs::read_dir(journal_dir(&data.path().join("shard-0")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "seg"))
            .expect("a segment");
        let mut bytes = std::fs::read(&segment).unwrap();
        // The first batch starts after the 4 KiB header block: a byte of
        // its first record.
        bytes[4096 + 40] ^= 0xff;
        std::fs::write(&segment, bytes).unwrap();
        let walk = verify_rt_journals(data.path(), &mut |_| {}).expect("a data directory");
        let broken = walk.broken.expect("a break");
        assert_eq!(broken.shard, 0);
        assert_eq!(broken.at.segment, segment);
        assert!(
            broken.to_string().starts_with("shard 0 rt journal, "),
            "{broken}"
        );
        assert!(walk.journals.is_empty());
    }

    #[test]
    fn given_no_journal_when_verified_then_nothing_is_walked() {
        let data = tempfile::tempdir().unwrap();
        std::fs::create_dir(data.path().join("shard-0")).unwrap();
        let walk = verify_rt_journals(data.path(), &mut |_| {}).expect("a data directory");
        assert!(walk.journals.is_empty() && walk.broken.is_none());
    }
}
