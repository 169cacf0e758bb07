//! What an HTTP request says beyond its path: the query, the headers a
//! send carries (`Idempotency-Key`, `Gonets-*`), the sender's signature,
//! JSON bodies, and who the caller is.

use crate::problem::Problem;
use crate::settings::GatewayAuth;
use base64::Engine as _;
use bytes::Bytes;
use gonets_types::{HubError, NewRequest, SenderSignature};
use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;
use serde_json::Value;

/// The longest `nack` delay taken, ms (a day).
pub(crate) const NACK_DELAY_MS_MAX: u64 = 86_400_000;
/// The longest expiry a send may ask for, ms (a year; the contract's bound).
pub const EXPIRES_IN_MS_MAX: u64 = 31_536_000_000;
/// Most query parameters read; more are refused.
const QUERY_PARAMS_MAX: usize = 16;

/// Header: the sender's idempotency key (a repeat answers the original).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Header: `true` marks a test message.
pub const TEST: &str = "gonets-test";
/// Header: the sender's transaction code.
pub const TRANSACTION: &str = "gonets-transaction";
/// Header: the request expires this many ms after acceptance.
pub const EXPIRES_IN_MS: &str = "gonets-expires-in-ms";
/// Header: `true` declares state-secret content (the hub refuses it).
pub const STATE_SECRET: &str = "gonets-state-secret";
/// Header: the sender's signature, `KEY_ID:BASE64` (docs/security.md).
pub const SIGNATURE: &str = "gonets-signature";
/// Header: the attachments a request carries, `DIGEST:SIZE` each, comma
/// separated (from `upload_finish`).
pub const ATTACHMENTS: &str = "gonets-attachments";
/// Header: an upload chunk's CRC-32C (Castagnoli), in hex (1 to 8 digits).
pub const CHUNK_CRC32C: &str = "gonets-chunk-crc32c";

/// Standard base64 that takes any trailing bits (a signature's last
/// character need not be canonical to be read; its check is the hub's).
const LENIENT_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// The query's parameters, percent-decoded.
#[derive(Debug, Default)]
pub(crate) struct Query {
    params: Vec<(String, String)>,
}

impl Query {
    /// Parses `a=1&b=2`; at most [`QUERY_PARAMS_MAX`] parameters.
    pub fn parse(query: Option<&str>) -> Result<Query, Problem> {
        let mut params = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            if params.len() == QUERY_PARAMS_MAX {
                return Err(Problem::malformed(format!(
                    "more than {QUERY_PARAMS_MAX} query parameters"
                )));
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.push((name.to_owned(), crate::routes::percent_decode(value)?));
        }
        Ok(Query { params })
    }

    /// Number `name` within `min..=max`, `default` when absent.
    pub fn number(&self, name: &str, min: u64, max: u64, default: u64) -> Result<u64, Problem> {
        Ok(self.optional_number(name, min, max)?.unwrap_or(default))
    }

    /// Parameter `name` as a whole number from `min` to `max`; `None` when
    /// absent.
    pub fn optional_number(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, Problem> {
        let Some((_, text)) = self.params.iter().find(|(n, _)| n == name) else {
            return Ok(None);
        };
        match text.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(Problem::malformed(format!(
                "query {name}={text:?}: expected a whole number from {min} to {max}"
            ))),
        }
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Problem> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| Problem::malformed(format!("header {name}: not visible ASCII"))),
    }
}

fn header_flag(headers: &HeaderMap, name: &str) -> Result<bool, Problem> {
    match header_text(headers, name)? {
        None => Ok(false),
        Some(t) if t.eq_ignore_ascii_case("true") => Ok(true),
        Some(t) if t.eq_ignore_ascii_case("false") => Ok(false),
        Some(t) => Err(Problem::malformed(format!(
            "header {name}: {t:?}, expected true or false"
        ))),
    }
}

/// The attachments header `Gonets-Attachments` names (a request's or a
/// data answer's); an empty header names none (the contract allows it).
pub(crate) fn attachments(
    headers: &HeaderMap,
) -> Result<Vec<gonets_types::AttachmentRef>, Problem> {
    match header_text(headers, ATTACHMENTS)? {
        None | Some("") => Ok(Vec::new()),
        Some(t) => attachment_refs(t),
    }
}

