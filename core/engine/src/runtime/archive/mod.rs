//! The history archive of one shard (ADR 0005): every finished exchange's
//! history, kept for ever in a second segment log that retention never
//! touches (`shard-N/history/`), and an index from message id (request and
//! answer) to the history's offset there (`shard-N/history-index/`).
//!
//! Writes go through the history log (io_uring, group commit by a second
//! committer); the index is a small in-memory table of recent entries plus
//! immutable sorted run files, written with O_DIRECT in the background and
//! read through read-only maps. A restart maps the runs and replays only the
//! history records no run covers yet: at most about `TABLE_ENTRIES_MAX`
//! entries' worth, whatever the total history.

mod backoff;
pub(crate) mod index;
pub(crate) mod record;

use crate::runtime::committer::Commits;
use crate::runtime::lanes::{self, Lane};
use crate::runtime::start_error::HubStartError;
use crate::shard::{ShardReply, StatusView};
use backoff::{Backoff, FailureNote, BACKOFF_MAX_MS, BACKOFF_MIN_MS};
use gonets_storage::durable_file;
use gonets_storage::{Log, LogConfig, LogError, Slot};
use gonets_types::error::HubError;
use gonets_types::ids::{MessageId, ParticipantId};
use index::{IndexRun, IndexRunError};
use record::ChunkHead;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Index entries held in memory before they are written as a run (two per
/// answered exchange). Bounds restart time: replay reads at most this many
/// entries' records. The table may grow past it only while the previous
/// run is still being written.
pub(crate) const TABLE_ENTRIES_MAX: usize = 1 << 16;
/// Runs beyond which the two newest are merged whatever their sizes.
pub(crate) const RUNS_MAX: usize = 48;
/// Index jobs (a flush or a merge) one maintenance pass runs at most.
const JOBS_PER_PASS_MAX: usize = 64;

/// What a history's archive write came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Archived {
    /// The archive held it already (a restart asked again): done now.
    AlreadyHeld,
    /// Appended; durable once the history log's commit covers it.
    Appended,
}

/// A history appended to the history log, waiting for its commit.
#[derive(Debug)]
struct Pending {
    first: u64,
    last: u64,
    request_id: MessageId,
    answer_id: Option<MessageId>,
}

/// The id index: runs on disk, a frozen table being written, the live table.
#[derive(Debug)]
struct Index {
    /// Runs by the history offsets they cover, oldest first, contiguous.
    runs: Vec<Rc<IndexRun>>,
    /// A table being written as a run: (entries, from, to).
    frozen: Option<(Table, u64, u64)>,
    /// Entries of history records from `table_from` to `indexed_to`.
    table: BTreeMap<u128, u64>,
    table_from: u64,
    indexed_to: u64,
    /// Entries the table holds before it is written as a run.
    table_entries_max: usize,
}

/// A table of index entries (id to the history's first offset), shared
/// with the background job writing it.
type Table = Rc<BTreeMap<u128, u64>>;

/// One index job.
enum Job {
    Flush(Rc<BTreeMap<u128, u64>>, u64, u64),
    Merge(Rc<IndexRun>, Rc<IndexRun>),
}

impl Index {
    fn new(table_entries_max: usize) -> Index {
        assert!(table_entries_max > 0);
        Index {
            runs: Vec::new(),
            frozen: None,
            table: BTreeMap::new(),
            table_from: 0,
            indexed_to: 0,
            table_entries_max,
        }
    }

    /// True when a flush or a merge is due.
    fn job_due(&self) -> bool {
        let n = self.runs.len();
        self.frozen.is_some()
            || self.table.len() >= self.table_entries_max
            || (n >= 2 && (self.runs[n - 1].len() * 2 >= self.runs[n - 2].len() || n > RUNS_MAX))
    }

    fn lookup(&self, id: MessageId) -> Option<u64> {
        if let Some(o) = self.table.get(&id.0) {
            return Some(*o);
        }
        if let Some(o) = self.frozen.as_ref().and_then(|(t, _, _)| t.get(&id.0)) {
            return Some(*o);
        }
        self.runs.iter().rev().find_map(|r| r.lookup(id.0))
    }

