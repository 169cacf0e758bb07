//! Power loss: a crash that drops every write not yet covered by a sync.
//!
//! A kill -9 only proves process-crash safety, because the page cache (and,
//! for O_DIRECT, the device's volatile cache and the file's unwritten-extent
//! metadata) outlive the process. Here the storage layer's test-only journal
//! records every create, write, fdatasync, directory fsync, rename and remove
//! it completed, in order, with the bytes. For every prefix of that journal we
//! build the disk a power loss at that moment may leave — everything a sync
//! covered, and of the rest any subset, each 512-byte sector of an unsynced
//! write kept or lost on its own, each unsynced name change kept or lost —
//! recover from it, and check that every record acknowledged by then is
//! intact and that nothing else is garbage. The argument for why fdatasync
//! covers what we rely on is in docs/storage.md, "What a sync covers".

use glommio::{LocalExecutorBuilder, Placement};
use gonets_storage::journal::replay::{describe, FileImage};
use gonets_storage::journal::{self, IoEvent};
use gonets_storage::{Durability, Log, LogConfig, Slot};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

fn config(durability: Durability) -> LogConfig {
    gonets_tests::power_disk::crash_log_config(durability)
}

fn payload(offset: u64) -> Vec<u8> {
    let len = (offset as usize * 7919) % 2500;
    (0..len)
        .map(|i| (offset as usize ^ (i * 131)) as u8 | 1)
        .collect()
}

/// The filesystem as the journal says, up to a crash point.
#[derive(Default)]
struct Disk {
    files: Vec<FileImage>,
    /// Names as the running process saw them.
    names: HashMap<String, usize>,
    /// Names as the last directory fsync made durable.
    durable_names: HashMap<String, usize>,
    acknowledged: u64,
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

impl Disk {
    fn apply(&mut self, e: &IoEvent) {
        match e {
            IoEvent::Create { path, size } => {
                self.files.push(FileImage::new(*size));
                self.names.insert(name(path), self.files.len() - 1);
            }
            IoEvent::Write {
                path,
                position,
                bytes,
            } => {
                let id = self.names[&name(path)];
                self.files[id].write(*position, bytes);
            }
            IoEvent::Sync { path } => {
                let id = self.names[&name(path)];
                self.files[id].sync();
            }
            IoEvent::SyncDir { .. } => self.durable_names = self.names.clone(),
            IoEvent::Rename { from, to } => {
                let id = self.names.remove(&name(from)).unwrap();
                // A move out of the log directory (recovery's quarantine) takes
                // the name away from what recovery lists; within it, renames.
                if to.parent() == from.parent() {
                    self.names.insert(name(to), id);
                }
            }
            IoEvent::Remove { path } => {
                self.names.remove(&name(path));
            }
            IoEvent::CreateDir { .. } => {} // the log's directory exists before the workload
            IoEvent::Acknowledged { end_offset } => {
                self.acknowledged = self.acknowledged.max(*end_offset)
            }
        }
    }

