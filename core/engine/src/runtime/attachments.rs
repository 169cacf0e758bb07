//! The hub's attachment store on a thread of its own (docs/adr/0022).
//!
//! Attachments are large (up to a GiB each) and their chunks are written
//! and synced with plain blocking file calls; none of that may run on a
//! shard's reactor (the hot-path rule) nor pass through a shard's log or
//! memory. So one thread owns the [`AttachmentStore`] and runs the jobs
//! sessions send it over a bounded channel, one at a time, in the order
//! they came; between jobs, and at least every [`SWEEP_INTERVAL_MS`], it
//! deletes abandoned uploads and attachments whose messages' retention
//! ended. A session awaits a job's result on a channel of its own, so any
//! runtime's task can use it without blocking its thread.

use crate::runtime::rt_recent::RtRecent;
use gonets_storage::{
    AttachmentError, AttachmentLimits, AttachmentStore, UploadId as StoreUpload, WriteGate,
    WRITEBACK_PIECE_BYTES,
};
use gonets_types::{AttachmentBytes, AttachmentRef, Digest, HubError, UploadId, UploadState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Jobs waiting for the store at most; a sender past it waits for room
/// (back-pressure on uploaders, never an unbounded queue). With chunks of
/// at most 4 MiB this bounds the bytes queued for the store at 64 MiB.
pub const ATTACHMENT_JOBS_MAX: usize = 16;
/// How often the store is swept for abandoned uploads and expired
/// attachments, ms.
pub const SWEEP_INTERVAL_MS: u64 = 60_000;

/// A job for the store's thread: it runs on the store and sends its own
/// result back. `Sync` too, so a future that waits to send one can be
/// shared (an HTTP body streamed from pieces must be).
type Run = Box<dyn FnOnce(&mut AttachmentStore) + Send + Sync>;

/// The handle sessions use: cheap to clone, every call a job on the
/// store's thread.
#[derive(Clone, Debug)]
pub struct Attachments {
    jobs: flume::Sender<Run>,
    /// How long past its deadline a message's attachments are kept: the
    /// logs' retention (`ShardTuning::retention_ms`).
    retention_ms: u64,
    /// Nanoseconds the store's thread has waited on its pace since the
    /// hub started (the operator's metric).
    paced_ns: Arc<AtomicU64>,
}

/// How fast the store may write chunks, bytes a second (0: as fast as the
/// disk takes them). Every `fdatasync` of a shard's log flushes the
/// device's cache, which on a virtual disk holds whatever the store wrote
/// since the last one: unpaced, a gigabyte upload made rt commits wait for
/// megabytes each (bench/RESULTS.md, "Issue 19: attachments"). The pace
/// spaces every piece of a chunk ([`WRITEBACK_PIECE_BYTES`]), so a flush
/// finds at most about one piece of the store's ahead of it.
#[derive(Clone, Copy, Debug)]
pub struct WritePace {
    /// Bytes a second at all times, 0 for no pace.
    pub bytes_per_s: u64,
    /// Bytes a second while real-time calls come ([`RtRecent`]), 0 for no
    /// pace of its own; the lower of the two holds then.
    pub beside_rt_bytes_per_s: u64,
}

impl WritePace {
    /// The pace in force, bytes a second (0: none).
    fn now(self, rt_recent: bool) -> u64 {
        let rt = if rt_recent {
            self.beside_rt_bytes_per_s
        } else {
            0
        };
        match (self.bytes_per_s, rt) {
            (0, p) | (p, 0) => p,
            (a, b) => a.min(b),
        }
    }
}

/// The store's [`WriteGate`]: paces each piece as [`WritePace`] says.
struct Pacer {
    pace: WritePace,
    rt: Arc<RtRecent>,
    /// When the next piece may go.
    next_write_at: Instant,
    /// Where the time waited is added up ([`Attachments::write_paced_seconds`]).
    paced_ns: Arc<AtomicU64>,
}

impl WriteGate for Pacer {
    fn before_write(&mut self, bytes: usize) {
        assert!(bytes <= WRITEBACK_PIECE_BYTES);
        let bytes_per_s = self.pace.now(self.rt.recent());
        let waited = paced(&mut self.next_write_at, bytes as u64, bytes_per_s);
        if !waited.is_zero() {
            let ns = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
            self.paced_ns.fetch_add(ns, Relaxed);
        }
    }
}

/// Hub time, ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

impl Attachments {
    /// Opens (recovering) the store in `dir` and starts its thread; its
    /// writes go at `pace`, by whether `rt` says real-time calls come.
    pub fn start(
        dir: &Path,
        retention_ms: u64,
        pace: WritePace,
        rt: Arc<RtRecent>,
    ) -> Result<Attachments, String> {
        let mut store = AttachmentStore::open(dir, AttachmentLimits::default(), now_ms())
            .map_err(|e| format!("attachment store {}: {e}", dir.display()))?;
        let paced_ns = Arc::new(AtomicU64::new(0));
        store.set_write_gate(Box::new(Pacer {
            pace,
            rt,
            next_write_at: Instant::now(),
            paced_ns: paced_ns.clone(),
        }));
        let (jobs, inbox) = flume::bounded::<Run>(ATTACHMENT_JOBS_MAX);
        std::thread::Builder::new()
            .name("gonets-attachments".into())
            .spawn(move || serve(store, inbox))
            .map_err(|e| format!("attachment store thread: {e}"))?;
        Ok(Attachments {
            jobs,
            retention_ms,
            paced_ns,
        })
    }

    /// Seconds the store has waited on its write pace since the hub
    /// started: how much uploads yielded (`[attachments]` paces).
    pub fn write_paced_seconds(&self) -> f64 {
        self.paced_ns.load(Relaxed) as f64 / 1e9
    }

    /// Runs `job` on the store's thread and waits for its result.
    async fn run<T: Send + Sync + 'static>(
        &self,
        job: impl FnOnce(&mut AttachmentStore) -> Result<T, AttachmentError> + Send + Sync + 'static,
    ) -> Result<T, HubError> {
        let (tx, rx) = flume::bounded(1);
        let run: Run = Box::new(move |store| {
            let _ = tx.send(job(store));
        });
        self.jobs.send_async(run).await.map_err(|_| stopped())?;
        match rx.recv_async().await {
            Ok(result) => result.map_err(hub_error),
            Err(_) => Err(stopped()),
        }
    }

    /// Starts an upload of `size_bytes` for `owner`, within `size_bytes_max`.
    pub async fn begin(
        &self,
        owner: &str,
        size_bytes: u64,
        size_bytes_max: u64,
    ) -> Result<UploadState, HubError> {
        let owner = owner.to_owned();
        self.run(move |s| s.begin(&owner, size_bytes, size_bytes_max, now_ms()))
            .await
            .map(state)
    }

    /// One chunk, durable when this returns.
    pub async fn chunk(
        &self,
        owner: &str,
        upload: UploadId,
        offset: u64,
        crc32c: u32,
        bytes: bytes::Bytes,
    ) -> Result<UploadState, HubError> {
        let owner = owner.to_owned();
        let id = StoreUpload(upload.0);
        self.run(move |s| s.put_chunk(&owner, id, offset, &bytes, crc32c, now_ms()))
            .await
            .map(state)
    }

    /// Where `owner`'s upload stands.
    pub async fn status(&self, owner: &str, upload: UploadId) -> Result<UploadState, HubError> {
        let owner = owner.to_owned();
        let id = StoreUpload(upload.0);
        self.run(move |s| s.status(&owner, id)).await.map(state)
    }

    /// Checks the whole upload against `digest` and makes it an attachment.
    pub async fn finish(
        &self,
        owner: &str,
        upload: UploadId,
        digest: Digest,
    ) -> Result<AttachmentRef, HubError> {
        let owner = owner.to_owned();
        let id = StoreUpload(upload.0);
        let blob = self
            .run(move |s| s.finish(&owner, id, digest.0, now_ms()))
            .await?;
        Ok(AttachmentRef {
            digest: Digest(blob.digest),
            size_bytes: blob.size_bytes,
        })
    }

    /// A request by `sender` carries `refs`, to be read by `reader`, and
    /// lives until `deadline_ms` (then the logs' retention): each must be
    /// `sender`'s upload of exactly that size (`NotFound` otherwise).
    /// Durable before it returns, so the reader may read them as soon as
    /// the request is delivered.
    pub async fn reference(
        &self,
        sender: &str,
        refs: &[AttachmentRef],
        reader: &str,
        deadline_ms: u64,
    ) -> Result<(), HubError> {
        let keep_until_ms = now_ms()
            .saturating_add(deadline_ms)
            .saturating_add(self.retention_ms);
        let (sender, reader, refs) = (sender.to_owned(), reader.to_owned(), refs.to_vec());
        self.run(move |s| {
            for r in &refs {
                s.reference(&sender, &r.digest.0, r.size_bytes, &reader, keep_until_ms)?;
            }
            Ok(())
        })
        .await
    }

    /// Up to `bytes_max` bytes of attachment `digest` from `offset`, for
    /// its uploader or a reader of a request that carries it.
    pub async fn read(
        &self,
        caller: &str,
        digest: Digest,
        offset: u64,
        bytes_max: u32,
    ) -> Result<AttachmentBytes, HubError> {
        let caller = caller.to_owned();
        self.run(move |s| {
            let blob = s.open_blob(&caller, &digest.0)?;
            let size_bytes = blob.size_bytes();
            let bytes_max = bytes_max.min(gonets_types::CHUNK_BYTES_MAX);
            let len = size_bytes.saturating_sub(offset).min(u64::from(bytes_max));
            let mut buf = vec![0u8; usize::try_from(len).expect("at most CHUNK_BYTES_MAX")];
            let got = blob.read_at(offset, &mut buf)?;
            assert!(got <= buf.len());
            buf.truncate(got);
            Ok(AttachmentBytes {
                size_bytes,
                offset,
                bytes: buf.into(),
            })
        })
        .await
    }
}

