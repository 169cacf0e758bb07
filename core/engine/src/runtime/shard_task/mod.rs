//! The per-shard driver: owns one shard's `Shard`, `Log`, timer and reply
//! channels on one glommio executor, feeds the shard its inputs stamped with
//! the hub clock and carries out what it asks, in order.
//!
//! The driver has two halves, one task per lane, that take turns on the
//! shard (`drive`, ADR 0032). An rt turn: settle local events (commits, a
//! failed log, the timer), read the control channel, read up to
//! [`INPUTS_PER_TURN_MAX`] messages of the rt inbox. A bulk turn: read the
//! bulk inbox while the log's unwritten bytes stay under the bulk bound
//! (ADR 0015: an rt record never waits behind more than that in the log)
//! and no rt work waits. Each turn then asks the committer for everything
//! appended in it (group commit) and starts a snapshot when one is due. A
//! turn that did work yields so the log's flusher and the outbox drainers
//! run.
//!
//! Submodules: `drive` (the two halves' loops), `outputs` (carrying out
//! what the shard asks), `snapshots` (snapshot, mark, checkpoint,
//! retention), `anchoring` (appending chain anchors and the audit bound's
//! summaries), `stop` (clean shutdown).

mod anchoring;
mod drive;
mod journal;
mod outputs;
mod snapshots;
mod stop;

use crate::registry::Registry;
use crate::runtime::alarm::Alarm;
use crate::runtime::anchors::Anchorer;
use crate::runtime::archive::Archive;
use crate::runtime::committer::Commits;
use crate::runtime::hub::{Failures, ShardFailure};
use crate::runtime::lanes::{self, Lane};
use crate::runtime::mesh::{Control, Inbound, Inlet, ReplyTo};
use crate::runtime::message::Message;
use crate::runtime::outbox::Outbox;
use crate::runtime::rt_journal::RtJournal;
use crate::runtime::rt_stages::{self, RtOp, Stage};
use crate::runtime::start_error::HubStartError;
use crate::runtime::stats::{LogReport, QueueEntry, ReplyCounts, ShardStats};
use crate::runtime::{clock::HubClock, recovery};
use crate::shard::{Command, IdMap, Input, Output, ReaderId, Shard, ShardConfig, Token};
use gonets_storage::{Durability, Log, LogConfig};
use gonets_types::error::HubError;
use gonets_types::ReplyKind;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Inbox messages read in one turn before the turn's commit is asked for.
const INPUTS_PER_TURN_MAX: usize = 256;
/// After this long without an rt command, bulk is not held by the log's
/// unwritten bytes (ADR 0015): nothing waits behind it.
const RT_QUIET_MS: u64 = 50;
/// Control messages read in one turn.
const CONTROLS_PER_TURN_MAX: usize = 64;
/// Rounds of commit-then-feed at shutdown (each round's outputs may append a
/// few more history events; they run out after two rounds).
const SHUTDOWN_COMMIT_ROUNDS_MAX: usize = 16;
/// How often a draining or shutting-down shard looks again at its lanes and
/// maintenance, ms.
const SETTLE_POLL_MS: u64 = 1;

/// What a shard thread starts with.
pub(crate) struct ShardStart {
    /// The shard's number.
    pub(crate) id: u16,
    /// Its log directory.
    pub(crate) dir: PathBuf,
    /// Its log's settings.
    pub(crate) log_config: LogConfig,
    /// Its rules' settings.
    pub(crate) shard_config: ShardConfig,
    /// The registry.
    pub(crate) registry: Arc<Registry>,
    /// Its inbox and control channel (and every shard's, for peer messages).
    pub(crate) inlet: Inlet,
    /// Appended records between snapshots.
    pub(crate) snapshot_every_records: u64,
    /// History-index entries held before a run is written.
    pub(crate) index_table_entries_max: usize,
    /// Bound of a lane to one peer.
    pub(crate) outbox_messages_max: usize,
    /// Unwritten log bytes above which bulk commands wait in their inbox.
    pub(crate) bulk_unwritten_bytes_max: u64,
    /// Most time records nobody awaits wait for a commit, ms (ADR 0025).
    pub(crate) unawaited_commit_delay_ms: u64,
    /// Where a failed log is reported to the hub.
    pub(crate) failures: Arc<Failures>,
    /// The hub key (`HubConfig::hub_key`) that signs receipts and chain
    /// anchors; `None`: neither.
    pub(crate) hub_key: Option<Arc<gonets_trust::HubKey>>,
    /// Most time between anchors while records are written, ms (0: only
    /// after snapshots).
    pub(crate) anchor_interval_ms: u64,
}

