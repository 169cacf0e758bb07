//! Index runs on disk: what `write_run` leaves, and what `open_runs` keeps
//! after the crashes docs/storage.md §12 walks through.

mod common;

use common::run;
use gonets_storage::index_run::{
    encode_run, open_runs, parse_run_file_name, remove_run, run_file_name, sync_dir, write_run,
    IndexRun, RUN_HEADER_BYTES, RUN_TMP_SUFFIX,
};
use std::path::{Path, PathBuf};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn put(dir: &Path, from: u64, to: u64, entries: &[(u128, u64)]) -> PathBuf {
    let path = dir.join(run_file_name(from, to));
    std::fs::write(&path, encode_run(from, to, entries)).unwrap();
    path
}

#[test]
fn given_entries_when_written_then_file_is_the_reference_encoding_and_no_tmp_left() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    // Enough entries for more than one O_DIRECT write and a partial last block.
    let entries: Vec<(u128, u64)> = (0..40_000u128).map(|i| (i * 7 + 3, i as u64)).collect();
    let expected = encode_run(10, 50_000, &entries);
    let written = entries.clone();
    let path = run(move || async move {
        let r = write_run(&d, 10, 50_000, written.into_iter())
            .await
            .expect("written");
        // The run it returns answers as the one opened from the file.
        assert_eq!(
            (r.len(), r.lookup(7 * 123 + 3), r.lookup(4)),
            (40_000, Some(123), None)
        );
        r.path().to_path_buf()
    });
    assert_eq!(path, dir.path().join(run_file_name(10, 50_000)));
    assert_eq!(std::fs::read(&path).unwrap(), expected);
    assert_eq!(names(dir.path()), vec![run_file_name(10, 50_000)]);
    let r = IndexRun::open(&path).expect("opens");
    assert_eq!(
        (r.header().from, r.header().to, r.len()),
        (10, 50_000, 40_000)
    );
    assert_eq!(r.lookup(7 * 123 + 3), Some(123));
    assert_eq!(r.lookup(4), None);
}

#[test]
fn given_empty_run_when_written_then_header_block_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let path = run(move || async move {
        let r = write_run(&d, 5, 5, std::iter::empty()).await.unwrap();
        assert_eq!(r.lookup(0), None);
        r.path().to_path_buf()
    });
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), RUN_HEADER_BYTES);
    assert_eq!(bytes, encode_run(5, 5, &[]));
    assert!(IndexRun::open(&path).unwrap().is_empty());
}

#[test]
fn given_merge_inputs_that_outlived_a_crash_when_opened_then_merged_run_kept_inputs_removed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    put(d, 0, 10, &[(1, 0), (5, 2)]);
    put(d, 10, 20, &[(2, 10), (5, 12)]);
    put(d, 0, 20, &[(1, 0), (2, 10), (5, 12)]);
    put(d, 20, 30, &[(9, 25)]);
    let tmp = format!("{}{RUN_TMP_SUFFIX}", run_file_name(20, 40));
    std::fs::write(d.join(&tmp), b"half a run").unwrap();
    let opened = open_runs(d).expect("opens");
    let covered: Vec<(u64, u64)> = opened
        .runs
        .iter()
        .map(|r| (r.header().from, r.header().to))
        .collect();
    assert_eq!(covered, vec![(0, 20), (20, 30)]);
    assert_eq!(opened.covered_to, 30);
    assert_eq!(opened.removed.len(), 3, "{:?}", opened.removed);
    assert_eq!(
        names(d),
        vec![run_file_name(0, 20), run_file_name(20, 30)],
        "the inputs and the unfinished write are gone"
    );
}

#[test]
fn given_damaged_run_in_the_chain_when_opened_then_it_and_every_later_run_removed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    put(d, 0, 10, &[(1, 0)]);
    let damaged = put(d, 10, 20, &[(2, 10), (3, 11)]);
    put(d, 20, 30, &[(4, 20)]);
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[RUN_HEADER_BYTES + 3] ^= 0x10;
    std::fs::write(&damaged, bytes).unwrap();
    // A run whose header disagrees with its name is not trusted either.
    // It is tried after the damaged run (the widest run at an offset first).
    std::fs::write(
        d.join(run_file_name(10, 15)),
        encode_run(10, 16, &[(7, 12)]),
    )
    .unwrap();
    let opened = open_runs(d).expect("opens");
    assert_eq!(opened.runs.len(), 1);
    assert_eq!(opened.covered_to, 10, "the owner rebuilds from offset 10");
    assert_eq!(opened.removed.len(), 3, "{:?}", opened.removed);
    assert_eq!(names(d), vec![run_file_name(0, 10)]);
}

