//! The store of large message attachments (issue 19 item 4).
//!
//! An attachment is uploaded in chunks, each checked by its CRC32C and made
//! durable before it is acknowledged, so an upload resumes after a dropped
//! connection or a crash; once every byte is stored and its BLAKE3 digest
//! matches the one the sender names, it becomes a *blob*, addressed by that
//! digest, readable by its owners (who uploaded it) and readers (to whom a
//! message gave it), and swept when its retention ends. Attachments live in
//! their own files, never in the shard logs or in shard memory.
//!
//! The store is plain blocking `std::fs` code, meant for a dedicated thread
//! driven by a channel, never a glommio reactor. The byte layout, what each
//! sync covers and what `open` does after a crash at each step are in
//! `docs/storage.md`, "Attachments".

mod blob;
mod error;
mod files;
mod recover;
mod upload;

pub use blob::{BlobInfo, BlobReader, BLOB_OWNERS_MAX, BLOB_READERS_MAX};
pub use error::AttachmentError;
pub use files::{WriteGate, WRITEBACK_PIECE_BYTES};
pub use upload::{ParseUploadIdError, UploadId, UploadState, OWNER_BYTES_MAX};

use blob::BlobPaths;
use files::{FileError, Step};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use upload::{Upload, UploadPaths, CHUNK_RECORD_BYTES};

/// Default largest chunk one `put_chunk` takes: 4 MiB.
pub const CHUNK_BYTES_MAX_DEFAULT: u32 = 4 << 20;
/// The largest `chunk_bytes_max` a store accepts: 64 MiB (a chunk is held
/// in memory whole).
pub const CHUNK_BYTES_MAX_LIMIT: u32 = 64 << 20;
/// Subdirectory of unfinished uploads.
pub const UPLOADS_DIR: &str = "uploads";
/// Subdirectory of finished blobs.
pub const BLOBS_DIR: &str = "blobs";

/// The store's bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentLimits {
    /// Largest chunk of one `put_chunk` (default 4 MiB, at most [`CHUNK_BYTES_MAX_LIMIT`]).
    pub chunk_bytes_max: u32,
    /// Uploads open at once, across all owners (default 1024).
    pub uploads_open_max: usize,
    /// Uploads open at once by one owner (default 64), so one participant
    /// cannot take every slot of [`AttachmentLimits::uploads_open_max`].
    pub uploads_per_owner_max: usize,
    /// An upload untouched this long is deleted by `sweep` (default 24 h).
    pub abandon_after_ms: u64,
    /// A finished blob no message references is kept this long (default 24 h).
    pub unreferenced_keep_ms: u64,
}

impl Default for AttachmentLimits {
    fn default() -> AttachmentLimits {
        AttachmentLimits {
            chunk_bytes_max: CHUNK_BYTES_MAX_DEFAULT,
            uploads_open_max: 1024,
            uploads_per_owner_max: 64,
            abandon_after_ms: 24 * 3600 * 1000,
            unreferenced_keep_ms: 24 * 3600 * 1000,
        }
    }
}

impl AttachmentLimits {
    fn check(&self) -> Result<(), AttachmentError> {
        let what = if self.chunk_bytes_max == 0 || self.chunk_bytes_max > CHUNK_BYTES_MAX_LIMIT {
            format!(
                "chunk_bytes_max {} not in 1..={CHUNK_BYTES_MAX_LIMIT}",
                self.chunk_bytes_max
            )
        } else if self.uploads_open_max == 0 || self.uploads_per_owner_max == 0 {
            "uploads_open_max and uploads_per_owner_max must be positive".to_string()
        } else {
            return Ok(());
        };
        Err(AttachmentError::Config { what })
    }
}

/// What one `sweep` deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Uploads untouched for `abandon_after_ms`, deleted.
    pub uploads_abandoned: u64,
    /// Blobs past their `keep_until_ms`, deleted.
    pub blobs_expired: u64,
    /// Bytes of data files deleted.
    pub bytes_freed: u64,
}

/// The attachment store of one directory. See the module documentation.
#[derive(Debug)]
pub struct AttachmentStore {
    dir: PathBuf,
    uploads_dir: PathBuf,
    blobs_dir: PathBuf,
    limits: AttachmentLimits,
    uploads: HashMap<UploadId, Upload>,
    blobs: HashMap<[u8; 32], BlobInfo>,
    /// Set by a failed sync: after one, the page cache may have dropped
    /// dirty pages while the file still reads back as written, so nothing
    /// more can be acknowledged truthfully until a reopen re-reads the disk
    /// (docs/adr/0008-failed-log-stops-the-hub.md).
    failed: Option<String>,
    /// Asked before each piece of a chunk is written (its pace).
    gate: Gate,
}

