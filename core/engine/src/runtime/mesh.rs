//! The channels between threads: every shard's two bounded inboxes (client
//! commands and peer messages: one for the rt lane, one for the bulk lane,
//! so a call never queues behind a batch — ADR 0015) and its control
//! channel (session ends and shutdown), and the handle sessions and shards
//! hold on all of them.
//!
//! flume channels: bounded MPSC queues whose `send_async`/`recv_async`
//! futures work on any executor and whose blocking-free `try_send` suits a
//! reactor, so the same channel serves a glommio shard, another shard, and a
//! plain thread blocked in `block_on`. One operation's reply takes a
//! `futures-channel` one-shot ([`Tx`]): used once, it needs no queue.

use crate::registry::Registry;
use crate::runtime::lanes::Lane;
use crate::shard::{Command, PeerMsg, ReaderId};
use gonets_types::error::HubError;
use gonets_types::ids::{ParticipantId, QueueId};
use gonets_types::{
    Accepted, AcceptedMany, AckedMany, Message, QueueStats, ReplyContent, ReplyKind, StatusView,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A one-shot for one operation's result: one allocation and no lock
/// (a `flume::bounded(1)` took three allocations and a spin lock an
/// operation: its shared state, its queue's first push, the waiting hook).
pub(crate) type Tx<T> = futures_channel::oneshot::Sender<Result<T, HubError>>;

/// The waiting end of a [`Tx`].
pub(crate) type Rx<T> = futures_channel::oneshot::Receiver<Result<T, HubError>>;

/// A new one-shot for one operation's result.
pub(crate) fn reply_channel<T>() -> (Tx<T>, Rx<T>) {
    futures_channel::oneshot::channel()
}

/// Where a shard sends one operation's reply, typed by the operation: the
/// session waiting on it receives exactly the type its method returns, so
/// no session code ever matches a reply of the wrong kind.
#[derive(Debug)]
pub(crate) enum ReplyTo {
    /// `send_request`.
    Accepted(Tx<Accepted>),
    /// `call`.
    Message(Tx<Message>),
    /// `fetch`.
    Messages(Tx<Vec<Message>>),
    /// `subscribe`, `ack`, `nack`, `send_response`, `send_refusal`.
    Done(Tx<()>),
    /// `status`.
    Status(Tx<StatusView>),
    /// `queue_stats`.
    Stats(Tx<QueueStats>),
    /// `send_requests`: one reply for the whole batch.
    AcceptedMany(Tx<AcceptedMany>),
    /// `ack_many`: one reply for the whole batch.
    AckedMany(Tx<AckedMany>),
}

impl ReplyTo {
    /// The reply this channel carries.
    pub(crate) fn kind(&self) -> ReplyKind {
        match self {
            ReplyTo::Accepted(_) => ReplyKind::Accepted,
            ReplyTo::Message(_) => ReplyKind::Message,
            ReplyTo::Messages(_) => ReplyKind::Messages,
            ReplyTo::Done(_) => ReplyKind::Done,
            ReplyTo::Status(_) => ReplyKind::Status,
            ReplyTo::Stats(_) => ReplyKind::Stats,
            ReplyTo::AcceptedMany(_) => ReplyKind::AcceptedMany,
            ReplyTo::AckedMany(_) => ReplyKind::AckedMany,
        }
    }

    /// Answers with an error (a session that stopped waiting hears nothing).
    pub(crate) fn refuse(self, e: HubError) {
        let _ = match self {
            ReplyTo::Accepted(tx) => tx.send(Err(e)).is_ok(),
            ReplyTo::Message(tx) => tx.send(Err(e)).is_ok(),
            ReplyTo::Messages(tx) => tx.send(Err(e)).is_ok(),
            ReplyTo::Done(tx) => tx.send(Err(e)).is_ok(),
            ReplyTo::Status(tx) => tx.send(Err(e)).is_ok(),
            ReplyTo::Stats(tx) => tx.send(Err(e)).is_ok(),
            ReplyTo::AcceptedMany(tx) => tx.send(Err(e)).is_ok(),
            ReplyTo::AckedMany(tx) => tx.send(Err(e)).is_ok(),
        };
    }
}

/// A successful result a session can wait for: the [`ReplyTo`] that carries
/// it (its reply kind is the vocabulary's pairing, [`ReplyContent`]).
pub(crate) trait Awaited: ReplyContent {
    /// The typed channel.
    fn reply_to(tx: Tx<Self>) -> ReplyTo;
}

macro_rules! awaited {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl Awaited for $t {
            fn reply_to(tx: Tx<Self>) -> ReplyTo {
                ReplyTo::$variant(tx)
            }
        })*
    };
}

