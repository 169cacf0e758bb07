//! Each operation: from the HTTP request (path parameters, headers, query,
//! body) to one `Command`, run on the caller's session, and its reply to
//! JSON. The same `Command`s as the native protocol's, so every rule and
//! every typed error is the shards' own.

use crate::body::{json_response, Body};
use crate::problem::Problem;
use crate::request::{self, Query};
use crate::routes::{Matched, Op};
use crate::settings::{FETCH_MAX_DEFAULT, FETCH_WAIT_MS_MAX};
use crate::stream::{Streams, LEASE_MAX, STREAM_CREDITS_MAX};
use crate::views;
use bytes::Bytes;
use gonets_engine::Session;
use gonets_types::HubError;
use gonets_types::{
    Command, DataKindId, MessageId, NewRequest, ParticipantId, QueueId, RefusalCode, Reply,
    BATCH_MESSAGES_MAX,
};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde_json::Value;
use std::sync::Arc;

/// Who calls: its participant, its session and the gateway's streams.
pub(crate) struct Caller<'a> {
    pub participant: &'a str,
    pub session: &'a Session,
    pub streams: &'a Arc<Streams>,
}

/// Runs the matched operation for the caller; `body` has been read whole
/// (bounded by the settings).
pub(crate) async fn run(
    caller: &Caller<'_>,
    matched: &Matched,
    parts: &Parts,
    body: Bytes,
) -> Result<Response<Body>, Problem> {
    let (session, streams) = (caller.session, caller.streams);
    let query = Query::parse(parts.uri.query())?;
    match matched.route.op {
        Op::ReadAttachment => return crate::attachments::read(session, matched, &query).await,
        Op::Stream => {
            return crate::stream::open(streams, caller.participant, session, matched, &query).await
        }
        Op::StreamCredits => return stream_credits(caller, matched, &query),
        _ => {}
    }
    // An ack or a nack of a message a stream pushed names the stream's
    // lease; no other operation takes one.
    let stream_lease = match matched.route.op {
        Op::Ack | Op::Nack => stream_lease(caller, &query)?,
        _ => None,
    };
    let command = command_of(session, matched, parts, &query, body, stream_lease)?;
    let command = match request::signature(&parts.headers)? {
        Some(signature) => command.signed(signature),
        None => command,
    };
    let reply = session.execute(command).await?;
    if let Some(lease) = stream_lease {
        // Settled: the stream may push one more.
        streams.give_back(caller.participant, lease, 1);
    }
    Ok(response_of(matched, reply))
}

/// The `lease` an ack or a nack names: one of the caller's open streams
/// (`NOT_FOUND` otherwise); `None` for a fetch's lease.
fn stream_lease(caller: &Caller<'_>, query: &Query) -> Result<Option<u64>, Problem> {
    let Some(lease) = query.optional_number("lease", 0, LEASE_MAX)? else {
        return Ok(None);
    };
    if !caller.streams.holds(caller.participant, lease) {
        return Err(HubError::NotFound.into());
    }
    Ok(Some(lease))
}

/// `add_credits`: credits back to one of the caller's open streams.
fn stream_credits(
    caller: &Caller<'_>,
    matched: &Matched,
    query: &Query,
) -> Result<Response<Body>, Problem> {
    queue(matched)?;
    let text = matched.param("lease");
    let lease = text
        .parse::<u64>()
        .ok()
        .filter(|l| *l <= LEASE_MAX)
        .ok_or_else(|| {
            Problem::malformed(format!(
                "lease {text:?}: expected a whole number from 0 to {LEASE_MAX}"
            ))
        })?;
    let credits = query.number("credits", 1, u64::from(STREAM_CREDITS_MAX), 1)? as u32;
    if !caller.streams.give_back(caller.participant, lease, credits) {
        return Err(HubError::NotFound.into());
    }
    let done = serde_json::json!({ "done": true });
    Ok(json_response(StatusCode::OK, &done))
}