/// The store's [`WriteGate`], boxed, with a `Debug` the store can derive.
struct Gate(Box<dyn WriteGate>);

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteGate")
    }
}

/// The gate of a store nobody paces: every piece goes at once.
struct Unpaced;

impl WriteGate for Unpaced {
    fn before_write(&mut self, _bytes: usize) {}
}

impl AttachmentStore {
    /// Opens (creating) `dir` and recovers it: every upload's durable length
    /// re-proven from its chunk records, any byte past it cut, stray
    /// temporary files removed; a blob is present only with both its data
    /// and its meta file.
    pub fn open(
        dir: &Path,
        limits: AttachmentLimits,
        now_ms: u64,
    ) -> Result<AttachmentStore, AttachmentError> {
        limits.check()?;
        let uploads_dir = dir.join(UPLOADS_DIR);
        let blobs_dir = dir.join(BLOBS_DIR);
        for d in [dir, &uploads_dir, &blobs_dir] {
            files::create_dir_all(d).map_err(plain)?;
        }
        let uploads = recover::uploads(&uploads_dir, now_ms).map_err(plain)?;
        let blobs = recover::blobs(&blobs_dir).map_err(plain)?;
        tracing::info!(dir = %dir.display(), uploads = uploads.len(), blobs = blobs.len(), "attachment store opened");
        Ok(AttachmentStore {
            dir: dir.to_path_buf(),
            uploads_dir,
            blobs_dir,
            limits,
            uploads,
            blobs,
            failed: None,
            gate: Gate(Box::new(Unpaced)),
        })
    }

    /// Has `gate` asked before each piece of every chunk written from now
    /// on (a store opened without one writes unpaced).
    pub fn set_write_gate(&mut self, gate: Box<dyn WriteGate>) {
        self.gate = Gate(gate);
    }

    /// Starts an upload of exactly `size_bytes` (1..=`size_bytes_max`, the
    /// kind's limit) for participant `owner`; durable before `Ok`.
    pub fn begin(
        &mut self,
        owner: &str,
        size_bytes: u64,
        size_bytes_max: u64,
        now_ms: u64,
    ) -> Result<UploadState, AttachmentError> {
        self.check_running()?;
        upload::check_owner(owner)?;
        if size_bytes == 0 {
            return Err(AttachmentError::Empty);
        }
        if size_bytes > size_bytes_max {
            return Err(AttachmentError::TooLarge {
                size_bytes,
                size_bytes_max,
            });
        }
        if self.uploads.len() >= self.limits.uploads_open_max {
            return Err(AttachmentError::TooManyUploads {
                open_max: self.limits.uploads_open_max,
            });
        }
        // Bounded by uploads_open_max.
        let own = self.uploads.values().filter(|u| u.owner == owner).count();
        if own >= self.limits.uploads_per_owner_max {
            return Err(AttachmentError::TooManyUploads {
                open_max: self.limits.uploads_per_owner_max,
            });
        }
        let id = self.fresh_id()?;
        let paths = UploadPaths::new(&self.uploads_dir, id);
        let meta = upload::encode_meta(id, owner, size_bytes, now_ms);
        // Data and chunk files first, the meta last: its directory sync
        // makes all three names durable, and a meta is the upload's proof.
        let made = files::create_new(&paths.data)
            .and_then(|_| files::create_new(&paths.chunks))
            .and_then(|_| files::write_durable(&paths.meta, &meta));
        if let Err(e) = made {
            // Best effort: whatever stays is removed by the next open.
            for p in [&paths.meta, &paths.chunks, &paths.data] {
                let _ = files::remove(p);
            }
            return Err(self.fatal(e));
        }
        let u = Upload {
            owner: owner.to_string(),
            size_bytes,
            durable_bytes: 0,
            records: 0,
            created_ms: now_ms,
            touched_ms: now_ms,
        };
        let state = u.state(id);
        self.uploads.insert(id, u);
        Ok(state)
    }

