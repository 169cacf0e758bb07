//! What the trust layer adds to a message, as plain data: its [`Digest`],
//! the sender's [`SenderSignature`] over it, and the hub's [`Receipt`].
//! Computing and checking them is `gonets-trust`'s job (docs/security.md);
//! this crate only names them, so every layer can carry them.

use crate::ids::{DataKindId, MessageId, ParticipantId};
use bytes::Bytes;

/// A 32-byte BLAKE3 digest (of a message's signed fields, of a payload, of
/// a batch of digests): see `gonets_trust::digest` for what each covers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex_of(&self.0)
    }

    /// Parses 64 hex digits (either case); `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Digest> {
        let bytes = bytes_of_hex(text)?;
        Some(Digest(bytes.try_into().ok()?))
    }
}

impl std::fmt::Display for Digest {
    /// 64 lowercase hex digits, written from a stack buffer (receipts and
    /// message headers write digests on every reply: no `String` each).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 64];
        for (pair, b) in text.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 15)];
        }
        f.write_str(std::str::from_utf8(&text).expect("hex digits are ASCII"))
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

/// Longest key id a signature names, bytes.
pub const KEY_ID_BYTES_MAX: usize = 64;
/// Longest signature accepted, bytes (an Ed25519 one is 64; room for other
/// schemes, e.g. GOST R 34.10-2012 with a 512-bit key: 128).
pub const SIGNATURE_BYTES_MAX: usize = 256;

/// A sender's signature over a message's digest (or over a batch's digest
/// of digests), made with one of its keys in the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderSignature {
    /// Which of the sender's registered keys made it.
    pub key_id: String,
    /// The signature's bytes, as the key's scheme defines them.
    pub bytes: Bytes,
}

impl SenderSignature {
    /// Checks the bounds of its fields ([`KEY_ID_BYTES_MAX`],
    /// [`SIGNATURE_BYTES_MAX`]): a wire decoder calls it before the hub
    /// sees the signature.
    pub fn check_bounds(&self) -> Result<(), String> {
        if self.key_id.is_empty() || self.key_id.len() > KEY_ID_BYTES_MAX {
            return Err(format!(
                "signature key id of {} bytes (1..={KEY_ID_BYTES_MAX})",
                self.key_id.len()
            ));
        }
        if self.bytes.is_empty() || self.bytes.len() > SIGNATURE_BYTES_MAX {
            return Err(format!(
                "signature of {} bytes (1..={SIGNATURE_BYTES_MAX})",
                self.bytes.len()
            ));
        }
        Ok(())
    }
}

/// The hub's signed statement that it accepted a message: what, from
/// whom, when, and where it sits in the shard's hash chain. Anyone with
/// the hub's public key can check it offline (`gonets verify-receipt`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The accepted message (a request, or an answer).
    pub message_id: MessageId,
    /// For an answer: the request it answers.
    pub reply_to: Option<MessageId>,
    /// The message's digest (its signed fields, `gonets_trust::digest`).
    pub digest: Digest,
    /// Who sent it.
    pub sender: ParticipantId,
    /// Its data kind.
    pub kind: DataKindId,
    /// Hub time of acceptance, ms since the Unix epoch.
    pub time_ms: u64,
    /// The shard whose log holds it.
    pub shard: u16,
    /// Its record's offset in that log: its place in the shard's chain.
    pub offset: u64,
    /// The hub key that signed the receipt.
    pub key_id: String,
    /// The hub's signature: over [`Receipt::signed_bytes`] when `proof` is
    /// `None`, else over the head of the tree the proof leads to.
    pub signature: Bytes,
    /// Where the receipt sits in the tree of receipts the hub signed once
    /// for one commit (docs/adr/0023); `None`: signed on its own.
    pub proof: Option<ReceiptProof>,
}

/// Longest audit path of a [`ReceiptProof`]: a tree of at most 2^16
/// receipts.
pub const RECEIPT_PATH_LEN_MAX: usize = 16;

