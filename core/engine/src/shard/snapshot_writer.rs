//! Writing a snapshot one part at a time (ADR 0011). The runtime appends
//! each part as it is made, so a snapshot never sits whole in memory; the
//! shard takes no other input until the last part, so the parts describe
//! one state. What has not changed since an earlier snapshot wrote it (a
//! chunk of parked requests, a frozen slice of idempotency keys) is not
//! written again: a reference part names the earlier part's offset, and
//! replay reads that part in its place. A snapshot's size so follows what
//! changed since the last one, not the backlog.

use super::keys::KeyPrint;
use super::queue::Awaiting;
use super::{snapshot, Record, Shard};
use bytes::Bytes;
use gonets_types::ids::{DataKindId, MessageId, QueueId};

/// Keys and the message each named, as a snapshot writes them.
type Keys = Vec<(KeyPrint, MessageId)>;

/// What the walk over the unchanged-or-not parts (request lists, frozen
/// key slices) found next.
enum Step {
    /// A part written whole by an earlier snapshot, at this offset.
    Refer(u64),
    /// A part to write now (only when no reference is being gathered).
    Write(Record),
    /// The next part must be written, but references are being gathered:
    /// they go first, the part in the next call (nothing was changed).
    Blocked,
    /// Nothing left in this walk.
    Done,
}

/// A queue's chunked list of requests a snapshot writes in runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    Parked,
    Awaiting,
}

/// Where a snapshot being written stands.
#[derive(Debug)]
pub struct SnapshotCursor {
    first_offset: u64,
    parts: u64,
    /// The lowest earlier part referred to (`u64::MAX`: none).
    refers_from: u64,
    exchanges: Vec<MessageId>,
    exchange: usize,
    queues: Vec<QueueId>,
    /// Which of a queue's lists is being written: the parked requests of
    /// every queue, then the awaiting ones.
    list: List,
    queue: usize,
    chunk: usize,
    /// Entries of the current chunk written so far.
    chunk_at: usize,
    slice: usize,
    /// The frozen slice being written: its next run, the parts so far,
    /// and its keys (taken once from its table, at most
    /// [`super::keys::OPEN_KEYS_MAX`], until the slice is written).
    slice_run: Option<(usize, Vec<u64>, Keys)>,
    /// Parts of the current frozen slice referred to so far.
    slice_ref: usize,
    open_keys: Option<(Keys, usize)>,
    clock_written: bool,
    done: bool,
}

impl SnapshotCursor {
    /// Parts made so far (the end record not counted).
    pub fn parts(&self) -> u64 {
        self.parts
    }
}

/// Bytes a snapshot part's record adds to its content (tag and length).
fn part_overhead() -> usize {
    let mut out = Vec::new();
    Record::SnapshotPart(Bytes::new()).encode(&mut out);
    out.len()
}

fn part(encode: impl FnOnce(&mut Vec<u8>)) -> Record {
    let mut buf = Vec::new();
    encode(&mut buf);
    Record::SnapshotPart(Bytes::from(buf))
}

impl Shard {
    /// Starts a snapshot whose first part gets `first_offset` (the next
    /// offset): call [`Shard::snapshot_next`] until it gives `None`,
    /// appending each record at once, before any other input.
    pub fn snapshot_begin(&mut self, first_offset: u64) -> SnapshotCursor {
        assert_eq!(first_offset, self.next_offset);
        // A large open key slice is frozen now: written once, then referred to.
        self.keys.freeze_for_snapshot();
        let mut queues: Vec<QueueId> = self
            .queues
            .keys()
            .filter(|q| matches!(q, QueueId::Requests(_)))
            .cloned()
            .collect();
        queues.sort_unstable();
        SnapshotCursor {
            first_offset,
            parts: 0,
            refers_from: u64::MAX,
            exchanges: self.snapshot_exchange_ids(),
            exchange: 0,
            queues,
            list: List::Parked,
            queue: 0,
            chunk: 0,
            chunk_at: 0,
            slice: 0,
            slice_run: None,
            slice_ref: 0,
            open_keys: None,
            clock_written: false,
            done: false,
        }
    }

    /// The snapshot's next record (a part, then its end), taking the next
    /// offset; `None` once the end was given.
    pub fn snapshot_next(&mut self, c: &mut SnapshotCursor) -> Option<Record> {
        if c.done {
            return None;
        }
        let offset = self.next_offset;
        assert_eq!(
            offset,
            c.first_offset + c.parts,
            "nothing is appended while a snapshot is written"
        );
        let made = self
            .next_clock_part(c)
            .or_else(|| self.next_exchange_part(c))
            .or_else(|| self.next_reused_or_list_part(c, offset))
            .or_else(|| self.next_open_keys_part(c));
        // The snapshot's records take offsets like any other; they change
        // no state, so they are not applied.
        self.next_offset += 1;
        match made {
            Some(record) => {
                c.parts += 1;
                Some(record)
            }
            None => {
                c.done = true;
                self.snapshot_ended(c.first_offset, c.refers_from);
                Some(Record::SnapshotEnd {
                    first_offset: c.first_offset,
                    parts: c.parts,
                })
            }
        }
    }

