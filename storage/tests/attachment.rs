//! The attachment store: chunked uploads, resumption, content-addressed
//! blobs, who may see what, sweeping, recovery after a restart, byte-level
//! damage and (with `--features failpoints`) power loss at every step.

use gonets_storage::{
    AttachmentError, AttachmentLimits, AttachmentStore, BlobInfo, UploadId, UploadState,
};
use std::path::Path;

/// Size limit of the kind every test uploads as.
const KIND_MAX: u64 = 1 << 30;

fn limits() -> AttachmentLimits {
    AttachmentLimits {
        chunk_bytes_max: 64 << 10,
        uploads_open_max: 8,
        uploads_per_owner_max: 8,
        abandon_after_ms: 1_000,
        unreferenced_keep_ms: 10_000,
    }
}

fn open(dir: &Path) -> AttachmentStore {
    AttachmentStore::open(dir, limits(), 0).expect("open the store")
}

/// Deterministic bytes that differ with `seed`.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// Sends `bytes` from `from` on in chunks of `chunk` bytes.
fn put_from(
    store: &mut AttachmentStore,
    owner: &str,
    id: UploadId,
    bytes: &[u8],
    from: usize,
    chunk: usize,
) -> UploadState {
    let mut state = store.status(owner, id).unwrap();
    let mut at = from;
    while at < bytes.len() {
        let piece = &bytes[at..(at + chunk).min(bytes.len())];
        state = store
            .put_chunk(owner, id, at as u64, piece, crc32c::crc32c(piece), 0)
            .unwrap();
        at += piece.len();
        assert_eq!(state.durable_bytes, at as u64);
    }
    state
}

/// Uploads `bytes` whole for `owner` and finishes it.
fn upload(store: &mut AttachmentStore, owner: &str, bytes: &[u8], chunk: usize) -> BlobInfo {
    let s = store.begin(owner, bytes.len() as u64, KIND_MAX, 0).unwrap();
    put_from(store, owner, s.id, bytes, 0, chunk);
    store.finish(owner, s.id, digest(bytes), 0).unwrap()
}

/// Everything `caller` can read of blob `d`, read in pieces of 1000 bytes.
fn read_blob(store: &AttachmentStore, caller: &str, d: &[u8; 32]) -> Vec<u8> {
    let reader = store.open_blob(caller, d).unwrap();
    let mut out = vec![];
    let mut buf = vec![0u8; 1000];
    loop {
        let n = reader.read_at(out.len() as u64, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out.len() as u64, reader.size_bytes());
    out
}

#[test]
fn given_three_chunks_when_finished_then_blob_reads_back_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    let bytes = payload(25_000, 1);
    let s = store.begin("alice", 25_000, KIND_MAX, 5).unwrap();
    assert_eq!(
        (s.owner.as_str(), s.size_bytes, s.durable_bytes),
        ("alice", 25_000, 0)
    );
    assert_eq!(store.uploads_open(), 1);
    put_from(&mut store, "alice", s.id, &bytes, 0, 10_000);
    let info = store.finish("alice", s.id, digest(&bytes), 100).unwrap();
    assert_eq!(info.digest, digest(&bytes));
    assert_eq!(info.size_bytes, 25_000);
    assert_eq!(info.owners, vec!["alice"]);
    assert!(info.readers.is_empty());
    assert_eq!(info.keep_until_ms, 100 + limits().unreferenced_keep_ms);
    assert_eq!(store.uploads_open(), 0);
    assert_eq!(read_blob(&store, "alice", &info.digest), bytes);
    store.verify_blob(&info.digest).unwrap();
    assert_eq!(store.blob(&info.digest).unwrap(), info);
    let reader = store.open_blob("alice", &info.digest).unwrap();
    let mut buf = [0u8; 100];
    assert_eq!(reader.read_at(24_950, &mut buf).unwrap(), 50);
    assert_eq!(&buf[..50], &bytes[24_950..]);
    assert_eq!(reader.read_at(25_000, &mut buf).unwrap(), 0);
    // The upload is gone: finishing it again is refused.
    assert!(matches!(
        store.finish("alice", s.id, info.digest, 0),
        Err(AttachmentError::UnknownUpload { .. })
    ));
    let names: Vec<_> = std::fs::read_dir(tmp.path().join("uploads"))
        .unwrap()
        .collect();
    assert!(names.is_empty(), "upload files left: {names:?}");
}

