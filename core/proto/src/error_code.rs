//! Stable error codes of the wire: every typed hub error, and the
//! protocol's own (a bad frame, a missing hello, ...).

use crate::frame::FrameError;
use crate::header::{ErrorDetails, ErrorReply};
use crate::HeaderError;
use gonets_types::error::HubError;

/// A stable error code (its number and name never change meaning).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Not a registered participant, or no valid credentials.
    Unauthenticated,
    /// The participant may not do this.
    NotAuthorized,
    /// No such data kind.
    UnknownDataKind,
    /// The payload breaks the data kind's format.
    InvalidFormat,
    /// The payload exceeds the data kind's maximum.
    TooLarge,
    /// State secrets are not processed.
    StateSecret,
    /// The queue is at its bound.
    QuotaExceeded,
    /// The disk is full.
    StorageFull,
    /// The deadline passed.
    DeadlineExceeded,
    /// Already answered or refused.
    AlreadyAnswered,
    /// A repeat of an earlier send.
    Duplicate,
    /// No such message or queue (or not visible).
    NotFound,
    /// Bad arguments.
    Malformed,
    /// Retry later.
    Unavailable,
    /// A required sender signature is missing or does not verify.
    BadSignature,
    /// An upload chunk does not match its CRC-32C, or is too large.
    BadChunk,
    /// An attachment's bytes do not have the digest named.
    WrongDigest,
    /// An upload goes on from another byte (`details.size_bytes`).
    UploadOffset,
    /// No such upload of the caller's.
    UnknownUpload,
    /// The byte stream is not a valid frame sequence (fatal).
    BadFrame,
    /// The JSON header does not parse or lacks a field.
    BadHeader,
    /// An operation before a successful `Hello` (fatal).
    HelloRequired,
    /// No protocol version in common (fatal).
    UnsupportedVersion,
    /// Too many requests in flight on this connection.
    TooManyInFlight,
}

const CODES: [(ErrorCode, u16, &str); 24] = [
    (ErrorCode::Unauthenticated, 1, "UNAUTHENTICATED"),
    (ErrorCode::NotAuthorized, 2, "NOT_AUTHORIZED"),
    (ErrorCode::UnknownDataKind, 3, "UNKNOWN_DATA_KIND"),
    (ErrorCode::InvalidFormat, 4, "INVALID_FORMAT"),
    (ErrorCode::TooLarge, 5, "TOO_LARGE"),
    (ErrorCode::StateSecret, 6, "STATE_SECRET"),
    (ErrorCode::QuotaExceeded, 7, "QUOTA_EXCEEDED"),
    (ErrorCode::StorageFull, 8, "STORAGE_FULL"),
    (ErrorCode::DeadlineExceeded, 9, "DEADLINE_EXCEEDED"),
    (ErrorCode::AlreadyAnswered, 10, "ALREADY_ANSWERED"),
    (ErrorCode::Duplicate, 11, "DUPLICATE"),
    (ErrorCode::NotFound, 12, "NOT_FOUND"),
    (ErrorCode::Malformed, 13, "MALFORMED"),
    (ErrorCode::Unavailable, 14, "UNAVAILABLE"),
    (ErrorCode::BadSignature, 15, "BAD_SIGNATURE"),
    (ErrorCode::BadChunk, 16, "BAD_CHUNK"),
    (ErrorCode::WrongDigest, 17, "WRONG_DIGEST"),
    (ErrorCode::UploadOffset, 18, "UPLOAD_OFFSET"),
    (ErrorCode::UnknownUpload, 19, "UNKNOWN_UPLOAD"),
    (ErrorCode::BadFrame, 100, "BAD_FRAME"),
    (ErrorCode::BadHeader, 101, "BAD_HEADER"),
    (ErrorCode::HelloRequired, 102, "HELLO_REQUIRED"),
    (ErrorCode::UnsupportedVersion, 103, "UNSUPPORTED_VERSION"),
    (ErrorCode::TooManyInFlight, 104, "TOO_MANY_IN_FLIGHT"),
];

impl ErrorCode {
    /// Every code.
    pub fn all() -> impl Iterator<Item = ErrorCode> {
        CODES.iter().map(|(c, _, _)| *c)
    }

    /// The stable number.
    pub fn number(self) -> u16 {
        CODES
            .iter()
            .find(|(c, _, _)| *c == self)
            .map(|e| e.1)
            .expect("every code is listed")
    }

