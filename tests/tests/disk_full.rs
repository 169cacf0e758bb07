//! A full disk: on a small tmpfs a roll that finds the disk full uses the
//! log's reserve (nothing fails, the log turns *space low*) and the log
//! leaves the low state by itself once space is freed; when even the
//! reserve is used up, appends or commits fail with the typed
//! `LogError::StorageFull`, what was acknowledged stays intact, and once
//! space is freed a reopened log takes new records again.
//!
//! Mounting needs root (CAP_SYS_ADMIN); without it these tests fail and say so.

use gonets_storage::{Log, LogConfig, LogError, PoisonCause, Slot};
use gonets_tests::{
    append_expected, append_until_error, block_on, check_log_contents, check_offsets, TmpfsMount,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::path::Path;

/// Bound on appends while waiting for the disk to fill (1 MiB holds far fewer).
const APPENDS_MAX: u64 = 20_000;
/// Largest group covered by one commit.
const GROUP_MAX: usize = 16;

fn mount(size: &str) -> TmpfsMount {
    TmpfsMount::new(size).unwrap_or_else(|e| {
        panic!("the disk-full tests need a small tmpfs and could not mount one: {e}")
    })
}

/// Appends and commits deterministic records in random groups until something fails;
/// returns the end of what was acknowledged and the error.
async fn fill(log: &Log, rng: &mut StdRng) -> (u64, LogError) {
    append_until_error(log, rng, APPENDS_MAX, GROUP_MAX)
        .await
        .unwrap_or_else(|| {
            panic!("{APPENDS_MAX} records fit on a 1 MiB tmpfs: the disk never filled")
        })
}

/// Appends and commits `count` more records, every call expected to succeed.
async fn append_committed(log: &Log, count: u64, rng: &mut StdRng) {
    let end = log.stats().next_offset + count;
    while log.stats().next_offset < end {
        let mut last = 0;
        for _ in 0..rng.gen_range(1..=GROUP_MAX) {
            last = append_expected(log).await.expect("append with free space");
        }
        log.commit(last).await.expect("commit with free space");
    }
}

#[test]
fn given_full_tmpfs_when_appending_then_storage_full_and_acknowledged_records_survive_remount_and_reopen(
) {
    let tmpfs = mount("1m");
    let dir = tmpfs.path().join("log");
    let config = LogConfig::small_for_tests();
    let (acked_end, full_at) = {
        let (dir, config) = (dir.clone(), config.clone());
        block_on(async move {
            let (log, _) = Log::open(&dir, config)
                .await
                .expect("open on an empty tmpfs");
            let mut rng = StdRng::seed_from_u64(1);
            let (acked_end, err) = fill(&log, &mut rng).await;
            assert!(
                matches!(err, LogError::StorageFull),
                "a full disk surfaced as {err:?} ({err}), expected LogError::StorageFull"
            );
            assert!(
                acked_end > 0,
                "nothing was acknowledged before the disk filled"
            );
            assert!(
                log.stats().segments >= 2,
                "the disk should fill on a roll, after the first segment"
            );
            assert_eq!(log.poisoned(), Some(PoisonCause::StorageFull));
            let stats = log.stats();
            assert_eq!(
                stats.reserve_releases, 1,
                "the reserve must be used before the log fails: {stats:?}"
            );
            assert!(stats.space_low, "{stats:?}");
            // Still full: nothing more is taken or acknowledged.
            match append_expected(&log).await {
                Err(LogError::StorageFull) => {}
                other => panic!("append on a full disk: {other:?}"),
            }
            if stats.next_offset > stats.durable_offset {
                match log.commit(stats.next_offset - 1).await {
                    Err(LogError::StorageFull) => {}
                    other => panic!("commit on a full disk: {other:?}"),
                }
            }
            assert_eq!(log.stats().durable_offset, stats.durable_offset);
            let lost = check_offsets(&log, 0..acked_end);
            assert!(
                lost.is_empty(),
                "acknowledged records unreadable on a full disk: {lost:?}"
            );
            assert!(matches!(log.read(stats.durable_offset), Slot::Empty));
            match log.close().await {
                Ok(()) | Err(LogError::StorageFull) => {}
                Err(e) => panic!("close on a full disk: {e:?}"),
            }
            (acked_end, stats.durable_offset)
        })
    };

    tmpfs.resize("8m").unwrap_or_else(|e| panic!("{e}"));
    let end = {
        let (dir, config) = (dir.clone(), config.clone());
        block_on(async move {
            let (log, report) = Log::open(&dir, config)
                .await
                .expect("reopen after freeing space");
            assert!(
                report.corruptions.is_empty(),
                "corruptions after the disk filled: {report:?}"
            );
            let lost = check_offsets(&log, 0..acked_end);
            assert!(
                lost.is_empty(),
                "acknowledged records lost after the disk filled: {lost:?}"
            );
            let next = check_log_contents(&log).unwrap_or_else(|e| panic!("after reopen: {e}"));
            assert_eq!(
                next, full_at,
                "the log must end where it was durable when the disk filled"
            );
            // Enough for two more segments: rolls need the freed space.
            let segments = log.stats().segments;
            let mut rng = StdRng::seed_from_u64(2);
            append_committed(&log, 400, &mut rng).await;
            assert!(
                log.stats().segments > segments,
                "the log must roll into the freed space"
            );
            let end = check_log_contents(&log).unwrap_or_else(|e| panic!("after new appends: {e}"));
            log.close().await.expect("close with free space");
            end
        })
    };
    block_on(async move {
        let (log, report) = Log::open(&dir, config).await.unwrap();
        assert!(report.corruptions.is_empty(), "{report:?}");
        assert_eq!(check_log_contents(&log), Ok(end));
        log.close().await.unwrap();
    });
}

/// Appends and commits until the log turns space low; every commit must succeed.
async fn fill_until_space_low(log: &Log, rng: &mut StdRng) -> u64 {
    while !log.stats().space_low {
        assert!(
            log.stats().next_offset < APPENDS_MAX,
            "{APPENDS_MAX} records fit on a 1 MiB tmpfs: the disk never filled"
        );
        append_committed(log, 1 + rng.gen_range(0..GROUP_MAX as u64), rng).await;
    }
    log.stats().durable_offset
}

/// Waits (bounded) until the log leaves the space-low state.
async fn wait_space_back(log: &Log) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while log.space_low() {
        assert!(
            std::time::Instant::now() < deadline,
            "still space low 30 s after space was freed: {:?}",
            log.stats()
        );
        glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[test]
fn given_full_tmpfs_when_a_roll_needs_space_then_the_reserve_takes_it_nothing_fails_and_space_returns_without_reopen(
) {
    let tmpfs = mount("1m");
    let dir = tmpfs.path().join("log");
    let config = LogConfig::small_for_tests();
    let reserve = dir.join(gonets_storage::RESERVE_FILE);
    let end = {
        let (dir, config, reserve) = (dir.clone(), config.clone(), reserve.clone());
        let tmpfs = &tmpfs;
        block_on(async move {
            let (log, _) = Log::open(&dir, config.clone())
                .await
                .expect("open on an empty tmpfs");
            assert!(!log.space_low(), "{:?}", log.stats());
            let held = std::fs::metadata(&reserve).expect("a reserve file after open");
            assert_eq!(held.len(), config.reserve_bytes());
            let mut rng = StdRng::seed_from_u64(3);
            let low_at = fill_until_space_low(&log, &mut rng).await;
            let stats = log.stats();
            assert_eq!(log.poisoned(), None, "the reserve must prevent poisoning");
            assert_eq!((stats.reserve_releases, stats.reserve_restores), (1, 0));
            assert!(!reserve.exists(), "the used reserve must be gone");
            // Still space low (nothing freed), commits go on in the rolled segment.
            append_committed(&log, 4, &mut rng).await;
            glommio::timer::sleep(std::time::Duration::from_millis(200)).await;
            assert!(log.space_low(), "space low must stay until space is freed");
            tmpfs.resize("8m").unwrap_or_else(|e| panic!("{e}"));
            wait_space_back(&log).await;
            let stats = log.stats();
            assert_eq!((stats.reserve_releases, stats.reserve_restores), (1, 1));
            assert_eq!(
                std::fs::metadata(&reserve).map(|m| m.len()).ok(),
                Some(config.reserve_bytes()),
                "the reserve must be made again"
            );
            let segments = stats.segments;
            append_committed(&log, 400, &mut rng).await;
            assert!(log.stats().segments > segments, "rolls go on");
            assert!(!log.space_low());
            let end = check_log_contents_open(&log);
            assert!(end > low_at);
            log.close().await.expect("close with free space");
            end
        })
    };
    block_on(async move {
        let (log, report) = Log::open(&dir, config).await.unwrap();
        assert!(report.corruptions.is_empty(), "{report:?}");
        assert_eq!(check_log_contents(&log), Ok(end));
        assert!(!log.space_low());
        log.close().await.unwrap();
    });
}

/// `check_log_contents` on a log still being written (everything committed).
fn check_log_contents_open(log: &Log) -> u64 {
    check_log_contents(log).unwrap_or_else(|e| panic!("log contents: {e}"))
}

#[test]
fn given_tmpfs_too_small_for_the_reserve_when_opened_then_space_low_and_it_returns_when_space_is_freed(
) {
    // One segment fits, its reserve does not.
    let tmpfs = mount("384k");
    let dir = tmpfs.path().join("log");
    let config = LogConfig::small_for_tests();
    let tmpfs = &tmpfs;
    block_on(async move {
        let (log, _) = Log::open(&dir, config.clone())
            .await
            .expect("a full disk at open is not an open failure");
        assert!(log.space_low(), "{:?}", log.stats());
        assert!(
            !dir.join(gonets_storage::RESERVE_FILE).exists(),
            "a partial reserve was left behind"
        );
        let mut rng = StdRng::seed_from_u64(4);
        append_committed(&log, 8, &mut rng).await;
        tmpfs.resize("4m").unwrap_or_else(|e| panic!("{e}"));
        wait_space_back(&log).await;
        assert_eq!(log.stats().reserve_restores, 1);
        log.close().await.unwrap();
    });
}

#[test]
fn given_tmpfs_too_small_for_a_segment_when_opened_then_storage_full() {
    let tmpfs = mount("128k");
    let dir = tmpfs.path().join("log");
    let result = block_on(async move {
        Log::open(&dir, LogConfig::small_for_tests())
            .await
            .map(|_| ())
    });
    match result {
        Err(LogError::StorageFull) => {}
        other => panic!("opening a log whose first 256 KiB segment cannot fit: {other:?}"),
    }
    assert_no_segment_left(tmpfs.path());
}

fn assert_no_segment_left(mount: &Path) {
    let files = gonets_tests::segment_files(&mount.join("log"));
    assert!(
        files.is_empty(),
        "a segment that could not be preallocated was left behind: {files:?}"
    );
}
