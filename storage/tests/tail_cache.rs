//! The tail cache: fresh durable records are read from memory, older ones
//! from the segment maps, damage on disk is still found once a batch has left
//! the cache, and the write counters add up.

use glommio::{LocalExecutorBuilder, Placement};
use gonets_storage::{segment, Log, LogConfig, LogError, Slot, RECENT_BYTES_MAX};
use std::os::unix::fs::FileExt;

fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .unwrap()
        .run(f());
}

fn payload(i: u64) -> Vec<u8> {
    let len = 100 + (i as usize * 53) % 1500;
    (0..len).map(|k| (i as usize * 7 + k) as u8).collect()
}

fn config(recent_bytes_max: usize) -> LogConfig {
    LogConfig {
        recent_bytes_max,
        ..LogConfig::small_for_tests()
    }
}

/// Appends `n` records from `first`, committing every `every` of them.
async fn write(log: &Log, first: u64, n: u64, every: u64) {
    for i in first..first + n {
        let o = log.append(&payload(i), i, 0).await.unwrap();
        assert_eq!(o, i);
        if (i + 1) % every == 0 {
            log.commit(o).await.unwrap();
        }
    }
    log.commit_all().await.unwrap();
}

fn expect(slot: Slot, i: u64) -> gonets_storage::RecordRef {
    let Slot::Present(r) = slot else {
        panic!("offset {i}: {slot:?}")
    };
    assert_eq!(r.offset(), i);
    assert_eq!(r.timestamp_ns(), i);
    assert_eq!(r.payload(), payload(i).as_slice(), "offset {i}");
    r
}

#[test]
fn given_record_just_committed_when_read_then_served_from_memory_and_equal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = Log::open(&path, config(1 << 20)).await.unwrap();
        write(&log, 0, 200, 5).await;
        for i in 0..200 {
            assert!(expect(log.read(i), i).from_memory(), "offset {i}");
        }
        for (i, slot) in log.iter_from(0).enumerate() {
            assert!(expect(slot, i as u64).from_memory(), "offset {i}");
        }
        let stats = log.stats();
        assert_eq!(stats.reads_from_memory, 400);
        assert_eq!(stats.reads_from_map, 0);
        assert!(stats.cached_bytes > 0 && stats.cached_batches > 0);
        assert!(
            matches!(log.read(200), Slot::Empty),
            "nothing beyond the durable end"
        );
        log.close().await.unwrap();
    });
}

#[test]
fn given_appended_but_not_committed_when_read_then_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = Log::open(&path, config(1 << 20)).await.unwrap();
        write(&log, 0, 10, 10).await;
        log.append(&payload(10), 10, 0).await.unwrap();
        assert!(matches!(log.read(10), Slot::Empty));
        assert_eq!(log.iter_from(0).count(), 10);
        log.commit(10).await.unwrap();
        assert!(expect(log.read(10), 10).from_memory());
        log.close().await.unwrap();
    });
}

#[test]
fn given_cache_full_when_older_records_read_then_from_map_and_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let cache = 64 << 10;
        let (log, _) = Log::open(&path, config(cache)).await.unwrap();
        // A reader keeps up (each batch is read once as it comes), so the
        // cache keeps taking batches (it stands aside for readers far behind).
        for first in (0..1000).step_by(7) {
            let n = 7.min(1000 - first);
            write(&log, first, n, 7).await;
            expect(log.read(first), first);
        }
        let stats = log.stats();
        assert!(!stats.cache_standing_aside);
        let (before_memory, before_map) = (stats.reads_from_memory, stats.reads_from_map);
        assert!(stats.segments > 1, "small segments must roll");
        assert!(stats.cached_bytes > 0 && stats.cached_bytes <= cache as u64);
        let (mut memory, mut map) = (0, 0);
        for i in 0..1000 {
            if expect(log.read(i), i).from_memory() {
                memory += 1;
            } else {
                assert_eq!(memory, 0, "the cache holds the newest records only");
                map += 1;
            }
        }
        assert!(memory > 0 && map > 0, "memory {memory} map {map}");
        assert!(expect(log.read(999), 999).from_memory());
        for (i, slot) in log.iter_from(0).enumerate() {
            expect(slot, i as u64);
        }
        let stats = log.stats();
        assert_eq!(
            stats.reads_from_memory - before_memory,
            2 * memory + 1,
            "the extra read of 999"
        );
        assert_eq!(stats.reads_from_map - before_map, 2 * map);
        log.close().await.unwrap();
    });
}

