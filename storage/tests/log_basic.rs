//! Append, commit, reopen and read back through the public API.

use glommio::{LocalExecutorBuilder, Placement};
use gonets_storage::{DsyncWrites, Log, LogConfig, LogError, Slot};

fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .unwrap()
        .run(f());
}

#[test]
fn given_committed_records_when_reopened_then_all_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, report) = Log::open(&path, LogConfig::small_for_tests())
            .await
            .unwrap();
        assert_eq!(report.next_offset, 0);
        let mut last = 0;
        for i in 0..2000u64 {
            let payload = vec![(i % 251) as u8; (i as usize * 37) % 3000];
            last = log.append(&payload, i, 0).await.unwrap();
            if i % 7 == 0 {
                log.commit(last).await.unwrap();
            }
        }
        log.commit(last).await.unwrap();
        assert!(log.stats().segments > 1, "small segments must roll");
        for i in 0..2000u64 {
            let Slot::Present(r) = log.read(i) else {
                panic!("offset {i}")
            };
            assert_eq!(r.payload().len(), (i as usize * 37) % 3000);
        }
        log.close().await.unwrap();
        let (log, report) = Log::open(&path, LogConfig::small_for_tests())
            .await
            .unwrap();
        assert!(report.from_checkpoint);
        assert_eq!(report.next_offset, 2000);
        assert_eq!(report.records_scanned, 0);
        let mut n = 0;
        for (i, slot) in log.iter_from(0).enumerate() {
            let Slot::Present(r) = slot else {
                panic!("offset {i}: {slot:?}")
            };
            assert_eq!(r.offset(), i as u64);
            assert_eq!(r.timestamp_ns(), i as u64);
            assert!(r.payload().iter().all(|b| *b == (i % 251) as u8));
            n += 1;
        }
        assert_eq!(n, 2000);
        assert!(matches!(log.read(2000), Slot::Empty));
        let dropped = log.retain_from(1000).await.unwrap();
        assert!(dropped > 0);
        assert!(matches!(log.read(0), Slot::Gone));
        assert!(matches!(log.read(1999), Slot::Present(_)));
        log.close().await.unwrap();
    });
}

#[test]
fn given_record_larger_than_a_batch_when_appended_then_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let config = LogConfig::small_for_tests();
        let max = config.payload_bytes_max();
        let (log, _) = Log::open(&path, config).await.unwrap();
        let fits = log.append(&vec![7u8; max], 0, 0).await.unwrap();
        log.commit(fits).await.unwrap();
        let err = log.append(&vec![7u8; max + 1], 0, 0).await.unwrap_err();
        assert!(matches!(err, LogError::TooLarge { .. }), "{err:?}");
        log.close().await.unwrap();
    });
}

