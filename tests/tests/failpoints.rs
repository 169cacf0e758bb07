//! Injected I/O failures on the commit path (fail points "storage::write",
//! "storage::fdatasync", "storage::roll"): the failing commit and everything
//! after it fail with a typed `Poisoned` error, nothing more is acknowledged,
//! the log never retries behind the caller's back, and a reopen finds every
//! record acknowledged before the failure intact.
//!
//! Fail points are process-wide: each test holds a `fail::FailScenario`, which
//! serializes the tests of this file and clears every fail point.

use fail::FailScenario;
use gonets_storage::{Durability, Log, LogConfig, LogError, PoisonCause, Slot};
use gonets_tests::{
    append_expected, append_until_error, block_on, check_log_contents, check_offsets, segment_files,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::cell::RefCell;
use std::ops::RangeInclusive;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

/// Bound on appends in a run that waits for an injected failure.
const APPENDS_MAX: u64 = 50_000;
/// Records appended and committed after a reopen, enough for two segment rolls.
const APPENDS_AFTER_REOPEN: u64 = 400;
/// Largest group covered by one commit.
const GROUP_MAX: usize = 16;

fn is_cause(e: &LogError, cause: &PoisonCause) -> bool {
    matches!(e, LogError::Poisoned(c) if c == cause)
}

/// The state of the log when the injected failure poisoned it.
struct AtPoison {
    /// Every offset below this was acknowledged by a commit.
    acked_end: u64,
    /// The log's durable offset after the failure.
    durable: u64,
    /// Offsets appended in all (the next offset after the failure).
    appended: u64,
    /// Segments the log held.
    segments: usize,
}

/// Appends deterministic records and commits them in random groups until an append
/// or a commit fails; returns the end of what was acknowledged and the error.
async fn fail_somewhere(log: &Log, rng: &mut StdRng) -> (u64, LogError) {
    append_until_error(log, rng, APPENDS_MAX, GROUP_MAX)
        .await
        .unwrap_or_else(|| {
            panic!(
                "no append or commit failed in {APPENDS_MAX} records: the fail point never fired"
            )
        })
}

/// Checks that a poisoned log refuses everything from now on, also once the fault is gone,
/// still serves what was acknowledged, and closes without hanging.
async fn check_refuses_forever(
    log: &Log,
    cause: &PoisonCause,
    point: &str,
    acked_end: u64,
) -> AtPoison {
    assert_eq!(
        log.poisoned().as_ref(),
        Some(cause),
        "log.poisoned() must say why"
    );
    // The fault goes away: a log that retried would now start succeeding.
    fail::remove(point);
    let stats = log.stats();
    let (durable, appended) = (stats.durable_offset, stats.next_offset);
    assert!(
        durable >= acked_end,
        "durable offset {durable} below acknowledged end {acked_end}"
    );
    match append_expected(log).await {
        Err(e) if is_cause(&e, cause) => {}
        other => panic!("append after poisoning: {other:?}, expected Poisoned({cause:?})"),
    }
    assert_eq!(
        log.stats().next_offset,
        appended,
        "a refused append took an offset"
    );
    for round in 0..3 {
        if appended > durable {
            for offset in [durable, appended - 1] {
                match log.commit(offset).await {
                    Err(e) if is_cause(&e, cause) => {}
                    other => panic!(
                        "round {round}: commit({offset}) of a record past durable offset {durable}: {other:?}"
                    ),
                }
            }
            match log.commit_all().await {
                Err(e) if is_cause(&e, cause) => {}
                other => panic!("round {round}: commit_all after poisoning: {other:?}"),
            }
        }
        // Give a retrying flusher every chance to run.
        glommio::timer::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            log.stats().durable_offset,
            durable,
            "round {round}: the durable offset moved after poisoning"
        );
        assert_eq!(log.poisoned().as_ref(), Some(cause));
    }
    let lost = check_offsets(log, 0..acked_end);
    assert!(
        lost.is_empty(),
        "acknowledged records not readable while poisoned: {lost:?}"
    );
    assert!(
        matches!(log.read(durable), Slot::Empty),
        "read(durable offset {durable}) after poisoning: {:?}",
        log.read(durable)
    );
    let segments = log.stats().segments;
    match log.close().await {
        Ok(()) => {}
        Err(e) if is_cause(&e, cause) => {}
        Err(e) => panic!("close of a poisoned log: {e}, expected Ok or Poisoned({cause:?})"),
    }
    AtPoison {
        acked_end,
        durable,
        appended,
        segments,
    }
}