/// Where a shard thread reports that it recovered (or why not).
pub(crate) type ReadySender = std::sync::mpsc::Sender<(u16, Result<(), HubStartError>)>;

/// A reply the shard owes a session.
struct PendingReply {
    tx: ReplyTo,
    /// The reader leases of a fetch go to (a subscription's own reader for subscribe).
    reader: ReaderId,
    /// A subscribe: its push channel goes if the shard refuses it.
    subscribe: bool,
    /// A timed real-time operation, and when it was stepped (`rt_stages`).
    stepped: Option<(RtOp, Instant)>,
}

/// A snapshot appended and waiting for its commit.
#[derive(Clone, Copy, Debug)]
struct PendingSnapshot {
    first: u64,
    end: u64,
}

/// Why the rt half's wait ended.
enum Wake {
    /// From the rt inbox (client commands and peer messages).
    RtInbound(Inbound),
    Control(Control),
    ChannelsClosed,
    Local,
}

/// Runs shard `start.id`: recovery, then the driver until shutdown. Reports
/// the recovery's outcome on `ready`; returns the shutdown's.
pub(crate) async fn run(start: ShardStart, ready: ReadySender) -> Result<(), String> {
    let id = start.id;
    let rt_journal = start.shard_config.rt_journal;
    let (log, mut shard) = match recovery::replay(
        &start.dir,
        start.log_config.clone(),
        start.shard_config,
        start.registry.clone(),
    )
    .await
    {
        Ok(x) => x,
        Err(e) => {
            let _ = ready.send((id, Err(e)));
            return Ok(());
        }
    };
    // Replay signs nothing (receipts are made at acceptance only).
    shard.set_hub_key(start.hub_key.clone());
    let archive = match Archive::open_with(
        &start.dir,
        id,
        &start.log_config,
        start.index_table_entries_max,
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            let _ = log.close().await;
            let _ = ready.send((id, Err(e)));
            return Ok(());
        }
    };
    let journal = if rt_journal {
        tracing::warn!(
            shard = id,
            "the rt journal is on: experimental, measured to gain nothing on a disk without FUA (docs/adr/0036)"
        );
        match RtJournal::open(&start.dir, &start.log_config).await {
            Ok(j) => Some(j),
            Err(source) => {
                let _ = archive.close().await;
                let _ = log.close().await;
                let _ = ready.send((id, Err(HubStartError::Log { shard: id, source })));
                return Ok(());
            }
        }
    } else {
        None
    };
    let commits = Commits::start(log.clone());
    let anchors = Anchorer::start(
        start.hub_key.clone(),
        id,
        start.anchor_interval_ms,
        (log.clone(), archive.log.clone()),
        start.inlet.mesh.anchors.clone(),
    );
    let outbox = Outbox::start(id, &start.inlet.mesh.inboxes, start.outbox_messages_max);
    let mut task = ShardTask {
        id,
        shard_count: start.inlet.mesh.shard_count(),
        shard,
        log,
        archive,
        journal,
        journal_retaining: Rc::new(Cell::new(false)),
        clock: HubClock::default(),
        inlet: start.inlet,
        outbox,
        commits,
        outputs: Vec::new(),
        encoded: Vec::new(),
        replies: IdMap::default(),
        pushes: HashMap::new(),
        next_token: 0,
        local: VecDeque::new(),
        timer_at_ms: None,
        alarm: Alarm::start(),
        appended_last: None,
        log_failed: false,
        records_since_snapshot: 0,
        snapshot_every_records: start.snapshot_every_records,
        snapshot: None,
        snapshot_durable_ms: None,
        maintenance_busy: Rc::new(Cell::new(false)),
        draining: false,
        drain_done: None,
        failures: start.failures,
        space_low_seen: false,
        replies_sent: ReplyCounts::default(),
        segment_size_bytes: start.log_config.segment_size_bytes,
        log_syncs: start.log_config.durability != Durability::None,
        bulk_unwritten_bytes_max: start.bulk_unwritten_bytes_max,
        unawaited_commit_delay_ms: start.unawaited_commit_delay_ms,
        unawaited_commit_at_ms: None,
        rt_seen_at: None,
        bulk_seen_at: None,
        anchors,
    };
    let now_ms = task.clock.now_ms();
    let mut outputs = std::mem::take(&mut task.outputs);
    task.shard.recovered(now_ms, &mut outputs);
    task.execute_all(&mut outputs).await;
    task.outputs = outputs;
    task.feed_local().await;
    task.end_turn().await;
    let _ = ready.send((id, Ok(())));
    // Hub::start counts reports until every sender is gone: hold none while running.
    drop(ready);
    task.drive().await
}