    /// Appends one chunk at `offset`, durable (data `fdatasync`ed, then its
    /// chunk record) before `Ok`. `offset` must equal `durable_bytes`, except
    /// a resend of an already durable range whose CRC matches what is
    /// stored: `Ok`, nothing changes (a retry after a lost reply).
    /// `crc32c` is the sender's CRC32C of `bytes`.
    pub fn put_chunk(
        &mut self,
        owner: &str,
        id: UploadId,
        offset: u64,
        bytes: &[u8],
        crc32c: u32,
        now_ms: u64,
    ) -> Result<UploadState, AttachmentError> {
        self.check_running()?;
        let u = self.upload_of(owner, id)?.clone();
        let len = bytes.len() as u64;
        if len == 0 {
            return Err(AttachmentError::Empty);
        }
        if len > u64::from(self.limits.chunk_bytes_max) {
            return Err(AttachmentError::ChunkTooLarge {
                bytes: len,
                chunk_bytes_max: self.limits.chunk_bytes_max,
            });
        }
        let got = crc32c::crc32c(bytes);
        if got != crc32c {
            return Err(AttachmentError::BadChunk {
                offset,
                expected_crc32c: crc32c,
                got_crc32c: got,
            });
        }
        if offset > u.size_bytes || len > u.size_bytes - offset {
            return Err(AttachmentError::PastEnd {
                offset,
                len,
                size_bytes: u.size_bytes,
            });
        }
        if offset != u.durable_bytes && !self.is_resend(id, &u, offset, len, crc32c)? {
            return Err(AttachmentError::OffsetMismatch {
                offset,
                durable_bytes: u.durable_bytes,
            });
        }
        if offset == u.durable_bytes {
            self.append_chunk(id, &u, bytes, crc32c)?;
        }
        let u = self
            .uploads
            .get_mut(&id)
            .ok_or(AttachmentError::UnknownUpload { id })?;
        u.touched_ms = u.touched_ms.max(now_ms);
        Ok(u.state(id))
    }

    /// True when `offset..offset+len` lies within the durable bytes and the
    /// stored bytes there have CRC32C `crc`.
    fn is_resend(
        &self,
        id: UploadId,
        u: &Upload,
        offset: u64,
        len: u64,
        crc: u32,
    ) -> Result<bool, AttachmentError> {
        if offset + len > u.durable_bytes {
            return Ok(false);
        }
        let paths = UploadPaths::new(&self.uploads_dir, id);
        let data = files::open_ro(&paths.data).map_err(plain)?;
        Ok(upload::crc_of_range(&data, &paths.data, offset, len).map_err(plain)? == crc)
    }

    /// Writes a chunk's bytes at the upload's end, syncs them, then appends
    /// and syncs its record: a record is never durable before its data.
    fn append_chunk(
        &mut self,
        id: UploadId,
        u: &Upload,
        bytes: &[u8],
        crc: u32,
    ) -> Result<(), AttachmentError> {
        let paths = UploadPaths::new(&self.uploads_dir, id);
        let offset = u.durable_bytes;
        let record = upload::encode_record(offset, bytes.len() as u32, crc);
        let r = files::open_rw(&paths.data)
            .and_then(|data| {
                files::write_trickled(&data, &paths.data, offset, bytes, &mut *self.gate.0)?;
                files::sync_data(&data, &paths.data)
            })
            .and_then(|()| files::open_rw(&paths.chunks))
            .and_then(|chunks| {
                files::write_at(
                    &chunks,
                    &paths.chunks,
                    u.records * CHUNK_RECORD_BYTES,
                    &record,
                )?;
                files::sync_data(&chunks, &paths.chunks)
            });
        r.map_err(|e| self.fatal(e))?;
        let m = self
            .uploads
            .get_mut(&id)
            .ok_or(AttachmentError::UnknownUpload { id })?;
        assert!(m.durable_bytes == offset && m.records == u.records);
        m.durable_bytes += bytes.len() as u64;
        m.records += 1;
        assert!(m.durable_bytes <= m.size_bytes);
        Ok(())
    }

    /// Where upload `id` of `owner` stands.
    pub fn status(&self, owner: &str, id: UploadId) -> Result<UploadState, AttachmentError> {
        self.check_running()?;
        Ok(self.upload_of(owner, id)?.state(id))
    }

