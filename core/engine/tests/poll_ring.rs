//! An O_DIRECT write on a disk without poll queues goes through glommio's
//! main ring, not its poll ring (docs/adr/0017).
//!
//! On the poll ring (`IORING_SETUP_IOPOLL`) a request is reaped only by
//! polling: the executor cannot sleep while one is in flight and spins in
//! `io_uring_enter(GETEVENTS)`. On a queue that has no poll queues
//! (`queue/io_poll` reads 0: virtio-blk, NVMe without `poll_queues`) the
//! request completes by interrupt anyway, so upstream glommio 0.9 — which
//! probes with one read that such a queue also completes — burned the
//! shard's core for nothing with every segment write in flight.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use glommio::io::{DmaFile, OpenOptions};
use glommio::{LocalExecutorBuilder, Placement};

/// Writes made by the test.
const WRITES: u64 = 8;
/// One O_DIRECT block, bytes.
const BLOCK_BYTES: usize = 4096;

/// `queue/io_poll` of the whole device holding `path` (glommio looks at
/// minor 0, the device rather than its partition); `None` when it has none
/// (tmpfs, overlay without a block device).
fn io_poll_of(path: &Path) -> Option<String> {
    let dev = std::fs::metadata(path).ok()?.dev();
    let major = libc_major(dev);
    let queue = format!("/sys/dev/block/{major}:0/queue/io_poll");
    std::fs::read_to_string(queue)
        .ok()
        .map(|s| s.trim().to_string())
}

/// glibc's `major()` of a `dev_t`.
fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)
}

/// Writes `WRITES` blocks with O_DIRECT and fdatasync; the (main ring,
/// poll ring) write counts glommio saw.
fn write_blocks(dir: &Path) -> (u64, u64) {
    let path = dir.join("segment");
    LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move {
            let file = OpenOptions::new()
                .create(true)
                .write(true)
                .read(true)
                .dma_open(&path)
                .await
                .expect("open with O_DIRECT");
            // Drops the open's own counts (the probe read, if any).
            let _ = glommio::executor().io_stats();
            write_and_sync(&file).await;
            let stats = glommio::executor().io_stats();
            file.close().await.expect("close");
            (
                stats.main_ring.file_writes().0,
                stats.poll_ring.file_writes().0,
            )
        })
        .expect("executor")
        .join()
        .expect("executor thread")
}

async fn write_and_sync(file: &DmaFile) {
    // Bounded: WRITES blocks.
    for i in 0..WRITES {
        let mut buf = file.alloc_dma_buffer(BLOCK_BYTES);
        buf.as_bytes_mut().fill(i as u8);
        let n = file
            .write_at(buf, i * BLOCK_BYTES as u64)
            .await
            .expect("write");
        assert_eq!(n, BLOCK_BYTES);
        file.fdatasync().await.expect("fdatasync");
    }
}

#[test]
fn given_a_disk_without_poll_queues_when_blocks_written_then_the_main_ring_carries_them() {
    // The target dir is on the same disk as a hub's data dir in CI; /tmp may be tmpfs.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let io_poll = io_poll_of(dir.path());
    let (main, poll) = write_blocks(dir.path());
    assert_eq!(
        main + poll,
        WRITES,
        "every write counted once (main {main}, poll {poll})"
    );
    match io_poll.as_deref() {
        Some("0") => assert_eq!(
            poll, 0,
            "the device has no poll queues, yet {poll} writes went to the poll ring"
        ),
        other => eprintln!(
            "the test dir's device reports io_poll {other:?}: the ring is glommio's choice; \
             main {main}, poll {poll}"
        ),
    }
}