#[test]
fn given_cache_off_when_read_then_every_read_from_map_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = Log::open(&path, config(0)).await.unwrap();
        write(&log, 0, 300, 4).await;
        for i in 0..300 {
            assert!(!expect(log.read(i), i).from_memory());
        }
        assert_eq!(log.iter_from(0).count(), 300);
        let stats = log.stats();
        assert_eq!((stats.cached_bytes, stats.cached_batches), (0, 0));
        assert_eq!(stats.reads_from_memory, 0);
        assert_eq!(stats.reads_from_map, 600);
        log.close().await.unwrap();
    });
}

#[test]
fn given_damage_on_disk_under_a_cached_batch_when_evicted_then_reported_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let cache = 64 << 10;
        let (log, _) = Log::open(&path, config(cache)).await.unwrap();
        write(&log, 0, 3, 3).await;
        // Offset 0 sits right after the segment header; flip a payload byte.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .open(segment::path(&path, 0))
            .unwrap();
        let at = (segment::SEGMENT_HEADER_BYTES + 40) as u64;
        let mut b = [0u8; 1];
        file.read_exact_at(&mut b, at).unwrap();
        file.write_all_at(&[b[0] ^ 0x40], at).unwrap();
        // The cache holds the copy that was written: still served, intact.
        assert!(expect(log.read(0), 0).from_memory());
        // Push the batch out of the cache, then read it through the map.
        write(&log, 3, 400, 7).await;
        match log.read(0) {
            Slot::Unreadable(c) => assert!(c.first_offset == 0 && c.end_offset > 0, "{c:?}"),
            other => panic!("damage served or hidden: {other:?}"),
        }
        assert!(matches!(log.iter_from(0).next(), Some(Slot::Unreadable(_))));
        assert!(
            !expect(log.read(1), 1).from_memory(),
            "its neighbours intact"
        );
        assert_eq!(log.corruptions().len(), 1);
        log.close().await.unwrap();
    });
}

#[test]
fn given_segments_dropped_by_retention_when_stats_then_their_cached_batches_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        // A cache larger than several small segments.
        let (log, _) = Log::open(&path, config(4 << 20)).await.unwrap();
        write(&log, 0, 1000, 9).await;
        let before = log.stats();
        assert!(before.segments > 2);
        assert!(expect(log.read(0), 0).from_memory());
        let dropped = log.retain_from(900).await.unwrap();
        assert!(dropped > 0);
        let after = log.stats();
        assert!(after.cached_bytes < before.cached_bytes);
        assert!(after.cached_batches < before.cached_batches);
        assert!(matches!(log.read(0), Slot::Gone));
        assert!(matches!(log.iter_from(0).next(), Some(Slot::Gone)));
        let start = after.start_offset;
        for i in start..1000 {
            assert!(expect(log.read(i), i).from_memory(), "offset {i}");
        }
        assert_eq!(log.iter_from(start).count() as u64, 1000 - start);
        log.close().await.unwrap();
    });
}

#[test]
fn given_log_reopened_when_read_then_cache_empty_and_reads_from_map() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = Log::open(&path, config(1 << 20)).await.unwrap();
        write(&log, 0, 100, 10).await;
        log.close().await.unwrap();
        let (log, _) = Log::open(&path, config(1 << 20)).await.unwrap();
        assert_eq!(log.stats().cached_bytes, 0);
        for i in 0..100 {
            assert!(!expect(log.read(i), i).from_memory());
        }
        write(&log, 100, 10, 10).await;
        assert!(expect(log.read(105), 105).from_memory());
        log.abandon().await;
        let (log, _) = Log::open(&path, config(1 << 20)).await.unwrap();
        assert_eq!(log.stats().cached_batches, 0);
        assert_eq!(log.iter_from(0).count(), 110);
        log.close().await.unwrap();
    });
}