#[test]
fn given_acknowledged_chunk_when_resent_then_ok_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    let bytes = payload(3000, 2);
    let s = store.begin("alice", 3000, KIND_MAX, 0).unwrap();
    put_from(&mut store, "alice", s.id, &bytes[..2000], 0, 1000);
    let first = &bytes[..1000];
    let again = store
        .put_chunk("alice", s.id, 0, first, crc32c::crc32c(first), 7)
        .unwrap();
    assert_eq!(again.durable_bytes, 2000);
    assert_eq!(again.touched_ms, 7);
    // Other bytes over a durable range are no resend: told where to resume.
    let other = payload(1000, 99);
    assert!(matches!(
        store.put_chunk("alice", s.id, 0, &other, crc32c::crc32c(&other), 0),
        Err(AttachmentError::OffsetMismatch {
            offset: 0,
            durable_bytes: 2000
        })
    ));
    put_from(&mut store, "alice", s.id, &bytes, 2000, 1000);
    let info = store.finish("alice", s.id, digest(&bytes), 0).unwrap();
    assert_eq!(read_blob(&store, "alice", &info.digest), bytes);
}

#[test]
fn given_chunk_at_wrong_offset_when_put_then_offset_mismatch_tells_durable_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    let bytes = payload(3000, 3);
    let s = store.begin("alice", 3000, KIND_MAX, 0).unwrap();
    put_from(&mut store, "alice", s.id, &bytes[..1000], 0, 1000);
    let later = &bytes[2000..];
    let err = store
        .put_chunk("alice", s.id, 2000, later, crc32c::crc32c(later), 0)
        .unwrap_err();
    assert!(
        matches!(
            err,
            AttachmentError::OffsetMismatch {
                offset: 2000,
                durable_bytes: 1000
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("resume at offset 1000"), "{err}");
    // Straddling the durable end is no resend either.
    let straddle = &bytes[500..1500];
    assert!(matches!(
        store.put_chunk("alice", s.id, 500, straddle, crc32c::crc32c(straddle), 0),
        Err(AttachmentError::OffsetMismatch {
            durable_bytes: 1000,
            ..
        })
    ));
    assert_eq!(store.status("alice", s.id).unwrap().durable_bytes, 1000);
}

#[test]
fn given_bad_crc_when_put_chunk_then_bad_chunk_and_nothing_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    let bytes = payload(2000, 4);
    let s = store.begin("alice", 2000, KIND_MAX, 0).unwrap();
    let crc = crc32c::crc32c(&bytes[..1000]);
    let err = store
        .put_chunk("alice", s.id, 0, &bytes[..1000], crc ^ 1, 0)
        .unwrap_err();
    assert!(
        matches!(err, AttachmentError::BadChunk { offset: 0, expected_crc32c, got_crc32c }
            if expected_crc32c == crc ^ 1 && got_crc32c == crc),
        "{err}"
    );
    assert_eq!(store.status("alice", s.id).unwrap().durable_bytes, 0);
    let data = tmp.path().join("uploads").join(format!("{}.data", s.id));
    assert_eq!(std::fs::metadata(data).unwrap().len(), 0);
    drop(store);
    let store = open(tmp.path());
    assert_eq!(store.status("alice", s.id).unwrap().durable_bytes, 0);
}

