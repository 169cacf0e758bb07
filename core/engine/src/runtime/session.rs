//! A participant's handle on the hub: every operation of DESIGN.md §2, routed
//! to the shard that owns its queue or message by one function
//! ([`Session::execute`] for any [`Command`], and typed methods over it that
//! wait on a reply channel of their own type: no reply is ever matched
//! against the wrong kind here).
//!
//! Methods are `async` and executor-agnostic (flume futures): await them on
//! any runtime, or `futures_lite::future::block_on` them from a plain thread.
//! A session is one reader: fetched messages are leased to it, and when its
//! last clone drops every shard gives its leases back for redelivery.

use crate::runtime::mesh::{reply_channel, unavailable_shard, Awaited, Inbound, Mesh};
use crate::runtime::message::{Accepted, Message};
use crate::shard::queue::QueueStats;
use crate::shard::{Command, NewRequest, ReaderId, StatusView};
use bytes::Bytes;
use gonets_types::error::HubError;
use gonets_types::ids::{DataKindId, MessageId, ParticipantId, QueueId};
use gonets_types::refusal::RefusalCode;
use gonets_types::{Reply, ReplyKind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Reader ids, unique in the process: leases of a gone reader are never
/// confused with a new one's.
static NEXT_READER: AtomicU64 = AtomicU64::new(1);

fn new_reader() -> ReaderId {
    NEXT_READER.fetch_add(1, Ordering::Relaxed)
}

/// An authenticated participant's connection to an in-process hub. Cheap to
/// clone; clones share one reader (and so their leases).
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<SessionInner>,
}

#[derive(Debug)]
struct SessionInner {
    mesh: Arc<Mesh>,
    participant: ParticipantId,
    reader: ReaderId,
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        self.mesh.disconnect_everywhere(self.reader);
    }
}

impl Session {
    /// A session of `participant` (already authenticated) on `mesh`.
    pub(crate) fn new(mesh: Arc<Mesh>, participant: ParticipantId) -> Session {
        Session {
            inner: Arc::new(SessionInner {
                mesh,
                participant,
                reader: new_reader(),
            }),
        }
    }

    /// The participant this session acts for.
    pub fn participant(&self) -> &ParticipantId {
        &self.inner.participant
    }

    /// Whether real-time calls reached a shard of this hub lately (within
    /// about 50 ms): work that may wait a little, such as reading a large
    /// frame, then yields to them more often (ADR 0022).
    pub fn rt_calls_recent(&self) -> bool {
        self.inner.mesh.rt_recent.recent()
    }

    /// The lane `command` runs in (ADR 0015): the task queue a front end
    /// spawns its work into, and the shard inbox it goes to.
    pub fn lane(&self, command: &Command) -> crate::runtime::lanes::Lane {
        crate::runtime::lanes::Lane::of(command, &self.inner.mesh.registry)
    }

    /// The lane of the work that reads `queue` (its deliveries, acks and
    /// fetches; `Lane::of_queue`).
    pub fn lane_of_queue(&self, queue: &QueueId) -> crate::runtime::lanes::Lane {
        crate::runtime::lanes::Lane::of_queue(queue, &self.inner.mesh.registry)
    }

    fn shard_count(&self) -> u16 {
        self.inner.mesh.shard_count()
    }

    /// Runs any operation but `subscribe` (whose pushes need a channel of
    /// their own: [`Session::subscribe`]) and returns its reply: the variant
    /// [`Command::reply_kind`] names, always. A network front end decodes a
    /// request into a [`Command`], runs it here, and encodes the reply.
    ///
    /// A `fetch` leases to this session (whatever reader the command names);
    /// an `ack` or `nack` names the lease holder (this session's or one of
    /// its subscriptions': the caller checks which).
    pub async fn execute(&self, command: Command) -> Result<Reply, HubError> {
        if matches!(command, Command::Subscribe { .. }) {
            return Err(HubError::Malformed(
                "subscribe through Session::subscribe: pushes need a channel of their own".into(),
            ));
        }
        match command.reply_kind() {
            ReplyKind::Accepted => self.route(command).await.map(Reply::Accepted),
            ReplyKind::Message => self.route(command).await.map(Reply::Message),
            ReplyKind::Messages => self.route(command).await.map(Reply::Messages),
            ReplyKind::Done => self.route(command).await.map(|()| Reply::Done),
            ReplyKind::Status => self.route(command).await.map(Reply::Status),
            ReplyKind::Stats => self.route(command).await.map(Reply::Stats),
            ReplyKind::AcceptedMany => self.route(command).await.map(Reply::AcceptedMany),
            ReplyKind::AckedMany => self.route(command).await.map(Reply::AckedMany),
            ReplyKind::Upload | ReplyKind::Attachment | ReplyKind::AttachmentBytes => {
                self.attachment_op(command).await
            }
        }
    }

