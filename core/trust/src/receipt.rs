//! Hub-signed receipts: made when a message is accepted, checked offline
//! against the hub's public key. Text form: one JSON object.

use crate::hub_key::{HubKey, HubPublicKey};
use crate::receipt_tree;
use crate::scheme::{base64_of, bytes_of_base64};
use gonets_types::{
    BatchReceipt, DataKindId, Digest, MessageId, ParticipantId, Receipt, ReceiptProof,
};

/// Why a receipt does not check out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Signed by another hub key than the one given.
    #[error("the receipt names hub key {receipt_key}, not {given_key}")]
    OtherKey {
        /// The receipt's key id.
        receipt_key: String,
        /// The key given to check it.
        given_key: String,
    },
    /// The signature does not verify: the receipt was changed or forged.
    #[error("the hub's signature does not match the receipt")]
    BadSignature,
    /// Not a receipt's JSON.
    #[error("not a receipt: {0}")]
    Malformed(String),
}

/// Signs `receipt` (its `key_id` and `signature` are set).
pub fn sign_receipt(key: &HubKey, receipt: &mut Receipt) {
    receipt.key_id = key.key_id().to_owned();
    receipt.signature = key.sign(&receipt.signed_bytes()).into();
}

/// Checks `receipt` against the hub's public key: signed alone, or one
/// leaf of a tree whose head the hub signed (docs/adr/0023).
pub fn verify_receipt(receipt: &Receipt, key: &HubPublicKey) -> Result<(), ReceiptError> {
    let signed = match &receipt.proof {
        None => receipt.signed_bytes(),
        Some(proof) => {
            let root = receipt_tree::root_of(receipt, proof).ok_or(ReceiptError::BadSignature)?;
            receipt_tree::head_bytes(proof.count, &root, &receipt.key_id)
        }
    };
    verify_signed(&receipt.key_id, &signed, &receipt.signature, key)
}

/// The one check of both receipt forms: signed by `key`, over `signed`.
fn verify_signed(
    key_id: &str,
    signed: &[u8],
    signature: &[u8],
    key: &HubPublicKey,
) -> Result<(), ReceiptError> {
    if key_id != key.key_id {
        return Err(ReceiptError::OtherKey {
            receipt_key: key_id.to_owned(),
            given_key: key.key_id.clone(),
        });
    }
    if key.verifier.verify(signed, signature) {
        Ok(())
    } else {
        Err(ReceiptError::BadSignature)
    }
}

/// Signs a batch receipt once for all its entries (its `key_id` and
/// `signature` are set).
pub fn sign_batch_receipt(key: &HubKey, receipt: &mut BatchReceipt) {
    receipt.key_id = key.key_id().to_owned();
    receipt.signature = key.sign(&receipt.signed_bytes()).into();
}

/// Checks a batch receipt against the hub's public key.
pub fn verify_batch_receipt(
    receipt: &BatchReceipt,
    key: &HubPublicKey,
) -> Result<(), ReceiptError> {
    verify_signed(
        &receipt.key_id,
        &receipt.signed_bytes(),
        &receipt.signature,
        key,
    )
}

/// The receipt as one JSON object (ids as UUIDs, digest in hex, signature
/// in base64; a tree receipt's `proof` as its index, count and path of hex
/// hashes).
pub fn receipt_to_json(r: &Receipt) -> String {
    let mut v = serde_json::json!({
        "message_id": r.message_id.to_string(),
        "reply_to": r.reply_to.map(|id| id.to_string()),
        "digest": r.digest.to_hex(),
        "sender": r.sender.as_str(),
        "kind": r.kind.as_str(),
        "time_ms": r.time_ms,
        "shard": r.shard,
        "offset": r.offset,
        "key_id": r.key_id,
        "signature": base64_of(&r.signature),
    });
    if let Some(p) = &r.proof {
        let path: Vec<String> = p.path.iter().map(Digest::to_hex).collect();
        v["proof"] = serde_json::json!({ "index": p.index, "count": p.count, "path": path });
    }
    v.to_string()
}