/// One shard's driver state. Single-threaded: lives on its executor only.
struct ShardTask {
    id: u16,
    shard_count: u16,
    shard: Shard,
    log: Log,
    /// The history archive (its own log, committer and id index).
    archive: Archive,
    /// The rt journal (ADR 0036), when the hub keeps one.
    journal: Option<RtJournal>,
    /// A pass of the journal's retention runs.
    journal_retaining: Rc<Cell<bool>>,
    clock: HubClock,
    /// Dropped last (with the task): marks the shard closed, then empties its channels.
    inlet: Inlet,
    outbox: Outbox,
    commits: Rc<Commits>,
    /// Reused buffer of one step's outputs.
    outputs: Vec<Output>,
    /// Reused buffer of one record's encoding.
    encoded: Vec<u8>,
    /// Replies owed, by token: one per operation a session waits on.
    replies: IdMap<Token, PendingReply>,
    /// Push channels of subscriptions on this shard, by their reader.
    pushes: HashMap<ReaderId, flume::Sender<Message>>,
    next_token: Token,
    /// Inputs the driver makes for itself (messages to its own shard, leases
    /// given back); each derives from one step's outputs.
    local: VecDeque<Input>,
    /// When the shard wants its next `Tick`, ms.
    timer_at_ms: Option<u64>,
    /// Wakes the driver at `timer_at_ms`.
    alarm: Rc<Alarm>,
    /// The last offset appended and not yet asked to be committed.
    appended_last: Option<u64>,
    /// Most time appended records nobody awaits wait for a commit, ms (0:
    /// every turn commits what it appended; ADR 0025).
    unawaited_commit_delay_ms: u64,
    /// When the records appended and not yet asked for are committed
    /// unless an awaited record comes first (hub clock, ms).
    unawaited_commit_at_ms: Option<u64>,
    /// The log refused an append or a commit: nothing more is appended.
    log_failed: bool,
    records_since_snapshot: u64,
    snapshot_every_records: u64,
    snapshot: Option<PendingSnapshot>,
    /// When the last snapshot became durable (hub clock, ms); None before
    /// the first since start.
    snapshot_durable_ms: Option<u64>,
    /// A checkpoint and retention pass runs.
    maintenance_busy: Rc<Cell<bool>>,
    /// Client commands are refused (shutdown began).
    draining: bool,
    /// Told once settled after `Control::Drain`.
    drain_done: Option<flume::Sender<u16>>,
    /// Where a failed log is reported to the hub.
    failures: Arc<Failures>,
    /// The space-low state last logged.
    space_low_seen: bool,
    /// Replies sent, by kind and outcome (the operator's counters).
    replies_sent: ReplyCounts,
    /// Segment size of both logs, bytes (for the operator's log sizes).
    segment_size_bytes: u64,
    /// Both logs make each batch durable (`fdatasync` or `O_DSYNC`).
    log_syncs: bool,
    /// Unwritten log bytes above which bulk commands wait in their inbox
    /// (while rt commands come).
    bulk_unwritten_bytes_max: u64,
    /// When the rt inbox last gave a client command.
    rt_seen_at: Option<Instant>,
    /// When the bulk inbox last gave a command.
    bulk_seen_at: Option<Instant>,
    /// Signs the logs' chain heads (with a hub key only).
    anchors: Option<Rc<Anchorer>>,
}

impl ShardTask {
    /// Notes when the shard last got a real-time call. Only a call counts:
    /// the rt inbox also carries status reads, subscriptions and an rt
    /// provider's acks, which would hold bulk alone to the bound; a call's
    /// answer comes on its heels, within [`RT_QUIET_MS`] while calls keep
    /// coming. Peer messages do not count.
    fn rt_seen(&mut self, m: &Inbound) {
        if matches!(m, Inbound::Command { command, .. } if holds_bulk(command)) {
            self.rt_seen_at = Some(Instant::now());
        }
    }

