//! The embedded hub: starts one glommio executor thread per shard, waits for
//! every shard to recover its log, hands out sessions, and stops them all.

use crate::registry::Registry;
use crate::runtime::config::HubConfig;
use crate::runtime::lanes::{self, Lane};
use crate::runtime::mesh::{
    unavailable_shard, Control, Inbound, Inlet, LocalTask, Mesh, SpawnTask,
};
use crate::runtime::session::Session;
use crate::runtime::shard_task::{self, ReadySender, ShardStart};
use crate::runtime::stall_report::StallReport;
use crate::runtime::start_error::HubStartError;
use crate::runtime::stats::ShardStats;
use glommio::{LocalExecutorBuilder, Placement};
use gonets_storage::durable_file;
use gonets_types::error::HubError;
use gonets_types::ids::ParticipantId;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the drain wait looks for shards that closed without answering.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Exit status of `gonets serve` when a shard's log failed (a write,
/// `fdatasync` or segment roll error): `EX_IOERR` of sysexits.h. The service
/// manager restarts the process and recovery decides what is on disk
/// (ADR 0008).
pub const EXIT_LOG_FAILED: i32 = 74;
/// How long a hub stopping after a failed log lets replies already sent reach their sockets.
const FAILURE_REPLY_GRACE: Duration = Duration::from_millis(200);

/// A shard whose log failed: it answered what waited with `Unavailable` and
/// takes no more work; the hub should stop ([`Hub::exit_after_failure`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardFailure {
    /// The shard.
    pub shard: u16,
    /// What failed, as the log reported it.
    pub cause: String,
}

/// Where shards report a failed log; the first report is kept.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    first: Mutex<Option<ShardFailure>>,
    reported: Condvar,
}

impl Failures {
    /// Records `failure` unless an earlier one is held; wakes waiters.
    pub(crate) fn report(&self, failure: ShardFailure) {
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(failure);
        }
        self.reported.notify_all();
    }

    fn get(&self) -> Option<ShardFailure> {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn wait(&self, timeout: Duration) -> Option<ShardFailure> {
        let first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        let (first, _) = self
            .reported
            .wait_timeout_while(first, timeout, |f| f.is_none())
            .unwrap_or_else(|p| p.into_inner());
        first.clone()
    }
}

/// A running hub: one thread, executor and log per shard.
///
/// ```
/// use futures_lite::future::block_on;
/// use gonets_engine::{Hub, HubConfig};
/// use gonets_types::{NewRequest, QueueId, DataKindId, ParticipantId};
/// use std::time::Duration;
///
/// let dir = tempfile::tempdir()?;
/// let mut config = HubConfig::new(dir.path());   // one shard per core, embedded registry
/// config.shards = 2;
/// let hub = Hub::start(config)?;                 // returns once every shard replayed its log
///
/// let consumer = hub.session("MFC")?;            // sessions: Clone + Send + Sync
/// let provider = hub.session("FNS")?;
/// let kind = "urn:gonets:fns:egrul-extract:1";
///
/// let accepted = block_on(consumer.send_request(NewRequest::new(kind, "INN 7707083893")))?;
/// let requests = QueueId::Requests(DataKindId::new(kind));
/// for request in block_on(provider.fetch(requests, 10, Duration::from_secs(1)))? {
///     block_on(provider.send_response(request.id, "extract ..."))?;
/// }
/// let answers = QueueId::Answers(ParticipantId::new("MFC"));
/// let answer = block_on(consumer.fetch(answers, 10, Duration::from_secs(1)))?.remove(0);
/// assert_eq!(answer.reply_to, Some(accepted.id));
/// block_on(consumer.ack(&answer))?;
///
/// hub.shutdown()?;                               // snapshot, close every log, join threads
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Hub {
    mesh: Arc<Mesh>,
    threads: Vec<Option<JoinHandle<Result<(), String>>>>,
    /// Each shard thread sends its number here as it ends (even by a panic).
    exits: mpsc::Receiver<u16>,
    /// Shards whose log failed.
    failures: Arc<Failures>,
    drain_timeout: Duration,
    drop_wait: Duration,
    stopped: bool,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("shards", &self.mesh.shard_count())
            .field("stopped", &self.stopped)
            .finish()
    }
}

