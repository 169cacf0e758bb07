//! Storage demo: writes a log durably, closes it, reopens it (recovery from
//! the checkpoint) and reads every record back, printing what it did.
//!
//! `cargo run --release -p gonets-storage --example demo [DIR]`

use glommio::{LocalExecutorBuilder, Placement};
use gonets_storage::{Log, LogConfig, Slot};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const RECORDS: u64 = 200_000;
const PAYLOAD_BYTES: usize = 1024;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("gonets-storage-demo-{}", std::process::id()))
        });
    let _ = std::fs::remove_dir_all(&dir);
    let config = LogConfig {
        segment_size_bytes: 64 << 20,
        ..LogConfig::default()
    };
    let ex = LocalExecutorBuilder::new(Placement::Unbound)
        .name("demo")
        .make()
        .expect("start a glommio executor (is io_uring allowed and RLIMIT_MEMLOCK high enough?)");
    ex.run(async move {
        println!("gonets storage demo: log in {}", dir.display());
        let (log, report) = Log::open(&dir, config.clone()).await.expect("open log");
        println!("opened a new log: {} segment(s)", report.segments);

        let started = Instant::now();
        let mut payload = vec![0u8; PAYLOAD_BYTES];
        let mut pending = Vec::with_capacity(64);
        for i in 0..RECORDS {
            payload[..8].copy_from_slice(&i.to_le_bytes());
            let offset = log.append(&payload, now_ns(), 0).await.expect("append");
            pending.push(offset);
            // One commit (one fdatasync) covers every 64 appends.
            if pending.len() == 64 {
                log.commit(*pending.last().unwrap()).await.expect("commit");
                pending.clear();
            }
            if i % 50_000 == 49_999 {
                println!("  appended and committed {} records", i + 1);
            }
        }
        log.commit_all().await.expect("commit");
        let secs = started.elapsed().as_secs_f64();
        println!(
            "wrote {RECORDS} records of {PAYLOAD_BYTES} B durably (fdatasync) in {secs:.2} s: {:.0} records/s, {:.1} MB/s",
            RECORDS as f64 / secs,
            (RECORDS as f64 * PAYLOAD_BYTES as f64) / secs / 1e6
        );
        let stats = log.stats();
        println!("segments: {}, durable offsets 0..{}", stats.segments, stats.durable_offset);
        log.close().await.expect("close");

        let started = Instant::now();
        let (log, report) = Log::open(&dir, config.clone()).await.expect("reopen");
        println!(
            "clean reopen: {} records, from checkpoint: {}, scanned {} bytes in {:.1} ms",
            report.next_offset,
            report.from_checkpoint,
            report.bytes_scanned,
            started.elapsed().as_secs_f64() * 1e3
        );
        let mut checked = 0u64;
        for slot in log.iter_from(0) {
            let Slot::Present(r) = slot else { panic!("unexpected {slot:?}") };
            assert_eq!(u64::from_le_bytes(r.payload()[..8].try_into().unwrap()), r.offset());
            checked += 1;
        }
        println!("read back all {checked} records zero-copy through the segment maps, every CRC checked");
        log.close().await.expect("close");
        println!("data lives in {} (remove it when done)", dir.display());
    });
}
