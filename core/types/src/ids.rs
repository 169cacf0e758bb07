//! Identifiers: participants, data kinds, queues, message ids and the shard a
//! queue or message belongs to.

use std::fmt;
use std::sync::Arc;

/// A participant's mnemonic id, e.g. `FNS`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub Arc<str>);

impl ParticipantId {
    /// Makes an id from its text.
    pub fn new(s: &str) -> Self {
        ParticipantId(Arc::from(s))
    }
    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A data kind's URN, e.g. `urn:gonets:fns:egrul-extract:1`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataKindId(pub Arc<str>);

impl DataKindId {
    /// Makes an id from its text.
    pub fn new(s: &str) -> Self {
        DataKindId(Arc::from(s))
    }
    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DataKindId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A durable FIFO: a provider's requests of one data kind, or a consumer's answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueId {
    /// Requests of one data kind, read by its provider.
    Requests(DataKindId),
    /// Responses and refusals for one consumer, read by it.
    Answers(ParticipantId),
}

impl QueueId {
    /// The shard that owns this queue among `shard_count`: a stable hash of
    /// its name, the same in every build and on every machine.
    pub fn shard(&self, shard_count: u16) -> u16 {
        assert!(shard_count > 0);
        let (tag, name) = match self {
            QueueId::Requests(k) => (b'R', k.as_str()),
            QueueId::Answers(p) => (b'A', p.as_str()),
        };
        let mut h = crc32c::crc32c(&[tag]);
        h = crc32c::crc32c_append(h, name.as_bytes());
        (h % u32::from(shard_count)) as u16
    }
}

impl QueueId {
    /// The queue's wire name (`requests/<kind>`, `answers/<participant>`, as
    /// `Display` writes it) in one allocation of its exact size.
    pub fn to_text(&self) -> String {
        let (prefix, name) = match self {
            QueueId::Requests(k) => ("requests/", k.as_str()),
            QueueId::Answers(p) => ("answers/", p.as_str()),
        };
        let mut text = String::with_capacity(prefix.len() + name.len());
        text.push_str(prefix);
        text.push_str(name);
        text
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueId::Requests(k) => write!(f, "requests/{k}"),
            QueueId::Answers(p) => write!(f, "answers/{p}"),
        }
    }
}

/// A message id: a UUIDv7 whose 12 `rand_a` bits name the shard that owns
/// the message, so any shard can route an operation on it without a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u128);

impl MessageId {
    /// Largest shard number an id can carry.
    pub const SHARD_MAX: u16 = 0x0fff;

    /// Builds a v7 id from a time, the owning shard and 62 bits of sequence.
    pub fn new(unix_ms: u64, shard: u16, sequence: u64) -> Self {
        assert!(shard <= Self::SHARD_MAX);
        let ms = u128::from(unix_ms & 0xffff_ffff_ffff);
        let v = (ms << 80)
            | (0x7u128 << 76)
            | (u128::from(shard) << 64)
            | (0b10u128 << 62)
            | u128::from(sequence & 0x3fff_ffff_ffff_ffff);
        MessageId(v)
    }

    /// The shard that owns the message.
    pub fn shard(self) -> u16 {
        ((self.0 >> 64) & 0x0fff) as u16
    }

    /// The millisecond timestamp in the id.
    pub fn unix_ms(self) -> u64 {
        (self.0 >> 80) as u64
    }

    /// The id as a UUID.
    pub fn uuid(self) -> uuid::Uuid {
        uuid::Uuid::from_u128(self.0)
    }

    /// The id's text, as `Display` writes it (the UUID's hyphenated
    /// lower-case form), made in one allocation of its exact size: the wire
    /// carries one or two per message, and the formatting machinery's
    /// growing writes cost more than the encoding.
    pub fn to_text(self) -> String {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        self.uuid().hyphenated().encode_lower(&mut buf).to_owned()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        f.write_str(self.uuid().hyphenated().encode_lower(&mut buf))
    }
}

impl std::str::FromStr for MessageId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(MessageId(uuid::Uuid::parse_str(s)?.as_u128()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_ids_and_queues_when_to_text_then_as_display_writes_them() {
        for id in [
            MessageId::new(1_700_000_000_123, 37, 99),
            MessageId(0),
            MessageId(u128::MAX),
        ] {
            assert_eq!(id.to_text(), id.to_string());
            assert_eq!(id.to_text(), id.uuid().to_string());
        }
        for q in [
            QueueId::Requests(DataKindId::new("urn:kind")),
            QueueId::Answers(ParticipantId::new("MVD")),
        ] {
            assert_eq!(q.to_text(), q.to_string());
        }
        assert_eq!(
            QueueId::Answers(ParticipantId::new("MVD")).to_text(),
            "answers/MVD"
        );
    }

    #[test]
    fn given_id_when_built_then_version_7_and_shard_round_trips() {
        let id = MessageId::new(1_700_000_000_123, 37, 99);
        assert_eq!(id.uuid().get_version_num(), 7);
        assert_eq!(id.shard(), 37);
        assert_eq!(id.unix_ms(), 1_700_000_000_123);
        let parsed: MessageId = id.to_string().parse().unwrap();
        assert_eq!(parsed, id);
    }

    #[test]
    fn given_queue_when_hashed_then_stable_and_in_range() {
        let q = QueueId::Requests(DataKindId::new("urn:gonets:fns:egrul-extract:1"));
        let a = q.shard(7);
        assert!(a < 7);
        assert_eq!(a, q.shard(7));
        assert_eq!(q.shard(1), 0);
    }
}