    fn next_clock_part(&self, c: &mut SnapshotCursor) -> Option<Record> {
        if c.clock_written {
            return None;
        }
        c.clock_written = true;
        Some(part(|out| snapshot::encode_clock(self.now_ms, out)))
    }

    fn next_exchange_part(&self, c: &mut SnapshotCursor) -> Option<Record> {
        let id = *c.exchanges.get(c.exchange)?;
        c.exchange += 1;
        Some(part(|out| {
            snapshot::encode_exchange(&self.exchanges[&id], out)
        }))
    }

    /// The next part of the request lists and frozen key slices: a run of
    /// parts unchanged since earlier snapshots wrote them becomes one
    /// references part (up to REFERENCES_MAX), any other is written.
    fn next_reused_or_list_part(&mut self, c: &mut SnapshotCursor, offset: u64) -> Option<Record> {
        let refs_max = self.references_per_part();
        let mut refs: Vec<u64> = Vec::new();
        // Bounded: at most refs_max references, or one part written.
        while refs.len() < refs_max {
            let may_write = refs.is_empty();
            let step = match self.next_list_part(c, offset, may_write) {
                Step::Done => self.next_frozen_keys_part(c, offset, may_write),
                step => step,
            };
            match step {
                Step::Refer(at) => refs.push(at),
                Step::Write(record) => {
                    assert!(may_write, "a part is written only before any reference");
                    return Some(record);
                }
                Step::Blocked | Step::Done => break,
            }
        }
        let from = *refs.iter().min()?;
        c.refers_from = c.refers_from.min(from);
        Some(part(|out| snapshot::encode_references(&refs, out)))
    }

    /// The next part of the parked (then the awaiting) requests: a chunk
    /// unchanged since a snapshot wrote it whole in one part is referred
    /// to, any other written in runs that each fit the log's record bound.
    fn next_list_part(&mut self, c: &mut SnapshotCursor, offset: u64, may_write: bool) -> Step {
        // Bounded: each pass moves to the next chunk, queue or list.
        loop {
            let Some(queue) = c.queues.get(c.queue).cloned() else {
                if c.list == List::Awaiting {
                    return Step::Done;
                }
                (c.list, c.queue, c.chunk, c.chunk_at) = (List::Awaiting, 0, 0, 0);
                continue;
            };
            let QueueId::Requests(kind) = &queue else {
                unreachable!("request queues only")
            };
            let Some((len, written_at)) = self.list_chunk(&queue, c.list, c.chunk) else {
                (c.queue, c.chunk, c.chunk_at) = (c.queue + 1, 0, 0);
                continue;
            };
            if let (Some(at), 0) = (written_at, c.chunk_at) {
                c.chunk += 1;
                return Step::Refer(at);
            }
            if c.chunk_at >= len {
                (c.chunk, c.chunk_at) = (c.chunk + 1, 0);
                continue;
            }
            if !may_write {
                return Step::Blocked;
            }
            let entries = self.list_entries(&queue, c.list, c.chunk, c.chunk_at);
            let (record, taken) = self.run_part(kind, &entries);
            // The entries borrow the queue, which notes the part below.
            drop(entries);
            let whole = c.chunk_at == 0 && taken == len;
            c.chunk_at += taken;
            if whole {
                let q = self.queues.get_mut(&queue).expect("listed");
                match c.list {
                    List::Parked => q.parked_mut().chunk_written(c.chunk, offset),
                    List::Awaiting => q.awaiting_mut().chunk_written(c.chunk, offset),
                }
                (c.chunk, c.chunk_at) = (c.chunk + 1, 0);
            }
            return Step::Write(record);
        }
    }

    /// Chunk `i` of `queue`'s `list`: its length and where a part holds it
    /// whole, if one does; `None` past the last chunk.
    fn list_chunk(&self, queue: &QueueId, list: List, i: usize) -> Option<(usize, Option<u64>)> {
        let q = &self.queues[queue];
        match list {
            List::Parked => (i < q.parked().chunk_count()).then(|| {
                let (entries, at) = q.parked().chunk(i);
                (entries.len(), at)
            }),
            List::Awaiting => (i < q.awaiting().chunk_count()).then(|| {
                let (entries, at) = q.awaiting().chunk(i);
                (entries.len(), at)
            }),
        }
    }

