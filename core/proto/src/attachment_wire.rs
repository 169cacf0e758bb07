//! The wire form of attachments (docs/protocol.md "Attachments"): the
//! references a request or message carries, and the upload and read
//! operations' headers, to and from the vocabulary's types.

use crate::header as h;
use gonets_types::{
    check_attachment_refs, AttachmentBytes, AttachmentRef, Command, DataKindId, Digest, HubError,
    UploadId, UploadState, CHUNK_BYTES_MAX,
};

/// A digest from its 64 hex digits.
pub fn parse_digest(text: &str) -> Result<Digest, HubError> {
    Digest::from_hex(text).ok_or_else(|| {
        HubError::Malformed(format!(
            "{:?} is not a digest (64 hex digits)",
            text.chars().take(80).collect::<String>()
        ))
    })
}

/// An upload id from its UUID text.
pub fn parse_upload(text: &str) -> Result<UploadId, HubError> {
    text.parse().map_err(HubError::Malformed)
}

/// A message's references from their wire form, checked
/// ([`check_attachment_refs`]).
pub fn refs_of(wire: &[h::Attachment]) -> Result<Vec<AttachmentRef>, HubError> {
    let refs = wire
        .iter()
        .map(|a| {
            Ok(AttachmentRef {
                digest: parse_digest(&a.digest)?,
                size_bytes: a.size_bytes,
            })
        })
        .collect::<Result<Vec<_>, HubError>>()?;
    check_attachment_refs(&refs).map_err(HubError::Malformed)?;
    Ok(refs)
}

/// A reference in its wire form.
pub fn ref_header(r: &AttachmentRef) -> h::Attachment {
    h::Attachment {
        digest: r.digest.to_hex(),
        size_bytes: r.size_bytes,
    }
}

/// References in their wire form.
pub fn ref_headers(refs: &[AttachmentRef]) -> Vec<h::Attachment> {
    refs.iter().map(ref_header).collect()
}

/// An upload's state in its wire form.
pub fn upload_header(s: &UploadState) -> h::UploadReply {
    h::UploadReply {
        upload: s.upload.to_string(),
        size_bytes: s.size_bytes,
        durable_bytes: s.durable_bytes,
    }
}

/// An upload's state from its wire form.
pub fn upload_of(r: &h::UploadReply) -> Result<UploadState, HubError> {
    Ok(UploadState {
        upload: parse_upload(&r.upload)?,
        size_bytes: r.size_bytes,
        durable_bytes: r.durable_bytes,
    })
}

/// `UploadBegin`'s command.
pub fn upload_begin(r: h::UploadBegin) -> Command {
    Command::UploadBegin {
        kind: DataKindId::new(&r.kind),
        size_bytes: r.size_bytes,
    }
}

/// `UploadChunk`'s command; the body is the chunk (at most
/// [`CHUNK_BYTES_MAX`]).
pub fn upload_chunk(r: h::UploadChunk, body: bytes::Bytes) -> Result<Command, HubError> {
    if body.len() > CHUNK_BYTES_MAX as usize {
        return Err(HubError::BadChunk(format!(
            "a chunk of {} bytes exceeds the limit of {CHUNK_BYTES_MAX}",
            body.len()
        )));
    }
    Ok(Command::UploadChunk {
        upload: parse_upload(&r.upload)?,
        offset: r.offset,
        crc32c: r.crc32c,
        bytes: body,
    })
}

/// `ReadAttachment`'s command (`bytes_max` within [`CHUNK_BYTES_MAX`]).
pub fn read_attachment(r: h::ReadAttachment) -> Result<Command, HubError> {
    if r.bytes_max == 0 || r.bytes_max > CHUNK_BYTES_MAX {
        return Err(HubError::Malformed(format!(
            "bytes_max {} is not within 1..={CHUNK_BYTES_MAX}",
            r.bytes_max
        )));
    }
    Ok(Command::ReadAttachment {
        digest: parse_digest(&r.digest)?,
        offset: r.offset,
        bytes_max: r.bytes_max,
    })
}

/// A piece read back from its wire header and body.
pub fn attachment_bytes_of(r: &h::AttachmentBytes, body: bytes::Bytes) -> AttachmentBytes {
    AttachmentBytes {
        size_bytes: r.size_bytes,
        offset: r.offset,
        bytes: body,
    }
}