#[test]
fn given_every_batch_buffer_full_when_try_append_then_busy_and_commit_frees_room() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let config = LogConfig {
            batch_buffers_max: 2,
            commit_window_bytes: usize::MAX,
            ..LogConfig::small_for_tests()
        };
        let (log, _) = Log::open(&path, config).await.unwrap();
        let payload = vec![1u8; 10_000];
        let mut appended = 0;
        let err = loop {
            match log.try_append(&payload, 0, 0) {
                Ok(_) => appended += 1,
                Err(e) => break e,
            }
            assert!(appended < 100, "buffers must be bounded");
        };
        assert!(matches!(err, LogError::Busy), "{err:?}");
        log.commit_all().await.unwrap();
        log.try_append(&payload, 0, 0).unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn given_a_record_in_parts_when_appended_then_read_back_whole_from_memory_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let config = LogConfig::small_for_tests();
        let max = config.payload_bytes_max();
        let (log, _) = Log::open(&path, config.clone()).await.unwrap();
        let (head, body) = (b"head:".to_vec(), vec![9u8; 3000]);
        let first = log.try_append_parts(&[&head, &body], 1, 0).unwrap();
        let empty = log.append_parts(&[], 2, 0).await.unwrap();
        let too_large = log.append_parts(&[&body, &vec![1u8; max]], 3, 0).await;
        assert!(
            matches!(too_large, Err(LogError::TooLarge { .. })),
            "{too_large:?}"
        );
        log.commit(empty).await.unwrap();
        let whole = [head.clone(), body.clone()].concat();
        let Slot::Present(r) = log.read(first) else {
            panic!("record {first} not readable")
        };
        assert_eq!(r.payload(), &whole[..]);
        assert_eq!(&r.payload_slice(5..whole.len())[..], &body[..]);
        log.close().await.unwrap();
        let (log, _) = Log::open(&path, config).await.unwrap();
        let Slot::Present(r) = log.read(first) else {
            panic!("record {first} not readable after reopen")
        };
        assert_eq!(r.payload(), &whole[..]);
        assert_eq!(&r.payload_slice(0..5)[..], b"head:");
        let Slot::Present(e) = log.read(empty) else {
            panic!("empty record {empty} not readable")
        };
        assert!(e.payload().is_empty());
        log.close().await.unwrap();
    });
}

#[test]
fn given_log_open_when_opened_again_then_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = Log::open(&path, LogConfig::small_for_tests())
            .await
            .unwrap();
        let second = Log::open(&path, LogConfig::small_for_tests()).await;
        assert!(matches!(second, Err(LogError::Locked(_))));
        log.close().await.unwrap();
        let (again, _) = Log::open(&path, LogConfig::small_for_tests())
            .await
            .unwrap();
        again.close().await.unwrap();
    });
}

#[test]
fn given_segment_size_changed_when_reopened_then_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = Log::open(&path, LogConfig::small_for_tests())
            .await
            .unwrap();
        log.close().await.unwrap();
        let other = LogConfig {
            segment_size_bytes: 512 << 10,
            ..LogConfig::small_for_tests()
        };
        let err = Log::open(&path, other).await.err().unwrap();
        assert!(matches!(err, LogError::Config(_)), "{err:?}");
    });
}

/// Many concurrent producers and 4 KiB zero writes running the whole segment
/// ahead: batch writes keep meeting a zero write in flight at their range.
/// If one ever clobbered a batch, the reopen's scan would find it.
fn prewrite_case(config: LogConfig) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = Log::open(&path, config.clone()).await.unwrap();
        let mut tasks = vec![];
        for p in 0..8u64 {
            let log = log.clone();
            tasks.push(glommio::spawn_local(async move {
                let mut offsets = vec![];
                for i in 0..300u64 {
                    let payload = vec![(p * 31 + i) as u8; 100 + ((i * 97) % 1500) as usize];
                    let o = log.append(&payload, p, 0).await.unwrap();
                    offsets.push((o, payload));
                    if i % 5 == 0 {
                        log.commit(o).await.unwrap();
                    }
                }
                offsets
            }));
        }
        let mut written = vec![];
        for t in tasks {
            written.extend(t.await);
        }
        log.commit_all().await.unwrap();
        let stats = log.stats();
        assert!(stats.segments > 1, "small segments must roll");
        if config.prewrite_ahead_bytes > 0 {
            assert!(stats.prewritten_bytes > 0, "the prewriter ran: {stats:?}");
        } else {
            assert_eq!(stats.prewritten_bytes, 0);
        }
        eprintln!("{stats:?}");
        // Abandon: the reopen must scan everything after the first checkpoint.
        log.abandon().await;
        let (log, report) = Log::open(&path, config).await.unwrap();
        assert!(log.corruptions().is_empty(), "{:?}", log.corruptions());
        assert_eq!(report.next_offset, written.len() as u64);
        for (o, payload) in written {
            let Slot::Present(r) = log.read(o) else {
                panic!("offset {o}")
            };
            assert_eq!(r.payload(), &payload[..], "offset {o}");
        }
        log.close().await.unwrap();
    });
}