    /// The stable name.
    pub fn name(self) -> &'static str {
        CODES
            .iter()
            .find(|(c, _, _)| *c == self)
            .map(|e| e.2)
            .expect("every code is listed")
    }

    /// The code of a stable name.
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        CODES.iter().find(|(_, _, n)| *n == name).map(|e| e.0)
    }

    /// The code of a hub error.
    pub fn of(e: &HubError) -> ErrorCode {
        match e {
            HubError::Unauthenticated => ErrorCode::Unauthenticated,
            HubError::NotAuthorized(_) => ErrorCode::NotAuthorized,
            HubError::UnknownDataKind(_) => ErrorCode::UnknownDataKind,
            HubError::InvalidFormat { .. } => ErrorCode::InvalidFormat,
            HubError::TooLarge { .. } | HubError::TextTooLarge { .. } => ErrorCode::TooLarge,
            HubError::StateSecret => ErrorCode::StateSecret,
            HubError::QuotaExceeded => ErrorCode::QuotaExceeded,
            HubError::StorageFull => ErrorCode::StorageFull,
            HubError::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            HubError::AlreadyAnswered(_) => ErrorCode::AlreadyAnswered,
            HubError::Duplicate { .. } => ErrorCode::Duplicate,
            HubError::NotFound => ErrorCode::NotFound,
            HubError::Malformed(_) => ErrorCode::Malformed,
            HubError::Unavailable(_) => ErrorCode::Unavailable,
            HubError::BadSignature(_) => ErrorCode::BadSignature,
            HubError::BadChunk(_) => ErrorCode::BadChunk,
            HubError::WrongDigest(_) => ErrorCode::WrongDigest,
            HubError::UploadOffset { .. } => ErrorCode::UploadOffset,
            HubError::UnknownUpload => ErrorCode::UnknownUpload,
        }
    }
}

impl ErrorReply {
    /// The error frame's header for a hub error.
    pub fn from_hub(e: &HubError) -> ErrorReply {
        let code = ErrorCode::of(e);
        let mut details = ErrorDetails::default();
        match e {
            HubError::NotAuthorized(s)
            | HubError::UnknownDataKind(s)
            | HubError::Malformed(s)
            | HubError::Unavailable(s)
            | HubError::BadSignature(s)
            | HubError::BadChunk(s)
            | HubError::WrongDigest(s) => details.reason = Some(s.clone()),
            HubError::UploadOffset { durable_bytes } => details.size_bytes = Some(*durable_bytes),
            HubError::InvalidFormat { path, reason } => {
                details.path = Some(path.clone());
                details.reason = Some(reason.clone());
            }
            HubError::TooLarge {
                size_bytes,
                size_bytes_max,
            } => {
                details.size_bytes = Some(*size_bytes);
                details.size_bytes_max = Some(*size_bytes_max);
            }
            HubError::TextTooLarge {
                field,
                size_bytes,
                size_bytes_max,
            } => {
                details.field = Some(field.clone());
                details.size_bytes = Some(*size_bytes);
                details.size_bytes_max = Some(*size_bytes_max);
            }
            HubError::AlreadyAnswered(id) => details.id = Some(id.to_string()),
            HubError::Duplicate { original } => details.id = Some(original.to_string()),
            _ => {}
        }
        ErrorReply {
            code: code.name().into(),
            code_num: code.number(),
            message: e.to_string(),
            fatal: false,
            details,
        }
    }

    /// The error frame's header for a protocol error.
    pub fn protocol(code: ErrorCode, message: impl Into<String>, fatal: bool) -> ErrorReply {
        ErrorReply {
            code: code.name().into(),
            code_num: code.number(),
            message: message.into(),
            fatal,
            details: ErrorDetails::default(),
        }
    }

    /// The error frame for a request header that was not taken: a fatal
    /// `BAD_HEADER` when it is not a JSON object, else `MALFORMED` (not
    /// fatal) naming the field at fault in `details.field`.
    pub fn from_header(e: &HeaderError) -> ErrorReply {
        match e {
            HeaderError::Unparseable(_) => {
                ErrorReply::protocol(ErrorCode::BadHeader, e.to_string(), true)
            }
            HeaderError::Field { field, .. } => {
                let mut reply = ErrorReply::from_hub(&HubError::Malformed(e.to_string()));
                reply.details.field = Some((*field).to_string());
                reply
            }
            HeaderError::Invalid(_) => ErrorReply::from_hub(&HubError::Malformed(e.to_string())),
        }
    }

    /// `TOO_LARGE` (not fatal) for a text field of a request header over
    /// its limit, naming the field (`details.field`) in the message.
    pub fn field_too_large(field: &str, size_bytes: usize, size_bytes_max: usize) -> ErrorReply {
        let mut reply = ErrorReply::from_hub(&HubError::TooLarge {
            size_bytes: size_bytes as u64,
            size_bytes_max: size_bytes_max as u64,
        });
        reply.message =
            format!("{field} of {size_bytes} bytes exceeds the limit of {size_bytes_max} bytes");
        reply.details.field = Some(field.to_string());
        reply
    }