    /// Makes a complete upload a blob when the BLAKE3 of its bytes (read in
    /// 1 MiB pieces) is `digest`. Content-addressed: when the blob exists
    /// already, `owner` joins its owners and the upload is deleted.
    /// `keep_until_ms` becomes at least `now_ms + unreferenced_keep_ms`. On a
    /// mismatch the upload is deleted and the error is `WrongDigest`.
    pub fn finish(
        &mut self,
        owner: &str,
        id: UploadId,
        digest: [u8; 32],
        now_ms: u64,
    ) -> Result<BlobInfo, AttachmentError> {
        self.check_running()?;
        let u = self.upload_of(owner, id)?.clone();
        if u.durable_bytes != u.size_bytes {
            return Err(AttachmentError::Incomplete {
                durable_bytes: u.durable_bytes,
                size_bytes: u.size_bytes,
            });
        }
        let paths = UploadPaths::new(&self.uploads_dir, id);
        let got = self.hash_upload(&paths, u.size_bytes)?;
        if got != digest {
            self.delete_upload(id)?;
            return Err(AttachmentError::WrongDigest {
                expected_hex: blob::hex(&digest),
                got_hex: blob::hex(&got),
            });
        }
        let keep_until_ms = now_ms.saturating_add(self.limits.unreferenced_keep_ms);
        let info = match self.blobs.get(&digest).cloned() {
            Some(mut info) => {
                assert_eq!(info.size_bytes, u.size_bytes, "same digest, other size");
                let added = blob::add_name(&mut info.owners, owner, "owners", BLOB_OWNERS_MAX)?;
                if added || keep_until_ms > info.keep_until_ms {
                    info.keep_until_ms = info.keep_until_ms.max(keep_until_ms);
                    self.write_blob_meta(&info)?;
                    self.blobs.insert(digest, info.clone());
                }
                self.delete_upload(id)?;
                info
            }
            None => self.place_blob(id, &u, digest, keep_until_ms)?,
        };
        Ok(info)
    }

    /// BLAKE3 of a complete upload's data file, whose length must be its size.
    fn hash_upload(
        &self,
        paths: &UploadPaths,
        size_bytes: u64,
    ) -> Result<[u8; 32], AttachmentError> {
        let data = files::open_ro(&paths.data).map_err(plain)?;
        let len = upload::file_len(&data, &paths.data).map_err(plain)?;
        if len != size_bytes {
            return Err(AttachmentError::Corrupt {
                what: format!(
                    "{} holds {len} bytes, its upload {size_bytes}",
                    paths.data.display()
                ),
            });
        }
        blob::hash_file(&data, &paths.data, size_bytes).map_err(plain)
    }

    /// Turns a verified upload into a new blob: its meta written durably
    /// first, then the data file renamed into `blobs/` and that directory
    /// synced, then the upload's other files removed. A crash before the
    /// rename leaves a meta without data (removed on open) and the whole
    /// upload; after it, the blob (and upload leftovers, removed on open).
    fn place_blob(
        &mut self,
        id: UploadId,
        u: &Upload,
        digest: [u8; 32],
        keep_until_ms: u64,
    ) -> Result<BlobInfo, AttachmentError> {
        let info = BlobInfo {
            digest,
            size_bytes: u.size_bytes,
            owners: vec![u.owner.clone()],
            readers: vec![],
            keep_until_ms,
        };
        self.write_blob_meta(&info)?;
        let bp = BlobPaths::new(&self.blobs_dir, &digest);
        let up = UploadPaths::new(&self.uploads_dir, id);
        if let Err(e) = files::rename(&up.data, &bp.blob) {
            let _ = files::remove(&bp.meta); // best effort: removed on open otherwise
            return Err(self.fatal(e));
        }
        files::sync_dir(&self.blobs_dir).map_err(|e| self.fatal(e))?;
        // The blob is in place: the upload is over whatever its leftovers do.
        self.uploads.remove(&id);
        self.blobs.insert(digest, info.clone());
        self.remove_upload_files(&up, true)?;
        Ok(info)
    }

    /// Writes a blob's meta file durably (temporary file and rename).
    fn write_blob_meta(&mut self, info: &BlobInfo) -> Result<(), AttachmentError> {
        let bp = BlobPaths::new(&self.blobs_dir, &info.digest);
        files::write_durable(&bp.meta, &blob::encode_meta(info)).map_err(|e| self.fatal(e))
    }

    /// Deletes an upload: its meta first (without it the rest is an orphan
    /// removed on open), then its chunk and data files, then a directory sync.
    fn delete_upload(&mut self, id: UploadId) -> Result<(), AttachmentError> {
        let paths = UploadPaths::new(&self.uploads_dir, id);
        self.uploads.remove(&id);
        self.remove_upload_files(&paths, true)
    }