/// A receipt's place in a tree of receipts signed once (RFC 9162's
/// inclusion proof over BLAKE3, `gonets_trust::receipt_tree`): the
/// receipt is leaf `index` of `count`, and `path` holds the sibling
/// hashes from the leaf up to the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptProof {
    /// The receipt's leaf, from 0.
    pub index: u32,
    /// The tree's leaves (at most 2^[`RECEIPT_PATH_LEN_MAX`]).
    pub count: u32,
    /// Sibling hashes, leaf level first (at most [`RECEIPT_PATH_LEN_MAX`]).
    pub path: Vec<Digest>,
}

/// Domain separation of receipts' signed bytes.
const RECEIPT_DOMAIN: &[u8] = b"gonets receipt v1\0";

impl Receipt {
    /// The exact bytes the hub signs: a domain tag, then every field but
    /// the signature, little-endian, strings length-prefixed (u32).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(RECEIPT_DOMAIN);
        out.extend_from_slice(&self.message_id.0.to_le_bytes());
        match self.reply_to {
            Some(id) => {
                out.push(1);
                out.extend_from_slice(&id.0.to_le_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.digest.0);
        put_text(&mut out, self.sender.as_str());
        put_text(&mut out, self.kind.as_str());
        out.extend_from_slice(&self.time_ms.to_le_bytes());
        out.extend_from_slice(&self.shard.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        put_text(&mut out, &self.key_id);
        out
    }
}

/// Domain separation of batch receipts' signed bytes.
const BATCH_RECEIPT_DOMAIN: &[u8] = b"gonets batch receipt v1\0";

/// One accepted request of a [`BatchReceipt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchReceiptEntry {
    /// The accepted request.
    pub message_id: MessageId,
    /// Its digest.
    pub digest: Digest,
    /// Its record's offset in the shard's log.
    pub offset: u64,
}

/// The hub's one signed statement for the requests of a `send_requests`
/// batch it accepted (docs/adr/0019): the fields they share once, then
/// each accepted request's id, digest and offset, in the batch's order.
/// Signing once keeps a batch of 512 at one signature's cost; a holder
/// proves one request's acceptance by showing the whole list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchReceipt {
    /// Who sent the batch.
    pub sender: ParticipantId,
    /// Its data kind.
    pub kind: DataKindId,
    /// Hub time of acceptance, ms since the Unix epoch.
    pub time_ms: u64,
    /// The shard whose log holds the requests.
    pub shard: u16,
    /// The accepted requests (not the refused ones, nor repeats).
    pub entries: Vec<BatchReceiptEntry>,
    /// The hub key that signed it.
    pub key_id: String,
    /// The hub's signature over [`BatchReceipt::signed_bytes`].
    pub signature: Bytes,
}

impl BatchReceipt {
    /// The exact bytes the hub signs: a domain tag, the entry count (u32)
    /// and each entry (id, digest, offset), then the common fields as
    /// [`Receipt::signed_bytes`] writes them.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.entries.len() * 56);
        out.extend_from_slice(BATCH_RECEIPT_DOMAIN);
        let count = u32::try_from(self.entries.len()).expect("a batch under 4 G messages");
        out.extend_from_slice(&count.to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.message_id.0.to_le_bytes());
            out.extend_from_slice(&e.digest.0);
            out.extend_from_slice(&e.offset.to_le_bytes());
        }
        put_text(&mut out, self.sender.as_str());
        put_text(&mut out, self.kind.as_str());
        out.extend_from_slice(&self.time_ms.to_le_bytes());
        out.extend_from_slice(&self.shard.to_le_bytes());
        put_text(&mut out, &self.key_id);
        out
    }

    /// The entry of `id`, if the batch receipt names it.
    pub fn entry(&self, id: MessageId) -> Option<&BatchReceiptEntry> {
        self.entries.iter().find(|e| e.message_id == id)
    }
}