awaited! {
    Accepted => Accepted,
    Message => Message,
    Vec<Message> => Messages,
    () => Done,
    StatusView => Status,
    QueueStats => Stats,
    AcceptedMany => AcceptedMany,
    AckedMany => AckedMany,
}

/// Something for a shard's inbox.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A participant's operation.
    Command {
        /// The authenticated caller.
        caller: ParticipantId,
        /// The operation.
        command: Command,
        /// The reader leases go to (fetch replies name it in their messages).
        reader: ReaderId,
        /// Where the reply goes.
        reply: ReplyTo,
        /// When it was handed to the inbox (`rt_stages`).
        sent_at: std::time::Instant,
    },
    /// A new subscription: its push channel, then `Command::Subscribe`.
    Subscribe {
        /// The authenticated caller.
        caller: ParticipantId,
        /// The queue.
        queue: QueueId,
        /// First credits.
        credits: u32,
        /// The subscription's own reader.
        reader: ReaderId,
        /// Where deliveries are pushed; bounded by the subscription's credits.
        push: flume::Sender<Message>,
        /// Where the reply goes.
        reply: Tx<()>,
    },
    /// A message from another shard.
    Peer(PeerMsg),
}

/// Something for a shard's control channel: rare, never refused, read first.
#[derive(Debug)]
pub(crate) enum Control {
    /// A session or subscription ended: its leases go back, its waits end.
    Disconnected {
        /// The reader.
        reader: ReaderId,
    },
    /// Refuse client commands from now on; answer `done` once nothing
    /// appended waits for its commit and no peer message waits in the outbox.
    Drain {
        /// Told when settled.
        done: flume::Sender<u16>,
    },
    /// Snapshot, close the log and end the thread.
    Shutdown,
    /// Run a task on the shard's executor (a network front end): it lives
    /// until it ends or the shard's executor stops.
    Spawn(SpawnTask),
    /// Copy the shard's counters and stats into a reply (the operator API;
    /// rare: one per operator request).
    Stats {
        /// Where the copy goes (bounded(1), used once).
        reply: flume::Sender<crate::runtime::stats::ShardStats>,
    },
}

/// Makes a task on the shard thread (the task itself need not be `Send`).
pub(crate) struct SpawnTask(pub(crate) Box<dyn FnOnce() -> LocalTask + Send>);

impl std::fmt::Debug for SpawnTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpawnTask")
    }
}
/// A task that runs on one shard's executor.
pub type LocalTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// The senders of every shard's channels, shared by the hub, its sessions and its shards.
#[derive(Debug)]
pub(crate) struct Mesh {
    /// Bounded inboxes of the rt lane (and peer messages), by shard.
    pub(crate) inboxes: Vec<flume::Sender<Inbound>>,
    /// Bounded inboxes of the bulk lane, by shard.
    pub(crate) bulk_inboxes: Vec<flume::Sender<Inbound>>,
    /// Control channels, by shard. Unbounded: a message is sent only when a
    /// session or subscription ends, or once per shutdown phase, so their
    /// number is bounded by the readers that ever existed, and a `Drop` can
    /// send one without waiting.
    pub(crate) controls: Vec<flume::Sender<Control>>,
    /// The registry in force (sessions authenticate against it).
    pub(crate) registry: Arc<Registry>,
    /// Most credits one subscription may hold.
    pub(crate) subscription_credits_max: u32,
    /// The chain anchors signed since start (the operator's `/anchors`).
    pub(crate) anchors: Arc<crate::runtime::anchors::AnchorBook>,
    /// The attachment store's thread (ADR 0022).
    pub(crate) attachments: crate::runtime::attachments::Attachments,
    /// When a real-time call last went to a shard: sessions note each; the
    /// attachment store's pace and the connections' large reads and sends
    /// yield to them while they come (ADR 0022).
    pub(crate) rt_recent: Arc<crate::runtime::rt_recent::RtRecent>,
    /// Set once shutdown began: sessions answer `Unavailable` without sending.
    stopped: AtomicBool,
    /// By shard: set once the shard will send no reply any more, just before
    /// its channels are emptied (see [`Inlet`]).
    closed: Vec<AtomicBool>,
}