#[test]
fn given_incomplete_upload_when_finish_then_incomplete_and_upload_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    let bytes = payload(2000, 5);
    let s = store.begin("alice", 2000, KIND_MAX, 0).unwrap();
    put_from(&mut store, "alice", s.id, &bytes[..1000], 0, 1000);
    assert!(matches!(
        store.finish("alice", s.id, digest(&bytes), 0),
        Err(AttachmentError::Incomplete {
            durable_bytes: 1000,
            size_bytes: 2000
        })
    ));
    put_from(&mut store, "alice", s.id, &bytes, 1000, 1000);
    store.finish("alice", s.id, digest(&bytes), 0).unwrap();
}

#[test]
fn given_wrong_digest_when_finish_then_wrong_digest_and_upload_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    let bytes = payload(1500, 6);
    let s = store.begin("alice", 1500, KIND_MAX, 0).unwrap();
    put_from(&mut store, "alice", s.id, &bytes, 0, 1000);
    let wrong = digest(b"something else");
    let err = store.finish("alice", s.id, wrong, 0).unwrap_err();
    match &err {
        AttachmentError::WrongDigest {
            expected_hex,
            got_hex,
        } => {
            assert_eq!(expected_hex.len(), 64);
            assert_eq!(*got_hex, blake3::hash(&bytes).to_hex().to_string());
        }
        other => panic!("{other}"),
    }
    assert_eq!(store.uploads_open(), 0);
    assert!(matches!(store.blob(&wrong), Err(AttachmentError::NotFound)));
    assert!(matches!(
        store.blob(&digest(&bytes)),
        Err(AttachmentError::NotFound)
    ));
    assert!(matches!(
        store.status("alice", s.id),
        Err(AttachmentError::UnknownUpload { .. })
    ));
    assert_eq!(
        std::fs::read_dir(tmp.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("blobs")).unwrap().count(),
        0
    );
}

#[test]
fn given_sizes_out_of_bounds_when_begin_or_put_then_typed_errors_and_nothing_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    assert!(matches!(
        store.begin("alice", 1001, 1000, 0),
        Err(AttachmentError::TooLarge {
            size_bytes: 1001,
            size_bytes_max: 1000
        })
    ));
    assert!(matches!(
        store.begin("alice", 0, 1000, 0),
        Err(AttachmentError::Empty)
    ));
    assert!(matches!(
        store.begin("", 10, 1000, 0),
        Err(AttachmentError::OwnerInvalid { .. })
    ));
    assert!(matches!(
        store.begin(&"x".repeat(257), 10, 1000, 0),
        Err(AttachmentError::OwnerInvalid { .. })
    ));
    assert_eq!(store.uploads_open(), 0);
    let s = store.begin("alice", 100_000, KIND_MAX, 0).unwrap();
    let big = payload(65_537, 7);
    assert!(matches!(
        store.put_chunk("alice", s.id, 0, &big, crc32c::crc32c(&big), 0),
        Err(AttachmentError::ChunkTooLarge {
            bytes: 65_537,
            chunk_bytes_max: 65_536
        })
    ));
    assert!(matches!(
        store.put_chunk("alice", s.id, 0, &[], crc32c::crc32c(&[]), 0),
        Err(AttachmentError::Empty)
    ));
    let tail = payload(2000, 8);
    assert!(matches!(
        store.put_chunk("alice", s.id, 99_000, &tail, crc32c::crc32c(&tail), 0),
        Err(AttachmentError::PastEnd {
            offset: 99_000,
            len: 2000,
            size_bytes: 100_000
        })
    ));
    assert!(matches!(
        store.put_chunk("alice", s.id, u64::MAX, &tail, crc32c::crc32c(&tail), 0),
        Err(AttachmentError::PastEnd { .. })
    ));
    assert_eq!(store.status("alice", s.id).unwrap().durable_bytes, 0);
}

