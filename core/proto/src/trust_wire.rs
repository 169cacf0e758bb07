//! The trust fields of the wire (docs/protocol.md "Signatures and
//! receipts"): a sender's signature on a request header (`signature`, in
//! base64, and `signature_key_id`), a delivered message's `digest` (hex)
//! and signature, and the hub's receipts (`receipt`, `batch_receipt`) as
//! JSON objects. Bounds are checked on decoding: bad input is a typed
//! error, never a panic.

use crate::header::{ErrorReply, MessageHeader};
use base64::Engine as _;
use gonets_types::trust::BatchReceiptEntry;
use gonets_types::{
    BatchReceipt, DataKindId, Digest, HubError, MessageId, ParticipantId, Receipt, ReceiptProof,
    SenderSignature,
};
use serde::{Deserialize, Serialize};

/// Longest signature text read, characters (base64 of
/// `SIGNATURE_BYTES_MAX` bytes, with room for padding).
const SIGNATURE_TEXT_MAX: usize = 4 * gonets_types::trust::SIGNATURE_BYTES_MAX / 3 + 4;

/// Standard base64 of `bytes`.
pub fn base64_of(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The bytes of a signature's base64 text, within its bound.
fn signature_bytes(text: &str) -> Option<Vec<u8>> {
    if text.len() > SIGNATURE_TEXT_MAX {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// A request header's signature fields as the sender's signature: both or
/// neither; base64 within bounds (`MALFORMED` otherwise).
pub(crate) fn sender_signature(
    signature: Option<&str>,
    key_id: Option<&str>,
) -> Result<Option<SenderSignature>, HubError> {
    let (text, key_id) = match (signature, key_id) {
        (None, None) => return Ok(None),
        (Some(text), Some(key_id)) => (text, key_id),
        _ => {
            return Err(HubError::Malformed(
                "signature and signature_key_id go together".into(),
            ))
        }
    };
    let bytes = signature_bytes(text).ok_or_else(|| {
        HubError::Malformed("signature is not base64 of at most 256 bytes".into())
    })?;
    let s = SenderSignature {
        key_id: key_id.to_owned(),
        bytes: bytes.into(),
    };
    s.check_bounds().map_err(HubError::Malformed)?;
    Ok(Some(s))
}

/// The wire form of a receipt (the same fields as
/// `gonets_trust::receipt_to_json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptHeader {
    /// The accepted message's id.
    pub message_id: String,
    /// For an answer: the request it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The message's digest, 64 hex digits.
    pub digest: String,
    /// Who sent it.
    pub sender: String,
    /// Its data kind.
    pub kind: String,
    /// Hub time of acceptance, ms.
    pub time_ms: u64,
    /// The shard whose log holds it.
    pub shard: u16,
    /// Its record's offset in that log.
    pub offset: u64,
    /// The hub key that signed it.
    pub key_id: String,
    /// The hub's signature, base64.
    pub signature: String,
    /// A receipt signed in a tree: its place in it (docs/adr/0023).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<ProofHeader>,
}

/// The wire form of a [`ReceiptProof`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofHeader {
    /// The receipt's leaf, from 0.
    pub index: u32,
    /// The tree's leaves.
    pub count: u32,
    /// Sibling hashes, leaf level first, 64 hex digits each.
    pub path: Vec<String>,
}

/// One accepted request of a [`BatchReceiptHeader`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEntryHeader {
    /// The request's id.
    pub id: String,
    /// Its digest, 64 hex digits.
    pub digest: String,
    /// Its record's offset.
    pub offset: u64,
}

/// The wire form of a batch receipt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchReceiptHeader {
    /// Who sent the batch.
    pub sender: String,
    /// Its data kind.
    pub kind: String,
    /// Hub time of acceptance, ms.
    pub time_ms: u64,
    /// The shard whose log holds the requests.
    pub shard: u16,
    /// The accepted requests, in the batch's order.
    pub entries: Vec<BatchEntryHeader>,
    /// The hub key that signed it.
    pub key_id: String,
    /// The hub's signature, base64.
    pub signature: String,
}