    fn insert(&mut self, p: &Pending) {
        self.table.insert(p.request_id.0, p.first);
        if let Some(a) = p.answer_id {
            self.table.insert(a.0, p.first);
        }
        self.indexed_to = self.indexed_to.max(p.last + 1);
    }

    /// The next job, if any is due.
    fn next_job(&mut self) -> Option<Job> {
        if let Some((t, from, to)) = &self.frozen {
            return Some(Job::Flush(t.clone(), *from, *to));
        }
        if self.table.len() >= self.table_entries_max {
            let t = Rc::new(std::mem::take(&mut self.table));
            let (from, to) = (self.table_from, self.indexed_to);
            self.table_from = to;
            self.frozen = Some((t.clone(), from, to));
            return Some(Job::Flush(t, from, to));
        }
        let n = self.runs.len();
        if n >= 2 && (self.runs[n - 1].len() * 2 >= self.runs[n - 2].len() || n > RUNS_MAX) {
            return Some(Job::Merge(
                self.runs[n - 2].clone(),
                self.runs[n - 1].clone(),
            ));
        }
        None
    }
}

/// One shard's history archive.
pub(crate) struct Archive {
    shard: u16,
    /// The history log.
    pub(crate) log: Log,
    /// Its commit waiter.
    pub(crate) commits: Rc<Commits>,
    index: Rc<RefCell<Index>>,
    index_dir: PathBuf,
    pending: VecDeque<Pending>,
    appended_last: Option<u64>,
    encoded: Vec<u8>,
    chunk: Vec<u8>,
    chunk_bytes_max: usize,
    /// An index job runs in the background.
    busy: Rc<Cell<bool>>,
    /// When a failed index job may run again, and what to log about it.
    backoff: Rc<RefCell<Backoff>>,
}

/// How long the history log gathers appends before a commit, µs.
///
/// Why: nothing a participant waits for rides on a history commit (a
/// finished exchange only leaves memory once its history is durable), but
/// committed at every turn's end like the shard log, the history log took
/// as many `fdatasync`s as the shard log itself — 0.24 per rt exchange at
/// 3,000 calls/s, each one disk time the next rt commit queued behind
/// (bench/RESULTS.md, "Issue 16, one commit in series"). Gathered for this
/// long, the history log syncs at most ~100 times a second whatever the
/// load, and its exchanges stay in memory that much longer.
pub(crate) const HISTORY_COMMIT_WINDOW_US: u64 = 10_000;

/// The history log's settings: the shard log's, without zero prewrites
/// (history traffic is light and nothing waits on its commit latency),
/// and with commits gathered for [`HISTORY_COMMIT_WINDOW_US`].
pub(crate) fn history_log_config(shard_log: &LogConfig) -> LogConfig {
    LogConfig {
        prewrite_ahead_bytes: 0,
        batch_buffers_max: shard_log.batch_buffers_max.min(4),
        commit_window_us: shard_log.commit_window_us.max(HISTORY_COMMIT_WINDOW_US),
        ..shard_log.clone()
    }
}