    /// True while real-time calls and bulk commands both came in the last
    /// [`RT_QUIET_MS`]: the shard's core is contended, so the logs hand
    /// their dsync batch writes to an io-wq worker (ADR 0028).
    fn contended(&self) -> bool {
        both_recent(self.rt_seen_at, self.bulk_seen_at, Instant::now())
    }

    /// True while the log has room for more bulk work. Without rt commands
    /// in the last [`RT_QUIET_MS`], always (bulk alone writes full batches;
    /// the log's own bound on unwritten batches still holds it). Otherwise
    /// its unwritten bytes are under the bound, and this turn (which began
    /// with `unwritten_at_start`) added under half of it, so one write can
    /// run while the next batch fills.
    fn bulk_room(&self, unwritten_at_start: u64) -> bool {
        let rt_quiet = self
            .rt_seen_at
            .is_none_or(|at| at.elapsed() > Duration::from_millis(RT_QUIET_MS));
        rt_quiet
            || bulk_has_room(
                self.log.unwritten_bytes(),
                unwritten_at_start,
                self.bulk_unwritten_bytes_max,
            )
    }

    /// Feeds the shard what happened on this executor since the last turn.
    async fn settle_local(&mut self) {
        // The log keeps the durable end; the shard holds what it was told.
        let durable = self.log.durable_offset();
        if durable > self.shard.durable_offset() {
            self.feed(Input::Committed {
                durable_offset: durable,
            })
            .await;
            self.finish_snapshot();
        }
        if let Some(full) = self.commits.take_failure() {
            let cause = self.commits.failure_cause().unwrap_or_default();
            self.fail_storage(full, format!("shard log: {cause}"));
            self.feed_local().await;
        }
        self.settle_journal().await;
        for request_id in self.archive.settle() {
            self.feed(Input::Archived { request_id }).await;
        }
        self.append_anchors().await;
        if let Some(full) = self.archive.commits.take_failure() {
            // A failed history log is as fatal as a failed shard log: the
            // histories waiting on it stay in memory and in snapshots.
            let cause = self.archive.commits.failure_cause().unwrap_or_default();
            self.fail_storage(full, format!("history log: {cause}"));
            self.feed_local().await;
        }
        if let Some(at_ms) = self.timer_at_ms {
            if at_ms <= self.clock.now_ms() {
                self.timer_at_ms = None;
                self.alarm.spent(at_ms);
                self.feed(Input::Tick).await;
            }
        }
        if self.drain_done.is_some() && self.settled() {
            if let Some(done) = self.drain_done.take() {
                let _ = done.send(self.id);
            }
        }
    }

    /// True when nothing appended waits for a commit and no peer message waits.
    fn settled(&self) -> bool {
        self.appended_last.is_none()
            && self.local.is_empty()
            && self.commits.settled()
            && self.shard.durable_offset() >= self.log.durable_offset()
            && self.outbox.is_empty()
            && self.archive.settled()
    }

    /// Ends a turn: asks for what was appended to be committed (at once
    /// when something awaits it, else within `unawaited_commit_delay_ms`),
    /// starts a snapshot when one is due.
    async fn end_turn(&mut self) {
        // The audit bound's summaries first, so this turn's commit (or its
        // delay's alarm) covers them too, not a later turn's.
        self.flush_audit().await;
        let contended = self.contended();
        self.log.set_contended(contended);
        self.archive.log.set_contended(contended);
        self.want_commit();
        self.archive.end_turn();
        self.note_space();
        if self.records_since_snapshot >= self.snapshot_every_records
            && self.snapshot.is_none()
            && !self.log_failed
            && !self.maintenance_busy.get()
        {
            self.begin_snapshot().await;
        }
    }