#[test]
fn given_prewrite_whole_segment_ahead_in_4k_chunks_when_appending_then_every_record_intact() {
    prewrite_case(LogConfig {
        prewrite_ahead_bytes: 1 << 30,
        prewrite_chunk_bytes: 4096,
        // Zeros whenever the flusher is idle, however often it commits.
        prewrite_batch_interval_us_min: 0,
        ..LogConfig::small_for_tests()
    });
}

/// ADR 0037: zero writes wait while batches come close together, and start
/// again once they come far apart.
#[test]
fn given_commits_back_to_back_when_prewrite_gated_then_zeros_wait_until_commits_thin_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let chunk = 16 << 10;
        let config = LogConfig {
            segment_size_bytes: 4 << 20,
            prewrite_ahead_bytes: 64 << 10,
            prewrite_chunk_bytes: chunk,
            prewrite_batch_interval_us_min: 8_000,
            ..LogConfig::small_for_tests()
        };
        let (log, _) = Log::open(&path, config).await.unwrap();
        let record = vec![5u8; 6000];
        let commit_one = || async {
            let o = log.append(&record, 1, 0).await.unwrap();
            log.commit(o).await.unwrap();
        };
        // Back to back: the smoothed interval falls below 8 ms at once.
        for _ in 0..30 {
            commit_one().await;
        }
        let settled = log.stats().prewritten_bytes;
        for _ in 0..40 {
            commit_one().await;
        }
        let fast = log.stats().prewritten_bytes;
        // At most the zero write that was in flight when it closed.
        assert!(
            fast <= settled + chunk as u64,
            "zeros between back-to-back commits: {settled} -> {fast}"
        );
        // 20 ms apart: the interval climbs past 8 ms, and idle time is zeroed.
        for _ in 0..25 {
            glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
            commit_one().await;
        }
        let slow = log.stats().prewritten_bytes;
        assert!(
            slow > fast + chunk as u64,
            "no zeros once commits thinned out: {fast} -> {slow}"
        );
        log.close().await.unwrap();
    });
}

#[test]
fn given_prewrite_off_when_appending_then_every_record_intact() {
    prewrite_case(LogConfig {
        prewrite_ahead_bytes: 0,
        ..LogConfig::small_for_tests()
    });
}

#[test]
fn given_interrupted_roll_left_a_short_segment_when_reopened_then_appends_still_commit() {
    // Found by the hub kill test: the segment before a removed incomplete
    // one became active while opened read-only, so the first write failed
    // with EBADF and poisoned the log.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = Log::open(&path, LogConfig::small_for_tests())
            .await
            .unwrap();
        for i in 0..10u64 {
            log.append(b"before", i, 0).await.unwrap();
        }
        log.commit_all().await.unwrap();
        log.close().await.unwrap();
        std::fs::write(gonets_storage::segment::path(&path, 10), b"short").unwrap();
        let (log, report) = Log::open(&path, LogConfig::small_for_tests())
            .await
            .unwrap();
        assert_eq!(report.removed_files.len(), 1);
        let offset = log.append(b"after", 11, 0).await.unwrap();
        assert_eq!(offset, 10);
        log.commit(offset).await.unwrap();
        assert!(log.poisoned().is_none());
        log.close().await.unwrap();
    });
}

#[test]
fn given_relative_directory_when_opened_and_rolled_then_commits_and_reopens() {
    // A relative path used to reach glommio's directory open unchanged and
    // fail with EBADF at the first segment roll's directory sync.
    let dir = tempfile::tempdir_in(".").unwrap();
    let relative = std::path::PathBuf::from(".").join(dir.path().file_name().unwrap());
    assert!(relative.is_relative());
    run(move || async move {
        let (log, _) = Log::open(&relative, LogConfig::small_for_tests())
            .await
            .unwrap();
        let mut last = 0;
        for i in 0..500u64 {
            last = log.append(&[7u8; 2000], i, 0).await.unwrap();
        }
        log.commit(last).await.unwrap();
        assert!(log.stats().segments > 1, "small segments must roll");
        log.close().await.unwrap();
        let (log, report) = Log::open(&relative, LogConfig::small_for_tests())
            .await
            .unwrap();
        assert_eq!(report.next_offset, 500);
        log.close().await.unwrap();
    });
}