impl Archive {
    /// Opens (or creates) the archive of the shard whose log is in
    /// `shard_dir`, whose in-memory index table holds `table_entries_max`
    /// entries before it is written as a run.
    pub(crate) async fn open_with(
        shard_dir: &Path,
        shard: u16,
        shard_log: &LogConfig,
        table_entries_max: usize,
    ) -> Result<Archive, HubStartError> {
        let log_dir = shard_dir.join("history");
        let index_dir = shard_dir.join("history-index");
        for d in [&log_dir, &index_dir] {
            // Blocking, once, before the shard serves anyone; the entries
            // are synced in the shard's directory, so that the history log
            // does not vanish with an unsynced directory entry.
            durable_file::create_dir_all(d).map_err(|source| HubStartError::DataDir {
                path: d.clone(),
                source,
            })?;
        }
        let config = history_log_config(shard_log);
        let chunk_bytes_max = config.payload_bytes_max() - record::CHUNK_OVERHEAD_BYTES;
        let (log, report) = Log::open(&log_dir, config)
            .await
            .map_err(|source| HubStartError::Log { shard, source })?;
        if !report.corruptions.is_empty() {
            tracing::warn!(shard, corruptions = ?report.corruptions, "history log recovery found damage");
        }
        let commits = Commits::start(log.clone());
        let archive = Archive {
            shard,
            log,
            commits,
            index: Rc::new(RefCell::new(Index::new(table_entries_max))),
            index_dir,
            pending: VecDeque::new(),
            appended_last: None,
            encoded: Vec::new(),
            chunk: Vec::new(),
            chunk_bytes_max,
            busy: Rc::new(Cell::new(false)),
            backoff: Rc::new(RefCell::new(Backoff::new(BACKOFF_MIN_MS, BACKOFF_MAX_MS))),
        };
        archive
            .load_index()
            .await
            .map_err(|e| HubStartError::Replay {
                shard,
                offset: 0,
                reason: format!("history index: {e}"),
            })?;
        Ok(archive)
    }