/// A request of `kind` with `payload` and the send headers.
pub(crate) fn new_request(
    kind: &str,
    payload: Bytes,
    headers: &HeaderMap,
) -> Result<NewRequest, Problem> {
    let mut r = NewRequest::new(kind, payload);
    r.idempotency_key = header_text(headers, IDEMPOTENCY_KEY)?.map(str::to_owned);
    r.transaction = header_text(headers, TRANSACTION)?.map(str::to_owned);
    r.test = header_flag(headers, TEST)?;
    r.state_secret = header_flag(headers, STATE_SECRET)?;
    r.attachments = attachments(headers)?;
    r.expires_in_ms = match header_text(headers, EXPIRES_IN_MS)? {
        None => None,
        Some(t) => match t.parse::<u64>() {
            Ok(ms) if (1..=EXPIRES_IN_MS_MAX).contains(&ms) => Some(ms),
            _ => {
                return Err(Problem::malformed(format!(
                    "header {EXPIRES_IN_MS}: {t:?}, expected ms from 1 to {EXPIRES_IN_MS_MAX}"
                )))
            }
        },
    };
    Ok(r)
}

/// `DIGEST:SIZE,DIGEST:SIZE`: a request's attachments.
fn attachment_refs(text: &str) -> Result<Vec<gonets_types::AttachmentRef>, Problem> {
    let bad = || {
        Problem::malformed(format!(
            "header {ATTACHMENTS}: expected DIGEST:SIZE (64 hex digits, bytes), comma separated"
        ))
    };
    let refs = text
        .split(',')
        .take(gonets_types::ATTACHMENTS_PER_MESSAGE_MAX + 1)
        .map(|item| {
            let (digest, size) = item.trim().split_once(':').ok_or_else(bad)?;
            Ok(gonets_types::AttachmentRef {
                digest: gonets_types::Digest::from_hex(digest).ok_or_else(bad)?,
                size_bytes: size.parse().map_err(|_| bad())?,
            })
        })
        .collect::<Result<Vec<_>, Problem>>()?;
    gonets_types::check_attachment_refs(&refs).map_err(Problem::malformed)?;
    Ok(refs)
}

/// The chunk's CRC-32C header (required on `upload_chunk`).
pub(crate) fn chunk_crc32c(headers: &HeaderMap) -> Result<u32, Problem> {
    let text = header_text(headers, CHUNK_CRC32C)?.ok_or_else(|| {
        Problem::malformed(format!(
            "header {CHUNK_CRC32C} is required: the chunk's CRC-32C"
        ))
    })?;
    let hex = (1..=8).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit());
    u32::from_str_radix(text, 16)
        .ok()
        .filter(|_| hex)
        .ok_or_else(|| {
            Problem::malformed(format!(
                "header {CHUNK_CRC32C}: {text:?}, expected up to 8 hex digits (the chunk's CRC-32C)"
            ))
        })
}

/// The sender's signature header, if any: `KEY_ID:BASE64`.
pub(crate) fn signature(headers: &HeaderMap) -> Result<Option<SenderSignature>, Problem> {
    // An empty header is no signature (the contract's pattern allows it:
    // HTTP clients send unset optional headers empty).
    let Some(text) = header_text(headers, SIGNATURE)?.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let shown: String = text.chars().take(120).collect();
    let bad = || {
        Problem::malformed(format!(
            "header {SIGNATURE}: {shown:?}, expected KEY_ID:BASE64"
        ))
    };
    let (key_id, b64) = text.rsplit_once(':').ok_or_else(bad)?;
    let bytes = LENIENT_BASE64.decode(b64).map_err(|_| bad())?;
    Ok(Some(SenderSignature {
        key_id: key_id.to_owned(),
        bytes: bytes.into(),
    }))
}

/// A JSON body, or 400.
pub(crate) fn json_body(body: &[u8]) -> Result<Value, Problem> {
    serde_json::from_slice(body)
        .map_err(|e| Problem::malformed(format!("the body is not JSON: {e}")))
}

/// One request of a `send_requests` body.
pub(crate) fn batch_item(kind: &str, index: usize, item: &Value) -> Result<NewRequest, Problem> {
    let bad = |what: &str| Problem::malformed(format!("requests[{index}]: {what}"));
    let b64 = item
        .get("payload_base64")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("needs \"payload_base64\": text"))?;
    let payload = LENIENT_BASE64
        .decode(b64)
        .map_err(|_| bad("payload_base64 is not base64"))?;
    let mut r = NewRequest::new(kind, payload);
    let text = |name: &str| -> Result<Option<String>, Problem> {
        match item.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(&format!("{name} must be text"))),
        }
    };
    r.idempotency_key = text("idempotency_key")?;
    r.transaction = text("transaction")?;
    r.test = match item.get("test") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("test must be true or false")),
    };
    r.expires_in_ms = match item.get("expires_in_ms") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            whole_number(v)
                .filter(|ms| (1..=EXPIRES_IN_MS_MAX).contains(ms))
                .ok_or_else(|| bad("expires_in_ms must be ms from 1 to a year"))?,
        ),
    };
    Ok(r)
}

