//! Sender signatures and hub receipts at the shard (docs/adr/0019): which
//! signature a command carries, the one check of it against the sender's
//! registered keys and its kind's rule, and the receipts the hub signs
//! when it has a key. Digests are `gonets_trust::digest`'s.
//!
//! Signing costs one Ed25519 signature on the shard's thread per accepted
//! request, answer or batch (tens of µs in release); a hub without a key
//! (`HubConfig::hub_key` `None`) makes none and pays nothing.

use super::{Command, HubError, MessageId, ParticipantId, Shard, ShardReply, Token};
use crate::record::Seal;
use crate::registry::{DataKind, Signatures};
use gonets_trust::SignatureError;
use gonets_types::trust::BatchReceiptEntry;
use gonets_types::{
    AcceptanceReceipt, BatchReceipt, DataKindId, Digest, NotSignable, Receipt, SenderSignature,
};
use std::sync::Arc;

/// The signature a request comes with at the door.
#[derive(Clone, Copy, Debug)]
pub(super) enum Signing<'a> {
    /// A message of its own and its signature, if any.
    Own(Option<&'a SenderSignature>),
    /// A message of a `send_requests` batch: its digest (computed for the
    /// batch's digest) and whether the batch's one signature, checked
    /// already, covers it.
    InBatch {
        /// The request's digest.
        digest: Digest,
        /// The batch was signed (and its signature held).
        signed: bool,
    },
}

impl Shard {
    /// The hub's receipt key from now on (`None`: no receipts are made).
    pub fn set_hub_key(&mut self, key: Option<Arc<gonets_trust::HubKey>>) {
        self.hub_key = key;
    }

    /// A signed command: the signature goes with the command it wraps.
    pub(super) fn signed(
        &mut self,
        token: Token,
        caller: &ParticipantId,
        signature: SenderSignature,
        command: Command,
    ) -> Result<Option<ShardReply>, HubError> {
        signature.check_bounds().map_err(HubError::Malformed)?;
        let signature = Some(&signature);
        match command {
            Command::SendRequest(r) => {
                self.send_request(token, caller, r, false, Signing::Own(signature))
            }
            Command::Call(r) => self.send_request(token, caller, r, true, Signing::Own(signature)),
            Command::SendRequests(rs) => self.send_requests(token, caller, rs, signature),
            Command::SendResponse {
                request_id,
                payload,
                attachments,
            } => {
                let content = super::AnswerContent::data(payload, attachments);
                self.data_answer(token, caller, request_id, content, signature)
            }
            Command::SendRefusal {
                request_id,
                code,
                reason,
            } => self.refuse(token, caller, request_id, code, reason, signature),
            _ => Err(NotSignable.into()),
        }
    }

    /// Checks `signature` by `sender` over `digest` under `kind`'s rule: a
    /// missing one is refused where the kind requires one, a present one
    /// is always checked against the sender's keys at hub time.
    pub(super) fn check_signature(
        &self,
        sender: &ParticipantId,
        kind: &DataKind,
        signature: Option<&SenderSignature>,
        digest: &Digest,
    ) -> Result<(), HubError> {
        match signature {
            None if kind.signatures == Signatures::Required => Err(SignatureError::Missing.into()),
            None => Ok(()),
            Some(s) => self.check_by_keys(sender, s, digest),
        }
    }

    /// `signature` over `digest` checked against `sender`'s registered keys.
    pub(super) fn check_by_keys(
        &self,
        sender: &ParticipantId,
        signature: &SenderSignature,
        digest: &Digest,
    ) -> Result<(), HubError> {
        let participant = self.registry.participant(sender).expect("authenticated");
        Ok(participant
            .keys
            .check(sender.as_str(), signature, digest, self.now_ms)?)
    }

    /// The hub's receipt for request `id`, accepted now at `offset`, when
    /// the hub has a key.
    pub(super) fn request_receipt(
        &self,
        id: MessageId,
        seal: &Seal,
        sender: &ParticipantId,
        kind: &DataKindId,
        offset: u64,
    ) -> Option<Box<Receipt>> {
        let key = self.hub_key.as_ref()?;
        let mut receipt = Receipt {
            message_id: id,
            reply_to: None,
            digest: seal.digest,
            sender: sender.clone(),
            kind: kind.clone(),
            time_ms: self.now_ms,
            shard: self.config.shard,
            offset,
            key_id: String::new(),
            signature: bytes::Bytes::new(),
        };
        gonets_trust::sign_receipt(key, &mut receipt);
        Some(Box::new(receipt))
    }

    /// The hub's signature of the receipt of answer `answer_id` (to
    /// `request_id`, by `provider`, with `digest`) to be stored at
    /// `offset`, when the hub has a key: kept in the answer's record, so
    /// every delivery of the answer, after a restart too, carries the
    /// same receipt ([`answer_receipt`]).
    pub(super) fn answer_receipt_signature(
        &self,
        answer_id: MessageId,
        request_id: MessageId,
        provider: &ParticipantId,
        kind: &DataKindId,
        digest: Digest,
        offset: u64,
    ) -> Option<SenderSignature> {
        let key = self.hub_key.as_ref()?;
        let mut receipt = Receipt {
            message_id: answer_id,
            reply_to: Some(request_id),
            digest,
            sender: provider.clone(),
            kind: kind.clone(),
            time_ms: self.now_ms,
            shard: self.config.shard,
            offset,
            key_id: String::new(),
            signature: bytes::Bytes::new(),
        };
        gonets_trust::sign_receipt(key, &mut receipt);
        Some(SenderSignature {
            key_id: receipt.key_id,
            bytes: receipt.signature,
        })
    }

    /// One receipt for the accepted requests of a batch (signed once),
    /// set on each of their acceptances; repeats and refusals get none.
    pub(super) fn batch_receipt(
        &self,
        caller: &ParticipantId,
        kind: &DataKindId,
        results: &mut [Result<gonets_types::Accepted, HubError>],
        entries: Vec<BatchReceiptEntry>,
    ) {
        let Some(key) = self.hub_key.as_ref() else {
            return;
        };
        if entries.is_empty() {
            return;
        }
        let mut receipt = BatchReceipt {
            sender: caller.clone(),
            kind: kind.clone(),
            time_ms: self.now_ms,
            shard: self.config.shard,
            entries,
            key_id: String::new(),
            signature: bytes::Bytes::new(),
        };
        gonets_trust::sign_batch_receipt(key, &mut receipt);
        let receipt = Arc::new(receipt);
        for a in results.iter_mut().flatten().filter(|a| !a.duplicate) {
            a.receipt = Some(AcceptanceReceipt::Batch(Arc::clone(&receipt)));
        }
    }
}

/// The receipt of an answer from its record's seal (`None` when the hub
/// signed none): answer `answer_id` to `request_id` by `provider`, of
/// `kind`, at hub time `time_ms`, its record at `offset` of the shard
/// that made it (the answer id's).
pub(crate) fn answer_receipt(
    seal: &Seal,
    answer_id: MessageId,
    request_id: MessageId,
    provider: &ParticipantId,
    kind: &DataKindId,
    time_ms: u64,
    offset: u64,
) -> Option<Box<Receipt>> {
    let hub = seal.receipt_signature.as_ref()?;
    Some(Box::new(Receipt {
        message_id: answer_id,
        reply_to: Some(request_id),
        digest: seal.digest,
        sender: provider.clone(),
        kind: kind.clone(),
        time_ms,
        shard: answer_id.shard(),
        offset,
        key_id: hub.key_id.clone(),
        signature: hub.bytes.clone(),
    }))
}