/// The store's thread: jobs in order, a sweep between them when due; ends
/// when every handle is gone.
fn serve(mut store: AttachmentStore, inbox: flume::Receiver<Run>) {
    lower_priority();
    let interval = Duration::from_millis(SWEEP_INTERVAL_MS);
    let mut swept_at_ms = now_ms();
    loop {
        match inbox.recv_timeout(interval) {
            Ok(run) => run(&mut store),
            Err(flume::RecvTimeoutError::Timeout) => {}
            Err(flume::RecvTimeoutError::Disconnected) => return,
        }
        if now_ms().saturating_sub(swept_at_ms) >= SWEEP_INTERVAL_MS {
            swept_at_ms = now_ms();
            sweep(&mut store);
        }
    }
}

/// CPU nice the store's thread takes: below the shards' (0), so hashing a
/// gigabyte never takes a core from a shard that shares it.
const NICE: i32 = 10;
/// I/O priority the store's thread takes (`ioprio_set`): this class and
/// level, so the block layer's scheduler (mq-deadline, bfq) serves the
/// shards' log writes first (docs/adr/0022).
const IOPRIO: libc::c_long = IOPRIO_CLASS << 13 | IOPRIO_LEVEL;
const IOPRIO_CLASS: libc::c_long = 3;
const IOPRIO_LEVEL: libc::c_long = 0;
/// `ioprio_set`'s "which": one thread.
const IOPRIO_WHO_PROCESS: libc::c_long = 1;