/// A receipt's wire form.
pub fn receipt_header(r: &Receipt) -> ReceiptHeader {
    ReceiptHeader {
        message_id: r.message_id.to_text(),
        reply_to: r.reply_to.map(|id| id.to_text()),
        digest: r.digest.to_hex(),
        sender: r.sender.as_str().to_owned(),
        kind: r.kind.as_str().to_owned(),
        time_ms: r.time_ms,
        shard: r.shard,
        offset: r.offset,
        key_id: r.key_id.clone(),
        signature: base64_of(&r.signature),
        proof: r.proof.as_ref().map(|p| ProofHeader {
            index: p.index,
            count: p.count,
            path: p.path.iter().map(Digest::to_hex).collect(),
        }),
    }
}

/// A receipt's proof from its wire form, its path bounded.
fn proof_of(h: &ProofHeader) -> Result<ReceiptProof, String> {
    if h.path.len() > gonets_types::trust::RECEIPT_PATH_LEN_MAX {
        return Err(bad("receipt.proof.path"));
    }
    let path = h
        .path
        .iter()
        .map(|x| Digest::from_hex(x).ok_or_else(|| bad("receipt.proof.path")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ReceiptProof {
        index: h.index,
        count: h.count,
        path,
    })
}

/// Why a trust field of a reply does not read.
fn bad(field: &str) -> String {
    format!("{field} does not read")
}

fn id(text: &str, field: &str) -> Result<MessageId, String> {
    crate::parse_id(text).map_err(|_| bad(field))
}

fn digest(text: &str) -> Result<Digest, String> {
    Digest::from_hex(text).ok_or_else(|| bad("digest"))
}

/// A receipt from its wire form.
pub fn receipt_of(h: &ReceiptHeader) -> Result<Receipt, String> {
    Ok(Receipt {
        message_id: id(&h.message_id, "receipt.message_id")?,
        reply_to: h
            .reply_to
            .as_deref()
            .map(|r| id(r, "receipt.reply_to"))
            .transpose()?,
        digest: digest(&h.digest)?,
        sender: ParticipantId::new(&h.sender),
        kind: DataKindId::new(&h.kind),
        time_ms: h.time_ms,
        shard: h.shard,
        offset: h.offset,
        key_id: h.key_id.clone(),
        signature: signature_bytes(&h.signature)
            .ok_or_else(|| bad("receipt.signature"))?
            .into(),
        proof: h.proof.as_ref().map(proof_of).transpose()?,
    })
}

/// A batch receipt's wire form.
pub fn batch_receipt_header(r: &BatchReceipt) -> BatchReceiptHeader {
    BatchReceiptHeader {
        sender: r.sender.as_str().to_owned(),
        kind: r.kind.as_str().to_owned(),
        time_ms: r.time_ms,
        shard: r.shard,
        entries: r
            .entries
            .iter()
            .map(|e| BatchEntryHeader {
                id: e.message_id.to_text(),
                digest: e.digest.to_hex(),
                offset: e.offset,
            })
            .collect(),
        key_id: r.key_id.clone(),
        signature: base64_of(&r.signature),
    }
}

/// A batch receipt from its wire form.
pub fn batch_receipt_of(h: &BatchReceiptHeader) -> Result<BatchReceipt, String> {
    let entries = h
        .entries
        .iter()
        .map(|e| {
            Ok(BatchReceiptEntry {
                message_id: id(&e.id, "batch_receipt.entries.id")?,
                digest: digest(&e.digest)?,
                offset: e.offset,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(BatchReceipt {
        sender: ParticipantId::new(&h.sender),
        kind: DataKindId::new(&h.kind),
        time_ms: h.time_ms,
        shard: h.shard,
        entries,
        key_id: h.key_id.clone(),
        signature: signature_bytes(&h.signature)
            .ok_or_else(|| bad("batch_receipt.signature"))?
            .into(),
    })
}

/// The digest, signature and receipt of a delivered message's header.
pub(crate) type Delivered = (
    Option<Digest>,
    Option<SenderSignature>,
    Option<Box<Receipt>>,
);

/// A delivered message's trust fields from its header.
pub(crate) fn delivered_of(m: &MessageHeader) -> Result<Delivered, String> {
    let digest = m.digest.as_deref().map(digest).transpose()?;
    let signature = sender_signature(m.signature.as_deref(), m.signature_key_id.as_deref())
        .map_err(|e| ErrorReply::from_hub(&e).message)?;
    let receipt = m
        .receipt
        .as_ref()
        .map(receipt_of)
        .transpose()?
        .map(Box::new);
    Ok((digest, signature, receipt))
}