/// Runs `case` once for each way a batch is made durable (ADR 0027), each
/// in a fresh directory, inside one fail-point scenario.
fn in_both_durabilities(case: impl Fn(&Path, Durability)) {
    let scenario = FailScenario::setup();
    for durability in [Durability::Dsync, Durability::Fdatasync] {
        let dir = tempfile::tempdir().unwrap();
        case(dir.path(), durability);
    }
    scenario.teardown();
}

/// Opens a fresh log in `dir`, commits a few groups, arms `point` with `actions`, runs until
/// the failure, and checks the poisoned log (single writer).
fn single_writer_until_poisoned(
    dir: &Path,
    durability: Durability,
    point: &'static str,
    actions: &str,
    cause: PoisonCause,
) -> AtPoison {
    let dir = dir.to_path_buf();
    let actions = actions.to_string();
    block_on(async move {
        let config = LogConfig {
            durability,
            ..LogConfig::small_for_tests()
        };
        let (log, _) = Log::open(&dir, config).await.unwrap();
        let mut rng = StdRng::seed_from_u64(0x6f6e_6574);
        for _ in 0..3 {
            append_expected(&log).await.unwrap();
            log.commit_all().await.unwrap();
        }
        let acked_before_arming = log.stats().durable_offset;
        fail::cfg(point, &actions).unwrap();
        let (acked_end, err) = fail_somewhere(&log, &mut rng).await;
        assert!(
            is_cause(&err, &cause),
            "the injected failure surfaced as {err:?}, expected Poisoned({cause:?})"
        );
        let at = check_refuses_forever(&log, &cause, point, acked_end).await;
        assert!(at.acked_end >= acked_before_arming);
        at
    })
}

/// Reopens the log with the fault gone: no corruption, every acknowledged record intact,
/// the next offset within `next_range`; then appends and commits succeed again
/// (across segment rolls) and survive another reopen.
fn reopen_and_verify(dir: &Path, acked_end: u64, next_range: RangeInclusive<u64>) -> u64 {
    let dir = dir.to_path_buf();
    block_on(async move {
        let (log, report) = Log::open(&dir, LogConfig::small_for_tests()).await.unwrap();
        assert!(
            report.corruptions.is_empty(),
            "corruptions after reopen: {report:?}"
        );
        let lost = check_offsets(&log, 0..acked_end);
        assert!(lost.is_empty(), "acknowledged records lost: {lost:?}");
        let next = check_log_contents(&log).unwrap_or_else(|e| panic!("after reopen: {e}"));
        assert!(
            next_range.contains(&next),
            "next offset after reopen {next} outside {next_range:?}"
        );
        let segments = log.stats().segments;
        let mut rng = StdRng::seed_from_u64(next);
        while log.stats().next_offset < next + APPENDS_AFTER_REOPEN {
            let mut last = 0;
            for _ in 0..rng.gen_range(1..=GROUP_MAX) {
                last = append_expected(&log).await.expect("append after reopen");
            }
            log.commit(last).await.expect("commit after reopen");
        }
        assert!(
            log.stats().segments > segments,
            "the log must roll after reopen"
        );
        let end = check_log_contents(&log).unwrap_or_else(|e| panic!("after new appends: {e}"));
        log.close().await.unwrap();
        let (log, report) = Log::open(&dir, LogConfig::small_for_tests()).await.unwrap();
        assert!(
            report.corruptions.is_empty(),
            "corruptions after second reopen: {report:?}"
        );
        assert_eq!(check_log_contents(&log), Ok(end));
        log.close().await.unwrap();
        next
    })
}