    /// Maps the runs that chain from offset 0, drops the rest, and indexes
    /// the history records after the last run.
    async fn load_index(&self) -> Result<(), IndexRunError> {
        let dir = &self.index_dir;
        // Blocking, once at start, before the shard serves anyone (as the
        // segment log's own open does).
        let opened = index::open_runs(dir)?;
        let cursor = opened.covered_to;
        let runs = opened.runs.into_iter().map(Rc::new).collect();
        {
            let mut ix = self.index.borrow_mut();
            ix.runs = runs;
            ix.table_from = cursor;
            ix.indexed_to = cursor;
        }
        // Bounded by the history log's durable end.
        let mut scanned = 0u64;
        for slot in self.log.iter_from(cursor) {
            let rec = match slot {
                Slot::Present(r) => r,
                Slot::Empty => break,
                Slot::Gone | Slot::Unreadable(_) => {
                    tracing::error!(
                        shard = self.shard,
                        ?slot,
                        "history record unreadable; its history is lost to status"
                    );
                    continue;
                }
            };
            scanned += 1;
            let offset = rec.offset();
            if crate::trust_record::is_anchor(rec.payload()) {
                self.index.borrow_mut().indexed_to = offset + 1;
                continue; // an anchor, not a history
            }
            match record::decode_chunk(rec.payload()) {
                Ok((head, _)) if head.index + 1 == head.count => {
                    let first = offset - u64::from(head.count - 1);
                    let mut ix = self.index.borrow_mut();
                    ix.insert(&Pending {
                        first,
                        last: offset,
                        request_id: head.request_id,
                        answer_id: head.answer_id,
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(shard = self.shard, offset, error = %e, "history record undecodable")
                }
            }
            self.index.borrow_mut().indexed_to = offset + 1;
            if self.index.borrow().job_due() {
                self.busy.set(true);
                let done = run_jobs(&self.index, dir, self.shard).await;
                self.busy.set(false);
                done?;
            }
        }
        let ix = self.index.borrow();
        tracing::info!(
            shard = self.shard,
            runs = ix.runs.len(),
            scanned,
            table = ix.table.len(),
            "history archive opened"
        );
        Ok(())
    }

    /// True when the archive holds a history for `id` (request or answer).
    pub(crate) fn contains(&self, id: MessageId) -> bool {
        self.index.borrow().lookup(id).is_some()
    }

    /// Appends `view` to the history log, unless the archive holds it already.
    pub(crate) async fn archive(
        &mut self,
        view: &StatusView,
        timestamp_ns: u64,
    ) -> Result<Archived, LogError> {
        if self.contains(view.request_id) {
            return Ok(Archived::AlreadyHeld);
        }
        if self.pending.iter().any(|p| p.request_id == view.request_id) {
            // Asked again while its write runs (a bounded scan: pending
            // writes last one commit).
            return Ok(Archived::Appended);
        }
        self.encoded.clear();
        record::encode_view(view, &mut self.encoded);
        let count = self.encoded.len().div_ceil(self.chunk_bytes_max).max(1);
        assert!(
            count <= record::CHUNKS_MAX,
            "history of {} too large",
            view.request_id
        );
        let mut first = None;
        let mut last = 0;
        for i in 0..count {
            let start = i * self.chunk_bytes_max;
            let end = (start + self.chunk_bytes_max).min(self.encoded.len());
            let head = ChunkHead {
                request_id: view.request_id,
                answer_id: view.answer_id,
                index: i as u16,
                count: count as u16,
            };
            record::encode_chunk(head, &self.encoded[start..end], &mut self.chunk);
            let offset = match self.log.try_append(&self.chunk, timestamp_ns, 0) {
                Err(LogError::Busy) => self.log.append(&self.chunk, timestamp_ns, 0).await,
                other => other,
            }?;
            // One writer: the chunks of a history take consecutive offsets.
            assert!(first.is_none() || offset == last + 1);
            first.get_or_insert(offset);
            last = offset;
        }
        self.pending.push_back(Pending {
            first: first.expect("at least one chunk"),
            last,
            request_id: view.request_id,
            answer_id: view.answer_id,
        });
        self.appended_last = Some(last);
        Ok(Archived::Appended)
    }

    /// Appends a chain anchor (`Record::Anchor`: of this history log, or
    /// a copy of one of the shard's log, kept here because this log is
    /// never retained); gives its offset. Committed with the next turn.
    pub(crate) async fn append_anchor(
        &mut self,
        anchor: &gonets_trust::Anchor,
        timestamp_ns: u64,
    ) -> Result<u64, LogError> {
        self.encoded.clear();
        crate::record::Record::Anchor(anchor.clone()).encode(&mut self.encoded);
        let offset = match self.log.try_append(&self.encoded, timestamp_ns, 0) {
            Err(LogError::Busy) => self.log.append(&self.encoded, timestamp_ns, 0).await,
            other => other,
        }?;
        self.appended_last = Some(offset);
        Ok(offset)
    }

    /// Asks for everything appended since the last call to be committed.
    pub(crate) fn end_turn(&mut self) {
        if let Some(last) = self.appended_last.take() {
            self.commits.want(last);
        }
    }

    /// Indexes the histories the history log made durable; returns their
    /// request ids (the shard may let them leave memory). Starts an index
    /// job in the background when one is due.
    pub(crate) fn settle(&mut self) -> Vec<MessageId> {
        let durable = self.commits.durable();
        let mut done = Vec::new();
        // Bounded by the pending writes.
        while self.pending.front().is_some_and(|p| p.last < durable) {
            let p = self.pending.pop_front().expect("front");
            self.index.borrow_mut().insert(&p);
            done.push(p.request_id);
        }
        // A failed job waits out its back-off (a pass per settle would
        // retry, and log, as fast as histories arrive).
        let may_run = self.backoff.borrow().may_run(std::time::Instant::now());
        if !done.is_empty() && !self.busy.get() && may_run {
            let due = self.index.borrow().job_due();
            if due {
                self.busy.set(true);
                let (index, dir, busy, backoff, shard) = (
                    self.index.clone(),
                    self.index_dir.clone(),
                    self.busy.clone(),
                    self.backoff.clone(),
                    self.shard,
                );
                // A merge is background work: it must not take the rt lane's turn.
                lanes::spawn(Lane::Background, async move {
                    let outcome = run_jobs(&index, &dir, shard).await;
                    note_job(&backoff, shard, outcome);
                    busy.set(false);
                })
                .detach();
            }
        }
        done
    }

    /// True when nothing appended waits for its commit.
    pub(crate) fn settled(&self) -> bool {
        self.appended_last.is_none() && self.pending.is_empty() || self.commits.failed()
    }

    /// The history of `id` from the archive, if `caller` may read it.
    pub(crate) fn status(
        &self,
        id: MessageId,
        caller: &ParticipantId,
        operator: bool,
    ) -> Result<ShardReply, HubError> {
        let Some(first) = self.index.borrow().lookup(id) else {
            return Err(HubError::NotFound);
        };
        let view = self.read(first)?;
        if view.request_id != id && view.answer_id != Some(id) {
            return Err(self.unreadable(first, "index points at another history"));
        }
        if !view.visible_to(caller, operator) {
            return Err(HubError::NotFound);
        }
        Ok(ShardReply::Status(view))
    }

    /// Reads the history whose first chunk is at `first` (a read of the
    /// history log's maps, bounded by `CHUNKS_MAX` records).
    fn read(&self, first: u64) -> Result<StatusView, HubError> {
        let mut bytes = Vec::new();
        let mut expected: Option<ChunkHead> = None;
        for i in 0..record::CHUNKS_MAX as u64 {
            let offset = first + i;
            let rec = match self.log.read(offset) {
                Slot::Present(r) => r,
                other => return Err(self.unreadable(offset, &format!("{other:?}"))),
            };
            let (head, part) = record::decode_chunk(rec.payload())
                .map_err(|e| self.unreadable(offset, &e.to_string()))?;
            let want_index = expected.map_or(0, |h| h.index + 1);
            if head.index != want_index
                || expected
                    .is_some_and(|h| (h.request_id, h.count) != (head.request_id, head.count))
            {
                return Err(self.unreadable(offset, "chunks out of order"));
            }
            bytes.extend_from_slice(part);
            expected = Some(head);
            if head.index + 1 == head.count {
                return record::decode_view(&bytes)
                    .map_err(|e| self.unreadable(first, &e.to_string()));
            }
        }
        Err(self.unreadable(first, "too many chunks"))
    }

    fn unreadable(&self, offset: u64, what: &str) -> HubError {
        tracing::error!(
            shard = self.shard,
            offset,
            what,
            "archived history unreadable"
        );
        HubError::Unavailable(format!(
            "archived history at offset {offset} cannot be read: {what}"
        ))
    }

    /// Waits for a running index job (bounded by one pass), stops the
    /// committer and closes the history log.
    pub(crate) async fn close(&self) -> Result<(), LogError> {
        while self.busy.get() {
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
        self.commits.stop();
        let closed = self.log.close().await;
        // Bounded by the committer noticing the stop; looks again every
        // millisecond even if a wake-up went missing.
        while self.commits.running() {
            futures_lite::future::or(
                self.commits.wake_driver.wait(),
                glommio::timer::sleep(std::time::Duration::from_millis(1)),
            )
            .await;
        }
        closed
    }

    /// Runs in the index (tests and monitoring).
    #[allow(dead_code)]
    pub(crate) fn runs(&self) -> usize {
        self.index.borrow().runs.len()
    }
}

/// Records an index job's outcome in its back-off; logs a streak of
/// failures at its start and at each doubling of its length, and its end.
fn note_job(backoff: &RefCell<Backoff>, shard: u16, outcome: Result<(), IndexRunError>) {
    let mut backoff = backoff.borrow_mut();
    let e = match outcome {
        Ok(()) => {
            if let Some(failures) = backoff.succeeded() {
                tracing::info!(shard, failures, "history index job works again");
            }
            return;
        }
        Err(e) => e,
    };
    // The entries stay in memory (the frozen table is retried at the next
    // pass) and lookups find them there: nothing is lost.
    match backoff.failed(std::time::Instant::now()) {
        FailureNote::First { retry_in_ms } => tracing::error!(
            shard,
            error = %e,
            retry_in_ms,
            "history index job failed; its entries stay in memory, retried with back-off \
             (one line per doubling of the streak)"
        ),
        FailureNote::StillFailing {
            failures,
            retry_in_ms,
        } => tracing::error!(
            shard,
            error = %e,
            failures,
            retry_in_ms,
            "history index job still failing"
        ),
        FailureNote::Quiet => {}
    }
}

/// Runs due index jobs, at most `JOBS_PER_PASS_MAX`.
async fn run_jobs(index: &Rc<RefCell<Index>>, dir: &Path, shard: u16) -> Result<(), IndexRunError> {
    for _ in 0..JOBS_PER_PASS_MAX {
        let job = index.borrow_mut().next_job();
        match job {
            None => return Ok(()),
            Some(Job::Flush(table, from, to)) => {
                let entries = table.iter().map(|(k, v)| (*k, *v));
                let run = index::write_run(dir, from, to, entries).await?;
                // Lookups (every history archived asks whether it is held)
                // walk the newest runs: in the page cache, not on the disk.
                warm(&run, shard).await;
                let run = Rc::new(run);
                let mut ix = index.borrow_mut();
                assert_eq!(ix.runs.last().map_or(0, |r| r.header().to), from);
                ix.runs.push(run);
                ix.frozen = None;
                tracing::debug!(
                    shard,
                    from,
                    to,
                    entries = table.len(),
                    "history index run written"
                );
            }
            Some(Job::Merge(a, b)) => {
                assert_eq!(a.header().to, b.header().from);
                let (from, to) = (a.header().from, b.header().to);
                // The inputs were warmed when written (or read whole when
                // verified at open): the merge walks the page cache.
                let merged = index::merge_entries(&a, &b);
                let run = index::write_run(dir, from, to, merged).await?;
                warm(&run, shard).await;
                let run = Rc::new(run);
                {
                    let mut ix = index.borrow_mut();
                    let n = ix.runs.len();
                    assert!(Rc::ptr_eq(&ix.runs[n - 2], &a) && Rc::ptr_eq(&ix.runs[n - 1], &b));
                    ix.runs.truncate(n - 2);
                    ix.runs.push(run);
                }
                // The merged run is durable and in place: its inputs may go
                // (a crash before this leaves them; the next open drops them).
                index::remove_run(a.path()).await?;
                index::remove_run(b.path()).await?;
                index::sync_dir(dir).await?;
            }
        }
    }
    Ok(())
}

/// Reads a run just written into the page cache (ADR 0030). A failure
/// costs only speed: the run is durable and in place, and its lookups then
/// read the disk as they did before; it is reported, and the job goes on.
async fn warm(run: &IndexRun, shard: u16) {
    if let Err(e) = run.warm().await {
        tracing::warn!(shard, "history index run not read into memory: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::EventKind;
    use crate::runtime::test_executor::run_local;
    use crate::runtime::test_logs::Lines;
    use crate::shard::HistoryEvent;
    use gonets_types::ids::DataKindId;

    fn view(i: u64) -> StatusView {
        StatusView {
            request_id: MessageId::new(1_700_000_000_000 + i, 0, 2 * i),
            answer_id: Some(MessageId::new(1_700_000_000_001 + i, 0, 2 * i + 1)),
            kind: DataKindId::new("urn:test:async:1"),
            consumer: ParticipantId::new("MFC"),
            provider: ParticipantId::new("FNS"),
            deadline_ms: 1_700_000_100_000,
            notice: None,
            // Some histories span several records (chunks).
            events: (0..(1 + (i % 5) * 900))
                .map(|n| HistoryEvent {
                    kind: EventKind::AnswerDelivered,
                    time_ms: 1_700_000_000_000 + n,
                    count: n as u32,
                })
                .collect(),
        }
    }

    async fn archive_all(a: &mut Archive, views: impl Iterator<Item = StatusView>) {
        for v in views {
            a.archive(&v, 1).await.expect("append");
            a.end_turn();
            // Bounded by one commit.
            while !a.commits.settled() {
                a.commits.wake_driver.wait().await;
            }
            let done = a.settle();
            assert_eq!(done, vec![v.request_id]);
            // Let a due index job finish before the next history.
            while a.busy.get() {
                glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }

    fn check_all(a: &Archive, n: u64) {
        let op = ParticipantId::new("OPERATOR");
        for i in 0..n {
            let v = view(i);
            for id in [v.request_id, v.answer_id.unwrap()] {
                assert_eq!(
                    a.status(id, &op, true),
                    Ok(ShardReply::Status(v.clone())),
                    "{i}"
                );
            }
            assert_eq!(
                a.status(v.request_id, &ParticipantId::new("MVD"), false),
                Err(HubError::NotFound)
            );
        }
        let unknown = MessageId::new(1, 0, 999_999);
        assert_eq!(a.status(unknown, &op, true), Err(HubError::NotFound));
    }

    fn run_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("history-index"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn given_small_table_when_many_histories_archived_then_runs_written_merged_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        run_local(move || async move {
            let config = LogConfig::small_for_tests();
            let mut a = Archive::open_with(&path, 0, &config, 8)
                .await
                .expect("opens");
            archive_all(&mut a, (0..40).map(view)).await;
            assert!(a.runs() >= 1, "the table was written as runs");
            assert!(a.runs() < 10, "and runs were merged: {}", a.runs());
            check_all(&a, 40);
            // A repeat (a restart asks again) is recognised, not written twice.
            let next = a.log.stats().next_offset;
            assert_eq!(a.archive(&view(3), 1).await.unwrap(), Archived::AlreadyHeld);
            assert_eq!(a.log.stats().next_offset, next);
            a.close().await.unwrap();

            let a = Archive::open_with(&path, 0, &config, 8)
                .await
                .expect("reopens");
            check_all(&a, 40);
            a.close().await.unwrap();

            // Damage every run file (truncate one, flip a byte in the others):
            // the index is rebuilt from the history log, no panic.
            let files = run_files(&path);
            assert!(!files.is_empty());
            for (i, f) in files.iter().enumerate() {
                let mut bytes = std::fs::read(f).unwrap();
                if i == 0 {
                    bytes.truncate(gonets_storage::index_run::RUN_HEADER_BYTES + 5);
                } else {
                    let at = bytes.len() / 2;
                    bytes[at] ^= 0x5a;
                }
                std::fs::write(f, bytes).unwrap();
            }
            std::fs::write(path.join("history-index").join("run-x.idx.tmp"), b"junk").unwrap();
            let a = Archive::open_with(&path, 0, &config, 8)
                .await
                .expect("reopens, rebuilt");
            check_all(&a, 40);
            a.close().await.unwrap();
            assert!(run_files(&path)
                .iter()
                .all(|f| !f.to_string_lossy().ends_with(".tmp")));
        });
    }

    #[test]
    fn given_an_index_dir_that_fails_when_histories_keep_coming_then_one_error_and_one_recovery_line(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let lines = Lines::default();
        let seen = lines.clone();
        run_local(move || async move {
            let _logs = lines.capture(tracing::Level::INFO);
            let config = LogConfig::small_for_tests();
            let mut a = Archive::open_with(&path, 0, &config, 8)
                .await
                .expect("opens");
            // The index directory goes away: every run write fails.
            let index_dir = path.join("history-index");
            let aside = path.join("history-index-aside");
            std::fs::rename(&index_dir, &aside).unwrap();
            // Four histories fill the table; many more arrive during the back-off.
            archive_all(&mut a, (0..40).map(view)).await;
            assert_eq!(a.runs(), 0, "no run could be written");
            check_all(&a, 40);
            // The directory is back; after the back-off the next history
            // writes the waiting entries (a wait bounded by BACKOFF_MAX_MS).
            std::fs::rename(&aside, &index_dir).unwrap();
            let mut n = 40;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while a.runs() == 0 && std::time::Instant::now() < deadline {
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                archive_all(&mut a, std::iter::once(view(n))).await;
                n += 1;
            }
            assert!(a.runs() >= 1, "the index job recovered");
            check_all(&a, n);
            a.close().await.unwrap();
        });
        assert_eq!(
            seen.matching("ERROR", "history index job failed"),
            1,
            "one line for the streak's start"
        );
        assert_eq!(seen.matching("INFO", "history index job works again"), 1);
        assert!(
            seen.matching("ERROR", "history index job still failing") <= 3,
            "a line per doubling at most, not one per pass"
        );
    }
}