#[test]
fn given_no_run_files_when_opened_then_nothing_covered_and_other_files_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not a run").unwrap();
    let opened = open_runs(dir.path()).expect("opens");
    assert!(opened.runs.is_empty() && opened.removed.is_empty());
    assert_eq!(opened.covered_to, 0);
    assert_eq!(names(dir.path()), vec!["notes.txt".to_string()]);
    assert_eq!(parse_run_file_name("notes.txt"), None);
}

#[test]
fn given_merged_run_in_place_when_inputs_removed_and_dir_synced_then_only_it_remains() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let a = put(&d, 0, 10, &[(1, 0)]);
    let b = put(&d, 10, 20, &[(2, 10)]);
    run(move || async move {
        let ra = IndexRun::open(&a).unwrap();
        let rb = IndexRun::open(&b).unwrap();
        let merged = gonets_storage::index_run::merge_entries(&ra, &rb);
        write_run(&d, 0, 20, merged).await.unwrap();
        remove_run(ra.path()).await.unwrap();
        remove_run(rb.path()).await.unwrap();
        sync_dir(&d).await.unwrap();
    });
    assert_eq!(names(dir.path()), vec![run_file_name(0, 20)]);
    let opened = open_runs(dir.path()).unwrap();
    assert_eq!(opened.runs[0].lookup(2), Some(10));
}

#[test]
fn given_relative_directory_when_run_written_then_synced_not_ebadf() {
    // Issue 14: glommio opens a directory through io_uring relative to no
    // working directory; a relative one failed every directory sync with
    // "Bad file descriptor". Tests run in the package's directory.
    let base = tempfile::Builder::new()
        .prefix("index-run-relative-")
        .tempdir_in(".")
        .unwrap();
    let relative = PathBuf::from(base.path().file_name().unwrap());
    assert!(relative.is_relative());
    let d = relative.clone();
    let got = run(move || async move {
        let r = write_run(&d, 0, 2, [(1u128, 0u64)].into_iter()).await?;
        sync_dir(&d).await.map(|()| r.path().to_path_buf())
    });
    let path = got.expect("written and synced");
    assert_eq!(IndexRun::open(&path).unwrap().lookup(1), Some(0));
}

/// Bytes of `path` in the page cache: `mincore` over a map of our own (the
/// page cache is the file's, whoever maps it).
fn cached_bytes(path: &Path) -> usize {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: the test's own run file, not written while mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let page = 4096usize;
    let mut resident = vec![0u8; map.len().div_ceil(page)];
    // SAFETY: `map` spans `map.len()` bytes and `resident` has one byte a page.
    let rc = unsafe {
        libc::mincore(
            map.as_ptr() as *mut libc::c_void,
            map.len(),
            resident.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "mincore");
    resident.iter().filter(|&&b| b & 1 == 1).count() * page
}

#[test]
fn given_a_run_just_written_when_warmed_then_its_pages_are_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    // ~4.6 MiB of entries: several warm reads.
    let entries: Vec<(u128, u64)> = (0..200_000u128).map(|i| (i * 3, i as u64)).collect();
    let (path, before, after, len) = run(move || async move {
        let r = write_run(&d, 0, 200_000, entries.into_iter())
            .await
            .unwrap();
        let path = r.path().to_path_buf();
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        // Written with O_DIRECT, past the page cache, and not read back.
        let before = cached_bytes(&path);
        r.warm().await.unwrap();
        let after = cached_bytes(&path);
        (path, before, after, len)
    });
    assert!(
        before < len / 4,
        "{before} of {len} bytes cached before the warm read"
    );
    assert_eq!(
        after,
        len,
        "every page cached after it ({})",
        path.display()
    );
}

#[test]
fn given_a_run_when_a_key_outside_its_range_is_looked_up_then_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = put(dir.path(), 0, 3, &[(10, 0), (20, 1), (30, 2)]);
    let r = IndexRun::open(&path).unwrap();
    assert_eq!(
        (r.lookup(9), r.lookup(31), r.lookup(u128::MAX)),
        (None, None, None)
    );
    assert_eq!(
        (r.lookup(10), r.lookup(20), r.lookup(30)),
        (Some(0), Some(1), Some(2))
    );
    assert_eq!(r.lookup(25), None);
}