#[test]
fn given_nth_write_fails_with_eio_when_committing_then_poisoned_and_acknowledged_records_survive_reopen(
) {
    in_both_durabilities(|dir, durability| {
        let cause = PoisonCause::Write(libc::EIO);
        let at =
            single_writer_until_poisoned(dir, durability, "storage::write", "5*off->return", cause);
        assert!(at.appended > at.durable, "the failed batch held records");
        // The failed write never reached the file: the log ends where it was durable.
        reopen_and_verify(dir, at.acked_end, at.durable..=at.durable);
    });
}

#[test]
fn given_write_fails_with_erofs_when_committing_then_poison_cause_carries_that_errno() {
    in_both_durabilities(|dir, durability| {
        let cause = PoisonCause::Write(libc::EROFS);
        let actions = format!("return({})", libc::EROFS);
        let at = single_writer_until_poisoned(dir, durability, "storage::write", &actions, cause);
        reopen_and_verify(dir, at.acked_end, at.durable..=at.durable);
    });
}

#[test]
fn given_nth_fdatasync_fails_when_committing_then_poisoned_never_retried_and_acknowledged_records_survive_reopen(
) {
    in_both_durabilities(|dir, durability| {
        let cause = PoisonCause::Sync(libc::EIO);
        let at = single_writer_until_poisoned(
            dir,
            durability,
            "storage::fdatasync",
            "4*off->return",
            cause,
        );
        assert!(at.appended > at.durable, "the failed batch held records");
        // Only the sync failed: the written batch may legitimately be found on reopen.
        reopen_and_verify(dir, at.acked_end, at.durable..=at.appended);
    });
}

#[test]
fn given_segment_roll_fails_when_log_grows_then_poisoned_and_acknowledged_records_survive_reopen() {
    let scenario = FailScenario::setup();
    let durability = Durability::Dsync;
    let dir = tempfile::tempdir().unwrap();
    let cause = PoisonCause::Roll(libc::EIO);
    // Armed after open: two rolls succeed, the third fails.
    let at = single_writer_until_poisoned(
        dir.path(),
        durability,
        "storage::roll",
        "2*off->return",
        cause,
    );
    assert_eq!(at.segments, 3, "the first segment and two successful rolls");
    assert_eq!(
        segment_files(dir.path()).len(),
        3,
        "a failed roll must leave no segment file behind"
    );
    assert!(
        at.appended > at.durable,
        "the batch that needed the roll held records"
    );
    reopen_and_verify(dir.path(), at.acked_end, at.durable..=at.durable);
    scenario.teardown();
}

/// What one committer task saw.
#[derive(Default)]
struct Seen {
    ok_commits: Vec<u64>,
    failed_commits: Vec<(u64, LogError)>,
    failed_appends: Vec<LogError>,
}