/// A cheap, shareable handle on a running hub: makes sessions.
#[derive(Clone, Debug)]
pub struct HubHandle {
    mesh: Arc<Mesh>,
}

impl HubHandle {
    /// A session for a registered participant; `Unauthenticated` for anyone else.
    pub fn session(&self, participant_id: &str) -> Result<Session, HubError> {
        session_on(&self.mesh, participant_id)
    }

    /// Shards in the hub.
    pub fn shard_count(&self) -> u16 {
        self.mesh.shard_count()
    }

    /// The registry in force.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.mesh.registry
    }

    /// The chain anchors the shards signed at or after `since_ms` (since
    /// the hub started; at most `ANCHORS_KEPT_MAX`, the newest), oldest
    /// first. The logs hold every one (`gonets anchors`).
    pub fn anchors(&self, since_ms: u64) -> Vec<gonets_trust::Anchor> {
        self.mesh.anchors.since(since_ms)
    }

    /// The most credits one subscription may hold.
    pub fn subscription_credits_max(&self) -> u32 {
        self.mesh.subscription_credits_max
    }

    /// Seconds the attachment store has waited on its write pace since
    /// the hub started (`gonets_attachment_write_paced_seconds_total`).
    pub fn attachment_write_paced_seconds(&self) -> f64 {
        self.mesh.attachments.write_paced_seconds()
    }

    /// True once shutdown began: front ends stop accepting.
    pub fn stopping(&self) -> bool {
        self.mesh.stopped()
    }

    /// Asks shard `shard` for a copy of its counters and stats, by a
    /// message on its control channel (never a shared lock): the shard
    /// answers on its own thread between turns. Works from any executor
    /// or thread; `NotFound` for a shard the hub does not have,
    /// `Unavailable` once the shard has stopped.
    pub async fn shard_stats(&self, shard: u16) -> Result<ShardStats, HubError> {
        let control = self
            .mesh
            .controls
            .get(usize::from(shard))
            .ok_or(HubError::NotFound)?;
        if self.mesh.closed(shard) {
            return Err(unavailable_shard(shard));
        }
        let (reply, answer) = flume::bounded(1);
        control
            .send(Control::Stats { reply })
            .map_err(|_| unavailable_shard(shard))?;
        if self.mesh.closed(shard) {
            // Sent as the shard closed: it may never be read (see `Inlet`).
            return answer.try_recv().map_err(|_| unavailable_shard(shard));
        }
        answer
            .recv_async()
            .await
            .map_err(|_| unavailable_shard(shard))
    }
}

fn session_on(mesh: &Arc<Mesh>, participant_id: &str) -> Result<Session, HubError> {
    if mesh.stopped() {
        return Err(HubError::Unavailable("the hub is shut down".into()));
    }
    let participant = ParticipantId::new(participant_id);
    if mesh.registry.participant(&participant).is_none() {
        return Err(HubError::Unauthenticated);
    }
    Ok(Session::new(mesh.clone(), participant))
}

/// Sends the shard's number when its thread ends, however it ends.
struct ExitNotice {
    shard: u16,
    tx: mpsc::Sender<u16>,
}

impl Drop for ExitNotice {
    fn drop(&mut self) {
        let _ = self.tx.send(self.shard);
    }
}

/// The log directory of shard `shard`.
/// How long a shard runs tasks before it looks at I/O completions, ms.
const PREEMPT_TIMER_MS: u64 = 1;

fn shard_dir(data_dir: &Path, shard: u16) -> PathBuf {
    data_dir.join(format!("shard-{shard}"))
}

/// Random bits for this boot's message ids (ids must never repeat across restarts).
fn boot_nonce(shard: u16) -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut hasher = blake3::Hasher::new();
    hasher.update(&nanos.to_le_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    hasher.update(&shard.to_le_bytes());
    let hash = hasher.finalize();
    let b = hash.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// File in the data directory that records its shard count.
pub(crate) const SHARD_COUNT_FILE: &str = "shard-count";

/// The highest shard whose log directory holds a segment file, if any.
fn highest_written_shard(data_dir: &Path) -> Result<Option<u32>, std::io::Error> {
    let mut highest = None;
    // Bounded by the directory's entries (and each shard directory's).
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.strip_prefix("shard-"))
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        for file in std::fs::read_dir(entry.path())? {
            if file?.file_name().to_string_lossy().ends_with(".seg") {
                highest = highest.max(Some(n));
                break;
            }
        }
    }
    Ok(highest)
}