    /// An upload or read of the attachment store (ADR 0022), on its own
    /// thread: never a shard's.
    async fn attachment_op(&self, command: Command) -> Result<Reply, HubError> {
        let store = &self.inner.mesh.attachments;
        let me = self.inner.participant.as_str();
        match command {
            Command::UploadBegin { kind, size_bytes } => {
                let size_bytes_max = self.attachment_bytes_max(&kind)?;
                let state = store.begin(me, size_bytes, size_bytes_max).await?;
                Ok(Reply::Upload(state))
            }
            Command::UploadChunk {
                upload,
                offset,
                crc32c,
                bytes,
            } => store
                .chunk(me, upload, offset, crc32c, bytes)
                .await
                .map(Reply::Upload),
            Command::UploadStatus { upload } => store.status(me, upload).await.map(Reply::Upload),
            Command::UploadFinish { upload, digest } => store
                .finish(me, upload, digest)
                .await
                .map(Reply::Attachment),
            Command::ReadAttachment {
                digest,
                offset,
                bytes_max,
            } => store
                .read(me, digest, offset, bytes_max)
                .await
                .map(Reply::AttachmentBytes),
            other => Err(HubError::Malformed(format!(
                "not an attachment operation: {:?}",
                other.reply_kind()
            ))),
        }
    }

    /// The largest attachment this participant may upload for `kind`: it
    /// must be one of the kind's consumers (for its requests) or its
    /// provider (for its answers), and the kind must take them.
    fn attachment_bytes_max(&self, kind: &DataKindId) -> Result<u64, HubError> {
        let me = &self.inner.participant;
        let k = self
            .inner
            .mesh
            .registry
            .kind(kind)
            .ok_or_else(|| HubError::UnknownDataKind(kind.to_string()))?;
        if !k.consumers.contains(me) && &k.provider != me {
            return Err(HubError::NotAuthorized(format!(
                "{me} neither requests nor provides {kind}"
            )));
        }
        if k.attachment_bytes_max == 0 {
            return Err(HubError::TooLarge {
                size_bytes: 1,
                size_bytes_max: 0,
            });
        }
        Ok(k.attachment_bytes_max)
    }

    /// Before a message with attachments goes to its shard: each must be
    /// this participant's upload, and the other end of the exchange may
    /// read it from now until the message's retention ends — a request's
    /// provider, or an answer's consumer.
    async fn reference_attachments(&self, command: &Command) -> Result<(), HubError> {
        match command.unsigned() {
            Command::SendRequest(r) | Command::Call(r) if !r.attachments.is_empty() => {
                self.reference_request_attachments(r).await
            }
            Command::SendResponse {
                request_id,
                attachments,
                ..
            } if !attachments.is_empty() => {
                self.reference_answer_attachments(*request_id, attachments)
                    .await
            }
            _ => Ok(()),
        }
    }

    /// A request's attachments, for its kind's provider. A request the
    /// shard will refuse anyway (unknown kind, not a consumer of it) grants
    /// nothing.
    async fn reference_request_attachments(&self, r: &NewRequest) -> Result<(), HubError> {
        let me = &self.inner.participant;
        let Some(kind) = self.inner.mesh.registry.kind(&r.kind) else {
            return Ok(());
        };
        if !kind.consumers.contains(me) {
            return Ok(());
        }
        gonets_types::check_attachment_refs(&r.attachments).map_err(HubError::Malformed)?;
        let deadline_ms = r.expires_in_ms.unwrap_or(kind.deadline_ms);
        self.inner
            .mesh
            .attachments
            .reference(
                me.as_str(),
                &r.attachments,
                kind.provider.as_str(),
                deadline_ms,
            )
            .await
    }