/// Background work yields to the real-time path: a lower CPU and I/O
/// priority for this thread (a failure is logged; the store still works).
fn lower_priority() {
    // SAFETY: plain system calls naming this thread by its own id.
    let (cpu, io) = unsafe {
        let tid = libc::gettid();
        let cpu = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE);
        let io = libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            tid as libc::c_long,
            IOPRIO,
        );
        (cpu, io)
    };
    if cpu != 0 || io != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "attachment store: cannot lower its thread's priority; uploads compete with the shards"
        );
    }
}

/// Waits until a write of `bytes` fits `bytes_per_s`: writes go out evenly, each
/// `bytes / bytes_per_s` after the one before (no burst builds up while
/// the store is idle). Returns how long it waited.
fn paced(next_write_at: &mut Instant, bytes: u64, bytes_per_s: u64) -> Duration {
    if bytes == 0 || bytes_per_s == 0 {
        return Duration::ZERO;
    }
    let now = Instant::now();
    let start = (*next_write_at).max(now);
    let spacing_s = bytes as f64 / bytes_per_s as f64;
    *next_write_at = start + Duration::from_secs_f64(spacing_s);
    if start <= now {
        return Duration::ZERO;
    }
    std::thread::sleep(start - now);
    now.elapsed()
}

/// One sweep, logged when it removed anything.
fn sweep(store: &mut AttachmentStore) {
    match store.sweep(now_ms()) {
        Ok(r) if r.uploads_abandoned + r.blobs_expired > 0 => tracing::info!(
            uploads_abandoned = r.uploads_abandoned,
            attachments_expired = r.blobs_expired,
            bytes_freed = r.bytes_freed,
            "attachment store swept"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "attachment store sweep failed"),
    }
}

fn state(s: gonets_storage::UploadState) -> UploadState {
    UploadState {
        upload: UploadId(s.id.0),
        size_bytes: s.size_bytes,
        durable_bytes: s.durable_bytes,
    }
}