    /// Writes one disk a power loss now may leave into `dir`.
    fn materialize(&self, dir: &Path, rng: &mut impl Rng) {
        std::fs::create_dir_all(dir).unwrap();
        let mut all: Vec<&String> = self.names.keys().chain(self.durable_names.keys()).collect();
        all.sort();
        all.dedup();
        for n in all {
            let (now, durable) = (self.names.get(n), self.durable_names.get(n));
            // An unsynced name change may or may not have reached the disk.
            let id = if now == durable || rng.gen_bool(0.5) {
                now
            } else {
                durable
            };
            let Some(&id) = id else { continue };
            let content = self.files[id].content(&mut || rng.gen_bool(0.5));
            std::fs::write(dir.join(n), content).unwrap();
        }
    }
}

/// Runs a workload with concurrent appenders, segment rolls, checkpoints and
/// retention, and returns the journal of what it did.
fn record_workload(dir: PathBuf, durability: Durability) -> Vec<IoEvent> {
    LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .unwrap()
        .run(async move {
            journal::start();
            let (log, _) = Log::open(&dir, config(durability)).await.unwrap();
            let log = Rc::new(log);
            let mut tasks = vec![];
            for t in 0..4u64 {
                let log = log.clone();
                tasks.push(glommio::spawn_local(async move {
                    // One task appends (the payload depends on the offset it will
                    // get); the others commit whatever is there, so commits from
                    // several tasks share fdatasyncs.
                    for i in 0..150u64 {
                        if t == 0 {
                            let next = log.stats().next_offset;
                            let o = log.append(&payload(next), i, 0).await.unwrap();
                            assert_eq!(o, next);
                            if i % 2 == 1 {
                                log.commit(o).await.unwrap();
                                journal::acknowledged(log.stats().durable_offset);
                            }
                        } else {
                            glommio::yield_if_needed().await;
                            let next = log.stats().next_offset;
                            if next > 0 {
                                log.commit(next - 1).await.unwrap();
                                journal::acknowledged(log.stats().durable_offset);
                            }
                            glommio::timer::sleep(std::time::Duration::from_micros(200 * t)).await;
                        }
                    }
                }));
            }
            for t in tasks {
                t.await;
            }
            log.commit_all().await.unwrap();
            journal::acknowledged(log.stats().durable_offset);
            let durable = log.stats().durable_offset;
            log.retain_from(durable / 2).await.unwrap();
            for _ in 0..20 {
                let next = log.stats().next_offset;
                let o = log.append(&payload(next), 0, 0).await.unwrap();
                log.commit(o).await.unwrap();
                journal::acknowledged(log.stats().durable_offset);
            }
            let log = Rc::try_unwrap(log).ok().unwrap();
            log.abandon().await;
            journal::take()
        })
}

#[test]
fn given_power_loss_at_every_step_when_unsynced_writes_dropped_then_acknowledged_records_intact() {
    crash_at_every_step(Durability::Fdatasync);
}

/// Batches written through an `O_DSYNC` descriptor (ADR 0027): the journal
/// counts each batch write durable when it returns, and nothing else.
#[test]
fn given_dsync_batch_writes_when_power_is_lost_at_every_step_then_acknowledged_records_intact() {
    crash_at_every_step(Durability::Dsync);
}

/// Records the workload under `durability`, then recovers every disk a
/// power loss after each of its I/O events may leave.
fn crash_at_every_step(durability: Durability) {
    let tmp = tempfile::tempdir().unwrap();
    let events = record_workload(tmp.path().join("live"), durability);
    let syncs = events
        .iter()
        .filter(|e| matches!(e, IoEvent::Sync { .. }))
        .count();
    let creates = events
        .iter()
        .filter(|e| matches!(e, IoEvent::Create { .. }))
        .count();
    assert!(
        syncs > 50 && creates > 3,
        "workload too small: {syncs} syncs, {creates} creates"
    );
    let root = tmp.path().to_path_buf();
    let (points, max_ack) = LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .unwrap()
        .run(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
            let mut disk = Disk::default();
            let mut points = 0;
            for (k, e) in events.iter().enumerate() {
                disk.apply(e);
                // Two different losses at every crash point.
                for variant in 0..2 {
                    let dir = root.join(format!("crash-{k}-{variant}"));
                    disk.materialize(&dir, &mut rng);
                    let (log, report) = match Log::open(&dir, config(durability)).await {
                        Ok(x) => x,
                        Err(err) => panic!(
                            "crash point {k}/{variant} ({}): recovery failed: {err}",
                            describe(e)
                        ),
                    };
                    assert!(
                        report.corruptions.is_empty(),
                        "crash point {k}: {:?}",
                        report.corruptions
                    );
                    assert!(
                        report.next_offset >= disk.acknowledged,
                        "crash point {k}/{variant}: acknowledged up to {} but recovered only {}",
                        disk.acknowledged,
                        report.next_offset
                    );
                    for o in report.start_offset..report.next_offset {
                        match log.read(o) {
                            Slot::Present(r) => assert_eq!(
                                r.payload(),
                                &payload(o)[..],
                                "crash point {k}: offset {o}"
                            ),
                            other => panic!("crash point {k}/{variant}: offset {o}: {other:?}"),
                        }
                    }
                    log.abandon().await;
                    std::fs::remove_dir_all(&dir).unwrap();
                    points += 1;
                }
            }
            (points, disk.acknowledged)
        });
    println!("power-loss crash points ({durability:?}): {points}, acknowledged at end: {max_ack}, lost: 0");
}