    /// An answer's attachments, for the consumer of the request it answers:
    /// the request's history names it, and only the request's provider may
    /// read that history (anyone else is refused here, as the shard would
    /// refuse the answer). Kept until the request's deadline and the logs'
    /// retention after it: an answer waits for its consumer no longer.
    async fn reference_answer_attachments(
        &self,
        request_id: MessageId,
        refs: &[gonets_types::AttachmentRef],
    ) -> Result<(), HubError> {
        gonets_types::check_attachment_refs(refs).map_err(HubError::Malformed)?;
        let me = &self.inner.participant;
        let history: StatusView = self.to_shard(Command::Status { id: request_id }).await?;
        if &history.provider != me {
            return Err(HubError::NotAuthorized(format!(
                "{me} is not the provider of {request_id}"
            )));
        }
        let now_ms = crate::runtime::attachments::now_ms();
        self.inner
            .mesh
            .attachments
            .reference(
                me.as_str(),
                refs,
                history.consumer.as_str(),
                history.deadline_ms.saturating_sub(now_ms),
            )
            .await
    }

    /// Runs an attachment operation (`UploadBegin`, `UploadChunk`,
    /// `UploadStatus`: [`gonets_types::UploadState`]; `UploadFinish`:
    /// [`gonets_types::AttachmentRef`]; `ReadAttachment`:
    /// [`gonets_types::AttachmentBytes`]) and takes its reply's content.
    pub async fn attachment<T: gonets_types::ReplyContent>(
        &self,
        command: Command,
    ) -> Result<T, HubError> {
        let reply = self.attachment_op(command).await?;
        T::from_reply(reply).map_err(|kind| {
            HubError::Unavailable(format!(
                "internal: an attachment operation answered {kind:?}"
            ))
        })
    }

    /// The one routing function: sends `command` to the shard that owns its
    /// queue or message, as the reader it names, and waits for its reply on
    /// a channel typed `T`. `T` must be the type of the command's reply kind
    /// (asserted: the typed methods below and `execute` are its callers).
    async fn route<T: Awaited>(&self, command: Command) -> Result<T, HubError> {
        self.reference_attachments(&command).await?;
        self.to_shard(command).await
    }

    /// [`Session::route`] once the message's attachments are referenced.
    async fn to_shard<T: Awaited>(&self, mut command: Command) -> Result<T, HubError> {
        assert_eq!(
            T::KIND,
            command.reply_kind(),
            "an operation awaited as the wrong reply: {command:?}"
        );
        let (shard, reader) = self.destination(&mut command)?;
        let mesh = &self.inner.mesh;
        if matches!(command.unsigned(), Command::Call(_)) {
            // Background writes yield to real-time calls (ADR 0022).
            mesh.rt_recent.note();
        }
        if mesh.stopped() {
            return Err(unavailable_shard(shard));
        }
        let inbox = mesh.inbox_for(shard, &command).ok_or(HubError::NotFound)?;
        let (reply, mut answer) = reply_channel();
        inbox
            .send_async(Inbound::Command {
                caller: self.inner.participant.clone(),
                command,
                reader,
                reply: T::reply_to(reply),
                sent_at: std::time::Instant::now(),
            })
            .await
            .map_err(|_| unavailable_shard(shard))?;
        if mesh.closed(shard) {
            // Sent as the shard closed: it may never be read (see `Inlet`).
            return answer
                .try_recv()
                .ok()
                .flatten()
                .unwrap_or(Err(unavailable_shard(shard)));
        }
        answer.await.map_err(|_| unavailable_shard(shard))?
    }

    /// The shard that owns `command`'s queue or message, and the reader it
    /// runs as (a fetch: this session's, put into the command).
    fn destination(&self, command: &mut Command) -> Result<(u16, ReaderId), HubError> {
        // The one shard rule (`Command::shard`), shared with the clients;
        // an id no shard here made is `NotFound`.
        let shard = command
            .shard(self.shard_count())
            .ok_or(HubError::NotFound)?;
        let own = self.inner.reader;
        let reader = match command {
            Command::Fetch { reader, .. } => {
                *reader = own;
                own
            }
            Command::Subscribe { reader, .. }
            | Command::Ack { reader, .. }
            | Command::AckMany { reader, .. }
            | Command::Nack { reader, .. }
            | Command::NackMany { reader, .. } => *reader,
            _ => own,
        };
        Ok((shard, reader))
    }

    /// Sends a request; answers once it is durable (or repeats an earlier acceptance).
    pub async fn send_request(&self, request: NewRequest) -> Result<Accepted, HubError> {
        self.route(Command::SendRequest(request)).await
    }

    /// Sends many requests of one data kind at once; one result per
    /// request, in order, once every accepted one is durable (a batch
    /// refused as a whole, `Malformed`, stores nothing).
    pub async fn send_requests(
        &self,
        requests: Vec<NewRequest>,
    ) -> Result<gonets_types::AcceptedMany, HubError> {
        self.route(Command::SendRequests(requests)).await
    }