#[test]
fn given_recent_bytes_max_out_of_bounds_when_opened_then_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        for n in [4096, RECENT_BYTES_MAX + 1] {
            match Log::open(&path, config(n)).await {
                Err(LogError::Config(what)) => assert!(what.contains("recent_bytes_max")),
                Err(e) => panic!("{n}: {e:?}"),
                Ok(_) => panic!("{n}: opened"),
            }
        }
    });
}

#[test]
fn given_batches_written_when_stats_then_write_counters_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        let (log, _) = Log::open(&path, config(0)).await.unwrap();
        write(&log, 0, 500, 6).await;
        let s = log.stats();
        let w = s.written;
        let payload_bytes: u64 = (0..500).map(|i| payload(i).len() as u64).sum();
        assert_eq!(w.payload_bytes, payload_bytes);
        assert_eq!(w.framing_bytes, 500 * 32);
        assert!(w.batches >= 500 / 6 && w.marker_bytes > 0);
        assert_eq!(w.batch_bytes() % 4096, 0, "batches are whole blocks");
        assert!(w.padding_bytes < w.batches * 4096);
        assert_eq!(w.segment_header_bytes, s.segments as u64 * 4096);
        log.checkpoint().await.unwrap();
        assert_eq!(
            log.stats().written.checkpoint_bytes,
            w.checkpoint_bytes + 4096
        );
        log.close().await.unwrap();
    });
}

#[test]
fn given_reads_from_the_map_when_read_in_order_then_read_ahead_asked_once_per_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        for (readahead_bytes, expect_advices) in [(0, false), (64 << 10, true)] {
            let _ = std::fs::remove_dir_all(&path);
            let config = LogConfig {
                readahead_bytes,
                ..config(0)
            };
            let (log, _) = Log::open(&path, config).await.unwrap();
            write(&log, 0, 1000, 8).await;
            for i in 0..1000 {
                assert!(!expect(log.read(i), i).from_memory());
            }
            let s = log.stats();
            assert_eq!(s.reads_from_map, 1000);
            if expect_advices {
                // ~900 KiB of records in 64 KiB windows, re-asked every half window.
                assert!(s.readahead_advices > 0, "{s:?}");
                assert!(s.readahead_advices < 100, "{s:?}");
            } else {
                assert_eq!(s.readahead_advices, 0);
            }
            log.close().await.unwrap();
        }
    });
}

#[test]
fn given_readers_far_behind_when_batches_leave_unread_then_cache_stands_aside_until_one_reads_near_the_tail(
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    run(move || async move {
        // 128 KiB of cache: a few batches of 32 KiB.
        let (log, _) = Log::open(&path, config(128 << 10)).await.unwrap();
        // Nobody reads: batch after batch leaves the cache unread.
        let mut next = 0;
        for _ in 0..60 {
            write(&log, next, 20, 20).await;
            next += 20;
        }
        let stats = log.stats();
        assert!(stats.cache_standing_aside, "{stats:?}");
        assert_eq!(stats.cache_stood_aside, 1);
        assert_eq!(stats.cached_batches, 0);
        // A reader far behind is served from the map, and the cache stays aside.
        expect(log.read(5), 5);
        write(&log, next, 20, 20).await;
        next += 20;
        assert!(log.stats().cache_standing_aside);
        // A reader near the tail: the cache takes batches again, and serves them.
        assert!(!expect(log.read(next - 1), next - 1).from_memory());
        assert!(!log.stats().cache_standing_aside);
        write(&log, next, 20, 20).await;
        assert!(expect(log.read(next + 19), next + 19).from_memory());
        assert!(log.stats().cached_batches > 0);
        log.close().await.unwrap();
    });
}
