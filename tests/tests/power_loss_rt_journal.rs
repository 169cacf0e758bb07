//! Power loss with the rt journal ahead of the shard's log (docs/adr/0036,
//! plan step 4): a shard's log and its rt journal, each committed on its own
//! schedule as the shard's driver does it, the journal far more often; a
//! crash that drops every write not yet covered by a sync, in either; then
//! the start's fold (`rt_journal::fold_into`).
//!
//! The storage layer's test-only journal records every create, write, sync,
//! directory sync, rename and remove of both logs, in order, with the bytes.
//! For every prefix we build disks a power loss at that moment may leave
//! (`gonets_tests::power_disk`), open the log, fold the journal into it, and
//! check:
//!
//! - every record the log acknowledged is there, intact;
//! - every call's record the journal acknowledged is back at its own offset,
//!   intact, even where the log lost it;
//! - every other offset holds its own record or a `Lost` fill, and a fill
//!   only where nothing was acknowledged and no call's record was;
//! - nothing is damaged, and a second fold (the next start) finds nothing.
//!
//! At some crash points where the journal is ahead of the log, the start
//! itself is recorded and cut at each of its own I/O events (a second power
//! loss during recovery and the fold), and the start after that is checked
//! the same way.

use glommio::{LocalExecutorBuilder, Placement};
use gonets_engine::record::is_lost;
use gonets_engine::runtime::rt_journal::{fold_into, RtJournal};
use gonets_storage::journal::replay::describe;
use gonets_storage::journal::{self, IoEvent};
use gonets_storage::{durable_file, Durability, Log, LogConfig, Slot};
use gonets_tests::power_disk::{Disk, Loss};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// Records the shard appends.
const RECORDS: u64 = 400;
/// The test's note of the journal's acknowledgements: `JOURNALED | end`
/// says every call's record below `end` is durable in the journal (a plain
/// note is the log's durable end).
const JOURNALED: u64 = 1 << 63;
/// The shard's log directory, under the disk's root.
const SHARD_DIR: &str = "shard-0";
/// Disks built per crash point.
const VARIANTS: usize = 2;
/// Crash points whose start is itself cut at every step, at most.
const RESTARTS_CUT_MAX: usize = 12;
/// Of the crash points with the journal ahead of the log, every this many
/// has its start cut.
const RESTART_CUT_EVERY: usize = 9;

fn config(durability: Durability) -> LogConfig {
    gonets_tests::power_disk::crash_log_config(durability)
}

/// Every third record belongs to a call's exchange and is journaled.
fn is_call(offset: u64) -> bool {
    offset.is_multiple_of(3)
}

/// The record at `offset`: its bytes say where it belongs (tag 1 is never
/// the `Lost` fill's tag).
fn payload(offset: u64) -> Vec<u8> {
    let len = 16 + (offset as usize * 7919) % 1500;
    (0..len)
        .map(|i| (offset as usize ^ (i * 131)) as u8 | 1)
        .collect()
}

/// What the shard's driver is told: how far each log is durable.
#[derive(Default)]
struct Acks {
    log_end: u64,
    journaled_end: u64,
}

/// Runs the shard's side: appends, journals calls' records, commits the
/// journal as often as it can and the log every few milliseconds, and drops
/// the journal's redundant segments. Returns the journal of I/O events.
fn record_workload(root: PathBuf, durability: Durability) -> Vec<IoEvent> {
    LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .unwrap()
        .run(async move {
            journal::start();
            let shard_dir = root.join(SHARD_DIR);
            durable_file::create_dir_all(&shard_dir).unwrap();
            let cfg = config(durability);
            let (log, _) = Log::open(&shard_dir, cfg.clone()).await.unwrap();
            let mut rt = RtJournal::open(&shard_dir, &cfg).await.unwrap();
            let done = Rc::new(RefCell::new(false));
            let committer = glommio::spawn_local(commit_log_until(log.clone(), done.clone()));
            let mut rng = StdRng::seed_from_u64(0x7e57_10a1);
            let mut acks = Acks::default();
            for i in 0..RECORDS {
                let next = log.stats().next_offset;
                let record = payload(next);
                let o = log.append(&record, i, 0).await.unwrap();
                assert_eq!(o, next);
                if is_call(o) {
                    rt.append(o, &[], &record, i).await.unwrap();
                    rt.want();
                }
                if rng.gen_bool(0.3) {
                    glommio::timer::sleep(Duration::from_micros(rng.gen_range(50..400))).await;
                }
                settle(&log, &mut rt, &mut acks).await;
            }
            *done.borrow_mut() = true;
            committer.await;
            rt.want();
            // Bounded: the journal's committer makes the rest durable, unless
            // the log was first (its redundant records are then forgotten).
            for _ in 0..10_000 {
                settle(&log, &mut rt, &mut acks).await;
                if acks.journaled_end > RECORDS - 3 || acks.log_end == RECORDS {
                    break;
                }
                glommio::timer::sleep(Duration::from_micros(200)).await;
            }
            assert_eq!(acks.log_end, RECORDS, "the log made everything durable");
            rt.log().close().await.unwrap();
            log.close().await.unwrap();
            journal::take()
        })
}