    /// Asks for the appended records to be committed when something
    /// awaits one of them (a reply, an answer, a request to hand over),
    /// when the delay for unawaited ones is spent, or while draining.
    /// Otherwise they wait, bounded by that delay, for a commit that
    /// carries them: a call's request rides its answer's commit, the
    /// answer's delivery events the next call's (ADR 0025).
    fn want_commit(&mut self) {
        let Some(last) = self.appended_last else {
            self.unawaited_commit_at_ms = None;
            return;
        };
        let now_ms = self.clock.now_ms();
        let awaited = self
            .shard
            .awaited_last()
            .is_some_and(|a| self.commits.wanted_last().is_none_or(|w| a > w));
        let due = self.unawaited_commit_at_ms.is_some_and(|at| at <= now_ms);
        // `draining` covers a drain (`Control::Drain`) and a shutdown.
        if awaited || due || self.unawaited_commit_delay_ms == 0 || self.draining {
            self.appended_last = None;
            self.unawaited_commit_at_ms = None;
            self.commits.want(last);
            if let Some(j) = self.journal.as_mut() {
                j.want();
            }
        } else if self.unawaited_commit_at_ms.is_none() {
            let at_ms = now_ms + self.unawaited_commit_delay_ms;
            self.unawaited_commit_at_ms = Some(at_ms);
            self.alarm.set(at_ms);
        }
        // The alarm rings once for the earliest time set: the shard's own
        // tick may still be due after a commit's ring, and the reverse.
        if let Some(at_ms) = self.timer_at_ms {
            self.alarm.set(at_ms);
        }
        if let Some(at_ms) = self.unawaited_commit_at_ms {
            self.alarm.set(at_ms);
        }
    }

    /// True while either log of the shard has used its disk reserve.
    fn space_low(&self) -> bool {
        self.log.space_low() || self.archive.log.space_low()
    }

    /// Logs when the shard enters or leaves the space-low state.
    fn note_space(&mut self) {
        let low = self.space_low();
        if low == self.space_low_seen {
            return;
        }
        self.space_low_seen = low;
        // statvfs: a blocking call, but only at a change of state.
        let free_bytes = self.log.free_bytes();
        if low {
            tracing::warn!(
                shard = self.id,
                free_bytes,
                "disk space low: a log used its reserve; new requests are refused with STORAGE_FULL \
                 while deliveries, acks, answers and reads go on; free disk space and they are \
                 accepted again once the reserve is remade"
            );
        } else {
            tracing::warn!(
                shard = self.id,
                free_bytes,
                "disk space back: the reserve is remade; new requests are accepted again"
            );
        }
    }

    /// The log failed: tell the shard once; nothing is appended any more.
    /// A full disk (its reserve used up too) keeps the shard up for reads;
    /// any other failure is reported to the hub, which stops (ADR 0008).
    pub(super) fn fail_storage(&mut self, full: bool, cause: String) {
        if self.log_failed {
            return;
        }
        self.log_failed = true;
        self.local.push_back(Input::StorageFailed { full });
        if full {
            tracing::error!(
                shard = self.id,
                free_bytes = self.log.free_bytes(),
                %cause,
                "disk full and the reserve used up: the shard takes no more writes until a restart \
                 with free space; fetch, status and queue stats go on"
            );
        } else {
            tracing::error!(
                shard = self.id,
                %cause,
                "the shard's log failed: what waits is answered UNAVAILABLE and the hub stops"
            );
            self.failures.report(ShardFailure {
                shard: self.id,
                cause,
            });
        }
    }

    /// Handles a control message; true means shut down now.
    async fn control(&mut self, c: Control) -> bool {
        match c {
            Control::Disconnected { reader } => {
                self.pushes.remove(&reader);
                self.feed(Input::Disconnected { reader }).await;
                false
            }
            Control::Drain { done } => {
                self.draining = true;
                self.drain_done = Some(done);
                false
            }
            Control::Shutdown => true,
            Control::Spawn(make) => {
                lanes::spawn(Lane::Front, (make.0)()).detach();
                false
            }
            Control::Stats { reply } => {
                // The asker may have stopped waiting; nothing to do then.
                let _ = reply.try_send(self.stats());
                false
            }
        }
    }