    /// Removes an upload's files (meta first), and syncs the directory when
    /// `sync`. A removal that fails is logged and left to the next open,
    /// which removes an upload without all its files; a failed sync is fatal.
    fn remove_upload_files(
        &mut self,
        paths: &UploadPaths,
        sync: bool,
    ) -> Result<(), AttachmentError> {
        for p in [&paths.meta, &paths.chunks, &paths.data] {
            if let Err(e) = files::remove(p) {
                tracing::warn!(
                    "attachment store: {}: {}; left for the next open",
                    e.what,
                    e.source
                );
            }
        }
        if sync {
            files::sync_dir(&self.uploads_dir).map_err(|e| self.fatal(e))?;
        }
        Ok(())
    }

    /// Deletes upload `id` of `owner` and everything stored for it.
    pub fn abort(&mut self, owner: &str, id: UploadId) -> Result<(), AttachmentError> {
        self.check_running()?;
        self.upload_of(owner, id)?;
        self.delete_upload(id)
    }

    /// What the store knows of blob `digest` (for the hub, not for a
    /// participant: it checks no caller).
    pub fn blob(&self, digest: &[u8; 32]) -> Result<BlobInfo, AttachmentError> {
        self.check_running()?;
        self.blobs
            .get(digest)
            .cloned()
            .ok_or(AttachmentError::NotFound)
    }

    /// A message by `sender` references blob `digest` of `size_bytes`, to be
    /// read by `reader`, and lives until `keep_until_ms`: `sender` must be an
    /// owner and the size must match (else `NotFound`: a blob is never
    /// revealed to one who did not upload it); `reader` is added and the
    /// blob kept at least until `keep_until_ms`. Durable before `Ok`.
    pub fn reference(
        &mut self,
        sender: &str,
        digest: &[u8; 32],
        size_bytes: u64,
        reader: &str,
        keep_until_ms: u64,
    ) -> Result<BlobInfo, AttachmentError> {
        self.check_running()?;
        upload::check_owner(reader)?;
        let mut info = match self.blobs.get(digest) {
            Some(i) if i.size_bytes == size_bytes && i.owners.iter().any(|o| o == sender) => {
                i.clone()
            }
            _ => return Err(AttachmentError::NotFound),
        };
        let added = blob::add_name(&mut info.readers, reader, "readers", BLOB_READERS_MAX)?;
        if added || keep_until_ms > info.keep_until_ms {
            info.keep_until_ms = info.keep_until_ms.max(keep_until_ms);
            self.write_blob_meta(&info)?;
            self.blobs.insert(*digest, info.clone());
        }
        Ok(info)
    }

    /// Opens blob `digest` for streaming by `caller`, who must be an owner
    /// or a reader (else `NotFound`).
    pub fn open_blob(
        &self,
        caller: &str,
        digest: &[u8; 32],
    ) -> Result<BlobReader, AttachmentError> {
        self.check_running()?;
        let info = match self.blobs.get(digest) {
            Some(i) if i.visible_to(caller) => i,
            _ => return Err(AttachmentError::NotFound),
        };
        let path = BlobPaths::new(&self.blobs_dir, digest).blob;
        let file = files::open_ro(&path).map_err(plain)?;
        Ok(BlobReader {
            file,
            path,
            size_bytes: info.size_bytes,
        })
    }

    /// Re-hashes blob `digest`'s data file: `Corrupt` when its length or its
    /// BLAKE3 is not what its meta says (damage is never served as good).
    pub fn verify_blob(&self, digest: &[u8; 32]) -> Result<(), AttachmentError> {
        self.check_running()?;
        let info = self.blobs.get(digest).ok_or(AttachmentError::NotFound)?;
        let path = BlobPaths::new(&self.blobs_dir, digest).blob;
        let file = files::open_ro(&path).map_err(plain)?;
        let len = upload::file_len(&file, &path).map_err(plain)?;
        if len != info.size_bytes {
            return Err(AttachmentError::Corrupt {
                what: format!(
                    "{} holds {len} bytes, its meta says {}",
                    path.display(),
                    info.size_bytes
                ),
            });
        }
        let got = blob::hash_file(&file, &path, len).map_err(plain)?;
        if got != *digest {
            return Err(AttachmentError::Corrupt {
                what: format!("{} hashes to {}", path.display(), blob::hex(&got)),
            });
        }
        Ok(())
    }

