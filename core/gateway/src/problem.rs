//! Every error the gateway answers with: one HTTP status per stable code
//! and an RFC 9457 problem body (`application/problem+json`) that carries
//! the code, as the native protocol's error frame does.

use crate::body::{with_type, Body};
use gonets_proto::ErrorCode;
use gonets_types::HubError;
use hyper::header::{HeaderValue, ALLOW, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

/// The problem types' common prefix: `urn:gonets:error:NOT_FOUND`.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:gonets:error:";

/// The HTTP status of each stable code (one each; total over the codes).
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unauthenticated | ErrorCode::HelloRequired => StatusCode::UNAUTHORIZED,
        // A signature that does not prove the sender's authorship is refused
        // as an act the caller may not do, like a kind it may not send.
        ErrorCode::NotAuthorized | ErrorCode::StateSecret | ErrorCode::BadSignature => {
            StatusCode::FORBIDDEN
        }
        ErrorCode::UnknownDataKind | ErrorCode::NotFound | ErrorCode::UnknownUpload => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::InvalidFormat | ErrorCode::BadChunk | ErrorCode::WrongDigest => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        // The upload is elsewhere than the client thinks: where it stands
        // is in the problem (`durable_bytes`).
        ErrorCode::UploadOffset => StatusCode::CONFLICT,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::QuotaExceeded | ErrorCode::TooManyInFlight => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::AlreadyAnswered | ErrorCode::Duplicate => StatusCode::CONFLICT,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Malformed
        | ErrorCode::BadFrame
        | ErrorCode::BadHeader
        | ErrorCode::UnsupportedVersion => StatusCode::BAD_REQUEST,
    }
}

/// A request the gateway could not serve.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    detail: String,
    extra: Map<String, Value>,
    allow: Option<&'static str>,
}

impl From<HubError> for Problem {
    fn from(e: HubError) -> Problem {
        let code = ErrorCode::of(&e);
        let mut extra = Map::new();
        match &e {
            HubError::InvalidFormat { path, reason } => {
                extra.insert("path".into(), json!(path));
                extra.insert("reason".into(), json!(reason));
            }
            HubError::TooLarge {
                size_bytes,
                size_bytes_max,
            } => {
                extra.insert("size_bytes".into(), json!(size_bytes));
                extra.insert("size_bytes_max".into(), json!(size_bytes_max));
            }
            HubError::Duplicate { original } => {
                extra.insert("original".into(), json!(original.to_string()));
            }
            HubError::AlreadyAnswered(id) => {
                extra.insert("request_id".into(), json!(id.to_string()));
            }
            HubError::UploadOffset { durable_bytes } => {
                extra.insert("durable_bytes".into(), json!(durable_bytes));
            }
            _ => {}
        }
        Problem {
            status: status_of(code),
            code: code.name(),
            detail: e.to_string(),
            extra,
            allow: None,
        }
    }
}

impl Problem {
    /// 400 `MALFORMED`: a bad path parameter, header, query or body.
    pub(crate) fn malformed(detail: impl Into<String>) -> Problem {
        Problem::from(HubError::Malformed(detail.into()))
    }

    /// 404 `NOT_FOUND`: no such route.
    pub(crate) fn no_route(method: &str, path: &str) -> Problem {
        let mut p = Problem::from(HubError::NotFound);
        p.detail = format!("no operation at {method} {path} (see /v1/openapi.json)");
        p
    }

    /// 405 `MALFORMED`: the path is served with `allow` only.
    pub(crate) fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> Problem {
        let mut p = Problem::malformed(format!("{method} {path}: only {allow} is served"));
        p.status = StatusCode::METHOD_NOT_ALLOWED;
        p.allow = Some(allow);
        p
    }

    /// 408 `MALFORMED`: the body did not arrive within `timeout_ms`.
    pub(crate) fn body_timeout(timeout_ms: u64) -> Problem {
        let mut p = Problem::malformed(format!("the body did not arrive within {timeout_ms} ms"));
        p.status = StatusCode::REQUEST_TIMEOUT;
        p
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The problem body, as RFC 9457 shapes it, with the stable `code`.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            json!(format!("{PROBLEM_TYPE_PREFIX}{}", self.code)),
        );
        body.insert("title".into(), json!(self.code));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("detail".into(), json!(self.detail));
        body.insert("code".into(), json!(self.code));
        body.extend(self.extra.clone());
        Value::Object(body)
    }

    /// The response: the problem body, `Allow` on a 405 and a Basic
    /// challenge on a 401.
    pub(crate) fn into_response(self) -> Response<Body> {
        let mut text = self.to_json().to_string();
        text.push('\n');
        let mut response = with_type(self.status, text.into(), "application/problem+json");
        let headers = response.headers_mut();
        if let Some(allow) = self.allow {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"gonets\", charset=\"UTF-8\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gonets_types::MessageId;

    #[test]
    fn given_every_code_when_mapped_then_an_error_status() {
        for code in ErrorCode::all() {
            let s = status_of(code);
            assert!(s.is_client_error() || s.is_server_error(), "{code:?}: {s}");
        }
        assert_eq!(
            status_of(ErrorCode::DeadlineExceeded),
            StatusCode::GATEWAY_TIMEOUT
        );
    }

    #[test]
    fn given_an_invalid_format_when_made_a_problem_then_it_names_path_reason_and_code() {
        let p = Problem::from(HubError::InvalidFormat {
            path: "/a".into(),
            reason: "not a number".into(),
        });
        let v = p.to_json();
        assert_eq!(v["status"], 422);
        assert_eq!(v["code"], "INVALID_FORMAT");
        assert_eq!(v["type"], "urn:gonets:error:INVALID_FORMAT");
        assert_eq!(v["path"], "/a");
        assert_eq!(v["reason"], "not a number");
    }

    #[test]
    fn given_a_body_that_did_not_arrive_when_made_a_problem_then_408_malformed() {
        let p = Problem::body_timeout(60_000);
        assert_eq!((p.status().as_u16(), p.code()), (408, "MALFORMED"));
        assert!(p.to_json()["detail"].as_str().unwrap().contains("60000 ms"));
    }

    #[test]
    fn given_a_duplicate_when_made_a_problem_then_409_with_the_original() {
        let original = MessageId::new(1_700_000_000_000, 1, 3);
        let v = Problem::from(HubError::Duplicate { original }).to_json();
        assert_eq!(v["status"], 409);
        assert_eq!(v["original"], original.to_string());
    }
}
