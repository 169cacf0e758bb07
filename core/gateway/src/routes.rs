//! The route table: every operation of DESIGN.md §2 with its HTTP method
//! and path. Requests are matched against it, and the OpenAPI document
//! is generated from it (`crate::openapi`), so the two cannot drift apart.

use crate::problem::Problem;

/// An operation the gateway serves (DESIGN.md §2's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `send_request`: the body is the payload.
    SendRequest,
    /// `send_requests`: many requests of one kind, in JSON.
    SendRequests,
    /// `call`: the real-time path; the answer, or 504 `DEADLINE_EXCEEDED`.
    Call,
    /// `fetch`: leased delivery by long-poll.
    Fetch,
    /// `stream`: push delivery as server-sent events, with credits.
    Stream,
    /// `add_credits`: gives a stream credits back.
    StreamCredits,
    /// `ack`: ends a lease, done.
    Ack,
    /// `nack`: ends a lease, deliver again later.
    Nack,
    /// `send_response`: the body is the answer's payload.
    SendResponse,
    /// `send_refusal`: a refusal code and reason, in JSON.
    SendRefusal,
    /// `status`: a request's history.
    Status,
    /// `queue_stats`: depth, in flight, oldest age.
    QueueStats,
    /// `upload_begin`: starts a chunked attachment upload.
    UploadBegin,
    /// `upload_chunk`: one chunk (the body) at `offset`, with its CRC-32C.
    UploadChunk,
    /// `upload_status`: where an upload stands.
    UploadStatus,
    /// `upload_finish`: the digest check; the attachment's reference.
    UploadFinish,
    /// `read_attachment`: the attachment's bytes, streamed.
    ReadAttachment,
    /// The OpenAPI 3.1 document of this table.
    OpenApi,
}

/// One route: method, path template (`{name}` is one path segment) and
/// what the OpenAPI document says of it.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path, `{name}` for a parameter.
    pub path: &'static str,
    /// The operation.
    pub op: Op,
    /// The OpenAPI `operationId`: the operation's name in DESIGN.md §2.
    pub operation_id: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
}

/// Every route, in the order the OpenAPI document lists them.
pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/v1/kinds/{kind}/requests",
        op: Op::SendRequest,
        operation_id: "send_request",
        summary: "Send a request of a data kind (the body is the payload); 202 once durable",
    },
    Route {
        method: "POST",
        path: "/v1/kinds/{kind}/requests/batch",
        op: Op::SendRequests,
        operation_id: "send_requests",
        summary: "Send many requests of one data kind in one operation; one result each",
    },
    Route {
        method: "POST",
        path: "/v1/kinds/{kind}/call",
        op: Op::Call,
        operation_id: "call",
        summary: "Real-time call: send, then wait for the answer within the kind's deadline",
    },
    Route {
        method: "GET",
        path: const_concat::QUEUE_MESSAGES,
        op: Op::Fetch,
        operation_id: "fetch",
        summary: "Long-poll: up to max messages, leased to the caller, waiting up to wait_ms",
    },
    Route {
        method: "GET",
        path: const_concat::QUEUE_STREAM,
        op: Op::Stream,
        operation_id: "stream",
        summary: "Push delivery as server-sent events: at most credits messages unsettled at once",
    },
    Route {
        method: "POST",
        path: const_concat::QUEUE_STREAM_CREDITS,
        op: Op::StreamCredits,
        operation_id: "add_credits",
        summary: "Give a stream credits back (after leases ran out unsettled), up to its window",
    },
    Route {
        method: "POST",
        path: const_concat::QUEUE_ACK,
        op: Op::Ack,
        operation_id: "ack",
        summary: "End a lease: the message is done",
    },
    Route {
        method: "POST",
        path: const_concat::QUEUE_NACK,
        op: Op::Nack,
        operation_id: "nack",
        summary: "End a lease: deliver the message again after delay_ms",
    },
    Route {
        method: "POST",
        path: "/v1/requests/{id}/response",
        op: Op::SendResponse,
        operation_id: "send_response",
        summary: "The provider's data answer to a request (the body is the payload)",
    },
    Route {
        method: "POST",
        path: "/v1/requests/{id}/refusal",
        op: Op::SendRefusal,
        operation_id: "send_refusal",
        summary: "The provider's refusal of a request, with a code and a reason",
    },
    Route {
        method: "GET",
        path: "/v1/messages/{id}/status",
        op: Op::Status,
        operation_id: "status",
        summary: "A request's history: every event with its hub time",
    },
    Route {
        method: "GET",
        path: const_concat::QUEUE_STATS,
        op: Op::QueueStats,
        operation_id: "queue_stats",
        summary: "A queue's depth, messages in flight and oldest age",
    },
    Route {
        method: "POST",
        path: "/v1/kinds/{kind}/attachments",
        op: Op::UploadBegin,
        operation_id: "upload_begin",
        summary: "Start a chunked upload of an attachment for requests of a data kind",
    },
    Route {
        method: "POST",
        path: "/v1/uploads/{upload}/chunks",
        op: Op::UploadChunk,
        operation_id: "upload_chunk",
        summary: "One chunk of an upload (the body) at offset, with its CRC-32C; 200 once durable",
    },
    Route {
        method: "GET",
        path: "/v1/uploads/{upload}",
        op: Op::UploadStatus,
        operation_id: "upload_status",
        summary: "Where an upload stands: the bytes durable at the hub (resume from there)",
    },
    Route {
        method: "POST",
        path: "/v1/uploads/{upload}/finish",
        op: Op::UploadFinish,
        operation_id: "upload_finish",
        summary: "End an upload: the hub checks its BLAKE3 digest; the reference a request carries",
    },
    Route {
        method: "GET",
        path: "/v1/attachments/{digest}",
        op: Op::ReadAttachment,
        operation_id: "read_attachment",
        summary:
            "An attachment's bytes from offset, streamed (its uploader, or its request's provider)",
    },
    Route {
        method: "GET",
        path: "/v1/openapi.json",
        op: Op::OpenApi,
        operation_id: "openapi",
        summary: "This contract (OpenAPI 3.1), generated from the gateway's route table",
    },
];

