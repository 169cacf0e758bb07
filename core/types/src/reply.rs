//! What a successful operation returns: one [`Reply`] per outcome.

use crate::command::ReplyKind;
use crate::history::{QueueStats, StatusView};
use crate::message::{Accepted, Message};

/// A successful reply, payloads resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `send_request`: durable (or accepted before).
    Accepted(Accepted),
    /// A `call`'s answer.
    Message(Message),
    /// Fetched messages (empty after the wait).
    Messages(Vec<Message>),
    /// Done (`ack`, `nack`, `subscribe`, an answer sent).
    Done,
    /// A history.
    Status(StatusView),
    /// Queue counters.
    Stats(QueueStats),
}

impl Reply {
    /// Which variant this is.
    pub fn kind(&self) -> ReplyKind {
        match self {
            Reply::Accepted(_) => ReplyKind::Accepted,
            Reply::Message(_) => ReplyKind::Message,
            Reply::Messages(_) => ReplyKind::Messages,
            Reply::Done => ReplyKind::Done,
            Reply::Status(_) => ReplyKind::Status,
            Reply::Stats(_) => ReplyKind::Stats,
        }
    }
}