    /// A copy of the shard's counters and stats now, for the operator.
    fn stats(&mut self) -> ShardStats {
        let now_ms = self.clock.now_ms();
        let queues = self
            .shard
            .queues_stats(now_ms)
            .map(|(queue, stats, waiting_bytes)| QueueEntry {
                queue: queue.clone(),
                stats,
                waiting_bytes,
                watch: self.shard.read_watch(queue, now_ms),
            })
            .collect();
        let sla = self
            .shard
            .sla()
            .kinds()
            .map(|(kind, counts)| (kind.clone(), counts.clone()))
            .collect();
        let report = |log: &Log, segment_size_bytes: u64| LogReport {
            stats: log.stats(),
            segment_size_bytes,
            syncs: self.log_syncs,
        };
        ShardStats {
            shard: self.id,
            counters: self.shard.counters().clone(),
            held: self.shard.held(),
            replies: self.replies_sent.clone(),
            queues,
            sla,
            log: report(&self.log, self.segment_size_bytes),
            history_log: report(&self.archive.log, self.segment_size_bytes),
            rt_journal_log: self
                .journal
                .as_ref()
                .map(|j| report(&j.log, j.segment_size_bytes)),
            log_failed: self.log_failed,
            draining: self.draining,
            space_low: self.space_low(),
            snapshot_age_ms: self.snapshot_durable_ms.map(|t| now_ms.saturating_sub(t)),
            records_since_snapshot: self.records_since_snapshot,
            lanes: lanes::usage(),
            rt_stages: rt_stages::read(),
            holds: crate::runtime::holds::read(),
        }
    }

    /// Handles an inbox message.
    async fn inbound(&mut self, m: Inbound) {
        match m {
            Inbound::Peer(msg) => self.feed(Input::Peer(msg)).await,
            Inbound::Command {
                caller,
                command,
                reader,
                reply,
                sent_at,
            } => {
                if let Err(e) = self.admit(&command) {
                    self.replies_sent.note(reply.kind(), Some(&e));
                    reply.refuse(e);
                    return;
                }
                let stepped = RtOp::of(&command).map(|op| {
                    rt_stages::note(op, Stage::Inbox, sent_at);
                    (op, Instant::now())
                });
                let token = self.new_token();
                self.replies.insert(
                    token,
                    PendingReply {
                        tx: reply,
                        reader,
                        subscribe: false,
                        stepped,
                    },
                );
                self.feed(Input::Command {
                    token,
                    caller,
                    command,
                })
                .await;
            }
            Inbound::Subscribe {
                caller,
                queue,
                credits,
                reader,
                push,
                reply,
            } => {
                let command = Command::Subscribe {
                    queue,
                    credits,
                    reader,
                };
                if let Err(e) = self.admit(&command) {
                    self.replies_sent.note(ReplyKind::Done, Some(&e));
                    let _ = reply.send(Err(e));
                    return;
                }
                self.pushes.insert(reader, push);
                let token = self.new_token();
                self.replies.insert(
                    token,
                    PendingReply {
                        tx: ReplyTo::Done(reply),
                        reader,
                        subscribe: true,
                        stepped: None,
                    },
                );
                self.feed(Input::Command {
                    token,
                    caller,
                    command,
                })
                .await;
            }
        }
    }

    /// Refuses a command the runtime must not hand to the shard now.
    fn admit(&self, command: &Command) -> Result<(), HubError> {
        if self.draining {
            return Err(HubError::Unavailable("the hub is shutting down".into()));
        }
        if matches!(command, Command::SendRequest(_) | Command::Call(_)) && self.space_low() {
            // Refused before anything is stored: the reserve's space is for
            // what drains the disk (deliveries, acks, answers).
            return Err(HubError::StorageFull);
        }
        if let Some((peer, waiting)) = self.outbox.congested_peer() {
            return Err(HubError::Unavailable(format!(
                "shard {} is overloaded: {waiting} messages wait for shard {peer}; retry later",
                self.id
            )));
        }
        // A record too large for the log is the shard's to refuse
        // (`ShardConfig::record_bytes_max`).
        Ok(())
    }

    fn new_token(&mut self) -> Token {
        self.next_token += 1;
        self.next_token
    }

    /// Steps the shard with `input`, then with every input that made.
    async fn feed(&mut self, input: Input) {
        self.step(input).await;
        self.feed_local().await;
    }

    /// Steps the shard with the inputs the driver made for itself.
    async fn feed_local(&mut self) {
        // Bounded: each local input comes from the outputs of finite work
        // (an answer to this shard's own queue, a lease given back), and
        // those make no further local inputs beyond one delivery each.
        while let Some(next) = self.local.pop_front() {
            self.step(next).await;
        }
    }