    /// The fatal error frame for a broken byte stream.
    pub fn from_frame(e: &FrameError) -> ErrorReply {
        let code = match e {
            FrameError::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
            _ => ErrorCode::BadFrame,
        };
        let mut reply = ErrorReply::protocol(code, e.to_string(), true);
        if let FrameError::BodyTooLarge {
            body_bytes,
            body_bytes_max,
        } = e
        {
            reply.details.size_bytes = Some(u64::from(*body_bytes));
            reply.details.size_bytes_max = Some(u64::from(*body_bytes_max));
        }
        reply
    }

    /// The hub error this reply stands for, if its code is a hub error's.
    pub fn to_hub(&self) -> Option<HubError> {
        let reason = || {
            self.details
                .reason
                .clone()
                .unwrap_or_else(|| self.message.clone())
        };
        let id = || self.details.id.as_deref().and_then(|s| s.parse().ok());
        Some(match ErrorCode::from_name(&self.code)? {
            ErrorCode::Unauthenticated => HubError::Unauthenticated,
            ErrorCode::NotAuthorized => HubError::NotAuthorized(reason()),
            ErrorCode::UnknownDataKind => HubError::UnknownDataKind(reason()),
            ErrorCode::InvalidFormat => HubError::InvalidFormat {
                path: self.details.path.clone().unwrap_or_default(),
                reason: reason(),
            },
            ErrorCode::TooLarge => match &self.details.field {
                Some(field) => HubError::TextTooLarge {
                    field: field.clone(),
                    size_bytes: self.details.size_bytes.unwrap_or(0),
                    size_bytes_max: self.details.size_bytes_max.unwrap_or(0),
                },
                None => HubError::TooLarge {
                    size_bytes: self.details.size_bytes.unwrap_or(0),
                    size_bytes_max: self.details.size_bytes_max.unwrap_or(0),
                },
            },
            ErrorCode::StateSecret => HubError::StateSecret,
            ErrorCode::QuotaExceeded => HubError::QuotaExceeded,
            ErrorCode::StorageFull => HubError::StorageFull,
            ErrorCode::DeadlineExceeded => HubError::DeadlineExceeded,
            ErrorCode::AlreadyAnswered => HubError::AlreadyAnswered(id()?),
            ErrorCode::Duplicate => HubError::Duplicate { original: id()? },
            ErrorCode::NotFound => HubError::NotFound,
            ErrorCode::Malformed => HubError::Malformed(reason()),
            ErrorCode::Unavailable => HubError::Unavailable(reason()),
            ErrorCode::BadSignature => HubError::BadSignature(reason()),
            ErrorCode::BadChunk => HubError::BadChunk(reason()),
            ErrorCode::WrongDigest => HubError::WrongDigest(reason()),
            ErrorCode::UploadOffset => HubError::UploadOffset {
                durable_bytes: self.details.size_bytes?,
            },
            ErrorCode::UnknownUpload => HubError::UnknownUpload,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gonets_types::ids::MessageId;

    #[test]
    fn given_codes_when_listed_then_numbers_and_names_are_unique() {
        let mut numbers: Vec<u16> = ErrorCode::all().map(ErrorCode::number).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), CODES.len());
        for c in ErrorCode::all() {
            assert_eq!(ErrorCode::from_name(c.name()), Some(c));
        }
    }

    #[test]
    fn given_every_hub_error_when_sent_as_a_reply_then_it_comes_back_equal() {
        let id = MessageId::new(1_700_000_000_000, 1, 7);
        let errors = [
            HubError::Unauthenticated,
            HubError::NotAuthorized("x".into()),
            HubError::BadSignature("unknown key k9".into()),
            HubError::UnknownDataKind("k".into()),
            HubError::InvalidFormat {
                path: "/a".into(),
                reason: "r".into(),
            },
            HubError::TooLarge {
                size_bytes: 9,
                size_bytes_max: 8,
            },
            HubError::StateSecret,
            HubError::QuotaExceeded,
            HubError::StorageFull,
            HubError::DeadlineExceeded,
            HubError::AlreadyAnswered(id),
            HubError::Duplicate { original: id },
            HubError::NotFound,
            HubError::Malformed("m".into()),
            HubError::Unavailable("u".into()),
            HubError::BadChunk("crc".into()),
            HubError::WrongDigest("d".into()),
            HubError::UploadOffset { durable_bytes: 42 },
            HubError::UnknownUpload,
        ];
        for e in errors {
            let reply = ErrorReply::from_hub(&e);
            let json = serde_json::to_vec(&reply).unwrap();
            let back: ErrorReply = serde_json::from_slice(&json).unwrap();
            assert_eq!(back.to_hub(), Some(e));
        }
    }
}
