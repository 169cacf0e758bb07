//! Carrying out what the shard asks, in order: append records, send
//! replies and pushes (payloads read back from the log), send peer
//! messages, arm the timer.

use super::ShardTask;
use crate::record::Record;
use crate::runtime::archive::Archived;
use crate::runtime::mesh::{Inbound, ReplyTo};
use crate::runtime::message::{message_from_delivery, Accepted, Message};
use crate::runtime::outbox::Sent;
use crate::runtime::payload;
use crate::runtime::rt_stages::{self, Stage};
use crate::shard::{Delivery, Input, Output, PeerMsg, ReaderId, ShardReply, StatusView, Token};
use gonets_storage::LogError;
use gonets_types::error::HubError;
use gonets_types::ids::{MessageId, QueueId};

impl ShardTask {
    /// Carries out one step's outputs, in order.
    pub(super) async fn execute_all(&mut self, outputs: &mut Vec<Output>) {
        for out in outputs.drain(..) {
            match out {
                Output::Append {
                    offset,
                    record,
                    journal,
                } => {
                    self.append(offset, &record, journal).await;
                    self.records_since_snapshot += 1;
                }
                Output::Reply { token, result } => self.reply(token, result),
                Output::Deliver { reader, delivery } => self.push(reader, delivery),
                Output::ToShard { shard, msg } => self.send_to_shard(shard, msg),
                Output::ArmTimer { at_ms } => {
                    self.timer_at_ms = Some(self.timer_at_ms.map_or(at_ms, |t| t.min(at_ms)));
                    self.alarm.set(at_ms);
                }
                Output::Archive { history } => self.archive_history(&history).await,
                Output::StatusFromArchive {
                    token,
                    id,
                    caller,
                    operator,
                } => {
                    let result = self.archive.status(id, &caller, operator);
                    self.reply(token, result);
                }
            }
        }
    }

    /// Appends `record`, which the shard gave `offset`, and a copy to the
    /// rt journal when `journal` (ADR 0036).
    pub(super) async fn append(&mut self, offset: u64, record: &Record, journal: bool) {
        if self.log_failed {
            return; // the shard refuses work; nothing more reaches the log
        }
        self.encoded.clear();
        // A payload goes straight from its frame into the log's batch.
        let payload = record.encode_head(&mut self.encoded);
        let parts: [&[u8]; 2] = [&self.encoded, payload];
        let timestamp_ns = self.clock.now_ms().saturating_mul(1_000_000);
        let appended = match self.log.try_append_parts(&parts, timestamp_ns, 0) {
            Err(LogError::Busy) => self.log.append_parts(&parts, timestamp_ns, 0).await,
            other => other,
        };
        match appended {
            Ok(got) => {
                assert_eq!(
                    got, offset,
                    "shard {} and its log disagree on the next offset",
                    self.id
                );
                self.appended_last = Some(offset);
                if journal {
                    self.journal_append(offset, self.encoded.len(), payload)
                        .await;
                }
            }
            Err(e) => {
                tracing::error!(shard = self.id, offset, error = %e, "append failed; the shard accepts nothing more");
                self.fail_storage(
                    matches!(e, LogError::StorageFull),
                    format!("shard log: append: {e}"),
                );
            }
        }
    }

    /// Writes a finished exchange's history to the archive; the shard hears
    /// `Archived` once it is durable there (at once if it was already).
    async fn archive_history(&mut self, history: &StatusView) {
        if self.log_failed {
            return; // the shard refuses work; it stays in memory
        }
        let timestamp_ns = self.clock.now_ms().saturating_mul(1_000_000);
        match self.archive.archive(history, timestamp_ns).await {
            Ok(Archived::AlreadyHeld) => self.local.push_back(Input::Archived {
                request_id: history.request_id,
            }),
            Ok(Archived::Appended) => {}
            Err(e) => {
                tracing::error!(shard = self.id, error = %e, "history archive append failed; the shard accepts nothing more");
                self.fail_storage(
                    matches!(e, LogError::StorageFull),
                    format!("history log: append: {e}"),
                );
            }
        }
    }

    /// Sends a reply to the session waiting on `token`, over its channel
    /// typed by the operation (payloads read back from the log).
    fn reply(&mut self, token: Token, result: Result<ShardReply, HubError>) {
        let Some(pending) = self.replies.remove(&token) else {
            return; // an operation the driver made itself
        };
        if pending.subscribe && result.is_err() {
            self.pushes.remove(&pending.reader);
        }
        let reader = pending.reader;
        if let Some((op, stepped_at)) = pending.stepped {
            rt_stages::note(op, Stage::Shard, stepped_at);
        }
        let call_answer = match &result {
            Ok(ShardReply::Answer(d)) => d.reply_to,
            _ => None,
        };
        let (answer_taken, lost) = self.send_reply(pending.tx, result, reader);
        if let Some(request_id) = call_answer {
            // The shard acks the answer only once its caller has it.
            self.local.push_back(Input::CallReplied {
                request_id,
                taken: answer_taken,
            });
        }
        // The caller stopped waiting: its leases go back now rather than at
        // their timeout.
        for m in lost {
            self.give_back(m.queue, m.id, m.reader);
        }
    }