    /// Acks many messages of one requests queue leased to `reader` (the
    /// lease holder the messages name) in one record; once durable, the
    /// ids that were not acked, with why (empty: all done).
    pub async fn ack_many(
        &self,
        queue: QueueId,
        ids: Vec<MessageId>,
        reader: ReaderId,
    ) -> Result<gonets_types::AckedMany, HubError> {
        self.route(Command::AckMany { queue, ids, reader }).await
    }

    /// Nacks many messages of one queue leased to `reader` (the lease
    /// holder the messages name), each delivered again after `delay_ms`,
    /// in one record for a requests queue; once durable, the ids that were
    /// not nacked, with why (empty: all done).
    pub async fn nack_many(
        &self,
        queue: QueueId,
        ids: Vec<MessageId>,
        reader: ReaderId,
        delay_ms: u64,
    ) -> Result<gonets_types::AckedMany, HubError> {
        self.route(Command::NackMany {
            queue,
            ids,
            reader,
            delay_ms,
        })
        .await
    }

    /// The realtime path: sends and waits for the answer within the data
    /// kind's budget; `DeadlineExceeded` past it.
    pub async fn call(&self, request: NewRequest) -> Result<Message, HubError> {
        self.route(Command::Call(request)).await
    }

    /// Long-poll: up to `max` messages of `queue`, leased to this session,
    /// waiting up to `wait` for the first; empty after the wait.
    pub async fn fetch(
        &self,
        queue: QueueId,
        max: u32,
        wait: Duration,
    ) -> Result<Vec<Message>, HubError> {
        self.route(Command::Fetch {
            queue,
            max,
            wait_ms: millis(wait),
            reader: self.inner.reader,
        })
        .await
    }

    /// Push delivery of `queue` with `credits` messages allowed in flight.
    /// The subscription is a reader of its own: dropping it gives its
    /// unacked messages back.
    pub async fn subscribe(&self, queue: QueueId, credits: u32) -> Result<Subscription, HubError> {
        let mesh = &self.inner.mesh;
        let credits_max = mesh.subscription_credits_max;
        if credits > credits_max {
            return Err(HubError::Malformed(format!(
                "{credits} credits exceed the subscription's buffer of {credits_max}"
            )));
        }
        let shard = queue.shard(self.shard_count());
        if mesh.stopped() {
            return Err(unavailable_shard(shard));
        }
        let reader = new_reader();
        let (push, deliveries) = flume::bounded(credits_max as usize);
        let (reply, answer) = reply_channel();
        mesh.inboxes[usize::from(shard)]
            .send_async(Inbound::Subscribe {
                caller: self.inner.participant.clone(),
                queue: queue.clone(),
                credits,
                reader,
                push,
                reply,
            })
            .await
            .map_err(|_| unavailable_shard(shard))?;
        if mesh.closed(shard) {
            return Err(unavailable_shard(shard));
        }
        // From here the shard may hold leases for `reader`: the subscription
        // (whose drop gives them back) exists before the reply is awaited.
        let subscription = Subscription {
            session: self.clone(),
            queue,
            shard,
            reader,
            deliveries,
            credits_outstanding: credits,
            credits_max,
        };
        match answer.await {
            Ok(Ok(())) => Ok(subscription),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(unavailable_shard(shard)),
        }
    }

    /// Ends a lease: the message is done.
    pub async fn ack(&self, message: &Message) -> Result<(), HubError> {
        self.ack_lease(message.queue.clone(), message.id, message.reader)
            .await
    }

    /// Ends a lease: deliver the message again after `delay`.
    pub async fn nack(&self, message: &Message, delay: Duration) -> Result<(), HubError> {
        self.nack_lease(message.queue.clone(), message.id, message.reader, delay)
            .await
    }

    /// This session's own lease holder number (fetched messages carry it).
    pub fn lease_holder(&self) -> u64 {
        self.inner.reader
    }

    /// `ack` by parts: the message `id` of `queue` leased to `holder` (this
    /// session's or one of its subscriptions'; the front end checks which).
    pub async fn ack_lease(
        &self,
        queue: QueueId,
        id: MessageId,
        holder: u64,
    ) -> Result<(), HubError> {
        self.route(Command::Ack {
            queue,
            id,
            reader: holder,
        })
        .await
    }