fn stopped() -> HubError {
    HubError::Unavailable("the attachment store stopped".into())
}

/// The store's errors as the vocabulary's (one wire code each).
fn hub_error(e: AttachmentError) -> HubError {
    use AttachmentError as A;
    match e {
        A::UnknownUpload { .. } => HubError::UnknownUpload,
        A::TooLarge {
            size_bytes,
            size_bytes_max,
        } => HubError::TooLarge {
            size_bytes,
            size_bytes_max,
        },
        A::Empty => HubError::Malformed("an attachment of 0 bytes".into()),
        e @ (A::ChunkTooLarge { .. } | A::BadChunk { .. } | A::PastEnd { .. }) => {
            HubError::BadChunk(e.to_string())
        }
        A::OffsetMismatch { durable_bytes, .. } | A::Incomplete { durable_bytes, .. } => {
            HubError::UploadOffset { durable_bytes }
        }
        e @ A::WrongDigest { .. } => HubError::WrongDigest(e.to_string()),
        A::NotFound => HubError::NotFound,
        A::TooManyUploads { .. } => HubError::QuotaExceeded,
        A::StorageFull => HubError::StorageFull,
        e => HubError::Unavailable(format!("attachment store: {e}")),
    }
}

/// Where a hub keeps its attachments: `DATA_DIR/attachments`.
pub fn attachments_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("attachments")
}

#[cfg(test)]
mod tests {
    use super::{Pacer, RtRecent, WritePace, WRITEBACK_PIECE_BYTES};
    use gonets_storage::WriteGate;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn pacer(beside_rt_bytes_per_s: u64) -> (Pacer, Arc<RtRecent>) {
        let rt = Arc::new(RtRecent::default());
        let pace = WritePace {
            bytes_per_s: 0,
            beside_rt_bytes_per_s,
        };
        let next_write_at = Instant::now();
        let p = Pacer {
            pace,
            rt: rt.clone(),
            next_write_at,
            paced_ns: Arc::new(AtomicU64::new(0)),
        };
        (p, rt)
    }

    #[test]
    fn given_rt_calls_when_pieces_are_written_then_each_waits_its_share_of_the_pace() {
        // 64 MiB/s: a 64 KiB piece every ~0.98 ms.
        let (mut p, rt) = pacer(64 << 20);
        let started = Instant::now();
        for _ in 0..20 {
            rt.note();
            p.before_write(WRITEBACK_PIECE_BYTES);
        }
        // The first piece goes at once, the 19 after it each a spacing
        // later (a sleep never ends early; no upper bound is asserted).
        assert!(
            started.elapsed() >= Duration::from_micros(19 * 976),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn given_rt_calls_and_a_slow_pace_when_pieces_are_written_then_the_wait_is_counted() {
        // 1 MiB/s: 62.5 ms a piece; the second and third wait.
        let (mut p, rt) = pacer(1 << 20);
        let started = Instant::now();
        for _ in 0..3 {
            rt.note();
            p.before_write(WRITEBACK_PIECE_BYTES);
        }
        let paced = Duration::from_nanos(p.paced_ns.load(Relaxed));
        assert!(started.elapsed() >= Duration::from_millis(124));
        assert!(
            paced > Duration::ZERO && paced <= started.elapsed(),
            "{paced:?}"
        );
    }

    #[test]
    fn given_no_rt_calls_and_no_pace_of_its_own_when_pieces_are_written_then_none_waits() {
        let (mut p, _rt) = pacer(64 << 20);
        let before = p.next_write_at;
        for _ in 0..1_000 {
            p.before_write(WRITEBACK_PIECE_BYTES);
        }
        assert_eq!(p.next_write_at, before, "no pace was in force");
        assert_eq!(p.paced_ns.load(Relaxed), 0);
    }

    #[test]
    fn given_paces_when_rt_calls_come_or_not_then_the_lower_non_zero_one_holds() {
        let pace = |bytes_per_s, beside_rt_bytes_per_s| WritePace {
            bytes_per_s,
            beside_rt_bytes_per_s,
        };
        // (always, beside rt, rt recent) -> in force
        for (always, beside, recent, want) in [
            (0, 0, false, 0),
            (0, 0, true, 0),
            (0, 32, false, 0),
            (0, 32, true, 32),
            (64, 0, true, 64),
            (64, 32, false, 64),
            (64, 32, true, 32),
            (16, 32, true, 16),
        ] {
            assert_eq!(
                pace(always, beside).now(recent),
                want,
                "{always} {beside} {recent}"
            );
        }
    }
}