/// Commits whatever the log holds every 1–3 ms, as the log's committer
/// would beside the journal, and notes how far the log is durable.
async fn commit_log_until(log: Log, done: Rc<RefCell<bool>>) {
    let mut rng = StdRng::seed_from_u64(0xc0_4417);
    // Bounded by the workload's end.
    while !*done.borrow() {
        glommio::timer::sleep(Duration::from_micros(rng.gen_range(1000..3000))).await;
        let next = log.stats().next_offset;
        if next > 0 {
            log.commit(next - 1).await.unwrap();
            journal::acknowledged(log.stats().durable_offset);
        }
    }
    log.commit_all().await.unwrap();
    journal::acknowledged(log.stats().durable_offset);
}

/// What the shard task's `settle_journal` does: learns how far the journal
/// is durable (in the log's offsets) and drops its segments the log holds
/// durably too.
async fn settle(log: &Log, rt: &mut RtJournal, acks: &mut Acks) {
    if let Some(end) = rt.newly_durable() {
        assert!(
            end > acks.journaled_end,
            "the journal's durable end only grows"
        );
        acks.journaled_end = end;
        journal::acknowledged(JOURNALED | end);
    }
    acks.log_end = log.stats().durable_offset;
    let below = rt.redundant_below(acks.log_end);
    let stats = rt.log().stats();
    if stats.segments >= 2 && below > stats.start_offset {
        rt.log().retain_from(below).await.unwrap();
    }
}

/// What was acknowledged up to a crash point.
#[derive(Default, Clone, Copy)]
struct Acknowledged {
    log_end: u64,
    journaled_end: u64,
}

impl Acknowledged {
    fn note(&mut self, e: &IoEvent) {
        if let IoEvent::Acknowledged { end_offset } = e {
            if end_offset & JOURNALED != 0 {
                self.journaled_end = self.journaled_end.max(end_offset & !JOURNALED);
            } else {
                self.log_end = self.log_end.max(*end_offset);
            }
        }
    }

    /// True when a reader was told the record at `offset` is durable.
    fn covers(&self, offset: u64) -> bool {
        offset < self.log_end || is_call(offset) && offset < self.journaled_end
    }
}

/// Opens the crash disk's log, folds the journal into it, and checks it;
/// returns the records the fold restored.
async fn recover_and_check(
    shard_dir: &Path,
    cfg: &LogConfig,
    acked: Acknowledged,
    what: &str,
) -> u64 {
    let (log, report) = Log::open(shard_dir, cfg.clone())
        .await
        .unwrap_or_else(|e| panic!("{what}: the log's recovery failed: {e}"));
    assert!(
        report.corruptions.is_empty(),
        "{what}: {:?}",
        report.corruptions
    );
    let fold = fold_into(&log, shard_dir, cfg, true)
        .await
        .unwrap_or_else(|e| panic!("{what}: the fold failed: {e}"));
    assert_eq!(
        fold.journal_damage, 0,
        "{what}: the journal's recovery found damage"
    );
    let next = log.stats().next_offset;
    assert!(
        next >= acked.log_end,
        "{what}: the log acknowledged up to {} but holds {next}",
        acked.log_end
    );
    let calls_missing = (next..acked.journaled_end).filter(|o| is_call(*o)).count();
    assert_eq!(
        calls_missing, 0,
        "{what}: journaled calls' records past the log's end {next}"
    );
    let mut fills = 0;
    for o in log.stats().start_offset..next {
        let Slot::Present(r) = log.read(o) else {
            panic!("{what}: offset {o}: {:?}", log.read(o));
        };
        if is_lost(r.payload()) {
            assert!(
                !acked.covers(o) && !is_call(o),
                "{what}: offset {o} filled as lost, but it was acknowledged or a call's"
            );
            fills += 1;
        } else {
            assert_eq!(r.payload(), &payload(o)[..], "{what}: offset {o}");
        }
    }
    // An earlier start cut short may have made its own fills durable.
    assert!(
        fills >= fold.lost,
        "{what}: {fills} fills, the fold made {}",
        fold.lost
    );
    assert_eq!(
        log.durable_offset(),
        next,
        "{what}: the fold made the log durable"
    );
    let again = fold_into(&log, shard_dir, cfg, true).await.unwrap();
    assert_eq!(
        (again.restored, again.lost),
        (0, 0),
        "{what}: a second fold"
    );
    log.abandon().await;
    fold.restored
}