/// The hub's receipt for an accepted request: its own, or the batch's it
/// came in (shared by every request of the batch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcceptanceReceipt {
    /// A single request's receipt.
    One(Box<Receipt>),
    /// The receipt of the batch the request was accepted in.
    Batch(std::sync::Arc<BatchReceipt>),
}

/// Appends a u32 length, then the text.
fn put_text(out: &mut Vec<u8>, text: &str) {
    let len = u32::try_from(text.len()).expect("a text under 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Lowercase hex of `bytes`.
pub fn hex_of(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// The bytes of an even-length hex text (either case); `None` otherwise.
pub fn bytes_of_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt() -> Receipt {
        Receipt {
            message_id: MessageId(7),
            reply_to: None,
            digest: Digest([3; 32]),
            sender: ParticipantId::new("MFC"),
            kind: DataKindId::new("urn:k"),
            time_ms: 5,
            shard: 1,
            offset: 4096,
            key_id: "hub-1".into(),
            signature: Bytes::from_static(&[9; 64]),
            proof: None,
        }
    }

    #[test]
    fn given_digests_when_hexed_then_they_parse_back_and_bad_text_is_refused() {
        let mixed = Digest(std::array::from_fn(|i| (i as u8).wrapping_mul(37)));
        assert_eq!(
            mixed.to_string(),
            mixed.to_hex(),
            "Display writes to_hex's text"
        );
        let d = Digest([0xab; 32]);
        assert_eq!(d.to_hex().len(), 64);
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::from_hex(&d.to_hex().to_uppercase()), Some(d));
        assert_eq!(Digest::from_hex("abc"), None);
        assert_eq!(Digest::from_hex(&"zz".repeat(32)), None);
        assert_eq!(Digest::from_hex(&"ab".repeat(31)), None);
    }

    #[test]
    fn given_receipts_when_one_field_changes_then_their_signed_bytes_differ() {
        let r = receipt();
        let base = r.signed_bytes();
        let variants = [
            Receipt {
                message_id: MessageId(8),
                ..r.clone()
            },
            Receipt {
                reply_to: Some(MessageId(7)),
                ..r.clone()
            },
            Receipt {
                digest: Digest([4; 32]),
                ..r.clone()
            },
            Receipt {
                sender: ParticipantId::new("MF"),
                ..r.clone()
            },
            Receipt {
                kind: DataKindId::new("urn:l"),
                ..r.clone()
            },
            Receipt {
                time_ms: 6,
                ..r.clone()
            },
            Receipt {
                shard: 2,
                ..r.clone()
            },
            Receipt {
                offset: 4097,
                ..r.clone()
            },
            Receipt {
                key_id: "hub-2".into(),
                ..r.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.signed_bytes(), base, "{v:?}");
        }
        let resigned = Receipt {
            signature: Bytes::new(),
            ..r.clone()
        };
        assert_eq!(resigned.signed_bytes(), base, "the signature is not signed");
    }

    #[test]
    fn given_signatures_when_bounds_checked_then_empty_and_long_fields_are_refused() {
        let ok = SenderSignature {
            key_id: "k1".into(),
            bytes: Bytes::from_static(&[1; 64]),
        };
        assert!(ok.check_bounds().is_ok());
        let no_id = SenderSignature {
            key_id: String::new(),
            ..ok.clone()
        };
        assert!(no_id.check_bounds().is_err());
        let long_id = SenderSignature {
            key_id: "k".repeat(KEY_ID_BYTES_MAX + 1),
            ..ok.clone()
        };
        assert!(long_id.check_bounds().is_err());
        let empty = SenderSignature {
            bytes: Bytes::new(),
            ..ok.clone()
        };
        assert!(empty.check_bounds().is_err());
        let long = SenderSignature {
            bytes: vec![0; SIGNATURE_BYTES_MAX + 1].into(),
            ..ok
        };
        assert!(long.check_bounds().is_err());
    }
}