/// Several tasks append and commit concurrently (group commit) until the armed fault poisons
/// the log; checks that every success is below the durable end and every failure typed.
fn concurrent_writers_until_poisoned(
    dir: &Path,
    durability: Durability,
    point: &'static str,
    actions: &str,
    cause: PoisonCause,
) -> AtPoison {
    const TASKS: u64 = 4;
    let dir = dir.to_path_buf();
    let actions = actions.to_string();
    block_on(async move {
        let config = LogConfig {
            durability,
            ..LogConfig::small_for_tests()
        };
        let (log, _) = Log::open(&dir, config).await.unwrap();
        fail::cfg(point, &actions).unwrap();
        let seen = Rc::new(RefCell::new(Seen::default()));
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (log, seen) = (log.clone(), seen.clone());
                glommio::spawn_local(async move {
                    let mut rng = StdRng::seed_from_u64(t);
                    while log.stats().next_offset < APPENDS_MAX {
                        let mut last = 0;
                        for _ in 0..rng.gen_range(1..=GROUP_MAX) {
                            match append_expected(&log).await {
                                Ok(o) => last = o,
                                Err(e) => {
                                    seen.borrow_mut().failed_appends.push(e);
                                    return;
                                }
                            }
                        }
                        match log.commit(last).await {
                            Ok(()) => seen.borrow_mut().ok_commits.push(last),
                            Err(e) => {
                                seen.borrow_mut().failed_commits.push((last, e));
                                return;
                            }
                        }
                    }
                    panic!("task {t}: the fail point never fired in {APPENDS_MAX} records");
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        let seen = Rc::try_unwrap(seen)
            .ok()
            .expect("every task finished")
            .into_inner();
        let durable = log.stats().durable_offset;
        assert!(
            !seen.ok_commits.is_empty(),
            "no commit succeeded before the fault"
        );
        for o in &seen.ok_commits {
            assert!(
                *o < durable,
                "commit({o}) succeeded but the durable offset is {durable}"
            );
        }
        assert_eq!(
            seen.failed_commits.len() + seen.failed_appends.len(),
            TASKS as usize,
            "every task must end on an error"
        );
        for (o, e) in &seen.failed_commits {
            assert!(
                is_cause(e, &cause),
                "commit({o}) failed with {e:?}, expected Poisoned({cause:?})"
            );
            assert!(
                *o >= durable,
                "commit({o}) failed although durable offset is {durable}"
            );
        }
        for e in &seen.failed_appends {
            assert!(
                is_cause(e, &cause),
                "append failed with {e:?}, expected Poisoned({cause:?})"
            );
        }
        let acked_end = seen.ok_commits.iter().max().map_or(0, |o| o + 1);
        check_refuses_forever(&log, &cause, point, acked_end).await
    })
}

#[test]
fn given_concurrent_committers_when_nth_write_fails_then_no_commit_past_the_failure_succeeds() {
    in_both_durabilities(|dir, durability| {
        let cause = PoisonCause::Write(libc::EIO);
        let at = concurrent_writers_until_poisoned(
            dir,
            durability,
            "storage::write",
            "8*off->return",
            cause,
        );
        // The batch before the failed write may have been written with its
        // fdatasync in flight (the flusher runs two deep): it can survive,
        // unacknowledged, as after a failed fdatasync (at-least-once).
        reopen_and_verify(dir, at.acked_end, at.durable..=at.appended);
    });
}

#[test]
fn given_concurrent_committers_when_nth_fdatasync_fails_then_no_commit_past_the_failure_succeeds() {
    in_both_durabilities(|dir, durability| {
        let cause = PoisonCause::Sync(libc::EIO);
        let at = concurrent_writers_until_poisoned(
            dir,
            durability,
            "storage::fdatasync",
            "8*off->return",
            cause,
        );
        reopen_and_verify(dir, at.acked_end, at.durable..=at.appended);
    });
}

#[test]
fn given_concurrent_committers_when_segment_roll_fails_then_no_commit_past_the_failure_succeeds() {
    let scenario = FailScenario::setup();
    let durability = Durability::Dsync;
    let dir = tempfile::tempdir().unwrap();
    let cause = PoisonCause::Roll(libc::EIO);
    let at = concurrent_writers_until_poisoned(
        dir.path(),
        durability,
        "storage::roll",
        "1*off->return",
        cause,
    );
    assert_eq!(at.segments, 2, "the first segment and one successful roll");
    assert_eq!(segment_files(dir.path()).len(), 2);
    reopen_and_verify(dir.path(), at.acked_end, at.durable..=at.durable);
    scenario.teardown();
}
