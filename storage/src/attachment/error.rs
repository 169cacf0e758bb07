//! Typed errors of the attachment store.

use super::UploadId;

/// Why an attachment-store call failed. Every refusal of bad input stores
/// nothing; a failed sync also stops the store ([`AttachmentError::Failed`]).
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    /// No such upload for this caller (also another owner's upload: its
    /// existence is not revealed), or it was finished, aborted or swept.
    #[error("unknown upload {id} (never begun, already finished, aborted or abandoned)")]
    UnknownUpload {
        /// The upload asked for.
        id: UploadId,
    },
    /// The attachment is larger than its kind allows.
    #[error(
        "attachment of {size_bytes} bytes exceeds this kind's limit of {size_bytes_max} bytes"
    )]
    TooLarge {
        /// Size asked for.
        size_bytes: u64,
        /// The kind's limit.
        size_bytes_max: u64,
    },
    /// An attachment of 0 bytes, or a chunk of 0 bytes: nothing to store.
    #[error("empty attachment or chunk: nothing to store")]
    Empty,
    /// One chunk is larger than the store accepts in one call.
    #[error("chunk of {bytes} bytes exceeds the chunk limit of {chunk_bytes_max} bytes")]
    ChunkTooLarge {
        /// Chunk size sent.
        bytes: u64,
        /// The limit.
        chunk_bytes_max: u32,
    },
    /// The chunk's bytes do not match the CRC32C the sender computed: damaged
    /// in transit; nothing was stored, send it again.
    #[error(
        "chunk at offset {offset} damaged in transit: sender's CRC32C {expected_crc32c:#010x}, \
         received bytes have {got_crc32c:#010x}; nothing stored, send it again"
    )]
    BadChunk {
        /// Where the chunk was to go.
        offset: u64,
        /// The CRC32C the sender sent.
        expected_crc32c: u32,
        /// The CRC32C of the bytes received.
        got_crc32c: u32,
    },
    /// The chunk does not start where the upload stands: resume at `durable_bytes`.
    #[error(
        "chunk at offset {offset} does not continue the upload: resume at offset {durable_bytes}"
    )]
    OffsetMismatch {
        /// Where the chunk was to go.
        offset: u64,
        /// Where the next chunk must start.
        durable_bytes: u64,
    },
    /// The chunk would end past the attachment's announced size.
    #[error("chunk at offset {offset} of {len} bytes ends past the attachment's size of {size_bytes} bytes")]
    PastEnd {
        /// Where the chunk was to go.
        offset: u64,
        /// Its length.
        len: u64,
        /// The attachment's size.
        size_bytes: u64,
    },
    /// Finish before every byte is durable.
    #[error("upload incomplete: {durable_bytes} of {size_bytes} bytes stored")]
    Incomplete {
        /// Bytes stored so far.
        durable_bytes: u64,
        /// Bytes announced.
        size_bytes: u64,
    },
    /// The bytes stored do not hash to the digest the sender named; the
    /// upload was deleted.
    #[error("attachment digest mismatch: sender named BLAKE3 {expected_hex}, stored bytes hash to {got_hex}; upload deleted")]
    WrongDigest {
        /// The digest the sender named, hex.
        expected_hex: String,
        /// The digest of the bytes stored, hex.
        got_hex: String,
    },
    /// No such blob for this caller (also one they may not see).
    #[error("attachment not found")]
    NotFound,
    /// As many uploads are open as the store allows.
    #[error("too many uploads open (limit {open_max}); finish or abort one, or retry later")]
    TooManyUploads {
        /// The limit.
        open_max: usize,
    },
    /// A participant id is empty or too long.
    #[error("participant id of {bytes} bytes is empty or longer than {owner_bytes_max} bytes")]
    OwnerInvalid {
        /// Its length.
        bytes: usize,
        /// The limit.
        owner_bytes_max: usize,
    },
    /// A blob's owner or reader list is full.
    #[error("attachment's {list} list is full ({max} entries)")]
    ListFull {
        /// Which list: "owners" or "readers".
        list: &'static str,
        /// Its limit.
        max: usize,
    },
    /// The limits break a bound.
    #[error("invalid attachment store limits: {what}")]
    Config {
        /// What is wrong.
        what: String,
    },
    /// The disk or the quota is full (ENOSPC, EDQUOT); nothing was acknowledged.
    #[error("attachment storage full")]
    StorageFull,
    /// Stored data that does not check out; it is never served as good.
    #[error("attachment store damage: {what}")]
    Corrupt {
        /// What was found, and where.
        what: String,
    },
    /// An I/O call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, on which file.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A sync failed earlier: the store refuses every call until it is
    /// reopened (docs/adr/0008-failed-log-stops-the-hub.md).
    #[error(
        "attachment store stopped after a failed sync ({cause}); restart to recover it from disk"
    )]
    Failed {
        /// The failure that stopped it.
        cause: String,
    },
}

impl AttachmentError {
    /// An I/O error, or `StorageFull` when the OS says the disk or quota is full.
    pub(crate) fn io(what: String, source: std::io::Error) -> AttachmentError {
        if matches!(
            source.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT)
        ) {
            return AttachmentError::StorageFull;
        }
        AttachmentError::Io { what, source }
    }
}
