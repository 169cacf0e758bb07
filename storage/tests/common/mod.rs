//! Helpers shared by the storage crate's integration tests: an executor to
//! run a log on, and reading a log's files byte by byte to aim damage.

// Each test binary uses its own subset.
#![allow(dead_code)]

use glommio::{LocalExecutorBuilder, Placement};
use gonets_storage::scan::{batch_at, BatchAt, BatchInfo, Limits};
use gonets_storage::segment::{SegmentHeader, SEGMENT_HEADER_BYTES};
use std::path::{Path, PathBuf};

/// Runs `f` on a fresh glommio executor on this thread.
pub fn run<T: Send + 'static, F: std::future::Future<Output = T> + 'static>(
    f: impl FnOnce() -> F + Send + 'static,
) -> T {
    LocalExecutorBuilder::new(Placement::Unbound)
        .make()
        .unwrap()
        .run(f())
}

/// The log's segment files, in offset order.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// The valid batches of a segment file, from its bytes, up to the first
/// that does not check out.
pub fn batches_of(file: &Path, limits: Limits) -> Vec<BatchInfo> {
    let bytes = std::fs::read(file).unwrap();
    let header = SegmentHeader::decode(&bytes).unwrap();
    let (mut pos, mut offset, mut chain) =
        (SEGMENT_HEADER_BYTES, header.base_offset, header.prev_chain);
    let mut out = vec![];
    // Bounded by the segment's size: every batch moves `pos` forward.
    while let BatchAt::Valid(b) = batch_at(&bytes, pos, offset, Some(&chain), limits) {
        pos = b.end;
        offset = b.next_offset();
        chain = b.chain;
        out.push(b);
    }
    out
}

/// Copies a log's files (not its lock, not subdirectories) into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() && e.file_name() != "LOCK" {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