/// Creates the data directory and checks that it was made with this shard
/// count (recorded in [`SHARD_COUNT_FILE`] on first start): queues are
/// placed by a hash modulo the count, so logs written with one count would
/// be routed wrongly with another.
fn prepare_data_dir(config: &HubConfig) -> Result<(), HubStartError> {
    let data_dir = &config.data_dir;
    let dir_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HubStartError::DataDir { path, source }
    };
    let mismatch = |found: String| {
        HubStartError::Config(format!(
            "{} was made with {found} but the hub is configured with {} shards; queues are \
             placed by shard count, so a data directory keeps the count it was made with",
            data_dir.display(),
            config.shards
        ))
    };
    durable_file::create_dir_all(data_dir).map_err(dir_error(data_dir))?;
    let count_path = data_dir.join(SHARD_COUNT_FILE);
    match std::fs::read_to_string(&count_path) {
        Ok(text) => {
            let recorded = text.trim();
            if recorded.parse::<u16>().ok() != Some(config.shards) {
                return Err(mismatch(format!(
                    "{recorded:?} shards ({SHARD_COUNT_FILE})"
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // First start, or a directory from before the count was recorded:
            // a written log beyond the count is a sure mismatch.
            let highest = highest_written_shard(data_dir).map_err(dir_error(data_dir))?;
            if let Some(n) = highest.filter(|n| *n >= u32::from(config.shards)) {
                return Err(mismatch(format!("a log for shard {n}")));
            }
            let text = format!("{}\n", config.shards);
            durable_file::write(&count_path, text.as_bytes(), 0o644)
                .map_err(dir_error(&count_path))?;
        }
        Err(e) => return Err(dir_error(&count_path)(e)),
    }
    for shard in 0..config.shards {
        let dir = shard_dir(data_dir, shard);
        durable_file::create_dir_all(&dir).map_err(dir_error(&dir))?;
    }
    Ok(())
}

/// One shard's receiving ends: its rt and bulk inboxes (bounded) and its
/// control channel.
struct ShardReceivers {
    inbox: flume::Receiver<Inbound>,
    bulk: flume::Receiver<Inbound>,
    control: flume::Receiver<Control>,
}

/// The mesh every shard and session shares: two bounded inboxes (rt, bulk)
/// and one control channel per shard; gives the receiving ends, in shard order.
fn build_mesh(
    config: &HubConfig,
    attachments: crate::runtime::attachments::Attachments,
    rt_recent: Arc<crate::runtime::rt_recent::RtRecent>,
) -> (Arc<Mesh>, Vec<ShardReceivers>) {
    let n = config.shards;
    let mut inboxes = Vec::with_capacity(usize::from(n));
    let mut bulk_inboxes = Vec::with_capacity(usize::from(n));
    let mut controls = Vec::with_capacity(usize::from(n));
    let mut receivers = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let (inbox_tx, inbox) = flume::bounded::<Inbound>(config.inbox_capacity);
        let (bulk_tx, bulk) = flume::bounded::<Inbound>(config.inbox_capacity);
        let (control_tx, control) = flume::unbounded::<Control>();
        inboxes.push(inbox_tx);
        bulk_inboxes.push(bulk_tx);
        controls.push(control_tx);
        receivers.push(ShardReceivers {
            inbox,
            bulk,
            control,
        });
    }
    let mesh = Arc::new(Mesh::new(
        inboxes,
        bulk_inboxes,
        controls,
        config.registry.clone(),
        config.subscription_credits_max,
        attachments,
        rt_recent,
    ));
    (mesh, receivers)
}

impl Hub {
    /// Starts every shard and returns once each has recovered its log.
    /// Blocks the calling thread meanwhile (do not call it on a reactor).
    pub fn start(mut config: HubConfig) -> Result<Hub, HubStartError> {
        config.validate()?;
        // glommio opens directories through io_uring relative to no working
        // directory: a relative data directory failed every history-index
        // job ("Bad file descriptor") while the logs, opened by path, worked.
        config.data_dir =
            std::path::absolute(&config.data_dir).map_err(|source| HubStartError::DataDir {
                path: config.data_dir.clone(),
                source,
            })?;
        prepare_data_dir(&config)?;
        let rt_recent = Arc::new(crate::runtime::rt_recent::RtRecent::default());
        let attachments = crate::runtime::attachments::Attachments::start(
            &crate::runtime::attachments::attachments_dir(&config.data_dir),
            config.shard.retention_ms,
            crate::runtime::attachments::WritePace {
                bytes_per_s: config.attachment_write_bytes_per_s,
                beside_rt_bytes_per_s: config.attachment_beside_rt_write_bytes_per_s,
            },
            rt_recent.clone(),
        )
        .map_err(HubStartError::Attachments)?;
        let (mesh, receivers) = build_mesh(&config, attachments, rt_recent);
        let (ready_tx, ready_rx) = mpsc::channel();
        let (exit_tx, exits) = mpsc::channel();
        let mut hub = Hub {
            mesh,
            threads: Vec::with_capacity(usize::from(config.shards)),
            exits,
            failures: Arc::new(Failures::default()),
            drain_timeout: Duration::from_millis(config.drain_timeout_ms),
            drop_wait: Duration::from_millis(config.drop_wait_ms),
            stopped: false,
        };
        let mut first_error = hub
            .spawn_shards(&config, receivers, &ready_tx, &exit_tx)
            .err();
        drop(ready_tx);
        if first_error.is_none() {
            first_error = hub.wait_ready(&ready_rx).err();
        }
        match first_error {
            None => Ok(hub),
            Some(e) => {
                // Shards already running stop cleanly; Drop does not wait again.
                let _ = hub.stop(None);
                Err(e)
            }
        }
    }

    /// Starts one thread per shard, each owning its inbox and control
    /// receivers; stops at the first thread that cannot be made.
    fn spawn_shards(
        &mut self,
        config: &HubConfig,
        receivers: Vec<ShardReceivers>,
        ready_tx: &ReadySender,
        exit_tx: &mpsc::Sender<u16>,
    ) -> Result<(), HubStartError> {
        let n = config.shards;
        let io_memory = config.io_memory_bytes();
        for (i, r) in receivers.into_iter().enumerate() {
            let shard = i as u16;
            let start = ShardStart {
                id: shard,
                dir: shard_dir(&config.data_dir, shard),
                log_config: config.log.clone(),
                shard_config: config
                    .shard
                    .shard_config(shard, n, boot_nonce(shard), &config.log),
                registry: config.registry.clone(),
                inlet: Inlet {
                    shard,
                    inbox: r.inbox,
                    bulk: r.bulk,
                    control: r.control,
                    mesh: self.mesh.clone(),
                },
                snapshot_every_records: config.snapshot_every_records,
                index_table_entries_max: config.index_table_entries_max,
                outbox_messages_max: config.outbox_messages_max,
                bulk_unwritten_bytes_max: config.bulk_unwritten_bytes_max,
                unawaited_commit_delay_ms: config.unawaited_commit_delay_ms,
                failures: self.failures.clone(),
                hub_key: config.hub_key.clone(),
                anchor_interval_ms: config.anchor_interval_ms,
            };
            let placement = match &config.pin_cores {
                Some(cores) => Placement::Fixed(cores[i]),
                None => Placement::Unbound,
            };
            let notice = ExitNotice {
                shard,
                tx: exit_tx.clone(),
            };
            let ready = ready_tx.clone();
            let io_workers = config.io_worker_cores.clone();
            let stall_report_ms = config.stall_report_ms;
            let spawned = std::thread::Builder::new()
                .name(format!("gonets-shard-{shard}"))
                .spawn(move || {
                    let threads = ShardThread {
                        io_workers,
                        io_memory,
                        stall_report_ms,
                    };
                    shard_thread(start, placement, threads, ready, notice)
                });
            match spawned {
                Ok(handle) => self.threads.push(Some(handle)),
                Err(e) => {
                    return Err(HubStartError::Thread {
                        shard,
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Waits until every started shard recovered its log; the first error
    /// a shard reports (or a thread that ended while starting) ends the wait.
    fn wait_ready(
        &self,
        ready_rx: &mpsc::Receiver<(u16, Result<(), HubStartError>)>,
    ) -> Result<(), HubStartError> {
        // Bounded: one report per started thread; a thread that dies first
        // drops its sender, and once all are gone `recv` fails.
        let mut ready_count = 0;
        while ready_count < self.threads.len() {
            match ready_rx.recv() {
                Ok((_, Ok(()))) => ready_count += 1,
                Ok((_, Err(e))) => return Err(e),
                Err(_) => {
                    return Err(HubStartError::Thread {
                        shard: ready_count as u16,
                        reason: "a shard thread ended while starting (see its panic message)"
                            .into(),
                    })
                }
            }
        }
        Ok(())
    }

    /// A session for a registered participant; `Unauthenticated` for anyone else.
    pub fn session(&self, participant_id: &str) -> Result<Session, HubError> {
        session_on(&self.mesh, participant_id)
    }

    /// Shards in the hub.
    pub fn shard_count(&self) -> u16 {
        self.mesh.shard_count()
    }

    /// A handle that makes sessions, for front ends running beside the hub.
    pub fn handle(&self) -> HubHandle {
        HubHandle {
            mesh: self.mesh.clone(),
        }
    }

    /// Runs `make(shard, handle)` on every shard's executor thread and
    /// spawns the task it returns there (a network front end: its
    /// connections then live on the core that owns the shard). Tasks end
    /// when they return or when their shard stops.
    pub fn spawn_on_shards<F>(&self, make: F) -> Result<(), HubError>
    where
        F: Fn(u16, HubHandle) -> LocalTask + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        for (shard, control) in self.mesh.controls.iter().enumerate() {
            let make = make.clone();
            let handle = self.handle();
            let shard = shard as u16;
            let task = SpawnTask(Box::new(move || make(shard, handle)));
            control
                .send(Control::Spawn(task))
                .map_err(|_| HubError::Unavailable(format!("shard {shard} has stopped")))?;
        }
        Ok(())
    }

    /// The registry in force.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.mesh.registry
    }

    /// The first shard whose log failed, if one did. Such a shard has
    /// answered what waited with `Unavailable` and takes no more work; the
    /// process should stop so that a restart recovers the log (ADR 0008).
    pub fn failure(&self) -> Option<ShardFailure> {
        self.failures.get()
    }

    /// Waits up to `timeout` for a shard's log to fail; the first failure.
    pub fn wait_failure(&self, timeout: Duration) -> Option<ShardFailure> {
        self.failures.wait(timeout)
    }

    /// After a shard's log failed: logs it at ERROR, stops every shard
    /// (bounded by the drop wait) and ends the process with
    /// [`EXIT_LOG_FAILED`], so that the service manager restarts it and
    /// recovery runs.
    pub fn exit_after_failure(mut self, failure: &ShardFailure) -> ! {
        tracing::error!(
            shard = failure.shard,
            cause = %failure.cause,
            exit_code = EXIT_LOG_FAILED,
            "shard {}'s log failed ({}); stopping the hub so that a restart recovers it",
            failure.shard,
            failure.cause
        );
        // Lets the `Unavailable` replies of what waited reach the sockets.
        std::thread::sleep(FAILURE_REPLY_GRACE);
        let wait = self.drop_wait;
        if let Err(e) = self.stop(Some(wait)) {
            tracing::error!(error = %e, "stopping after the log failure");
        }
        std::process::exit(EXIT_LOG_FAILED)
    }

    /// Stops every shard: refuse new operations, let peer messages settle,
    /// commit, snapshot, close every log, join the threads. Sessions still
    /// held answer `Unavailable` afterwards.
    pub fn shutdown(mut self) -> Result<(), HubError> {
        self.stop(None)
    }

    /// Stops the shards; waits for their threads up to `wait` (`None`: as long as it takes).
    fn stop(&mut self, wait: Option<Duration>) -> Result<(), HubError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        self.mesh.stop();
        self.drain();
        for control in &self.mesh.controls {
            let _ = control.send(Control::Shutdown);
        }
        let until = wait.map(|w| Instant::now() + w);
        let mut problems = Vec::new();
        let mut ended = vec![false; self.threads.len()];
        // Bounded by the number of threads (each sends one exit notice).
        for _ in 0..self.threads.len() {
            let got = match until {
                None => self.exits.recv().ok(),
                Some(t) => self
                    .exits
                    .recv_timeout(t.saturating_duration_since(Instant::now()))
                    .ok(),
            };
            match got {
                Some(shard) => ended[usize::from(shard)] = true,
                None => break,
            }
        }
        for (shard, handle) in self.threads.iter_mut().enumerate() {
            if !ended[shard] {
                if handle.is_some() {
                    problems.push(format!(
                        "shard {shard} did not stop in time; its thread is left running"
                    ));
                }
                continue;
            }
            let Some(h) = handle.take() else { continue };
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(e),
                Err(panic) => {
                    problems.push(format!("shard {shard} panicked: {}", panic_text(&panic)))
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            for p in &problems {
                tracing::error!("{p}");
            }
            Err(HubError::Unavailable(problems.join("; ")))
        }
    }
}

impl Hub {
    /// Asks every shard to refuse new commands and settle its peer traffic;
    /// waits until each settled or closed, at most the drain timeout.
    fn drain(&self) {
        let n = usize::from(self.mesh.shard_count());
        let (done_tx, done_rx) = flume::unbounded();
        for control in &self.mesh.controls {
            let _ = control.send(Control::Drain {
                done: done_tx.clone(),
            });
        }
        drop(done_tx);
        let mut settled = vec![false; n];
        let until = Instant::now() + self.drain_timeout;
        // Bounded by the drain timeout.
        while Instant::now() < until {
            for (shard, s) in settled.iter_mut().enumerate() {
                *s |= self.mesh.closed(shard as u16);
            }
            if settled.iter().all(|s| *s) {
                return;
            }
            match done_rx.recv_timeout(DRAIN_POLL) {
                Ok(shard) => settled[usize::from(shard)] = true,
                Err(flume::RecvTimeoutError::Timeout) => {}
                Err(flume::RecvTimeoutError::Disconnected) => return,
            }
        }
        tracing::warn!("shutdown: not every shard settled within the drain timeout");
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // The same orderly stop as `shutdown`, but never waiting without bound.
        let _ = self.stop(Some(self.drop_wait));
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// How a shard's executor thread is set up, besides where it runs.
struct ShardThread {
    /// CPUs of its io-wq workers (ADR 0024), if not its own.
    io_workers: Option<Vec<usize>>,
    /// glommio's registered I/O memory, bytes.
    io_memory: usize,
    /// Stall reports past this many ms over budget (ADR 0031), if on.
    stall_report_ms: Option<u64>,
}

/// The body of a shard thread: its executor, then the shard until shutdown.
fn shard_thread(
    start: ShardStart,
    placement: Placement,
    threads: ShardThread,
    ready: ReadySender,
    _notice: ExitNotice,
) -> Result<(), String> {
    let shard = start.id;
    let where_to = match &placement {
        Placement::Fixed(core) => format!("pinned to core {core}"),
        _ => "unpinned".to_string(),
    };
    let ShardThread {
        io_workers,
        io_memory,
        stall_report_ms,
    } = threads;
    let stall_report = stall_report_ms
        .map(|ms| Box::new(StallReport::new(shard, ms)) as Box<dyn glommio::StallDetectionHandler>);
    let executor = LocalExecutorBuilder::new(placement)
        .name(&format!("gonets-shard-{shard}"))
        .io_memory(io_memory)
        .detect_stalls(stall_report)
        // glommio reaps I/O completions only when the run queue empties or
        // this timer fires (100 ms by default). Under steady traffic the
        // driver always has work, so fdatasync completions (and every reply
        // waiting on them) sat for up to 100 ms: rt p99 was 50-130 ms.
        .preempt_timer(Duration::from_millis(PREEMPT_TIMER_MS))
        .make();
    match executor {
        // The driver runs in the rt lane; the log flusher, committers and
        // outbox drainers it starts run there too (glommio spawns into the
        // current queue).
        Ok(ex) => ex.run(async move {
            if let Some(cores) = io_workers {
                // Before the log opens, so no worker has run on the shard's core.
                if let Err(e) = glommio::executor().set_io_worker_cpus(&cores) {
                    let reason = e.to_string();
                    let _ = ready.send((
                        shard,
                        Err(HubStartError::IoWorkers {
                            shard,
                            cores,
                            reason,
                        }),
                    ));
                    return Ok(());
                }
            }
            lanes::open_on_this_executor();
            lanes::spawn(Lane::Rt, shard_task::run(start, ready)).await
        }),
        Err(e) => {
            let _ = ready.send((
                shard,
                Err(HubStartError::Executor {
                    shard,
                    placement: where_to,
                    reason: e.to_string(),
                }),
            ));
            Ok(())
        }
    }
}