#[test]
fn given_records_appended_when_committed_then_unwritten_bytes_rise_then_fall_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = Log::open(&path, LogConfig::small_for_tests())
            .await
            .unwrap();
        assert_eq!(log.unwritten_bytes(), 0);
        let first = log.append(&[7u8; 1000], 1, 0).await.unwrap();
        let one = log.unwritten_bytes();
        assert!(
            one > 1000,
            "a record counts its payload and its header: {one}"
        );
        let last = log.append(&[7u8; 1000], 2, 0).await.unwrap();
        assert_eq!(log.unwritten_bytes(), 2 * one, "equal records, equal bytes");
        log.commit(first).await.unwrap();
        // The commit of the first wrote the batch holding both.
        log.commit(last).await.unwrap();
        assert_eq!(log.unwritten_bytes(), 0);
        log.close().await.unwrap();
    });
}

#[test]
fn given_small_segments_when_records_roll_them_then_each_roll_is_timed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = Log::open(&path, LogConfig::small_for_tests())
            .await
            .unwrap();
        let before = log.stats();
        assert_eq!(
            before.commits.roll_us.count(),
            0,
            "open makes its segment itself"
        );
        let mut last = 0;
        for i in 0..1000u64 {
            last = log.append(&[i as u8; 2000], i, 0).await.unwrap();
            if i % 9 == 0 {
                log.commit(last).await.unwrap();
            }
        }
        log.commit(last).await.unwrap();
        let stats = log.stats();
        let rolls = (stats.segments - before.segments) as u64;
        assert!(rolls > 0, "small segments must roll");
        assert_eq!(stats.commits.roll_us.count(), rolls, "each roll timed once");
        assert!(
            stats.commits.roll_us.sum() > 0,
            "a roll syncs: it takes time"
        );
        log.close().await.unwrap();
    });
}

/// The segment files this process holds open, with whether each descriptor
/// was opened `O_DSYNC` (from `/proc/self/fdinfo`).
fn open_segments(dir: &std::path::Path) -> Vec<(String, bool)> {
    let mut out = vec![];
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if target.parent() != Some(dir) || target.extension().is_none_or(|e| e != "seg") {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            entry.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap_or(0);
        let name = target.file_name().unwrap().to_string_lossy().into_owned();
        out.push((name, flags & libc::O_DSYNC as u32 != 0));
    }
    out.sort();
    out
}

#[test]
fn given_dsync_durability_when_batches_commit_then_written_through_an_o_dsync_descriptor_and_checkpointed(
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let config = LogConfig {
            durability: gonets_storage::Durability::Dsync,
            checkpoint_interval_bytes: 64 << 10,
            ..LogConfig::small_for_tests()
        };
        let (log, _) = Log::open(&path, config.clone()).await.unwrap();
        let mut last = 0;
        for i in 0..400u64 {
            last = log.append(&vec![7u8; 1500], i, 0).await.unwrap();
            if i % 5 == 0 {
                log.commit(last).await.unwrap();
            }
        }
        log.commit(last).await.unwrap();
        assert!(log.stats().segments > 1, "small segments must roll");
        let open = open_segments(&path);
        let dsync: Vec<_> = open.iter().filter(|(_, d)| *d).collect();
        // One O_DSYNC descriptor, on the active (last) segment: the rolled
        // ones were closed at the roll.
        assert_eq!(dsync.len(), 1, "{open:?}");
        let active = open.iter().map(|(n, _)| n).max().unwrap();
        assert_eq!(&dsync[0].0, active, "{open:?}");
        // A crash stand-in: no checkpoint at close. The flusher wrote them
        // as commits went by (every 64 KiB), so recovery starts at one.
        log.abandon().await;
        let (log, report) = Log::open(&path, config).await.unwrap();
        assert!(report.from_checkpoint, "no checkpoint was written");
        assert_eq!(report.next_offset, 400);
        assert!(report.corruptions.is_empty());
        assert!(matches!(log.read(399), Slot::Present(_)));
        log.close().await.unwrap();
    });
}

