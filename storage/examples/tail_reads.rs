//! Measures what the tail cache and the map read-ahead change for reads on
//! the reactor thread, and where the log's written bytes go.
//!
//! `cargo run --release -p gonets-storage --example tail_reads -- [RECORDS] [DIR]`
//!
//! - fresh: appends RECORDS records of 4 KiB, commits every 64, and reads
//!   each committed group back at once (as the engine delivers), with the
//!   tail cache on (64 MiB) and off; prints the time spent in reads and the
//!   major page faults of the thread, and the bytes written by kind.
//! - cold: closes the log, drops its files from the page cache
//!   (`POSIX_FADV_DONTNEED`), reopens it and reads every record from the
//!   first (a backlog's head far behind the tail), with the map read-ahead
//!   off and on (1 MiB).

use glommio::{LocalExecutorBuilder, Placement};
use gonets_storage::{Log, LogConfig, Slot};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PAYLOAD_BYTES: usize = 4096;
const GROUP: u64 = 64;

fn major_faults() -> i64 {
    // SAFETY: getrusage writes into the struct we hand it.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut u);
        u.ru_majflt
    }
}

fn read_one(log: &Log, offset: u64) -> usize {
    match log.read(offset) {
        Slot::Present(r) => r.payload().len(),
        other => panic!("offset {offset}: {other:?}"),
    }
}

async fn fresh(dir: &Path, records: u64, config: LogConfig, label: &str) {
    let _ = std::fs::remove_dir_all(dir);
    let (log, _) = Log::open(dir, config).await.expect("open");
    let payload = vec![7u8; PAYLOAD_BYTES];
    let (mut read_time, mut faults, started) = (Duration::ZERO, 0, Instant::now());
    for first in (0..records).step_by(GROUP as usize) {
        let end = (first + GROUP).min(records);
        for _ in first..end {
            log.append(&payload, 0, 0).await.expect("append");
        }
        log.commit(end - 1).await.expect("commit");
        let (t, f) = (Instant::now(), major_faults());
        for o in first..end {
            assert_eq!(read_one(&log, o), PAYLOAD_BYTES);
        }
        read_time += t.elapsed();
        faults += major_faults() - f;
    }
    let total = started.elapsed();
    let s = log.stats();
    let w = s.written;
    println!(
        "fresh {label}: {records} x 4 KiB in {:.2} s ({:.0}/s); reads {:.1} ms total, {:.2} us/read, {faults} major faults; from memory {}, from map {}",
        total.as_secs_f64(),
        records as f64 / total.as_secs_f64(),
        read_time.as_secs_f64() * 1e3,
        read_time.as_secs_f64() * 1e6 / records as f64,
        s.reads_from_memory,
        s.reads_from_map
    );
    println!(
        "  written {} B for {} B of payload ({:.3}x): framing {}, markers {}, padding {}, segment headers {}, checkpoints {}, prewritten zeros {} ({} batches)",
        s.bytes_written(),
        w.payload_bytes,
        s.bytes_written() as f64 / w.payload_bytes as f64,
        w.framing_bytes,
        w.marker_bytes,
        w.padding_bytes,
        w.segment_header_bytes,
        w.checkpoint_bytes,
        s.prewritten_bytes,
        w.batches
    );
    log.close().await.expect("close");
}

fn drop_page_cache(dir: &Path) {
    use std::os::fd::AsRawFd;
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        if let Ok(f) = std::fs::File::open(e.path()) {
            // SAFETY: fadvise on an open file descriptor.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

/// Reads every record from the first; prints time and major faults.
async fn read_all(log: &Log, records: u64, label: &str) {
    let (t, f) = (Instant::now(), major_faults());
    for o in 0..records {
        assert_eq!(read_one(log, o), PAYLOAD_BYTES);
    }
    let (elapsed, faults) = (t.elapsed(), major_faults() - f);
    let s = log.stats();
    println!(
        "{label}: {records} reads in {:.1} ms ({:.2} us/read), {faults} major faults, {} madvise calls, from map {}",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / records as f64,
        s.readahead_advices,
        s.reads_from_map
    );
}

/// A backlog in a running log: written (O_DIRECT: nothing in the page
/// cache), never read, then read from its head.
async fn cold(dir: &Path, records: u64, readahead_bytes: usize) {
    let _ = std::fs::remove_dir_all(dir);
    let config = LogConfig {
        readahead_bytes,
        recent_bytes_max: 0,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(dir, config.clone()).await.expect("open");
    let payload = vec![7u8; PAYLOAD_BYTES];
    for i in 0..records {
        let o = log.append(&payload, 0, 0).await.expect("append");
        if (i + 1) % GROUP == 0 {
            log.commit(o).await.expect("commit");
        }
    }
    log.commit_all().await.expect("commit");
    read_all(
        &log,
        records,
        &format!("cold backlog, readahead {readahead_bytes} B"),
    )
    .await;
    log.close().await.expect("close");
    drop_page_cache(dir);
    let (log, _) = Log::open(dir, config).await.expect("reopen");
    read_all(
        &log,
        records,
        &format!("cold after reopen, readahead {readahead_bytes} B"),
    )
    .await;
    log.close().await.expect("close");
}

/// What the cache's one copy per batch costs: a batch of 64 records of 4 KiB
/// copied into a fresh `Rc<[u8]>`, as `batch_durable` does.
fn copy_cost() {
    let batch = vec![7u8; GROUP as usize * (PAYLOAD_BYTES + 32)];
    let rounds = 2_000;
    let t = Instant::now();
    let mut keep = 0;
    for _ in 0..rounds {
        let copy: std::rc::Rc<[u8]> = std::rc::Rc::from(std::hint::black_box(&batch[..]));
        keep += copy[copy.len() - 1] as usize;
    }
    let per_record = t.elapsed().as_secs_f64() * 1e6 / (rounds * GROUP as usize) as f64;
    println!("copy into the cache: {per_record:.3} us per 4 KiB record ({keep})");
}

fn main() {
    copy_cost();
    let records: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50_000);
    let dir: PathBuf = std::env::args()
        .nth(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("gonets-tail-reads-{}", std::process::id()))
        });
    let ex = LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .expect("start a glommio executor");
    let work = dir.clone();
    ex.run(async move {
        let dir = work;
        let off = LogConfig {
            recent_bytes_max: 0,
            ..LogConfig::default()
        };
        let no_prewrite = LogConfig {
            prewrite_ahead_bytes: 0,
            ..LogConfig::default()
        };
        fresh(&dir, records, off, "cache off").await;
        fresh(&dir, records, LogConfig::default(), "cache on").await;
        fresh(&dir, records, no_prewrite, "cache on, prewrite 0").await;
        fresh(&dir, records, LogConfig::default(), "cache on (again)").await;
        cold(&dir, records, 0).await;
        cold(&dir, records, 1 << 20).await;
        cold(&dir, records, 0).await;
        cold(&dir, records, 1 << 20).await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}