#[test]
fn given_uploads_open_max_when_begin_then_too_many_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    let ids: Vec<UploadId> = (0..8)
        .map(|i| store.begin(&format!("p{i}"), 10, KIND_MAX, 0).unwrap().id)
        .collect();
    assert!(matches!(
        store.begin("late", 10, KIND_MAX, 0),
        Err(AttachmentError::TooManyUploads { open_max: 8 })
    ));
    store.abort("p3", ids[3]).unwrap();
    store.begin("late", 10, KIND_MAX, 0).unwrap();
    assert_eq!(store.uploads_open(), 8);
}

#[test]
fn given_another_owner_when_touching_upload_or_blob_then_unknown_upload_or_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    let bytes = payload(1000, 9);
    let s = store.begin("alice", 1000, KIND_MAX, 0).unwrap();
    let crc = crc32c::crc32c(&bytes);
    let unknown = |r: Result<_, AttachmentError>| matches!(r, Err(AttachmentError::UnknownUpload { id }) if id == s.id);
    assert!(unknown(store.status("mallory", s.id).map(|_| ())));
    assert!(unknown(
        store
            .put_chunk("mallory", s.id, 0, &bytes, crc, 0)
            .map(|_| ())
    ));
    assert!(unknown(
        store.finish("mallory", s.id, digest(&bytes), 0).map(|_| ())
    ));
    assert!(unknown(store.abort("mallory", s.id)));
    assert_eq!(store.status("alice", s.id).unwrap().durable_bytes, 0);
    store.put_chunk("alice", s.id, 0, &bytes, crc, 0).unwrap();
    let info = store.finish("alice", s.id, digest(&bytes), 0).unwrap();
    assert!(matches!(
        store.open_blob("mallory", &info.digest),
        Err(AttachmentError::NotFound)
    ));
    assert!(matches!(
        store.reference("mallory", &info.digest, 1000, "mallory", 99),
        Err(AttachmentError::NotFound)
    ));
}

#[test]
fn given_reference_when_reader_opens_then_ok_and_stranger_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    let bytes = payload(5000, 10);
    let info = upload(&mut store, "alice", &bytes, 2000);
    let d = info.digest;
    // The wrong size is as good as an unknown blob.
    assert!(matches!(
        store.reference("alice", &d, 4999, "carol", 50_000),
        Err(AttachmentError::NotFound)
    ));
    assert!(matches!(
        store.open_blob("carol", &d),
        Err(AttachmentError::NotFound)
    ));
    let r = store.reference("alice", &d, 5000, "carol", 50_000).unwrap();
    assert_eq!(r.readers, vec!["carol"]);
    assert_eq!(r.keep_until_ms, 50_000);
    assert_eq!(read_blob(&store, "carol", &d), bytes);
    assert!(matches!(
        store.open_blob("dave", &d),
        Err(AttachmentError::NotFound)
    ));
    // A reader may read, not pass the blob on.
    assert!(matches!(
        store.reference("carol", &d, 5000, "dave", 60_000),
        Err(AttachmentError::NotFound)
    ));
    // keep_until never shrinks; the reference is durable.
    let r = store.reference("alice", &d, 5000, "dave", 20_000).unwrap();
    assert_eq!((r.readers.len(), r.keep_until_ms), (2, 50_000));
    drop(store);
    let store = open(tmp.path());
    assert_eq!(store.blob(&d).unwrap(), r);
    assert_eq!(read_blob(&store, "dave", &d), bytes);
}

#[test]
fn given_same_bytes_uploaded_by_another_owner_when_finished_then_owner_added() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    let bytes = payload(4000, 11);
    let first = upload(&mut store, "alice", &bytes, 1500);
    let s = store.begin("bob", 4000, KIND_MAX, 0).unwrap();
    put_from(&mut store, "bob", s.id, &bytes, 0, 3000);
    let second = store.finish("bob", s.id, digest(&bytes), 5_000).unwrap();
    assert_eq!(second.digest, first.digest);
    assert_eq!(second.owners, vec!["alice", "bob"]);
    assert_eq!(second.keep_until_ms, 15_000);
    assert_eq!(store.uploads_open(), 0);
    assert_eq!(read_blob(&store, "bob", &second.digest), bytes);
    // One blob file, two owners; the uploads are gone.
    assert_eq!(
        std::fs::read_dir(tmp.path().join("blobs")).unwrap().count(),
        2
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
    drop(store);
    assert_eq!(open(tmp.path()).blob(&first.digest).unwrap(), second);
}