    /// Up to a run of chunk `i`'s entries from `from`, borrowed as a
    /// snapshot carries them.
    fn list_entries(
        &self,
        queue: &QueueId,
        list: List,
        i: usize,
        from: usize,
    ) -> Vec<snapshot::RunEntry<'_>> {
        let q = &self.queues[queue];
        let n = snapshot::PARKED_RUN_ENTRIES_MAX;
        match list {
            List::Parked => {
                let entries = &q.parked().chunk(i).0[from..];
                entries
                    .iter()
                    .take(n)
                    .map(|p| self.run_entry(p, None))
                    .collect()
            }
            List::Awaiting => {
                let entries = &q.awaiting().chunk(i).0[from..];
                let entry =
                    |a: &Awaiting| self.run_entry(&a.parked, Some((a.delivered_ms, a.acked_ms)));
                entries.iter().take(n).map(entry).collect()
            }
        }
    }

    /// A part holding the first of `entries` that fit the log's record
    /// bound, and how many it holds (at least one).
    fn run_part(&self, kind: &DataKindId, entries: &[snapshot::RunEntry<'_>]) -> (Record, usize) {
        assert!(!entries.is_empty());
        let mut n = entries.len();
        // Bounded: the run halves each pass.
        loop {
            let mut buf = Vec::new();
            snapshot::encode_run_of(
                kind,
                &entries[..n],
                |k| self.names.name(k).as_str(),
                &mut buf,
            );
            if buf.len() + part_overhead() <= self.config.record_bytes_max || n == 1 {
                return (Record::SnapshotPart(Bytes::from(buf)), n);
            }
            n /= 2;
        }
    }

    /// References per part within the log's record bound (and a part's).
    fn references_per_part(&self) -> usize {
        self.entries_per_part(8, snapshot::REFERENCES_MAX)
    }

    /// Keys per part within the log's record bound (and a run's).
    fn keys_per_part(&self) -> usize {
        self.entries_per_part(32, snapshot::KEY_RUN_ENTRIES_MAX)
    }

    /// Entries of `entry_bytes` after a 5-byte head that fit one part within
    /// the log's record bound, at least one and at most `max`.
    fn entries_per_part(&self, entry_bytes: usize, max: usize) -> usize {
        let fits = self
            .config
            .record_bytes_max
            .saturating_sub(5 + part_overhead())
            / entry_bytes;
        fits.clamp(1, max)
    }

    /// The next part of the frozen key slices: one written before is
    /// referred to part by part, a new one written in runs.
    fn next_frozen_keys_part(
        &mut self,
        c: &mut SnapshotCursor,
        offset: u64,
        may_write: bool,
    ) -> Step {
        let per_part = self.keys_per_part();
        // Bounded: each pass moves to the next slice.
        loop {
            if c.slice >= self.keys.frozen_count() {
                return Step::Done;
            }
            if let Some(parts) = self.keys.frozen_written_at(c.slice) {
                if let Some(&at) = parts.get(c.slice_ref) {
                    c.slice_ref += 1;
                    return Step::Refer(at);
                }
                (c.slice, c.slice_ref) = (c.slice + 1, 0);
                continue;
            }
            if !may_write {
                return Step::Blocked;
            }
            // A part's keys are read from the slice as it is written: the
            // shard takes no input until the snapshot's end, so the slice
            // does not change meanwhile.
            let slice = c.slice;
            let (run, offsets, keys) = c
                .slice_run
                .get_or_insert_with(|| (0, Vec::new(), self.keys.frozen_table_entries(slice)));
            let start = *run * per_part;
            if start >= keys.len() {
                assert_eq!(keys.len(), self.keys.frozen_len_of(slice));
                let offsets = std::mem::take(offsets);
                self.keys.frozen_written(slice, offsets);
                c.slice_run = None;
                (c.slice, c.slice_ref) = (c.slice + 1, 0);
                continue;
            }
            let end = (start + per_part).min(keys.len());
            *run += 1;
            offsets.push(offset);
            return Step::Write(part(|out| snapshot::encode_key_run(&keys[start..end], out)));
        }
    }

    /// The next part of the open key slice (written whole each time).
    fn next_open_keys_part(&self, c: &mut SnapshotCursor) -> Option<Record> {
        let per_part = self.keys_per_part();
        let (keys, run) = c
            .open_keys
            .get_or_insert_with(|| (self.keys.open_entries(), 0));
        let start = *run * per_part;
        if start >= keys.len() {
            return None;
        }
        let end = (start + per_part).min(keys.len());
        *run += 1;
        Some(part(|out| snapshot::encode_key_run(&keys[start..end], out)))
    }
}