    /// One shard step at hub time, then its outputs, in order.
    async fn step(&mut self, input: Input) {
        let now_ms = self.clock.now_ms();
        let mut outputs = std::mem::take(&mut self.outputs);
        self.shard.step(now_ms, input, &mut outputs);
        self.execute_all(&mut outputs).await;
        self.outputs = outputs;
    }
}

/// Whether `command` makes the shard hold bulk to its unwritten bound for
/// [`RT_QUIET_MS`]: a real-time call, signed or not (ADR 0015, amended
/// 2026-12-04).
fn holds_bulk(command: &Command) -> bool {
    matches!(command.unsigned(), Command::Call(_))
}

/// True when a real-time call (`rt_at`) and a bulk command (`bulk_at`)
/// both came within [`RT_QUIET_MS`] before `now`.
fn both_recent(rt_at: Option<Instant>, bulk_at: Option<Instant>, now: Instant) -> bool {
    let recent = |at: Option<Instant>| {
        at.is_some_and(|at| now.saturating_duration_since(at) <= Duration::from_millis(RT_QUIET_MS))
    };
    recent(rt_at) && recent(bulk_at)
}

/// True when a bulk command may be read: the log holds under `max` bytes
/// unwritten and the turn (begun at `unwritten_at_start`) added under half
/// of `max` (rounded up, so a bound of one byte still takes one command
/// per write).
fn bulk_has_room(unwritten: u64, unwritten_at_start: u64, max: u64) -> bool {
    assert!(max > 0, "a zero bound would hold bulk for ever");
    unwritten < max && unwritten.saturating_sub(unwritten_at_start) < max.div_ceil(2)
}

#[cfg(test)]
mod tests {
    use super::{both_recent, bulk_has_room, holds_bulk, RT_QUIET_MS};
    use gonets_types::{Command, DataKindId, MessageId, NewRequest, QueueId};
    use std::time::{Duration, Instant};

    #[test]
    fn given_rt_and_bulk_when_both_came_lately_then_contended_else_not() {
        let now = Instant::now() + Duration::from_secs(1);
        let lately = Some(now - Duration::from_millis(RT_QUIET_MS / 2));
        let long_ago = Some(now - Duration::from_millis(RT_QUIET_MS * 2));
        assert!(both_recent(lately, lately, now));
        assert!(!both_recent(lately, None, now), "rt alone");
        assert!(!both_recent(None, lately, now), "bulk alone");
        assert!(!both_recent(lately, long_ago, now), "bulk stopped");
        assert!(!both_recent(long_ago, lately, now), "calls stopped");
    }

    #[test]
    fn given_log_under_the_bound_when_turn_added_under_half_then_room() {
        assert!(bulk_has_room(0, 0, 512));
        assert!(bulk_has_room(300, 100, 512));
    }

    #[test]
    fn given_log_at_the_bound_when_asked_then_no_room() {
        assert!(!bulk_has_room(512, 512, 512));
        assert!(!bulk_has_room(600, 0, 512));
    }

    #[test]
    fn given_turn_added_half_the_bound_when_asked_then_no_room_so_a_write_overlaps() {
        assert!(!bulk_has_room(356, 100, 512));
    }

    #[test]
    fn given_one_byte_bound_when_log_empty_then_one_command_fits() {
        assert!(bulk_has_room(0, 0, 1));
        assert!(!bulk_has_room(1, 0, 1));
    }

    #[test]
    fn given_a_write_ended_during_the_turn_when_asked_then_counted_from_what_is_left() {
        // Durable bytes leave `unwritten`: below the turn's start is no addition.
        assert!(bulk_has_room(50, 400, 512));
    }

    #[test]
    fn given_bulk_drain_commands_when_seen_then_only_a_call_holds_bulk() {
        let id = MessageId::new(1, 0, 1);
        let queue = QueueId::Requests(DataKindId::new("urn:k"));
        let call = Command::Call(NewRequest::new("urn:k", "passport"));
        assert!(holds_bulk(&call));
        let ack = Command::Ack {
            queue: queue.clone(),
            id,
            reader: 1,
        };
        assert!(
            !holds_bulk(&ack),
            "an ack is no call, whichever inbox it comes by"
        );
        assert!(!holds_bulk(&Command::Status { id }));
        let send = Command::SendRequest(NewRequest::new("urn:k", "x"));
        assert!(!holds_bulk(&send));
    }
}
