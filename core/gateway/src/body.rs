//! Response bodies: whole, in memory (the gateway's answers are small or
//! one message), with their content type.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::Value;

/// Every response body.
pub(crate) type Body = BoxBody<Bytes, std::convert::Infallible>;

/// A JSON response with `status`.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut text = value.to_string();
    text.push('\n');
    with_type(status, text.into(), "application/json")
}

/// A response with `body` of `content_type`.
pub(crate) fn with_type(
    status: StatusCode,
    body: Bytes,
    content_type: &'static str,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
