//! The read-only walk (`gonets_storage::verify`): a log written through
//! the public API verifies whole, with the chain values `durable_head`
//! gave at each commit found at the same offsets; it is refused while the
//! log is open; a flipped byte, a segment header whose chain was changed
//! and a later segment removed are breaks; retention's dropped segments
//! are not.

use glommio::{LocalExecutorBuilder, Placement};
use gonets_storage::segment::{SegmentHeader, SEGMENT_HEADER_BYTES};
use gonets_storage::verify::{verify_log, LogSummary, VerifyError, Visited, Visitor};
use gonets_storage::{Log, LogConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn run<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    f: impl FnOnce() -> F + Send + 'static,
) -> T {
    LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .unwrap()
        .run(f())
}

/// Collects what the walk hands out.
#[derive(Default)]
struct Seen {
    records: Vec<(u64, usize)>,
    boundaries: BTreeMap<u64, [u8; 32]>,
}

impl Visitor for Seen {
    fn record(&mut self, r: Visited<'_>) -> Result<(), String> {
        self.records.push((r.offset, r.payload.len()));
        Ok(())
    }
    fn boundary(&mut self, offset: u64, chain: &[u8; 32], _: &Path, _: usize) {
        self.boundaries.insert(offset, *chain);
    }
}

fn payload_len(i: u64) -> usize {
    (i as usize * 37) % 3000
}

/// Writes `n` records, committing every 7; gives the durable heads seen.
fn write_log(dir: PathBuf, n: u64, retain_from: Option<u64>) -> Vec<(u64, [u8; 32])> {
    run(move || async move {
        let (log, _) = Log::open(&dir, LogConfig::small_for_tests()).await.unwrap();
        let mut heads = Vec::new();
        let mut last = 0;
        for i in 0..n {
            last = log.append(&vec![7u8; payload_len(i)], i, 0).await.unwrap();
            if i % 7 == 0 {
                log.commit(last).await.unwrap();
                heads.push(log.durable_head());
            }
        }
        log.commit(last).await.unwrap();
        heads.push(log.durable_head());
        let mut seen = Seen::default();
        let open = verify_log(&dir, &mut seen);
        assert!(
            matches!(open, Err(VerifyError::Locked(_))),
            "refused while open: {open:?}"
        );
        if let Some(floor) = retain_from {
            log.checkpoint().await.unwrap();
            assert!(log.retain_from(floor).await.unwrap() > 0);
        }
        log.close().await.unwrap();
        heads
    })
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs
}

fn walk(dir: &Path) -> (Result<LogSummary, VerifyError>, Seen) {
    let mut seen = Seen::default();
    let r = verify_log(dir, &mut seen);
    (r, seen)
}

#[test]
fn given_a_written_log_when_walked_then_every_record_and_each_durable_heads_chain_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let heads = write_log(dir.path().to_path_buf(), 2000, None);
    let (summary, seen) = walk(dir.path());
    let summary = summary.expect("verifies");
    assert!(summary.segments > 1, "small segments roll");
    assert_eq!(summary.records, 2000);
    assert_eq!((summary.first_offset, summary.next_offset), (0, 2000));
    assert_eq!(seen.records.len(), 2000);
    for (i, (offset, len)) in seen.records.iter().enumerate() {
        assert_eq!((*offset, *len), (i as u64, payload_len(i as u64)));
    }
    for (offset, chain) in heads {
        assert_eq!(
            seen.boundaries.get(&offset),
            Some(&chain),
            "head at {offset}"
        );
    }
    assert_eq!(summary.chain, seen.boundaries[&2000]);
}

#[test]
fn given_a_flipped_byte_when_walked_then_a_break_at_that_record() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path().to_path_buf(), 300, None);
    let seg = &segments(dir.path())[0];
    let mut bytes = std::fs::read(seg).unwrap();
    let at = SEGMENT_HEADER_BYTES + 16; // the first record's timestamp, under its CRC
    bytes[at] ^= 0x40;
    std::fs::write(seg, &bytes).unwrap();
    let (r, _) = walk(dir.path());
    let Err(VerifyError::Break(b)) = r else {
        panic!("a break: {r:?}")
    };
    assert_eq!((b.position, b.offset), (SEGMENT_HEADER_BYTES, 0), "{b}");
    assert!(b.what.contains("BadCrc"), "{b}");
}

#[test]
fn given_a_later_segment_whose_header_chain_changed_or_a_middle_segment_gone_then_breaks() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path().to_path_buf(), 2000, None);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3);
    let mut bytes = std::fs::read(&segs[1]).unwrap();
    let mut h = SegmentHeader::decode(&bytes[..SEGMENT_HEADER_BYTES]).unwrap();
    h.prev_chain[0] ^= 1;
    h.encode(&mut bytes[..SEGMENT_HEADER_BYTES]);
    let saved = std::fs::read(&segs[1]).unwrap();
    std::fs::write(&segs[1], &bytes).unwrap();
    let (r, _) = walk(dir.path());
    let Err(VerifyError::Break(b)) = r else {
        panic!("a break: {r:?}")
    };
    assert_eq!(b.segment, segs[1]);
    assert!(b.what.contains("breaks the chain"), "{b}");
    std::fs::write(&segs[1], &saved).unwrap();
    std::fs::remove_file(&segs[1]).unwrap();
    let (r, _) = walk(dir.path());
    let Err(VerifyError::Break(b)) = r else {
        panic!("a break: {r:?}")
    };
    assert_eq!(b.segment, segs[2]);
    assert!(b.what.contains("the one before ends at"), "{b}");
}

#[test]
fn given_retention_dropped_the_oldest_segments_when_walked_then_the_rest_verifies() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path().to_path_buf(), 2000, Some(1000));
    let (summary, seen) = walk(dir.path());
    let summary = summary.expect("verifies");
    assert!(summary.first_offset > 0 && summary.first_offset <= 1000);
    assert_eq!(summary.next_offset, 2000);
    assert_eq!(seen.records[0].0, summary.first_offset);
}
