//! Frame opcodes: one per operation of DESIGN.md §2, its reply (the
//! request's opcode with the high bit set), pushes and errors.

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// Client: version negotiation and (plain-TCP development mode) authentication.
    Hello,
    /// Client: `send_request`.
    SendRequest,
    /// Client: `call`, the realtime path.
    Call,
    /// Client: long-poll `fetch`.
    Fetch,
    /// Client: `subscribe` (push delivery with credits).
    Subscribe,
    /// Client: more credits for a subscription.
    AddCredits,
    /// Client: end a subscription (its unacked messages go back).
    Unsubscribe,
    /// Client: `ack`.
    Ack,
    /// Client: `nack(delay)`.
    Nack,
    /// Client: `send_response`.
    SendResponse,
    /// Client: `send_refusal`.
    SendRefusal,
    /// Client: `status(id)`.
    Status,
    /// Client: `queue_stats`.
    QueueStats,
    /// Client: liveness check.
    Ping,
    /// Client: `send_requests`, many requests of one data kind.
    SendRequests,
    /// Client: `ack_many`, many acks of one requests queue.
    AckMany,
    /// Client: `nack_many`, many nacks of one queue.
    NackMany,
    /// Client: starts a chunked attachment upload.
    UploadBegin,
    /// Client: one chunk of an upload (the body).
    UploadChunk,
    /// Client: where an upload stands.
    UploadStatus,
    /// Client: the digest check, and the attachment's reference.
    UploadFinish,
    /// Client: a piece of an attachment (the reply's body).
    ReadAttachment,
    /// Server: the reply to the request with the same low 7 bits.
    Reply(u8),
    /// Server: a message pushed to a subscription (correlation id = the subscribe's).
    Push,
    /// Server: the request with this correlation id failed (or, with id 0, the connection).
    Error,
}

const REQUESTS: [(Opcode, u8); 22] = [
    (Opcode::Hello, 0x01),
    (Opcode::SendRequest, 0x02),
    (Opcode::Call, 0x03),
    (Opcode::Fetch, 0x04),
    (Opcode::Subscribe, 0x05),
    (Opcode::AddCredits, 0x06),
    (Opcode::Unsubscribe, 0x07),
    (Opcode::Ack, 0x08),
    (Opcode::Nack, 0x09),
    (Opcode::SendResponse, 0x0A),
    (Opcode::SendRefusal, 0x0B),
    (Opcode::Status, 0x0C),
    (Opcode::QueueStats, 0x0D),
    (Opcode::Ping, 0x0E),
    (Opcode::SendRequests, 0x0F),
    (Opcode::AckMany, 0x10),
    (Opcode::NackMany, 0x11),
    (Opcode::UploadBegin, 0x12),
    (Opcode::UploadChunk, 0x13),
    (Opcode::UploadStatus, 0x14),
    (Opcode::UploadFinish, 0x15),
    (Opcode::ReadAttachment, 0x16),
];

/// The push opcode's wire number.
const PUSH: u8 = 0xC0;
/// The error opcode's wire number.
const ERROR: u8 = 0xFF;
/// The bit that marks a reply.
const REPLY_BIT: u8 = 0x80;

impl Opcode {
    /// The wire number.
    pub fn to_u8(self) -> u8 {
        match self {
            Opcode::Reply(request) => request | REPLY_BIT,
            Opcode::Push => PUSH,
            Opcode::Error => ERROR,
            op => REQUESTS
                .iter()
                .find(|(o, _)| *o == op)
                .map(|(_, n)| *n)
                .expect("every request opcode has a number"),
        }
    }

    /// The opcode of a wire number, if version 1 has it.
    pub fn from_u8(n: u8) -> Option<Opcode> {
        match n {
            PUSH => Some(Opcode::Push),
            ERROR => Some(Opcode::Error),
            n if n & REPLY_BIT != 0 => {
                let request = n & !REPLY_BIT;
                REQUESTS
                    .iter()
                    .any(|(_, r)| *r == request)
                    .then_some(Opcode::Reply(request))
            }
            n => REQUESTS.iter().find(|(_, r)| *r == n).map(|(o, _)| *o),
        }
    }

    /// The reply opcode to this request opcode.
    pub fn reply(self) -> Opcode {
        assert!(self.is_request(), "only requests have replies");
        Opcode::Reply(self.to_u8())
    }

    /// True for the opcodes a client sends.
    pub fn is_request(self) -> bool {
        !matches!(self, Opcode::Reply(_) | Opcode::Push | Opcode::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_every_wire_number_when_decoded_then_it_encodes_back() {
        for n in 0..=u8::MAX {
            if let Some(op) = Opcode::from_u8(n) {
                assert_eq!(op.to_u8(), n);
            }
        }
        for (op, _) in REQUESTS {
            assert_eq!(Opcode::from_u8(op.reply().to_u8()), Some(op.reply()));
        }
        assert_eq!(Opcode::from_u8(0x00), None);
        assert_eq!(Opcode::from_u8(0x80), None);
    }
}