/// The queue routes' paths (const, so the table stays a `const`).
mod const_concat {
    pub(super) const QUEUE_MESSAGES: &str = "/v1/queues/{queue_type}/{owner}/messages";
    pub(super) const QUEUE_ACK: &str = "/v1/queues/{queue_type}/{owner}/messages/{id}/ack";
    pub(super) const QUEUE_NACK: &str = "/v1/queues/{queue_type}/{owner}/messages/{id}/nack";
    pub(super) const QUEUE_STATS: &str = "/v1/queues/{queue_type}/{owner}/stats";
    pub(super) const QUEUE_STREAM: &str = "/v1/queues/{queue_type}/{owner}/stream";
    pub(super) const QUEUE_STREAM_CREDITS: &str =
        "/v1/queues/{queue_type}/{owner}/stream/{lease}/credits";
}

/// The most path segments a route has; a longer path matches none.
const SEGMENTS_MAX: usize = 8;

/// A matched route and its path parameters (percent-decoded), in order.
#[derive(Debug)]
pub(crate) struct Matched {
    pub route: &'static Route,
    pub params: Vec<(&'static str, String)>,
}

impl Matched {
    /// Path parameter `name` (the table names every one it uses).
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("route {} has no parameter {name}", self.route.path))
    }
}

/// The route for `method` and `path`: 404 when no path matches, 405 when
/// the path is served with another method, 400 for a bad escape.
pub(crate) fn find(method: &str, path: &str) -> Result<Matched, Problem> {
    let segments: Vec<&str> = path.split('/').skip(1).take(SEGMENTS_MAX + 1).collect();
    let mut other_method = None;
    for route in ROUTES {
        let Some(params) = match_path(route.path, &segments)? else {
            continue;
        };
        if route.method == method {
            return Ok(Matched { route, params });
        }
        other_method = Some(route.method);
    }
    match other_method {
        Some(allow) => Err(Problem::method_not_allowed(method, path, allow)),
        None => Err(Problem::no_route(method, path)),
    }
}

fn match_path(
    template: &'static str,
    segments: &[&str],
) -> Result<Option<Vec<(&'static str, String)>>, Problem> {
    let parts: Vec<&'static str> = template.split('/').skip(1).collect();
    if parts.len() != segments.len() {
        return Ok(None);
    }
    let mut params = Vec::new();
    for (part, segment) in parts.iter().zip(segments) {
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => {
                if segment.is_empty() {
                    return Ok(None);
                }
                params.push((name, percent_decode(segment)?));
            }
            None if part == segment => {}
            None => return Ok(None),
        }
    }
    Ok(Some(params))
}

/// `%XX` escapes of one path segment, decoded; the result must be UTF-8.
pub(crate) fn percent_decode(segment: &str) -> Result<String, Problem> {
    let bad = || Problem::malformed(format!("bad percent-escape in path segment {segment:?}"));
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    // Bounded by the segment's length.
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_each_route_when_its_path_is_asked_then_it_is_found() {
        for route in ROUTES {
            let path = route
                .path
                .replace("{queue_type}", "requests")
                .replace("{owner}", "urn:k")
                .replace("{kind}", "urn:k")
                .replace("{id}", "0190c8d2-0000-7000-8000-000000000000")
                .replace("{lease}", "7");
            let m = find(route.method, &path).unwrap();
            assert_eq!(m.route.op, route.op, "{path}");
        }
    }

    #[test]
    fn given_an_escaped_kind_when_matched_then_decoded() {
        let m = find("POST", "/v1/kinds/urn%3Agonets%2Fx/requests").unwrap();
        assert_eq!(m.param("kind"), "urn:gonets/x");
        let e = find("POST", "/v1/kinds/bad%zz/requests").unwrap_err();
        assert_eq!(e.code(), "MALFORMED");
    }

    #[test]
    fn given_a_wrong_method_or_path_when_matched_then_405_or_404() {
        let e = find("GET", "/v1/kinds/k/requests").unwrap_err();
        assert_eq!(e.status().as_u16(), 405);
        let e = find("GET", "/v1/nothing").unwrap_err();
        assert_eq!(e.status().as_u16(), 404);
        let e = find("GET", "/v1/a/b/c/d/e/f/g/h/i/j/k").unwrap_err();
        assert_eq!(e.status().as_u16(), 404);
    }
}
