//! JSON responses, and the one shape of every error the API gives:
//! `{"error": {"status": 404, "code": "not_found", "message": "..."}}`.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

/// Every response body: whole, in memory (the API's bodies are small),
/// or a stream (`/events`).
pub(crate) type Body = BoxBody<Bytes, std::convert::Infallible>;

/// A JSON response with `status`.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    with_type(status, text, "application/json")
}

/// A response with `body` of `content_type`.
pub(crate) fn with_type(
    status: StatusCode,
    body: String,
    content_type: &'static str,
) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A request the API cannot serve, as its JSON error response.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    allow: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    /// 400: the request names something malformed (e.g. a bad message id).
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 403: the client certificate is not an operator's.
    pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: no such path, or no such message.
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405: the path is served, but only with GET.
    pub(crate) fn method_not_allowed(method: &str, path: &str) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} {path}: only GET is served"),
        );
        e.allow = Some("GET");
        e
    }

    /// 503: the hub cannot answer now (a shard stopped or did not answer in time).
    pub(crate) fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// The JSON error response.
    pub(crate) fn into_response(self) -> Response<Body> {
        let body = json!({
            "error": {
                "status": self.status.as_u16(),
                "code": self.code,
                "message": self.message,
            }
        });
        let mut response = json_response(self.status, &body);
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}
