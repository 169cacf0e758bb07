//! Large attachments (docs/adr/0022): uploaded in checksummed chunks
//! apart from the message, stored in their own files, named by their
//! BLAKE3 digest, and referenced by the message that carries them. The
//! reference is part of the message's digest, so the sender's signature
//! and the hub's receipt cover the attachment's bytes.

use crate::trust::Digest;
use bytes::Bytes;
use std::fmt;
use std::str::FromStr;

/// Most attachments one message references.
pub const ATTACHMENTS_PER_MESSAGE_MAX: usize = 16;
/// Default largest attachment of a data kind, bytes (1 GiB).
pub const ATTACHMENT_BYTES_MAX_DEFAULT: u64 = 1 << 30;
/// Largest chunk of an upload, and largest piece one read returns, bytes:
/// fits a frame body (16 MiB by default) and a gateway request body with
/// room to spare, and bounds what one step holds in memory.
pub const CHUNK_BYTES_MAX: u32 = 4 << 20;

/// An attachment a message carries: its digest (BLAKE3 of its bytes) and
/// its size. The hub checks at the door that the sender uploaded exactly
/// this (`NotFound` otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AttachmentRef {
    /// BLAKE3 of the attachment's bytes.
    pub digest: Digest,
    /// Its length, bytes.
    pub size_bytes: u64,
}

/// An upload in progress, named by the hub (a random UUID).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct UploadId(pub u128);

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        f.write_str(
            uuid::Uuid::from_u128(self.0)
                .hyphenated()
                .encode_lower(&mut buf),
        )
    }
}

impl FromStr for UploadId {
    type Err = String;
    fn from_str(s: &str) -> Result<UploadId, String> {
        uuid::Uuid::try_parse(s)
            .map(|u| UploadId(u.as_u128()))
            .map_err(|_| format!("{s:?} is not an upload id (a UUID)"))
    }
}

/// Where an upload stands: how many of its bytes are durable at the hub.
/// A client that lost its connection asks for it and goes on from
/// `durable_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadState {
    /// The upload.
    pub upload: UploadId,
    /// The attachment's whole size, bytes, as declared at the start.
    pub size_bytes: u64,
    /// Bytes durable at the hub, from the start (every chunk before them
    /// checked and synced).
    pub durable_bytes: u64,
}

/// A piece of an attachment read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentBytes {
    /// The attachment's whole size, bytes.
    pub size_bytes: u64,
    /// Where `bytes` starts in it.
    pub offset: u64,
    /// At most the bytes asked for (fewer only at the end).
    pub bytes: Bytes,
}

/// Checks a message's attachment references: at most
/// [`ATTACHMENTS_PER_MESSAGE_MAX`], none empty (one named twice is
/// carried twice: harmless, and no reason to refuse a message).
pub fn check_attachment_refs(refs: &[AttachmentRef]) -> Result<(), String> {
    if refs.len() > ATTACHMENTS_PER_MESSAGE_MAX {
        return Err(format!(
            "{} attachments exceed the limit of {ATTACHMENTS_PER_MESSAGE_MAX} a message",
            refs.len()
        ));
    }
    match refs.iter().find(|r| r.size_bytes == 0) {
        Some(r) => Err(format!("attachment {} is empty", r.digest)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_upload_id_when_printed_then_parses_back() {
        let id = UploadId(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(id.to_string().parse::<UploadId>(), Ok(id));
        assert!("nope".parse::<UploadId>().is_err());
    }

    #[test]
    fn given_refs_when_checked_then_too_many_and_empty_refused() {
        let r = |b: u8, size| AttachmentRef {
            digest: Digest([b; 32]),
            size_bytes: size,
        };
        assert!(check_attachment_refs(&[r(1, 5), r(2, 7)]).is_ok());
        assert!(check_attachment_refs(&[r(1, 0)])
            .unwrap_err()
            .contains("empty"));
        assert!(check_attachment_refs(&[r(1, 5), r(1, 5)]).is_ok());
        let many: Vec<_> = (0..17).map(|i| r(i, 1)).collect();
        assert!(check_attachment_refs(&many).unwrap_err().contains("limit"));
    }
}
