//! What `AttachmentStore::open` does to the files a run (or a crash) left:
//! every upload's durable length re-proven from its chunk records, stray
//! temporary files and half-finished uploads or blobs removed, damaged
//! blobs left in place but never served (docs/storage.md, "Attachments",
//! recovery).

use super::blob::{self, BlobInfo, BlobPaths, BLOB_META_BYTES_MAX};
use super::files::{self, FileResult, TMP_SUFFIX};
use super::upload::{self, Upload, UploadId, UploadPaths, UPLOAD_META_BYTES_MAX};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Removes `name` in `dir` when it is a temporary file; true when it was.
fn remove_if_tmp(dir: &Path, name: &str) -> FileResult<bool> {
    if !name.ends_with(TMP_SUFFIX) {
        return Ok(false);
    }
    tracing::info!(file = %dir.join(name).display(), "attachment store: removing an unfinished temporary file");
    files::remove(&dir.join(name))?;
    Ok(true)
}

/// The uploads in `uploads_dir`, each recovered; `touched_ms` is `now_ms`
/// (a restart gives every upload a full abandon period to resume).
pub(crate) fn uploads(uploads_dir: &Path, now_ms: u64) -> FileResult<HashMap<UploadId, Upload>> {
    let mut seen: BTreeMap<UploadId, [bool; 3]> = BTreeMap::new();
    let mut removed = false;
    for name in files::list(uploads_dir)? {
        if remove_if_tmp(uploads_dir, &name)? {
            removed = true;
            continue;
        }
        let parsed = name.rsplit_once('.').and_then(|(stem, ext)| {
            let slot = ["meta", "data", "chunks"].iter().position(|e| *e == ext)?;
            Some((stem.parse::<UploadId>().ok()?, slot))
        });
        match parsed {
            Some((id, slot)) => seen.entry(id).or_default()[slot] = true,
            None => {
                tracing::warn!(file = %uploads_dir.join(&name).display(), "attachment store: ignoring a file it did not write")
            }
        }
    }
    let mut out = HashMap::new();
    for (id, present) in seen {
        let paths = UploadPaths::new(uploads_dir, id);
        match load_upload(&paths, id, present, now_ms)? {
            Some(u) => {
                out.insert(id, u);
            }
            None => {
                // Meta first: without it the rest is an orphan on the next open too.
                for p in [&paths.meta, &paths.chunks, &paths.data] {
                    files::remove(p)?;
                }
                removed = true;
            }
        }
    }
    if removed {
        files::sync_dir(uploads_dir)?;
    }
    Ok(out)
}

/// One upload from its files, or `None` when it must go: a file missing
/// (begin or finish was cut by the crash, or it was being deleted) or a
/// damaged meta file (an upload belongs to no message yet; its client must
/// begin again).
fn load_upload(
    paths: &UploadPaths,
    id: UploadId,
    present: [bool; 3],
    now_ms: u64,
) -> FileResult<Option<Upload>> {
    if present != [true; 3] {
        tracing::info!(upload = %id, "attachment store: removing an upload whose files are incomplete (begin, finish or delete cut by a crash)");
        return Ok(None);
    }
    let bytes = files::read_bounded(&paths.meta, UPLOAD_META_BYTES_MAX)?;
    let meta = match upload::decode_meta(id, &bytes) {
        Ok(m) => m,
        Err(what) => {
            tracing::error!(file = %paths.meta.display(), "attachment store: damaged upload meta ({what}); removing the upload");
            return Ok(None);
        }
    };
    let (durable_bytes, records) = upload::recover(paths, meta.size_bytes)?;
    Ok(Some(Upload {
        owner: meta.owner,
        size_bytes: meta.size_bytes,
        durable_bytes,
        records,
        created_ms: meta.created_ms,
        touched_ms: now_ms,
    }))
}

/// The blobs in `blobs_dir`: a blob counts only with both its meta and its
/// data file. A meta without data (finish cut before its rename) or data
/// without meta (sweep cut after removing the meta) is removed; a damaged
/// meta or a data file of the wrong length is left in place for the
/// operator, logged, and never served.
pub(crate) fn blobs(blobs_dir: &Path) -> FileResult<HashMap<[u8; 32], BlobInfo>> {
    let mut seen: BTreeMap<[u8; 32], [bool; 2]> = BTreeMap::new();
    let mut removed = false;
    for name in files::list(blobs_dir)? {
        if remove_if_tmp(blobs_dir, &name)? {
            removed = true;
            continue;
        }
        let parsed = name.rsplit_once('.').and_then(|(stem, ext)| {
            let slot = ["meta", "blob"].iter().position(|e| *e == ext)?;
            Some((blob::parse_hex(stem)?, slot))
        });
        match parsed {
            Some((digest, slot)) => seen.entry(digest).or_default()[slot] = true,
            None => {
                tracing::warn!(file = %blobs_dir.join(&name).display(), "attachment store: ignoring a file it did not write")
            }
        }
    }
    let mut out = HashMap::new();
    for (digest, present) in seen {
        let paths = BlobPaths::new(blobs_dir, &digest);
        if present != [true; 2] {
            tracing::info!(digest = %blob::hex(&digest), "attachment store: removing half a blob (finish or sweep cut by a crash)");
            files::remove(&paths.meta)?;
            files::remove(&paths.blob)?;
            removed = true;
            continue;
        }
        match load_blob(&paths, &digest)? {
            Ok(info) => {
                out.insert(digest, info);
            }
            Err(what) => {
                tracing::error!(file = %paths.meta.display(), "attachment store: damaged blob ({what}); not served, left for the operator");
            }
        }
    }
    if removed {
        files::sync_dir(blobs_dir)?;
    }
    Ok(out)
}

/// A blob's meta, checked against its file name and its data file's length.
fn load_blob(paths: &BlobPaths, digest: &[u8; 32]) -> FileResult<Result<BlobInfo, String>> {
    let bytes = files::read_bounded(&paths.meta, BLOB_META_BYTES_MAX)?;
    let info = match blob::decode_meta(&bytes) {
        Ok(info) => info,
        Err(what) => return Ok(Err(what)),
    };
    if info.digest != *digest {
        return Ok(Err("meta names another digest".into()));
    }
    let file = files::open_ro(&paths.blob)?;
    let len = upload::file_len(&file, &paths.blob)?;
    if len != info.size_bytes {
        return Ok(Err(format!(
            "data file of {len} bytes, meta says {}",
            info.size_bytes
        )));
    }
    Ok(Ok(info))
}
