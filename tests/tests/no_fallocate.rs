//! A filesystem without `fallocate` (issue 13, item 9): FUSE and some network
//! filesystems answer it with `EOPNOTSUPP`. The fail point
//! `storage::fallocate` makes every preallocation answer that; segments (and
//! the disk reserve) are then extended by writing zeros. The log must open,
//! roll, survive a crash (abandon) and a clean close, and recover every
//! committed record, with every segment at its full size and its blocks
//! allocated before use.
//!
//! Fail points are process-wide: each test holds a `fail::FailScenario`.

use fail::FailScenario;
use gonets_storage::{Log, LogConfig, RESERVE_FILE};
use gonets_tests::{append_expected, block_on, check_log_contents, segment_files};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// `EOPNOTSUPP` on Linux.
const EOPNOTSUPP: i32 = 95;
/// Records appended per phase: enough for several 256 KiB segments.
const RECORDS_PER_PHASE: u64 = 600;
/// Records per commit.
const GROUP: u64 = 8;

async fn append_committed(log: &Log, count: u64) {
    let end = log.stats().next_offset + count;
    while log.stats().next_offset < end {
        let mut last = 0;
        for _ in 0..GROUP {
            last = append_expected(log)
                .await
                .expect("append without fallocate");
        }
        log.commit(last).await.expect("commit without fallocate");
    }
}

/// Every segment file (and the reserve) is full size with its blocks allocated.
fn assert_files_filled(dir: &Path, config: &LogConfig) {
    let bases = segment_files(dir);
    assert!(bases.len() >= 3, "the log must have rolled: {bases:?}");
    for base in bases {
        let path = gonets_storage::segment::path(dir, base);
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.len(), config.segment_size_bytes, "{}", path.display());
        assert!(
            m.blocks() * 512 >= config.segment_size_bytes,
            "{} holds {} allocated bytes of {}",
            path.display(),
            m.blocks() * 512,
            config.segment_size_bytes
        );
    }
    let reserve = std::fs::metadata(dir.join(RESERVE_FILE)).expect("a reserve");
    assert_eq!(reserve.len(), config.reserve_bytes());
    assert!(reserve.blocks() * 512 >= config.reserve_bytes());
}

#[test]
fn given_a_filesystem_without_fallocate_when_the_log_rolls_crashes_and_reopens_then_it_recovers_every_committed_record(
) {
    let scenario = FailScenario::setup();
    fail::cfg("storage::fallocate", &format!("return({EOPNOTSUPP})")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::small_for_tests();
    let committed = {
        let (dir, config) = (dir.path().to_path_buf(), config.clone());
        block_on(async move {
            let (log, _) = Log::open(&dir, config.clone())
                .await
                .expect("open without fallocate");
            assert!(!log.space_low(), "the reserve is made by writing zeros");
            append_committed(&log, RECORDS_PER_PHASE).await;
            assert_files_filled(&dir, &config);
            let committed = log.stats().durable_offset;
            // A crash: nothing more is committed or checkpointed.
            log.abandon().await;
            committed
        })
    };
    let end = {
        let (dir, config) = (dir.path().to_path_buf(), config.clone());
        block_on(async move {
            let (log, report) = Log::open(&dir, config.clone())
                .await
                .expect("reopen without fallocate");
            assert!(report.corruptions.is_empty(), "{report:?}");
            let next = check_log_contents(&log).unwrap_or_else(|e| panic!("after the crash: {e}"));
            assert_eq!(next, committed, "every committed record, nothing more");
            append_committed(&log, RECORDS_PER_PHASE).await;
            assert_files_filled(&dir, &config);
            let end = check_log_contents(&log).unwrap_or_else(|e| panic!("after rolls: {e}"));
            log.close().await.expect("close without fallocate");
            end
        })
    };
    // The same files on a filesystem with fallocate (the fail point off).
    fail::remove("storage::fallocate");
    block_on(async move {
        let (log, report) = Log::open(dir.path(), config).await.unwrap();
        assert!(report.corruptions.is_empty(), "{report:?}");
        assert_eq!(check_log_contents(&log), Ok(end));
        log.close().await.unwrap();
    });
    scenario.teardown();
}