#[test]
fn given_sweep_when_upload_abandoned_and_blob_expired_then_deleted_and_others_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    let old = store.begin("alice", 3000, KIND_MAX, 0).unwrap();
    put_from(
        &mut store,
        "alice",
        old.id,
        &payload(3000, 12)[..2000],
        0,
        1000,
    );
    let fresh = store.begin("bob", 3000, KIND_MAX, 600).unwrap();
    let expiring = upload(&mut store, "alice", &payload(700, 13), 700); // keep until 10_000
    let kept = upload(&mut store, "alice", &payload(800, 14), 800);
    store
        .reference("alice", &kept.digest, 800, "carol", 20_000)
        .unwrap();
    let report = store.sweep(1_200).unwrap();
    assert_eq!((report.uploads_abandoned, report.blobs_expired), (1, 0));
    assert_eq!(report.bytes_freed, 2000);
    assert!(store.status("alice", old.id).is_err());
    store.status("bob", fresh.id).unwrap();
    let report = store.sweep(10_001).unwrap();
    assert_eq!((report.uploads_abandoned, report.blobs_expired), (1, 1));
    assert_eq!(report.bytes_freed, 700);
    assert!(matches!(
        store.blob(&expiring.digest),
        Err(AttachmentError::NotFound)
    ));
    assert_eq!(read_blob(&store, "carol", &kept.digest), payload(800, 14));
    drop(store);
    let mut store = open(tmp.path());
    assert!(matches!(
        store.blob(&expiring.digest),
        Err(AttachmentError::NotFound)
    ));
    store.blob(&kept.digest).unwrap();
    assert_eq!(store.uploads_open(), 0);
    assert_eq!(store.sweep(20_001).unwrap().blobs_expired, 1);
    assert_eq!(
        std::fs::read_dir(tmp.path().join("blobs")).unwrap().count(),
        0
    );
}

#[test]
fn given_two_chunks_when_store_reopened_then_status_resumes_and_finish_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = payload(3500, 15);
    let mut store = open(tmp.path());
    let s = store.begin("alice", 3500, KIND_MAX, 10).unwrap();
    put_from(&mut store, "alice", s.id, &bytes[..2400], 0, 1200);
    drop(store);
    let mut store = AttachmentStore::open(tmp.path(), limits(), 500).unwrap();
    let st = store.status("alice", s.id).unwrap();
    assert_eq!(
        (st.durable_bytes, st.size_bytes, st.created_ms),
        (2400, 3500, 10)
    );
    assert_eq!(
        st.touched_ms, 500,
        "a restart gives the upload a full abandon period"
    );
    put_from(&mut store, "alice", s.id, &bytes, 2400, 1200);
    let info = store.finish("alice", s.id, digest(&bytes), 0).unwrap();
    assert_eq!(read_blob(&store, "alice", &info.digest), bytes);
}

#[test]
fn given_flipped_byte_in_upload_data_when_reopened_then_durable_bytes_cut_before_damaged_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = payload(3000, 16);
    let mut store = open(tmp.path());
    let s = store.begin("alice", 3000, KIND_MAX, 0).unwrap();
    put_from(&mut store, "alice", s.id, &bytes, 0, 1000);
    drop(store);
    let data = tmp.path().join("uploads").join(format!("{}.data", s.id));
    let mut on_disk = std::fs::read(&data).unwrap();
    on_disk[1500] ^= 0x40;
    std::fs::write(&data, &on_disk).unwrap();
    let mut store = open(tmp.path());
    assert_eq!(store.status("alice", s.id).unwrap().durable_bytes, 1000);
    assert_eq!(std::fs::metadata(&data).unwrap().len(), 1000);
    let chunks = tmp.path().join("uploads").join(format!("{}.chunks", s.id));
    assert_eq!(std::fs::metadata(&chunks).unwrap().len(), 24);
    put_from(&mut store, "alice", s.id, &bytes, 1000, 1000);
    let info = store.finish("alice", s.id, digest(&bytes), 0).unwrap();
    assert_eq!(read_blob(&store, "alice", &info.digest), bytes);
}