    /// `nack` by parts (see [`Session::ack_lease`]).
    pub async fn nack_lease(
        &self,
        queue: QueueId,
        id: MessageId,
        holder: u64,
        delay: Duration,
    ) -> Result<(), HubError> {
        self.route(Command::Nack {
            queue,
            id,
            reader: holder,
            delay_ms: millis(delay),
        })
        .await
    }

    /// The provider's data answer to `request_id`; answers once durable.
    pub async fn send_response(
        &self,
        request_id: MessageId,
        payload: impl Into<Bytes>,
    ) -> Result<(), HubError> {
        self.send_response_attached(request_id, payload, Vec::new())
            .await
    }

    /// The provider's data answer to `request_id` carrying `attachments`
    /// it uploaded before (ADR 0022); the request's consumer may read them.
    pub async fn send_response_attached(
        &self,
        request_id: MessageId,
        payload: impl Into<Bytes>,
        attachments: Vec<gonets_types::AttachmentRef>,
    ) -> Result<(), HubError> {
        self.route(Command::SendResponse {
            request_id,
            payload: payload.into(),
            attachments,
        })
        .await
    }

    /// The provider's refusal of `request_id`; answers once durable.
    pub async fn send_refusal(
        &self,
        request_id: MessageId,
        code: RefusalCode,
        reason: impl Into<String>,
    ) -> Result<(), HubError> {
        self.route(Command::SendRefusal {
            request_id,
            code,
            reason: reason.into(),
        })
        .await
    }

    /// The history of a request or answer (its consumer, provider or an operator only).
    pub async fn status(&self, id: MessageId) -> Result<StatusView, HubError> {
        self.route(Command::Status { id }).await
    }

    /// Depth, in-flight count and oldest age of a queue (its reader or an operator only).
    pub async fn queue_stats(&self, queue: QueueId) -> Result<QueueStats, HubError> {
        self.route(Command::QueueStats { queue }).await
    }
}

/// A duration in whole milliseconds (saturating).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Messages of one queue pushed to a session as credits allow. Dropping it
/// ends the subscription and gives its unacked messages back; ack them
/// (with the session) before dropping it.
#[derive(Debug)]
pub struct Subscription {
    session: Session,
    queue: QueueId,
    shard: u16,
    reader: ReaderId,
    deliveries: flume::Receiver<Message>,
    /// Credits granted minus messages received: bounds the push buffer.
    credits_outstanding: u32,
    credits_max: u32,
}

impl Subscription {
    /// The queue subscribed to.
    pub fn queue(&self) -> &QueueId {
        &self.queue
    }

    /// This subscription's lease holder number (its messages carry it).
    pub fn lease_holder(&self) -> u64 {
        self.reader
    }

    /// The next pushed message; `Unavailable` once the hub shut down.
    pub async fn recv(&mut self) -> Result<Message, HubError> {
        let m = self
            .deliveries
            .recv_async()
            .await
            .map_err(|_| unavailable_shard(self.shard))?;
        self.credits_outstanding = self.credits_outstanding.saturating_sub(1);
        Ok(m)
    }

    /// A pushed message if one is there now.
    pub fn try_recv(&mut self) -> Result<Option<Message>, HubError> {
        match self.deliveries.try_recv() {
            Ok(m) => {
                self.credits_outstanding = self.credits_outstanding.saturating_sub(1);
                Ok(Some(m))
            }
            Err(flume::TryRecvError::Empty) => Ok(None),
            Err(flume::TryRecvError::Disconnected) => Err(unavailable_shard(self.shard)),
        }
    }

    /// Allows `credits` more messages in flight (at most the buffer's size outstanding).
    pub async fn add_credits(&mut self, credits: u32) -> Result<(), HubError> {
        let outstanding = self.credits_outstanding.saturating_add(credits);
        if outstanding > self.credits_max {
            return Err(HubError::Malformed(format!(
                "{outstanding} credits outstanding would exceed the subscription's buffer of {}",
                self.credits_max
            )));
        }
        let command = Command::Subscribe {
            queue: self.queue.clone(),
            credits,
            reader: self.reader,
        };
        self.session.route::<()>(command).await?;
        self.credits_outstanding = outstanding;
        Ok(())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(control) = self
            .session
            .inner
            .mesh
            .controls
            .get(usize::from(self.shard))
        {
            // A shard that already ended has nothing of this reader left.
            let _ = control.send(crate::runtime::mesh::Control::Disconnected {
                reader: self.reader,
            });
        }
    }
}