#[test]
fn given_fdatasync_durability_when_batches_commit_then_no_descriptor_is_o_dsync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let config = LogConfig {
            durability: gonets_storage::Durability::Fdatasync,
            ..LogConfig::small_for_tests()
        };
        let (log, _) = Log::open(&path, config).await.unwrap();
        let last = log.append(&[1u8; 100], 0, 0).await.unwrap();
        log.commit(last).await.unwrap();
        let open = open_segments(&path);
        assert!(!open.is_empty() && open.iter().all(|(_, d)| !d), "{open:?}");
        log.close().await.unwrap();
    });
}

/// Voluntary context switches, added up, of the io-wq workers (`iou-wrk-<tid>`)
/// serving thread `tid`'s rings: each write a worker runs sleeps there once
/// at least, waiting for the device.
fn io_worker_sleeps(tid: i32) -> u64 {
    let name = format!("iou-wrk-{tid}");
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let dir = task.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .map_or(0, |n| n.trim().parse::<u64>().unwrap());
    }
    total
}

/// Commits `commits` single small records with dsync and `writes`, the
/// owner contended or not, in one segment (no roll, no checkpoint); how
/// often this thread's io-wq workers slept meanwhile.
fn dsync_commit_sleeps(writes: DsyncWrites, contended: bool, commits: u64) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    run(move || async move {
        let config = LogConfig {
            durability: gonets_storage::Durability::Dsync,
            dsync_writes: writes,
            segment_size_bytes: 4 << 20,
            prewrite_ahead_bytes: 4 << 20,
            ..LogConfig::small_for_tests()
        };
        let (log, _) = Log::open(&path, config).await.unwrap();
        log.set_contended(contended);
        // Let the prewriter zero the segment first: a write over blocks the
        // file system still counts as unwritten is punted to a worker
        // whatever the setting says.
        glommio::timer::sleep(std::time::Duration::from_millis(200)).await;
        let tid = unsafe { libc::gettid() };
        let before = io_worker_sleeps(tid);
        for i in 0..commits {
            let last = log.append(&[9u8; 200], i, 0).await.unwrap();
            log.commit(last).await.unwrap();
        }
        tx.send(io_worker_sleeps(tid) - before).unwrap();
        log.close().await.unwrap();
    });
    rx.recv().unwrap()
}

#[test]
fn given_dsync_writes_when_batches_commit_then_workers_write_them_only_where_the_setting_says() {
    const COMMITS: u64 = 50;
    // A worker sleeps once a write at least, unless the device answered
    // before it slept; inline, the workers sleep for nothing but a rare
    // write the file system cannot take without blocking.
    let in_worker =
        |writes, contended| dsync_commit_sleeps(writes, contended, COMMITS) >= COMMITS / 2;
    let inline = |writes, contended| dsync_commit_sleeps(writes, contended, COMMITS) <= COMMITS / 5;
    assert!(in_worker(DsyncWrites::Worker, false), "worker");
    assert!(inline(DsyncWrites::Inline, true), "inline, even contended");
    assert!(
        in_worker(DsyncWrites::WhileContended, true),
        "while contended: contended"
    );
    assert!(
        inline(DsyncWrites::WhileContended, false),
        "while contended: not contended"
    );
}
