//! Attachments over HTTP (docs/gateway.md "Attachments", ADR 0022): the
//! upload operations' commands, and an attachment read back as one
//! streamed response, piece by piece from the hub's attachment store, so
//! the gateway never holds more than one piece of it.

use crate::body::Body;
use crate::problem::Problem;
use crate::request::{self, Query};
use crate::routes::Matched;
use bytes::Bytes;
use gonets_engine::Session;
use gonets_types::{AttachmentBytes, Command, DataKindId, Digest, UploadId, CHUNK_BYTES_MAX};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Response, StatusCode};
use serde_json::Value;

/// The largest offset taken, bytes (2^53 - 1: every JSON parser reads it
/// exactly; attachments are far smaller).
pub const OFFSET_MAX: u64 = (1 << 53) - 1;

/// Header of a read: the attachment's whole size, bytes.
pub const SIZE_BYTES: &str = "gonets-size-bytes";

/// `upload_begin`'s body: `{"size_bytes": N}`.
pub(crate) fn begin(kind: &str, body: &[u8]) -> Result<Command, Problem> {
    let value = request::json_body(body)?;
    let size_bytes = value
        .get("size_bytes")
        .and_then(request::whole_number)
        .ok_or_else(|| {
            Problem::malformed("the body needs \"size_bytes\": the attachment's size")
        })?;
    Ok(Command::UploadBegin {
        kind: DataKindId::new(kind),
        size_bytes,
    })
}

/// `upload_chunk`: the body at `?offset=`, its CRC-32C in a header.
pub(crate) fn chunk(
    matched: &Matched,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Command, Problem> {
    if body.len() > CHUNK_BYTES_MAX as usize {
        return Err(Problem::from(gonets_types::HubError::BadChunk(format!(
            "a chunk of {} bytes exceeds the limit of {CHUNK_BYTES_MAX}",
            body.len()
        ))));
    }
    let offset = query
        .optional_number("offset", 0, OFFSET_MAX)?
        .ok_or_else(|| Problem::malformed("query offset is required: where the chunk starts"))?;
    Ok(Command::UploadChunk {
        upload: upload_id(matched)?,
        offset,
        crc32c: request::chunk_crc32c(headers)?,
        bytes: body,
    })
}

/// `upload_finish`'s body: `{"digest": "<64 hex digits>"}`.
pub(crate) fn finish(matched: &Matched, body: &[u8]) -> Result<Command, Problem> {
    let value = request::json_body(body)?;
    let digest = value
        .get("digest")
        .and_then(Value::as_str)
        .and_then(Digest::from_hex)
        .ok_or_else(|| {
            Problem::malformed(
                "the body needs \"digest\": the BLAKE3 of the whole attachment, 64 hex digits",
            )
        })?;
    Ok(Command::UploadFinish {
        upload: upload_id(matched)?,
        digest,
    })
}

/// The upload the path names.
pub(crate) fn upload_id(matched: &Matched) -> Result<UploadId, Problem> {
    matched
        .param("upload")
        .parse()
        .map_err(|e: String| Problem::malformed(e))
}

/// `read_attachment`: the bytes from `?offset=` (default 0) to the end,
/// streamed. The first piece is read before the response starts, so a
/// refusal (not found, not the caller's) is a problem with its status;
/// a failure later cuts the body short of its `Content-Length`, which
/// every HTTP client reports.
pub(crate) async fn read(
    session: &Session,
    matched: &Matched,
    query: &Query,
) -> Result<Response<Body>, Problem> {
    let text = matched.param("digest");
    let digest = Digest::from_hex(text)
        .ok_or_else(|| Problem::malformed(format!("digest {text:?}: expected 64 hex digits")))?;
    let offset = query.number("offset", 0, OFFSET_MAX, 0)?;
    let first: AttachmentBytes = session.attachment(piece(digest, offset)).await?;
    let size_bytes = first.size_bytes;
    let length = size_bytes.saturating_sub(offset);
    let session = session.clone();
    let pieces = futures_lite::stream::unfold(Some(first), move |next| {
        let session = session.clone();
        async move {
            let piece = next?;
            let end = piece.offset + piece.bytes.len() as u64;
            let more = if end < size_bytes && !piece.bytes.is_empty() {
                next_piece(&session, digest, end).await
            } else {
                None
            };
            Some((Ok(Frame::data(piece.bytes)), more))
        }
    });
    let mut response = Response::new(StreamBody::new(pieces).boxed());
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(SIZE_BYTES, HeaderValue::from(size_bytes));
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}

fn piece(digest: Digest, offset: u64) -> Command {
    Command::ReadAttachment {
        digest,
        offset,
        bytes_max: CHUNK_BYTES_MAX,
    }
}

/// The piece at `offset`, or none after a failure (logged; the body ends
/// short).
async fn next_piece(session: &Session, digest: Digest, offset: u64) -> Option<AttachmentBytes> {
    match session.attachment(piece(digest, offset)).await {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(%digest, offset, error = %e, "HTTP gateway: attachment read cut short");
            None
        }
    }
}
