//! Large attachments (docs/protocol.md "Attachments", ADR 0022): uploaded
//! in checksummed chunks that survive a dropped connection, read back in
//! pieces with their digest checked.

use crate::{Client, ClientError, Runtime};
use gonets_types::{
    AttachmentBytes, AttachmentRef, Command, DataKindId, Digest, HubError, UploadId, UploadState,
    CHUNK_BYTES_MAX,
};
use std::time::Duration;

/// Where an attachment's bytes come from: `read_at(offset, buf)` fills
/// `buf` from `offset` (a file's `read_exact_at`, a slice's copy).
pub trait AttachmentSource {
    /// The attachment's size, bytes.
    fn size_bytes(&self) -> u64;
    /// Fills `buf` with the bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

impl AttachmentSource for [u8] {
    fn size_bytes(&self) -> u64 {
        self.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let src = self
            .get(start..start + buf.len())
            .ok_or_else(|| std::io::Error::other("read past the end"))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl AttachmentSource for std::fs::File {
    fn size_bytes(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

/// Consecutive dropped connections an upload survives before it gives up.
const UPLOAD_RESUMES_MAX: u32 = 8;

impl<R: Runtime> Client<R> {
    /// Starts an upload of an attachment of `size_bytes` for requests of `kind`.
    pub async fn upload_begin(
        &self,
        kind: &DataKindId,
        size_bytes: u64,
    ) -> Result<UploadState, ClientError> {
        let kind = kind.clone();
        self.run(Command::UploadBegin { kind, size_bytes }).await
    }

    /// Sends one chunk at `offset` (its CRC-32C computed here).
    pub async fn upload_chunk(
        &self,
        upload: UploadId,
        offset: u64,
        bytes: bytes::Bytes,
    ) -> Result<UploadState, ClientError> {
        let crc32c = crc32c::crc32c(&bytes);
        self.run(Command::UploadChunk {
            upload,
            offset,
            crc32c,
            bytes,
        })
        .await
    }

    /// Where an upload stands (after a dropped connection).
    pub async fn upload_status(&self, upload: UploadId) -> Result<UploadState, ClientError> {
        self.run(Command::UploadStatus { upload }).await
    }

    /// Ends an upload: the hub checks the bytes against `digest`.
    pub async fn upload_finish(
        &self,
        upload: UploadId,
        digest: Digest,
    ) -> Result<AttachmentRef, ClientError> {
        self.run(Command::UploadFinish { upload, digest }).await
    }

    /// Uploads `source` whole as one attachment for requests of `kind`, in
    /// chunks of `chunk_bytes` (at most `CHUNK_BYTES_MAX`), and returns the
    /// reference a request carries (`NewRequest::attachments`). A dropped
    /// connection costs at most the chunk in flight: the upload asks where
    /// it stands and goes on from there.
    pub async fn upload_attachment<S: AttachmentSource + ?Sized>(
        &self,
        kind: &DataKindId,
        source: &S,
        chunk_bytes: u32,
    ) -> Result<AttachmentRef, ClientError> {
        let state = self.upload_begin(kind, source.size_bytes()).await?;
        self.upload_rest(state, source, chunk_bytes).await
    }

    /// Goes on with an upload from where the hub says it stands (as after
    /// a restart of the sender) and finishes it.
    pub async fn upload_rest<S: AttachmentSource + ?Sized>(
        &self,
        mut state: UploadState,
        source: &S,
        chunk_bytes: u32,
    ) -> Result<AttachmentRef, ClientError> {
        assert!(chunk_bytes > 0 && chunk_bytes <= CHUNK_BYTES_MAX);
        let mut hasher = blake3::Hasher::new();
        let mut hashed_bytes = 0u64;
        let mut buf = vec![0u8; chunk_bytes as usize];
        let mut resumes = 0u32;
        // Bounded: every round moves durable_bytes on, or counts a resume.
        while state.durable_bytes < state.size_bytes {
            hash_up_to(
                &mut hasher,
                &mut hashed_bytes,
                state.durable_bytes,
                source,
                &mut buf,
            )?;
            let len = (state.size_bytes - state.durable_bytes).min(u64::from(chunk_bytes));
            let chunk = &mut buf[..len as usize];
            source
                .read_at(state.durable_bytes, chunk)
                .map_err(source_error)?;
            let bytes = bytes::Bytes::copy_from_slice(chunk);
            match self
                .upload_chunk(state.upload, state.durable_bytes, bytes)
                .await
            {
                Ok(next) => {
                    assert!(
                        next.durable_bytes > state.durable_bytes,
                        "a chunk moves the upload on"
                    );
                    state = next;
                    resumes = 0;
                }
                Err(e) if resumable(&e) && resumes < UPLOAD_RESUMES_MAX => {
                    resumes += 1;
                    R::sleep(Duration::from_millis(50 << resumes.min(5))).await;
                    state = self.upload_status(state.upload).await?;
                }
                Err(e) => return Err(e),
            }
        }
        hash_up_to(
            &mut hasher,
            &mut hashed_bytes,
            state.size_bytes,
            source,
            &mut buf,
        )?;
        let digest = Digest(*hasher.finalize().as_bytes());
        self.finish_once(state, digest).await
    }

    /// Finishes an upload whose every byte is durable. A finish whose
    /// reply was lost may have made the attachment already (the upload is
    /// then gone): one more try, and if the hub no longer knows the upload,
    /// a one-byte read tells whether the attachment exists.
    async fn finish_once(
        &self,
        state: UploadState,
        digest: Digest,
    ) -> Result<AttachmentRef, ClientError> {
        let lost = match self.upload_finish(state.upload, digest).await {
            Err(e) if resumable(&e) => e,
            done => return done,
        };
        match self.upload_finish(state.upload, digest).await {
            Err(ClientError::Hub(HubError::UnknownUpload)) => {
                self.read_attachment(digest, 0, 1).await.map_err(|_| lost)?;
                Ok(AttachmentRef {
                    digest,
                    size_bytes: state.size_bytes,
                })
            }
            other => other,
        }
    }

    /// Up to `bytes_max` bytes of attachment `digest` from `offset`.
    pub async fn read_attachment(
        &self,
        digest: Digest,
        offset: u64,
        bytes_max: u32,
    ) -> Result<AttachmentBytes, ClientError> {
        self.run(Command::ReadAttachment {
            digest,
            offset,
            bytes_max,
        })
        .await
    }

    /// Reads attachment `r` whole in pieces of `CHUNK_BYTES_MAX`, handing
    /// each to `sink` in order, and checks the bytes' BLAKE3 against its
    /// digest (`WrongDigest` if they differ: the bytes must not be used).
    pub async fn read_attachment_to(
        &self,
        r: &AttachmentRef,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), ClientError> {
        let mut hasher = blake3::Hasher::new();
        let mut offset = 0u64;
        // Bounded: every piece moves the offset on (an empty one ends it).
        while offset < r.size_bytes {
            let piece = self
                .read_attachment(r.digest, offset, CHUNK_BYTES_MAX)
                .await?;
            if piece.bytes.is_empty() || piece.size_bytes != r.size_bytes {
                return Err(ClientError::BadReply(format!(
                    "attachment {} ends at byte {offset} of {}",
                    r.digest, r.size_bytes
                )));
            }
            hasher.update(&piece.bytes);
            sink(&piece.bytes).map_err(source_error)?;
            offset += piece.bytes.len() as u64;
        }
        let got = Digest(*hasher.finalize().as_bytes());
        if got != r.digest {
            return Err(HubError::WrongDigest(format!(
                "attachment {} read back as {got}",
                r.digest
            ))
            .into());
        }
        Ok(())
    }
}

/// Feeds `hasher` with `source`'s bytes from `hashed_bytes` up to `end`
/// (bytes the hub holds already but the hasher has not seen, after a
/// chunk whose reply was lost turned out durable).
fn hash_up_to<S: AttachmentSource + ?Sized>(
    hasher: &mut blake3::Hasher,
    hashed_bytes: &mut u64,
    end: u64,
    source: &S,
    buf: &mut [u8],
) -> Result<(), ClientError> {
    // Bounded: every round moves `hashed_bytes` on by up to a buffer.
    while *hashed_bytes < end {
        let len = (end - *hashed_bytes).min(buf.len() as u64) as usize;
        source
            .read_at(*hashed_bytes, &mut buf[..len])
            .map_err(source_error)?;
        hasher.update(&buf[..len]);
        *hashed_bytes += len as u64;
    }
    Ok(())
}

/// A failure a chunk may be sent again after: the connection dropped or
/// the reply did not come, or the hub holds a different durable end.
fn resumable(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Disconnected(_)
            | ClientError::Timeout(_)
            | ClientError::Hub(HubError::UploadOffset { .. })
    )
}

fn source_error(e: std::io::Error) -> ClientError {
    ClientError::Io(e.to_string())
}