/// The command of an operation (never `OpenApi`, served before).
fn command_of(
    session: &Session,
    matched: &Matched,
    parts: &Parts,
    query: &Query,
    body: Bytes,
    stream_lease: Option<u64>,
) -> Result<Command, Problem> {
    let headers = &parts.headers;
    let holder = stream_lease.unwrap_or_else(|| session.lease_holder());
    Ok(match matched.route.op {
        Op::SendRequest => {
            Command::SendRequest(request::new_request(matched.param("kind"), body, headers)?)
        }
        Op::Call => Command::Call(request::new_request(matched.param("kind"), body, headers)?),
        Op::SendRequests => Command::SendRequests(batch(matched.param("kind"), &body)?),
        Op::Fetch => Command::Fetch {
            queue: queue(matched)?,
            max: query.number(
                "max",
                1,
                BATCH_MESSAGES_MAX as u64,
                u64::from(FETCH_MAX_DEFAULT),
            )? as u32,
            wait_ms: query.number("wait_ms", 0, FETCH_WAIT_MS_MAX, 0)?,
            reader: session.lease_holder(),
        },
        Op::Ack => Command::Ack {
            queue: queue(matched)?,
            id: message_id(matched)?,
            reader: holder,
        },
        Op::Nack => Command::Nack {
            queue: queue(matched)?,
            id: message_id(matched)?,
            reader: holder,
            delay_ms: query.number("delay_ms", 0, request::NACK_DELAY_MS_MAX, 0)?,
        },
        Op::SendResponse => Command::SendResponse {
            request_id: message_id(matched)?,
            payload: body,
            attachments: request::attachments(headers)?,
        },
        Op::SendRefusal => refusal(message_id(matched)?, &body)?,
        Op::Status => Command::Status {
            id: message_id(matched)?,
        },
        Op::QueueStats => Command::QueueStats {
            queue: queue(matched)?,
        },
        Op::UploadBegin => crate::attachments::begin(matched.param("kind"), &body)?,
        Op::UploadChunk => crate::attachments::chunk(matched, query, headers, body)?,
        Op::UploadStatus => Command::UploadStatus {
            upload: crate::attachments::upload_id(matched)?,
        },
        Op::UploadFinish => crate::attachments::finish(matched, &body)?,
        Op::OpenApi | Op::ReadAttachment | Op::Stream | Op::StreamCredits => {
            unreachable!("the contract, attachment reads and streams are served before any command")
        }
    })
}

/// The reply as the route's response.
fn response_of(matched: &Matched, reply: Reply) -> Response<Body> {
    match reply {
        Reply::Accepted(a) => json_response(StatusCode::ACCEPTED, &views::accepted(&a)),
        Reply::AcceptedMany(r) => json_response(StatusCode::OK, &views::accepted_many(&r)),
        Reply::Message(m) => json_response(StatusCode::OK, &views::message(&m)),
        Reply::Messages(ms) => json_response(StatusCode::OK, &views::messages(&ms)),
        Reply::Status(s) => json_response(StatusCode::OK, &views::status(&s)),
        Reply::Stats(s) => {
            let name = format!("{}/{}", matched.param("queue_type"), matched.param("owner"));
            json_response(StatusCode::OK, &views::queue_stats(&name, &s))
        }
        Reply::AckedMany(left) => json_response(StatusCode::OK, &views::acked_many(&left)),
        Reply::Done => json_response(StatusCode::OK, &serde_json::json!({ "done": true })),
        Reply::Upload(u) => {
            let status = match matched.route.op {
                Op::UploadBegin => StatusCode::CREATED,
                _ => StatusCode::OK,
            };
            json_response(status, &views::upload(&u))
        }
        Reply::Attachment(a) => json_response(StatusCode::OK, &views::attachment(&a)),
        Reply::AttachmentBytes(b) => {
            crate::body::with_type(StatusCode::OK, b.bytes, "application/octet-stream")
        }
    }
}

/// The queue the path names: `requests/<kind>` or `answers/<participant>`.
pub(crate) fn queue(matched: &Matched) -> Result<QueueId, Problem> {
    let owner = matched.param("owner");
    match matched.param("queue_type") {
        "requests" => Ok(QueueId::Requests(DataKindId::new(owner))),
        "answers" => Ok(QueueId::Answers(ParticipantId::new(owner))),
        other => Err(Problem::malformed(format!(
            "queue type {other:?}: expected \"requests\" or \"answers\""
        ))),
    }
}

fn message_id(matched: &Matched) -> Result<MessageId, Problem> {
    let text = matched.param("id");
    text.parse::<MessageId>()
        .map_err(|_| Problem::malformed(format!("message id {text:?}: expected a UUID")))
}

/// `send_requests`' body: `{"requests": [{"payload_base64": ..., ...}]}`.
fn batch(kind: &str, body: &[u8]) -> Result<Vec<NewRequest>, Problem> {
    let value = request::json_body(body)?;
    let list = value
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| Problem::malformed("the body needs \"requests\": an array"))?;
    if list.is_empty() || list.len() > BATCH_MESSAGES_MAX {
        return Err(Problem::malformed(format!(
            "\"requests\" holds {} requests: 1 to {BATCH_MESSAGES_MAX} are taken",
            list.len()
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, item)| request::batch_item(kind, i, item))
        .collect()
}

/// `send_refusal`'s body: `{"code": "NO_DATA", "reason": "..."}`.
fn refusal(request_id: MessageId, body: &[u8]) -> Result<Command, Problem> {
    let value = request::json_body(body)?;
    let code_text = value
        .get("code")
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::malformed("the body needs \"code\": a refusal code"))?;
    let code = RefusalCode::ALL
        .into_iter()
        .find(|c| c.as_str() == code_text)
        .ok_or_else(|| Problem::malformed(format!("refusal code {code_text:?} is not one")))?;
    let reason = value
        .get("reason")
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::malformed("the body needs \"reason\": text"))?;
    Ok(Command::SendRefusal {
        request_id,
        code,
        reason: reason.to_owned(),
    })
}