/// A tree receipt's proof from its JSON (`None`, `null` or absent: none).
fn proof_from_json(v: Option<&serde_json::Value>) -> Result<Option<ReceiptProof>, ReceiptError> {
    let bad = |what: &str| ReceiptError::Malformed(format!("proof.{what}"));
    let v = match v {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let number = |name: &str| {
        v.get(name)
            .and_then(|x| x.as_u64())
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| bad(name))
    };
    let path = v
        .get("path")
        .and_then(|x| x.as_array())
        .ok_or_else(|| bad("path"))?;
    if path.len() > gonets_types::trust::RECEIPT_PATH_LEN_MAX {
        return Err(bad("path"));
    }
    let path = path
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(Digest::from_hex)
                .ok_or_else(|| bad("path"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(ReceiptProof {
        index: number("index")?,
        count: number("count")?,
        path,
    }))
}

/// Reads [`receipt_to_json`]'s text.
pub fn receipt_from_json(text: &str) -> Result<Receipt, ReceiptError> {
    let bad = |what: &str| ReceiptError::Malformed(what.to_owned());
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
    let s = |name: &str| {
        v.get(name)
            .and_then(|x| x.as_str())
            .ok_or_else(|| bad(name))
    };
    let u = |name: &str| {
        v.get(name)
            .and_then(|x| x.as_u64())
            .ok_or_else(|| bad(name))
    };
    let id = |text: &str, name: &str| text.parse::<MessageId>().map_err(|_| bad(name));
    let reply_to = match v.get("reply_to") {
        None | Some(serde_json::Value::Null) => None,
        Some(x) => Some(id(x.as_str().ok_or_else(|| bad("reply_to"))?, "reply_to")?),
    };
    Ok(Receipt {
        message_id: id(s("message_id")?, "message_id")?,
        reply_to,
        digest: Digest::from_hex(s("digest")?).ok_or_else(|| bad("digest"))?,
        sender: ParticipantId::new(s("sender")?),
        kind: DataKindId::new(s("kind")?),
        time_ms: u("time_ms")?,
        shard: u16::try_from(u("shard")?).map_err(|_| bad("shard"))?,
        offset: u("offset")?,
        key_id: s("key_id")?.to_owned(),
        signature: bytes_of_base64(s("signature")?)
            .ok_or_else(|| bad("signature"))?
            .into(),
        proof: proof_from_json(v.get("proof"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt() -> Receipt {
        Receipt {
            message_id: MessageId::new(1_700_000_000_000, 2, 9),
            reply_to: Some(MessageId::new(1_700_000_000_000, 2, 8)),
            digest: Digest([7; 32]),
            sender: ParticipantId::new("FNS"),
            kind: DataKindId::new("urn:k"),
            time_ms: 1_700_000_000_001,
            shard: 2,
            offset: 77,
            key_id: String::new(),
            signature: bytes::Bytes::new(),
            proof: None,
        }
    }

    #[test]
    fn given_a_signed_receipt_when_verified_then_it_holds_and_any_changed_byte_breaks_it() {
        let key = HubKey::generate();
        let mut r = receipt();
        sign_receipt(&key, &mut r);
        assert_eq!(verify_receipt(&r, &key.public()), Ok(()));
        let text = receipt_to_json(&r);
        let back = receipt_from_json(&text).unwrap();
        assert_eq!(back, r);
        assert_eq!(verify_receipt(&back, &key.public()), Ok(()));
        let mut changed = r.clone();
        changed.offset += 1;
        assert_eq!(
            verify_receipt(&changed, &key.public()),
            Err(ReceiptError::BadSignature)
        );
        let mut sig = r.signature.to_vec();
        sig[0] ^= 1;
        let forged = Receipt {
            signature: sig.into(),
            ..r.clone()
        };
        assert_eq!(
            verify_receipt(&forged, &key.public()),
            Err(ReceiptError::BadSignature)
        );
        let other = HubKey::generate();
        assert!(matches!(
            verify_receipt(&r, &other.public()),
            Err(ReceiptError::OtherKey { .. })
        ));
    }

    #[test]
    fn given_a_signed_batch_receipt_when_verified_then_it_holds_and_a_changed_entry_breaks_it() {
        use gonets_types::trust::BatchReceiptEntry;
        let key = HubKey::generate();
        let entry = |n: u64| BatchReceiptEntry {
            message_id: MessageId::new(1_700_000_000_000, 2, n),
            digest: Digest([n as u8; 32]),
            offset: 10 + n,
        };
        let mut r = BatchReceipt {
            sender: ParticipantId::new("MFC"),
            kind: DataKindId::new("urn:k"),
            time_ms: 5,
            shard: 2,
            entries: vec![entry(1), entry(2)],
            key_id: String::new(),
            signature: bytes::Bytes::new(),
        };
        sign_batch_receipt(&key, &mut r);
        assert_eq!(verify_batch_receipt(&r, &key.public()), Ok(()));
        let mut changed = r.clone();
        changed.entries[1].digest.0[0] ^= 1;
        assert_eq!(
            verify_batch_receipt(&changed, &key.public()),
            Err(ReceiptError::BadSignature)
        );
        let mut dropped = r.clone();
        dropped.entries.pop();
        assert_eq!(
            verify_batch_receipt(&dropped, &key.public()),
            Err(ReceiptError::BadSignature)
        );
        assert!(r.entry(entry(2).message_id).is_some());
    }

    #[test]
    fn given_a_tree_receipt_when_written_as_json_and_read_back_then_it_still_verifies() {
        let key = HubKey::generate();
        let mut rs = [receipt(), receipt(), receipt()];
        rs[1].offset += 1;
        rs[2].offset += 2;
        let mut refs: Vec<&mut Receipt> = rs.iter_mut().collect();
        crate::receipt_tree::sign_receipts(&key, &mut refs);
        let back = receipt_from_json(&receipt_to_json(&rs[2])).unwrap();
        assert_eq!(back, rs[2]);
        assert!(back.proof.is_some());
        assert_eq!(verify_receipt(&back, &key.public()), Ok(()));
        let text = receipt_to_json(&rs[2]).replace("\"count\":3", "\"count\":-3");
        assert_eq!(
            receipt_from_json(&text),
            Err(ReceiptError::Malformed("proof.count".into()))
        );
    }

    #[test]
    fn given_bad_json_when_read_then_a_typed_error_names_the_field() {
        assert!(matches!(
            receipt_from_json("{"),
            Err(ReceiptError::Malformed(_))
        ));
        let key = HubKey::generate();
        let mut r = receipt();
        sign_receipt(&key, &mut r);
        let text = receipt_to_json(&r).replace(&r.digest.to_hex(), "00");
        assert_eq!(
            receipt_from_json(&text),
            Err(ReceiptError::Malformed("digest".into()))
        );
    }
}