#[test]
fn given_flipped_byte_in_chunk_record_when_reopened_then_cut_at_that_record() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = payload(3000, 17);
    let mut store = open(tmp.path());
    let s = store.begin("alice", 3000, KIND_MAX, 0).unwrap();
    put_from(&mut store, "alice", s.id, &bytes, 0, 1000);
    drop(store);
    let chunks = tmp.path().join("uploads").join(format!("{}.chunks", s.id));
    let mut on_disk = std::fs::read(&chunks).unwrap();
    on_disk[24 * 2 + 3] ^= 1;
    std::fs::write(&chunks, &on_disk).unwrap();
    let store = open(tmp.path());
    assert_eq!(store.status("alice", s.id).unwrap().durable_bytes, 2000);
}

#[test]
fn given_flipped_byte_in_blob_when_verified_then_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = payload(5000, 18);
    let mut store = open(tmp.path());
    let info = upload(&mut store, "alice", &bytes, 2000);
    drop(store);
    let hex = blake3::hash(&bytes).to_hex().to_string();
    let blob = tmp.path().join("blobs").join(format!("{hex}.blob"));
    let mut on_disk = std::fs::read(&blob).unwrap();
    on_disk[4321] ^= 0x02;
    std::fs::write(&blob, &on_disk).unwrap();
    let store = open(tmp.path());
    let err = store.verify_blob(&info.digest).unwrap_err();
    assert!(matches!(err, AttachmentError::Corrupt { .. }), "{err}");
    // A cut blob is not even loaded.
    std::fs::write(&blob, &on_disk[..4000]).unwrap();
    drop(store);
    let store = open(tmp.path());
    assert!(matches!(
        store.blob(&info.digest),
        Err(AttachmentError::NotFound)
    ));
}

#[test]
fn given_stray_files_when_reopened_then_half_done_work_removed_and_damage_left_unserved() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = open(tmp.path());
    let bytes = payload(900, 19);
    let info = upload(&mut store, "alice", &bytes, 900);
    let open_upload = store.begin("bob", 10, KIND_MAX, 0).unwrap();
    drop(store);
    let (uploads, blobs) = (tmp.path().join("uploads"), tmp.path().join("blobs"));
    let orphan = UploadId(7);
    std::fs::write(uploads.join(format!("{orphan}.data")), b"orphan").unwrap();
    std::fs::write(uploads.join(format!("{}.meta.tmp", open_upload.id)), b"t").unwrap();
    let hex = blake3::hash(&bytes).to_hex().to_string();
    std::fs::write(blobs.join(format!("{hex}.meta.tmp")), b"t").unwrap();
    let other = blake3::hash(b"never placed").to_hex().to_string();
    std::fs::write(blobs.join(format!("{other}.meta")), b"meta without data").unwrap();
    let damaged = blake3::hash(b"damaged").to_hex().to_string();
    std::fs::write(blobs.join(format!("{damaged}.meta")), b"garbage").unwrap();
    std::fs::write(blobs.join(format!("{damaged}.blob")), b"damaged").unwrap();
    let store = open(tmp.path());
    let mut names: Vec<String> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want = vec![
        format!("{damaged}.blob"),
        format!("{damaged}.meta"),
        format!("{hex}.blob"),
        format!("{hex}.meta"),
    ];
    want.sort();
    assert_eq!(names, want);
    assert_eq!(std::fs::read_dir(&uploads).unwrap().count(), 3);
    assert_eq!(store.uploads_open(), 1);
    assert_eq!(read_blob(&store, "alice", &info.digest), bytes);
    let damaged_digest = *blake3::hash(b"damaged").as_bytes();
    assert!(matches!(
        store.blob(&damaged_digest),
        Err(AttachmentError::NotFound)
    ));
}