impl Mesh {
    /// A mesh over these channels.
    pub(crate) fn new(
        inboxes: Vec<flume::Sender<Inbound>>,
        bulk_inboxes: Vec<flume::Sender<Inbound>>,
        controls: Vec<flume::Sender<Control>>,
        registry: Arc<Registry>,
        subscription_credits_max: u32,
        attachments: crate::runtime::attachments::Attachments,
        rt_recent: Arc<crate::runtime::rt_recent::RtRecent>,
    ) -> Mesh {
        assert_eq!(inboxes.len(), controls.len());
        assert_eq!(inboxes.len(), bulk_inboxes.len());
        assert!(!inboxes.is_empty());
        let closed = inboxes.iter().map(|_| AtomicBool::new(false)).collect();
        Mesh {
            inboxes,
            bulk_inboxes,
            controls,
            registry,
            subscription_credits_max,
            anchors: Arc::default(),
            attachments,
            rt_recent,
            stopped: AtomicBool::new(false),
            closed,
        }
    }

    /// Shards in the hub.
    pub(crate) fn shard_count(&self) -> u16 {
        self.inboxes.len() as u16
    }

    /// Shard `shard`'s inbox for `command`'s lane.
    pub(crate) fn inbox_for(
        &self,
        shard: u16,
        command: &Command,
    ) -> Option<&flume::Sender<Inbound>> {
        let inboxes = match Lane::of(command, &self.registry) {
            Lane::Bulk => &self.bulk_inboxes,
            Lane::Rt | Lane::Background | Lane::Front => &self.inboxes,
        };
        inboxes.get(usize::from(shard))
    }

    /// True once shutdown began.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Marks the hub as shutting down.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// True once shard `shard` sends no reply any more: a message sent to it
    /// after this was set may sit in its inbox forever.
    pub(crate) fn closed(&self, shard: u16) -> bool {
        self.closed[usize::from(shard)].load(Ordering::SeqCst)
    }

    /// Tells every shard that `reader` is gone (from a `Drop`: never waits).
    pub(crate) fn disconnect_everywhere(&self, reader: ReaderId) {
        for control in &self.controls {
            // A shard that already ended has nothing of this reader left.
            let _ = control.send(Control::Disconnected { reader });
        }
    }
}

/// A shard's receiving ends. Dropping it (at the end of the shard's thread,
/// however it ends) marks the shard closed and then drops whatever is queued.
///
/// flume keeps queued messages while any sender lives, and the mesh keeps
/// senders alive, so without this a command queued as the shard stopped
/// would hold its reply channel open and its session would wait forever.
/// Ordering: the flag is set before the queue is emptied, so a message
/// pushed after the emptying was pushed after the flag was set, and its
/// sender, checking the flag after pushing, sees it (see `Session`).
pub(crate) struct Inlet {
    /// The shard.
    pub(crate) shard: u16,
    /// Its rt inbox (and peer messages).
    pub(crate) inbox: flume::Receiver<Inbound>,
    /// Its bulk inbox.
    pub(crate) bulk: flume::Receiver<Inbound>,
    /// Its control channel.
    pub(crate) control: flume::Receiver<Control>,
    /// The channels' senders (and the closed flags).
    pub(crate) mesh: Arc<Mesh>,
}

impl Drop for Inlet {
    fn drop(&mut self) {
        self.mesh.closed[usize::from(self.shard)].store(true, Ordering::SeqCst);
        // Bounded by what is queued now; dropping them closes their reply channels.
        self.inbox.drain().for_each(drop);
        self.bulk.drain().for_each(drop);
        self.control.drain().for_each(drop);
    }
}

/// The error a session gets when a shard is gone or going.
pub(crate) fn unavailable_shard(shard: u16) -> HubError {
    HubError::Unavailable(format!("shard {shard} is stopped (hub shut down)"))
}