/// A JSON whole number as u64: JSON Schema's `integer` takes `5.0` too.
pub(crate) fn whole_number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        let f = v.as_f64()?;
        // Exact below 2^53; larger whole floats are refused by the caller's bound.
        (f.fract() == 0.0 && (0.0..9.007_199_254_740_992e15).contains(&f)).then_some(f as u64)
    })
}

/// The caller's participant: its certificate's (checked at the TLS
/// handshake, `tls_participant`), or its Basic credentials against the
/// development tokens. 401 `UNAUTHENTICATED` otherwise.
pub(crate) fn identify(
    auth: &GatewayAuth,
    tls_participant: Option<&str>,
    headers: &HeaderMap,
) -> Result<String, Problem> {
    match auth {
        GatewayAuth::Tls { .. } => tls_participant
            .map(str::to_owned)
            .ok_or_else(|| HubError::Unauthenticated.into()),
        GatewayAuth::DevTokens(tokens) => {
            let (user, password) = basic_credentials(headers)
                .ok_or_else(|| Problem::from(HubError::Unauthenticated))?;
            match tokens.get(&user) {
                Some(token) if *token == password => Ok(user),
                _ => Err(HubError::Unauthenticated.into()),
            }
        }
    }
}

/// `Authorization: Basic base64(user:password)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let text = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use std::collections::HashMap;
    use std::sync::Arc;

    #[test]
    fn given_send_headers_when_read_then_the_request_carries_them() {
        let mut h = HeaderMap::new();
        h.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("k-1"));
        h.insert(TEST, HeaderValue::from_static("TRUE"));
        h.insert(EXPIRES_IN_MS, HeaderValue::from_static("5000"));
        let r = new_request("urn:k", Bytes::from_static(b"x"), &h).unwrap();
        assert_eq!(r.idempotency_key.as_deref(), Some("k-1"));
        assert!(r.test && !r.state_secret);
        assert_eq!(r.expires_in_ms, Some(5000));
        h.insert(TEST, HeaderValue::from_static("yes"));
        assert_eq!(
            new_request("urn:k", Bytes::new(), &h).unwrap_err().code(),
            "MALFORMED"
        );
    }

    #[test]
    fn given_basic_credentials_when_identified_then_only_the_right_token_passes() {
        let tokens = HashMap::from([("MFC".to_owned(), "dev-mfc".to_owned())]);
        let auth = GatewayAuth::DevTokens(Arc::new(tokens));
        let mut h = HeaderMap::new();
        assert_eq!(
            identify(&auth, None, &h).unwrap_err().status().as_u16(),
            401
        );
        let good = base64::engine::general_purpose::STANDARD.encode("MFC:dev-mfc");
        h.insert(AUTHORIZATION, format!("Basic {good}").parse().unwrap());
        assert_eq!(identify(&auth, None, &h).unwrap(), "MFC");
        let bad = base64::engine::general_purpose::STANDARD.encode("MFC:nope");
        h.insert(AUTHORIZATION, format!("Basic {bad}").parse().unwrap());
        assert_eq!(
            identify(&auth, None, &h).unwrap_err().code(),
            "UNAUTHENTICATED"
        );
    }

    #[test]
    fn given_a_query_when_parsed_then_numbers_are_bounded() {
        let q = Query::parse(Some("max=5&wait_ms=99999999")).unwrap();
        assert_eq!(q.number("max", 1, 10, 1).unwrap(), 5);
        assert!(q.number("wait_ms", 0, 100, 0).is_err());
        assert_eq!(q.number("absent", 0, 1, 1).unwrap(), 1);
    }

    #[test]
    fn given_a_signature_header_when_read_then_key_and_bytes() {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE, HeaderValue::from_static("MFC-2026:AAEC"));
        let s = signature(&h).unwrap().unwrap();
        assert_eq!(s.key_id, "MFC-2026");
        assert_eq!(&s.bytes[..], &[0, 1, 2]);
        h.insert(SIGNATURE, HeaderValue::from_static("nocolon"));
        assert!(signature(&h).is_err());
    }
}
