//! Sender signatures and hub receipts at the shard (docs/adr/0019): which
//! signature a command carries, the one check of it against the sender's
//! registered keys and its kind's rule, and the receipts the hub signs
//! when it has a key. Digests are `gonets_trust::digest`'s.
//!
//! Receipts are made unsigned where a request is accepted or an answer
//! routed, and signed at the end of the step that hands them out, all of
//! that step's in one tree (docs/adr/0023): one Ed25519 signature (tens of
//! µs in release) a commit rather than one a message. A batch's receipt is
//! signed once where it is made. A hub without a key (`HubConfig::hub_key`
//! `None`) makes none and pays nothing.

use super::{
    Command, HubError, MessageId, Output, ParticipantId, PeerMsg, Shard, ShardReply, Token,
};
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

    /// The hub's receipt key, if it has one.
    pub fn hub_key(&self) -> Option<&gonets_trust::HubKey> {
        self.hub_key.as_deref()
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
    /// the hub has a key: unsigned until the step that hands it out
    /// ([`Shard::sign_receipts`]).
    pub(super) fn request_receipt(
        &self,
        id: MessageId,
        seal: &Seal,
        sender: &ParticipantId,
        kind: &DataKindId,
        offset: u64,
    ) -> Option<Box<Receipt>> {
        let key = self.hub_key.as_ref()?;
        Some(Box::new(Receipt {
            message_id: id,
            reply_to: None,
            digest: seal.digest,
            sender: sender.clone(),
            kind: kind.clone(),
            time_ms: self.now_ms,
            shard: self.config.shard,
            offset,
            key_id: key.key_id().to_owned(),
            signature: bytes::Bytes::new(),
            proof: None,
        }))
    }

    /// Signs every receipt this step hands out and nobody signed yet, in
    /// one tree (docs/adr/0023): a commit releases its acceptances and
    /// answers in one step, so the whole commit costs one signature.
    pub(super) fn sign_receipts(&mut self) {
        let Some(key) = self.hub_key.as_ref() else {
            return;
        };
        let mut unsigned: Vec<&mut Receipt> = Vec::new();
        for out in &mut self.out {
            receipts_of(out, &mut unsigned);
        }
        unsigned.retain(|r| r.signature.is_empty());
        if !unsigned.is_empty() {
            let signatures = gonets_trust::sign_receipts(key, &mut unsigned);
            self.counters.receipt_signatures += signatures as u64;
            self.counters.receipts_signed += unsigned.len() as u64;
        }
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

/// Every receipt `out` carries, pushed onto `into`.
fn receipts_of<'a>(out: &'a mut Output, into: &mut Vec<&'a mut Receipt>) {
    match out {
        Output::Reply {
            result: Ok(reply), ..
        } => match reply {
            ShardReply::Accepted {
                receipt: Some(r), ..
            } => into.push(r),
            ShardReply::Answer(d) => into.extend(d.receipt.as_deref_mut()),
            ShardReply::Messages(ds) => {
                into.extend(ds.iter_mut().filter_map(|d| d.receipt.as_deref_mut()))
            }
            _ => {}
        },
        Output::Deliver { delivery, .. } => into.extend(delivery.receipt.as_deref_mut()),
        Output::ToShard {
            msg: PeerMsg::EnqueueAnswer(e),
            ..
        } => into.extend(e.receipt.as_deref_mut()),
        _ => {}
    }
}

/// The receipt of an answer: the one its record's seal holds (answers
/// stored before receipts were signed a commit, docs/adr/0023), else an
/// unsigned one in `key`'s name, for the shard's step
/// ([`Shard::sign_receipts`]) or a reader of the log to sign; `None` when
/// neither (a hub without a key). Answer `answer_id` to `request_id` by
/// `provider`, of `kind`, at hub time `time_ms`, its record at `offset` of
/// the shard that made it (the answer id's).
#[allow(clippy::too_many_arguments)] // the receipt's fields, one each
pub(crate) fn answer_receipt(
    seal: &Seal,
    key: Option<&gonets_trust::HubKey>,
    answer_id: MessageId,
    request_id: MessageId,
    provider: &ParticipantId,
    kind: &DataKindId,
    time_ms: u64,
    offset: u64,
) -> Option<Box<Receipt>> {
    let (key_id, signature) = match (&seal.receipt_signature, key) {
        (Some(hub), _) => (hub.key_id.clone(), hub.bytes.clone()),
        (None, Some(k)) => (k.key_id().to_owned(), bytes::Bytes::new()),
        (None, None) => return None,
    };
    Some(Box::new(Receipt {
        message_id: answer_id,
        reply_to: Some(request_id),
        digest: seal.digest,
        sender: provider.clone(),
        kind: kind.clone(),
        time_ms,
        shard: answer_id.shard(),
        offset,
        key_id,
        signature,
        proof: None,
    }))
}