#[test]
fn given_64_mib_upload_in_4_mib_chunks_when_finished_then_round_trips() {
    const MIB: usize = 1 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let lim = AttachmentLimits {
        chunk_bytes_max: gonets_storage::CHUNK_BYTES_MAX_DEFAULT,
        ..limits()
    };
    let mut store = AttachmentStore::open(tmp.path(), lim, 0).unwrap();
    // Each MiB differs, so a misplaced chunk would show.
    let bytes: Vec<u8> = (0..64 * MIB)
        .map(|i| (i / MIB * 31 + i % 251) as u8)
        .collect();
    let info = upload(&mut store, "alice", &bytes, 4 * MIB);
    assert_eq!(info.size_bytes, 64 * MIB as u64);
    store.verify_blob(&info.digest).unwrap();
    let reader = store.open_blob("alice", &info.digest).unwrap();
    let mut buf = vec![0u8; MIB];
    let mut at = 0usize;
    let mut hasher = blake3::Hasher::new();
    loop {
        let n = reader.read_at(at as u64, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert_eq!(&buf[..n], &bytes[at..at + n], "at {at}");
        hasher.update(&buf[..n]);
        at += n;
    }
    assert_eq!(at, 64 * MIB);
    assert_eq!(*hasher.finalize().as_bytes(), info.digest);
}

/// Counts what a store's write gate was asked.
struct CountingGate(std::sync::Arc<std::sync::Mutex<Vec<usize>>>);

impl gonets_storage::WriteGate for CountingGate {
    fn before_write(&mut self, bytes: usize) {
        self.0.lock().unwrap().push(bytes);
    }
}

#[test]
fn given_a_write_gate_when_a_chunk_is_put_then_it_is_asked_once_per_piece_before_it_is_written() {
    use gonets_storage::WRITEBACK_PIECE_BYTES;
    let tmp = tempfile::tempdir().unwrap();
    let lim = AttachmentLimits {
        chunk_bytes_max: gonets_storage::CHUNK_BYTES_MAX_DEFAULT,
        ..limits()
    };
    let mut store = AttachmentStore::open(tmp.path(), lim, 0).unwrap();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    store.set_write_gate(Box::new(CountingGate(asked.clone())));
    // Two and a half pieces, then a resend of it (acknowledged already:
    // nothing written, nothing asked).
    let bytes = payload(WRITEBACK_PIECE_BYTES * 5 / 2, 7);
    let s = store
        .begin("alice", bytes.len() as u64, KIND_MAX, 0)
        .unwrap();
    put_from(&mut store, "alice", s.id, &bytes, 0, bytes.len());
    let want = vec![
        WRITEBACK_PIECE_BYTES,
        WRITEBACK_PIECE_BYTES,
        WRITEBACK_PIECE_BYTES / 2,
    ];
    assert_eq!(*asked.lock().unwrap(), want);
    store
        .put_chunk("alice", s.id, 0, &bytes, crc32c::crc32c(&bytes), 0)
        .unwrap();
    assert_eq!(
        *asked.lock().unwrap(),
        want,
        "a resent chunk writes nothing"
    );
    let info = store.finish("alice", s.id, digest(&bytes), 0).unwrap();
    assert_eq!(read_blob(&store, "alice", &info.digest), bytes);
}

#[test]
fn given_an_owner_at_its_upload_bound_when_it_begins_another_then_too_many_and_others_still_may() {
    let tmp = tempfile::tempdir().unwrap();
    let lim = AttachmentLimits {
        uploads_per_owner_max: 2,
        ..limits()
    };
    let mut store = AttachmentStore::open(tmp.path(), lim, 0).unwrap();
    for _ in 0..2 {
        store.begin("alice", 10, KIND_MAX, 1).unwrap();
    }
    assert!(matches!(
        store.begin("alice", 10, KIND_MAX, 1),
        Err(AttachmentError::TooManyUploads { open_max: 2 })
    ));
    store
        .begin("bob", 10, KIND_MAX, 1)
        .expect("another owner's slots are its own");
}

#[test]
fn given_bad_limits_when_open_then_config_error() {
    let tmp = tempfile::tempdir().unwrap();
    for lim in [
        AttachmentLimits {
            chunk_bytes_max: 0,
            ..limits()
        },
        AttachmentLimits {
            chunk_bytes_max: (64 << 20) + 1,
            ..limits()
        },
        AttachmentLimits {
            uploads_open_max: 0,
            ..limits()
        },
    ] {
        assert!(matches!(
            AttachmentStore::open(tmp.path(), lim, 0),
            Err(AttachmentError::Config { .. })
        ));
    }
}

/// Fail points (process-wide): each test arms them with its own directory
/// as the needle, so tests running beside it are not hit.
#[cfg(feature = "failpoints")]
mod failpoints {
    use super::*;

    #[test]
    fn given_failed_fdatasync_when_put_chunk_then_io_and_store_failed_until_reopened() {
        let tmp = tempfile::tempdir().unwrap();
        let needle = tmp.path().to_string_lossy().into_owned();
        let bytes = payload(3000, 20);
        let mut store = open(tmp.path());
        let s = store.begin("alice", 3000, KIND_MAX, 0).unwrap();
        put_from(&mut store, "alice", s.id, &bytes[..1000], 0, 1000);
        fail::cfg("attachment::fdatasync", &format!("return({needle})")).unwrap();
        let piece = &bytes[1000..2000];
        let err = store
            .put_chunk("alice", s.id, 1000, piece, crc32c::crc32c(piece), 0)
            .unwrap_err();
        fail::remove("attachment::fdatasync");
        assert!(matches!(err, AttachmentError::Io { .. }), "{err}");
        assert!(matches!(
            store.status("alice", s.id),
            Err(AttachmentError::Failed { .. })
        ));
        assert!(matches!(
            store.begin("alice", 10, KIND_MAX, 0),
            Err(AttachmentError::Failed { .. })
        ));
        drop(store);
        let mut store = open(tmp.path());
        assert_eq!(store.status("alice", s.id).unwrap().durable_bytes, 1000);
        put_from(&mut store, "alice", s.id, &bytes, 1000, 1000);
        store.finish("alice", s.id, digest(&bytes), 0).unwrap();
    }

    #[test]
    fn given_full_disk_when_put_chunk_then_storage_full_and_retry_succeeds() {
        let tmp = tempfile::tempdir().unwrap();
        let needle = tmp.path().to_string_lossy().into_owned();
        let bytes = payload(2000, 21);
        let mut store = open(tmp.path());
        let s = store.begin("alice", 2000, KIND_MAX, 0).unwrap();
        fail::cfg("attachment::write", &format!("return({needle})")).unwrap();
        let err = store
            .put_chunk(
                "alice",
                s.id,
                0,
                &bytes[..1000],
                crc32c::crc32c(&bytes[..1000]),
                0,
            )
            .unwrap_err();
        fail::remove("attachment::write");
        assert!(matches!(err, AttachmentError::StorageFull), "{err}");
        assert_eq!(store.status("alice", s.id).unwrap().durable_bytes, 0);
        put_from(&mut store, "alice", s.id, &bytes, 0, 1000);
        store.finish("alice", s.id, digest(&bytes), 0).unwrap();
    }
}

#[cfg(feature = "failpoints")]
#[path = "attachment/power_loss.rs"]
mod power_loss;