    /// Deletes uploads untouched for `abandon_after_ms` and blobs past their
    /// `keep_until_ms`; one directory sync each at the end (a crash before
    /// it may bring some back, and the next sweep deletes them again).
    pub fn sweep(&mut self, now_ms: u64) -> Result<SweepReport, AttachmentError> {
        self.check_running()?;
        let mut report = SweepReport::default();
        let abandon = self.limits.abandon_after_ms;
        let mut stale: Vec<UploadId> = self
            .uploads
            .iter()
            .filter(|(_, u)| now_ms.saturating_sub(u.touched_ms) >= abandon)
            .map(|(id, _)| *id)
            .collect();
        stale.sort();
        for id in &stale {
            if let Some(u) = self.uploads.remove(id) {
                report.uploads_abandoned += 1;
                report.bytes_freed += u.durable_bytes;
                self.remove_upload_files(&UploadPaths::new(&self.uploads_dir, *id), false)?;
            }
        }
        if !stale.is_empty() {
            files::sync_dir(&self.uploads_dir).map_err(|e| self.fatal(e))?;
        }
        self.sweep_blobs(now_ms, &mut report)?;
        Ok(report)
    }

    /// The blob half of `sweep`: meta removed first (the blob is gone with
    /// it), then the data file.
    fn sweep_blobs(
        &mut self,
        now_ms: u64,
        report: &mut SweepReport,
    ) -> Result<(), AttachmentError> {
        let mut expired: Vec<[u8; 32]> = self
            .blobs
            .values()
            .filter(|b| now_ms > b.keep_until_ms)
            .map(|b| b.digest)
            .collect();
        expired.sort();
        for digest in &expired {
            let Some(info) = self.blobs.remove(digest) else {
                continue;
            };
            report.blobs_expired += 1;
            report.bytes_freed += info.size_bytes;
            let bp = BlobPaths::new(&self.blobs_dir, digest);
            for p in [&bp.meta, &bp.blob] {
                if let Err(e) = files::remove(p) {
                    tracing::warn!(
                        "attachment store: {}: {}; left for the next open",
                        e.what,
                        e.source
                    );
                }
            }
        }
        if !expired.is_empty() {
            files::sync_dir(&self.blobs_dir).map_err(|e| self.fatal(e))?;
        }
        Ok(())
    }

    /// Uploads open now.
    pub fn uploads_open(&self) -> usize {
        self.uploads.len()
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `Failed` once a sync has failed.
    fn check_running(&self) -> Result<(), AttachmentError> {
        match &self.failed {
            Some(cause) => Err(AttachmentError::Failed {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Upload `id` when `owner` began it; `UnknownUpload` otherwise, so that
    /// another owner learns nothing of it.
    fn upload_of(&self, owner: &str, id: UploadId) -> Result<&Upload, AttachmentError> {
        match self.uploads.get(&id) {
            Some(u) if u.owner == owner => Ok(u),
            _ => Err(AttachmentError::UnknownUpload { id }),
        }
    }

    /// A random id no open upload has.
    fn fresh_id(&self) -> Result<UploadId, AttachmentError> {
        // 122 random bits: a repeat is all but impossible; bounded anyway.
        for _ in 0..8 {
            let id = UploadId::random()
                .map_err(|e| AttachmentError::io("getrandom for an upload id".into(), e))?;
            if !self.uploads.contains_key(&id)
                && !UploadPaths::new(&self.uploads_dir, id).meta.exists()
            {
                return Ok(id);
            }
        }
        Err(AttachmentError::Corrupt {
            what: "the random source repeats itself".into(),
        })
    }

    /// Converts a file error; a failed sync also stops the store.
    fn fatal(&mut self, e: FileError) -> AttachmentError {
        if e.step == Step::Sync {
            let cause = format!("{}: {}", e.what, e.source);
            tracing::error!(dir = %self.dir.display(), "attachment store stops: {cause}; a restart recovers it from disk");
            self.failed = Some(cause);
            return AttachmentError::Io {
                what: e.what,
                source: e.source,
            };
        }
        plain(e)
    }
}

/// Converts a file error that cannot be a sync (reads, opens).
fn plain(e: FileError) -> AttachmentError {
    AttachmentError::io(e.what, e.source)
}
