//! The wire mapping of replies, in one place: an operation's result, a
//! `Result<Reply, HubError>`, encodes into its reply frame (the request's
//! opcode with the reply bit, and the reply's header and payloads) or into
//! an `Error` frame.

use crate::header::{self as h, ErrorReply};
use crate::{encode, message_header, status_reply, Opcode};
use gonets_types::{HubError, Message, Reply};

/// Appends the frame answering request `correlation_id` of opcode
/// `request` with `result`.
pub fn encode_reply(
    out: &mut Vec<u8>,
    request: Opcode,
    correlation_id: u64,
    result: &Result<Reply, HubError>,
) {
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => return encode_error(out, correlation_id, &ErrorReply::from_hub(e)),
    };
    let op = request.reply();
    match reply {
        Reply::Accepted(a) => {
            let header = h::Accepted {
                id: a.id.to_string(),
                time_ms: a.time_ms,
                duplicate: a.duplicate,
            };
            encode(out, op, correlation_id, &header, &[]);
        }
        Reply::Message(m) => encode_messages(out, op, correlation_id, std::slice::from_ref(m)),
        Reply::Messages(ms) => encode_messages(out, op, correlation_id, ms),
        Reply::Done => encode(out, op, correlation_id, &h::Empty {}, &[]),
        Reply::Status(s) => encode(out, op, correlation_id, &status_reply(s), &[]),
        Reply::Stats(s) => {
            let header = h::QueueStatsReply {
                depth: s.depth,
                in_flight: s.in_flight,
                oldest_age_ms: s.oldest_age_ms,
            };
            encode(out, op, correlation_id, &header, &[]);
        }
    }
}

/// Appends an `Error` frame for request `correlation_id` (0: the connection).
pub fn encode_error(out: &mut Vec<u8>, correlation_id: u64, e: &ErrorReply) {
    encode(out, Opcode::Error, correlation_id, e, &[]);
}

/// Appends a `Push` frame: `m`, pushed to subscription `subscription` (the
/// subscribe's correlation id).
pub fn encode_push(out: &mut Vec<u8>, subscription: u64, m: &Message) {
    encode(
        out,
        Opcode::Push,
        subscription,
        &message_header(m),
        &[&m.payload],
    );
}

/// Messages as a reply (`Fetch`, `Call`): their headers, and their payloads
/// back to back in the body, in order.
fn encode_messages(out: &mut Vec<u8>, op: Opcode, correlation_id: u64, messages: &[Message]) {
    let headers = h::Messages {
        messages: messages.iter().map(message_header).collect(),
    };
    let bodies: Vec<&[u8]> = messages.iter().map(|m| &m.payload[..]).collect();
    encode(out, op, correlation_id, &headers, &bodies);
}
