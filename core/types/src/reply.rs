//! What a successful operation returns: one [`Reply`] per outcome.

use crate::attachment::{AttachmentBytes, AttachmentRef, UploadState};
use crate::command::ReplyKind;
use crate::error::HubError;
use crate::history::{QueueStats, StatusView};
use crate::ids::MessageId;
use crate::message::{Accepted, Message};

/// A `send_requests` reply: one result per request, in the batch's order.
pub type AcceptedMany = Vec<Result<Accepted, HubError>>;

/// An `ack_many` (or `nack_many`) reply: the ids that were not acked (or
/// nacked) and why (not leased to the reader, unknown), in the batch's
/// order; empty when every one held.
pub type AckedMany = Vec<(MessageId, HubError)>;

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
    /// `send_requests`: one result per request, in order.
    AcceptedMany(AcceptedMany),
    /// `ack_many` and `nack_many`: the ids not acked (nacked), with why
    /// (empty: all done).
    AckedMany(AckedMany),
    /// An upload begun, a chunk durable, or where an upload stands.
    Upload(UploadState),
    /// An upload finished: the reference a request carries.
    Attachment(AttachmentRef),
    /// A piece of an attachment.
    AttachmentBytes(AttachmentBytes),
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
            Reply::AcceptedMany(_) => ReplyKind::AcceptedMany,
            Reply::AckedMany(_) => ReplyKind::AckedMany,
            Reply::Upload(_) => ReplyKind::Upload,
            Reply::Attachment(_) => ReplyKind::Attachment,
            Reply::AttachmentBytes(_) => ReplyKind::AttachmentBytes,
        }
    }
}

/// The content of one [`Reply`] variant: the one pairing of a typed result
/// with its variant and its [`ReplyKind`]. The engine's and the clients'
/// typed methods (`send_request` returns an [`Accepted`], ...) build on it.
pub trait ReplyContent: Sized {
    /// The kind of the variant that holds it.
    const KIND: ReplyKind;
    /// The reply holding `self`.
    fn into_reply(self) -> Reply;
    /// The content of `reply`; the kind it is when it is another variant.
    fn from_reply(reply: Reply) -> Result<Self, ReplyKind>;
}

/// `ReplyContent` of the variant `$variant`, which holds a `$t`.
macro_rules! reply_content {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl ReplyContent for $t {
            const KIND: ReplyKind = ReplyKind::$variant;
            fn into_reply(self) -> Reply {
                Reply::$variant(self)
            }
            fn from_reply(reply: Reply) -> Result<Self, ReplyKind> {
                match reply {
                    Reply::$variant(content) => Ok(content),
                    other => Err(other.kind()),
                }
            }
        })*
    };
}

reply_content! {
    Accepted => Accepted,
    Message => Message,
    Vec<Message> => Messages,
    StatusView => Status,
    QueueStats => Stats,
    AcceptedMany => AcceptedMany,
    AckedMany => AckedMany,
    UploadState => Upload,
    AttachmentRef => Attachment,
    AttachmentBytes => AttachmentBytes,
}

impl ReplyContent for () {
    const KIND: ReplyKind = ReplyKind::Done;
    fn into_reply(self) -> Reply {
        Reply::Done
    }
    fn from_reply(reply: Reply) -> Result<(), ReplyKind> {
        match reply {
            Reply::Done => Ok(()),
            other => Err(other.kind()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MessageId;

    #[test]
    fn given_each_content_when_put_in_its_reply_then_its_kind_matches_and_it_comes_back() {
        fn round_trip<T: ReplyContent + PartialEq + std::fmt::Debug + Clone>(t: T) {
            let reply = t.clone().into_reply();
            assert_eq!(reply.kind(), T::KIND);
            assert_eq!(T::from_reply(reply), Ok(t));
        }
        let accepted = Accepted {
            id: MessageId(7),
            time_ms: 1,
            duplicate: false,
            receipt: None,
        };
        round_trip(accepted);
        round_trip(Vec::<Message>::new());
        round_trip(());
        round_trip(QueueStats {
            depth: 1,
            in_flight: 0,
            oldest_age_ms: 5,
        });
        assert_eq!(
            <()>::from_reply(Reply::Messages(vec![])),
            Err(ReplyKind::Messages)
        );
    }
}