    /// Sends `result` over the session's channel typed by the operation.
    /// Gives true when the session has a readable call answer (the shard
    /// then acks it), and the messages of a fetch whose session stopped
    /// waiting.
    fn send_reply(
        &mut self,
        to: ReplyTo,
        result: Result<ShardReply, HubError>,
        reader: ReaderId,
    ) -> (bool, Vec<Message>) {
        let mut answer_taken = false;
        let mut lost = Vec::new();
        self.replies_sent.note(to.kind(), result.as_ref().err());
        match (to, result) {
            (to, Err(e)) => to.refuse(e),
            (
                ReplyTo::Accepted(tx),
                Ok(ShardReply::Accepted {
                    id,
                    time_ms,
                    duplicate,
                    receipt,
                }),
            ) => {
                // The shard signs every receipt it hands out (docs/adr/0023).
                assert!(receipt.as_ref().is_none_or(|r| !r.signature.is_empty()));
                let _ = tx.send(Ok(Accepted {
                    id,
                    time_ms,
                    duplicate,
                    receipt: receipt.map(gonets_types::AcceptanceReceipt::One),
                }));
            }
            (ReplyTo::Message(tx), Ok(ShardReply::Answer(mut d))) => {
                let m = payload::resolve_delivery(&self.log, self.shard.hub_key(), &mut d)
                    .map(|bytes| message_from_delivery(d, bytes, reader));
                let readable = m.is_ok();
                answer_taken = tx.send(m).is_ok() && readable;
            }
            (ReplyTo::Messages(tx), Ok(ShardReply::Messages(ds))) => {
                let messages = self.messages(ds, reader);
                if let Err(Ok(m)) = tx.send(Ok(messages)) {
                    lost = m;
                }
            }
            (ReplyTo::Done(tx), Ok(ShardReply::Done)) => {
                let _ = tx.send(Ok(()));
            }
            (ReplyTo::Status(tx), Ok(ShardReply::Status(s))) => {
                let _ = tx.send(Ok(s));
            }
            (ReplyTo::Stats(tx), Ok(ShardReply::Stats(s))) => {
                let _ = tx.send(Ok(s));
            }
            (ReplyTo::AcceptedMany(tx), Ok(ShardReply::AcceptedMany(results))) => {
                let _ = tx.send(Ok(results));
            }
            (ReplyTo::AckedMany(tx), Ok(ShardReply::AckedMany(refused))) => {
                let _ = tx.send(Ok(refused));
            }
            (to, Ok(other)) => self.refuse_wrong_reply(to, other),
        }
        (answer_taken, lost)
    }

    /// The one place a shard's reply meets the operation's type: a mismatch
    /// is a bug in the shard's rules, never input.
    fn refuse_wrong_reply(&self, to: ReplyTo, other: ShardReply) {
        debug_assert!(
            false,
            "shard {} answered {:?} with {other:?}",
            self.id,
            to.kind()
        );
        tracing::error!(shard = self.id, expected = ?to.kind(), "shard answered an operation with the wrong reply");
        to.refuse(HubError::Unavailable(
            "internal: the shard answered with the wrong reply".into(),
        ));
    }

    /// Fetched deliveries as messages; one whose payload cannot be read is
    /// logged and given back (it dead-letters after its deliveries run out).
    fn messages(&mut self, deliveries: Vec<Delivery>, reader: ReaderId) -> Vec<Message> {
        let mut out = Vec::with_capacity(deliveries.len());
        for mut d in deliveries {
            match payload::resolve_delivery(&self.log, self.shard.hub_key(), &mut d) {
                Ok(bytes) => out.push(message_from_delivery(d, bytes, reader)),
                Err(e) => {
                    tracing::error!(shard = self.id, id = %d.id, error = %e, "delivery given back");
                    self.give_back(d.queue, d.id, reader);
                }
            }
        }
        out
    }

    /// Pushes a delivery to a subscription.
    fn push(&mut self, reader: ReaderId, mut delivery: Delivery) {
        let Some(tx) = self.pushes.get(&reader) else {
            // The subscription ended; its Disconnected gives the lease back.
            return;
        };
        let bytes = match payload::resolve_delivery(&self.log, self.shard.hub_key(), &mut delivery)
        {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(shard = self.id, id = %delivery.id, error = %e, "delivery given back");
                self.give_back(delivery.queue, delivery.id, reader);
                return;
            }
        };
        match tx.try_send(message_from_delivery(delivery, bytes, reader)) {
            Ok(()) => {}
            Err(flume::TrySendError::Full(m)) => {
                // Cannot happen while credits bound the buffer; the lease
                // then ends at its timeout and the message is delivered again.
                tracing::warn!(shard = self.id, id = %m.id, "subscription buffer full; delivery left to its lease timeout");
            }
            Err(flume::TrySendError::Disconnected(_)) => {
                // Its Disconnected follows on the control channel.
                self.pushes.remove(&reader);
            }
        }
    }

    /// Ends a lease now (a delivery nobody will see): the shard delivers
    /// it again (`Input::GiveBack`).
    fn give_back(&mut self, queue: QueueId, id: MessageId, reader: ReaderId) {
        self.local.push_back(Input::GiveBack { queue, id, reader });
    }

    /// Sends a peer message (to itself: fed back locally).
    fn send_to_shard(&mut self, shard: u16, msg: PeerMsg) {
        assert!(
            shard < self.shard_count,
            "shard {} asked to send to shard {shard} of {}",
            self.id,
            self.shard_count
        );
        if shard == self.id {
            self.local.push_back(Input::Peer(msg));
            return;
        }
        let msg = match msg {
            PeerMsg::EnqueueAnswer(mut envelope) => {
                match payload::resolve_envelope(&self.log, self.shard.hub_key(), &mut envelope) {
                    Ok(()) => PeerMsg::EnqueueAnswer(envelope),
                    Err(e) => {
                        tracing::error!(shard = self.id, answer = %envelope.id, request = %envelope.request_id, error = %e,
                            "answer not handed to the consumer's shard; it is routed again after a restart");
                        return;
                    }
                }
            }
            other => other,
        };
        if self.outbox.send(shard, Inbound::Peer(msg)) == Sent::PeerGone {
            tracing::debug!(
                shard = self.id,
                peer = shard,
                "peer stopped; message dropped"
            );
        }
    }
}