/// Recovers the crash disk in `dir` with its I/O recorded, then recovers
/// again disks a second power loss at each step of that start may leave;
/// returns the records the first fold restored and the disks cut.
async fn start_cut_at_every_step(
    dir: &Path,
    cfg: &LogConfig,
    acked: Acknowledged,
    what: &str,
    rng: &mut StdRng,
) -> (u64, usize) {
    let before = Disk::from_tree(dir);
    journal::start();
    let fold = recover_and_check(&dir.join(SHARD_DIR), cfg, acked, what).await;
    let start = journal::take();
    let mut disk = before;
    for (j, e) in start.iter().enumerate() {
        disk.apply(e);
        let again = dir.with_extension(format!("start-cut-{j}"));
        disk.materialize(&again, &mut Loss::Random(rng));
        let what = format!(
            "{what}, then at step {j} of its start after {}",
            describe(e)
        );
        recover_and_check(&again.join(SHARD_DIR), cfg, acked, &what).await;
        std::fs::remove_dir_all(&again).unwrap();
    }
    (fold, start.len())
}

/// Records the workload under `durability`, then recovers disks a power
/// loss after each of its I/O events may leave.
fn crash_at_every_step(durability: Durability) {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    let events = record_workload(live.clone(), durability);
    let journal_syncs = events
        .iter()
        .filter(|e| matches!(e, IoEvent::Sync { path } if path.to_string_lossy().contains("rt-journal")))
        .count();
    let log_acks = events
        .iter()
        .filter(
            |e| matches!(e, IoEvent::Acknowledged { end_offset } if end_offset & JOURNALED == 0),
        )
        .count();
    assert!(
        journal_syncs > 20 && log_acks > 5,
        "workload too small: {journal_syncs} journal syncs, {log_acks} log commits"
    );
    let root = tmp.path().to_path_buf();
    let cfg = config(durability);
    let (points, ahead, restored, cut) = LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .unwrap()
        .run(async move {
            let mut rng = StdRng::seed_from_u64(0x5eed_0036);
            let mut disk = Disk::new(&live);
            let mut acked = Acknowledged::default();
            let (mut points, mut ahead, mut restored, mut cut) = (0, 0, 0, 0);
            let mut restarts_cut = 0;
            for (k, e) in events.iter().enumerate() {
                disk.apply(e);
                acked.note(e);
                let journal_ahead = acked.journaled_end > acked.log_end;
                ahead += usize::from(journal_ahead);
                for variant in 0..VARIANTS {
                    let dir = root.join(format!("crash-{k}-{variant}"));
                    disk.materialize(&dir, &mut Loss::Random(&mut rng));
                    let what = format!("crash point {k}/{variant} after {}", describe(e));
                    let cut_start = journal_ahead
                        && variant == 0
                        && ahead % RESTART_CUT_EVERY == 0
                        && restarts_cut < RESTARTS_CUT_MAX;
                    let (fold, steps) = if cut_start {
                        restarts_cut += 1;
                        start_cut_at_every_step(&dir, &cfg, acked, &what, &mut rng).await
                    } else {
                        let shard_dir = dir.join(SHARD_DIR);
                        (recover_and_check(&shard_dir, &cfg, acked, &what).await, 0)
                    };
                    restored += u64::from(fold > 0);
                    cut += steps;
                    std::fs::remove_dir_all(&dir).unwrap();
                    points += 1;
                }
            }
            (points, ahead, restored, cut)
        });
    assert!(
        ahead > 20,
        "the journal was ahead of the log at only {ahead} crash points"
    );
    assert!(restored > 0, "no crash disk needed the journal");
    assert!(cut > 20, "only {cut} crash disks cut a start");
    gonets_tests::print_uncaptured(&format!(
        "rt journal power loss ({durability:?}): {points} crash disks, the journal ahead of the \
         log at {ahead} steps, {restored} disks whose log lacked journaled calls' records, \
         {cut} more cutting a start (its recovery and fold) at each step; every acknowledged \
         record intact"
    ));
}

#[test]
fn given_journal_ahead_of_the_log_when_power_lost_at_every_step_then_acknowledged_calls_are_back_at_their_offsets(
) {
    crash_at_every_step(Durability::Fdatasync);
}

/// Batches written through an `O_DSYNC` descriptor (ADR 0027), the default.
#[test]
fn given_dsync_writes_and_journal_ahead_when_power_lost_at_every_step_then_acknowledged_calls_are_back(
) {
    crash_at_every_step(Durability::Dsync);
}
