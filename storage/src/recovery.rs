//! Opening a log: find its segments, start from the checkpoint, check every
//! batch after it, cut a torn tail, report damage inside the durable part.

use crate::checkpoint::{Checkpoint, CHECKPOINT_FILE, CHECKPOINT_TMP_FILE};
use crate::config::LogConfig;
use crate::error::{Corruption, LogError};
use crate::index::{scan_segment, ScanEnd, ScanFrom, SparseIndex};
use crate::log::{create_segment, map_segment, os_error, LazyRange, SegmentEntry, State};
use crate::marker::{align_up, CHAIN_GENESIS};
use crate::scan::{classify_tail, TailVerdict};
use crate::segment::{self, SegmentHeader, SEGMENT_HEADER_BYTES};
use glommio::io::{DmaFile, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What recovery found and did when the log was opened.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// Segment files in the log after recovery.
    pub segments: usize,
    /// True when scanning started from a checkpoint.
    pub from_checkpoint: bool,
    /// Data records checked by the scan (those after the checkpoint).
    pub records_scanned: u64,
    /// Batches checked by the scan.
    pub batches_scanned: u64,
    /// Bytes of segments the scan covered.
    pub bytes_scanned: u64,
    /// First offset held.
    pub start_offset: u64,
    /// Offset the next append gets: every record below it is recovered or reported.
    pub next_offset: u64,
    /// The torn tail that was cut, if any.
    pub torn_tail: Option<TornTail>,
    /// Bytes zeroed when cutting the torn tail.
    pub bytes_cut: u64,
    /// Damage inside the durable part: reported, never served, never cut.
    pub corruptions: Vec<Corruption>,
    /// Files removed: segments whose creation a crash interrupted.
    pub removed_files: Vec<PathBuf>,
    /// Time recovery took.
    pub elapsed: Duration,
}

/// A batch that was being written when the process stopped: never acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Segment holding it.
    pub segment_base: u64,
    /// Where it started (the log continues from here).
    pub position: u64,
    /// Offset its first record would have had.
    pub first_offset: u64,
}

struct Found {
    base: u64,
    path: PathBuf,
    file: DmaFile,
    header: Option<SegmentHeader>,
}

fn lock_dir(dir: &Path) -> Result<std::fs::File, LogError> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LogError::io("open lock file", &path, e))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(LogError::Locked(dir.to_path_buf()));
    }
    Ok(file)
}

/// Opening happens before the log serves anyone, so the few blocking calls
/// here (directory listing, lock file, reading the checkpoint) do not stall a
/// reactor that has work.
pub(crate) async fn recover(
    dir: &Path,
    config: LogConfig,
) -> Result<(State, RecoveryReport), LogError> {
    let started = Instant::now();
    std::fs::create_dir_all(dir).map_err(|e| LogError::io("create log directory", dir, e))?;
    let lock = lock_dir(dir)?;
    let mut report = RecoveryReport::default();
    let mut st = State::new(dir.to_path_buf(), config.clone());
    st.lock_file = Some(lock);
    st.accepted = crate::repair::read_accepted(dir)?;
    let segment_size = config.segment_size_bytes;

    let tmp = dir.join(CHECKPOINT_TMP_FILE);
    if tmp.exists() {
        std::fs::remove_file(&tmp).map_err(|e| LogError::io("remove stale checkpoint", &tmp, e))?;
        journal!(crate::journal::record(|| crate::journal::IoEvent::Remove {
            path: tmp.clone()
        }));
    }
    let checkpoint = match std::fs::read(dir.join(CHECKPOINT_FILE)) {
        Ok(bytes) => Checkpoint::decode(&bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(LogError::io(
                "read checkpoint",
                dir.join(CHECKPOINT_FILE),
                e,
            ))
        }
    };

    let mut bases = vec![];
    for entry in std::fs::read_dir(dir).map_err(|e| LogError::io("list log directory", dir, e))? {
        let entry = entry.map_err(|e| LogError::io("list log directory", dir, e))?;
        if let Some(base) = entry
            .file_name()
            .to_str()
            .and_then(segment::parse_file_name)
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();

    let mut found: Vec<Found> = vec![];
    let count = bases.len();
    for (i, base) in bases.into_iter().enumerate() {
        let path = segment::path(dir, base);
        let last = i + 1 == count;
        // Writable even when not last: if the last file turns out to be an
        // interrupted roll and is removed, the one before becomes active.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&path)
            .await
            .map_err(|e| LogError::io("open segment", &path, os_error(e)))?;
        let size = file
            .file_size()
            .await
            .map_err(|e| LogError::io("stat segment", &path, os_error(e)))?;
        let mut header = None;
        if size >= SEGMENT_HEADER_BYTES as u64 {
            // Random access: a plain fault reads ahead up to the device's
            // read_ahead_kb (8 MiB on the development VM), which made each
            // header cost 4-15 ms on a cold open.
            let map = map_segment(&file, SEGMENT_HEADER_BYTES as u64, &path, true)?;
            header = SegmentHeader::decode(&map).filter(|h| h.base_offset == base);
        }
        if let Some(h) = &header {
            if h.segment_size_bytes != segment_size {
                return Err(LogError::Config(format!(
                    "{} has segment size {} but the log is configured for {segment_size}",
                    path.display(),
                    h.segment_size_bytes
                )));
            }
            if size != segment_size && !last {
                return Err(LogError::Unrecoverable {
                    path,
                    what: format!("segment file is {size} bytes, expected {segment_size}"),
                });
            }
        }
        if last && (header.is_none() || size != segment_size) {
            // A crash interrupted its creation (its size or header never
            // became durable), so no batch was ever written to it: batches
            // go to a segment only after its creation was synced.
            file.remove()
                .await
                .map_err(|e| LogError::io("remove incomplete segment", &path, os_error(e)))?;
            let _ = file.close().await;
            journal!(crate::journal::record(|| crate::journal::IoEvent::Remove {
                path: path.clone()
            }));
            report.removed_files.push(path);
            continue;
        }
        found.push(Found {
            base,
            path,
            file,
            header,
        });
    }
    if !report.removed_files.is_empty() {
        crate::log::sync_dir(dir).await?;
    }

    if found.is_empty() {
        if let Some(cp) = checkpoint.as_ref().filter(|c| c.next_offset > 0) {
            return Err(LogError::Unrecoverable {
                path: dir.to_path_buf(),
                what: format!(
                    "checkpoint at offset {} but no segment files",
                    cp.next_offset
                ),
            });
        }
        let (file, map) = create_segment(dir, 0, segment_size, CHAIN_GENESIS).await?;
        st.segments.push(SegmentEntry {
            base_offset: 0,
            path: segment::path(dir, 0),
            map: Rc::new(map),
            index: SparseIndex::default(),
            lazy: None,
        });
        st.active_file = Some(Rc::new(file));
        report.segments = 1;
        report.elapsed = started.elapsed();
        return Ok((st, report));
    }

    let start_idx = checkpoint
        .as_ref()
        .and_then(|cp| {
            let i = found
                .iter()
                .position(|f| f.base == cp.segment_base && f.header.is_some())?;
            let pos_ok = cp.position >= SEGMENT_HEADER_BYTES as u64
                && cp.position <= segment_size
                && (cp.position as usize).is_multiple_of(crate::marker::BLOCK_SIZE_BYTES);
            pos_ok.then_some(i)
        })
        .filter(|_| checkpoint.is_some());
    report.from_checkpoint = start_idx.is_some();
    let start_idx_or_0 = start_idx.unwrap_or(0);

    let n = found.len();
    let mut offset = found[0]
        .header
        .as_ref()
        .map_or(found[0].base, |h| h.base_offset);
    let mut chain = found[0]
        .header
        .as_ref()
        .map_or(CHAIN_GENESIS, |h| h.prev_chain);
    let mut position = SEGMENT_HEADER_BYTES;
    let limits = st.limits;
    let interval = config.index_interval_bytes;
    for (i, f) in found.into_iter().enumerate() {
        let last = i + 1 == n;
        let map = map_segment(&f.file, segment_size, &f.path, last)?;
        let mut entry = SegmentEntry {
            base_offset: f.base,
            path: f.path.clone(),
            map: Rc::new(map),
            index: SparseIndex::default(),
            lazy: None,
        };
        let next_base = st.segments.len(); // index this entry will get
        let _ = next_base;
        if i < start_idx_or_0 {
            // Covered by the checkpoint: indexed on first read.
            if let Some(h) = &f.header {
                entry.lazy = Some(LazyRange {
                    until_position: segment_size as usize,
                    until_offset: u64::MAX,
                    prev_chain: h.prev_chain,
                });
            }
            st.segments.push(entry);
            let _ = f.file.close().await;
            continue;
        }
        let Some(header) = f.header.clone() else {
            // A damaged header in the middle: everything in it is unreadable.
            st.corruptions.push(Corruption {
                segment_base: f.base,
                position: 0,
                first_offset: f.base,
                end_offset: f.base, // widened to the next segment's base below
                what: "segment header damaged".into(),
            });
            st.segments.push(entry);
            let _ = f.file.close().await;
            offset = u64::MAX;
            continue;
        };
        if i == start_idx_or_0 && start_idx.is_some() {
            let cp = checkpoint.as_ref().unwrap();
            position = cp.position as usize;
            offset = cp.next_offset;
            chain = cp.chain;
            if position > SEGMENT_HEADER_BYTES {
                entry.lazy = Some(LazyRange {
                    until_position: position,
                    until_offset: offset,
                    prev_chain: header.prev_chain,
                });
            }
        } else {
            if offset == u64::MAX {
                // After a segment with a damaged header.
                if let Some(c) = st.corruptions.last_mut() {
                    c.end_offset = header.base_offset;
                }
                offset = header.base_offset;
            }
            if header.base_offset > offset {
                st.corruptions.push(Corruption {
                    segment_base: f.base,
                    position: 0,
                    first_offset: offset,
                    end_offset: header.base_offset,
                    what: "records missing between segments".into(),
                });
            } else if header.base_offset < offset {
                return Err(LogError::Unrecoverable {
                    path: f.path,
                    what: format!(
                        "segment starts at offset {} but the previous one ends at {offset}",
                        header.base_offset
                    ),
                });
            }
            if header.prev_chain != chain && i > 0 {
                st.corruptions.push(Corruption {
                    segment_base: f.base,
                    position: 0,
                    first_offset: header.base_offset,
                    end_offset: header.base_offset,
                    what: "hash chain broken at segment start".into(),
                });
            }
            offset = header.base_offset;
            chain = header.prev_chain;
            position = SEGMENT_HEADER_BYTES;
        }
        let scan_from = position;
        let out = scan_segment(
            &entry.map,
            f.base,
            ScanFrom {
                position,
                next_offset: offset,
                chain,
            },
            segment_size as usize,
            limits,
            interval,
        );
        report.records_scanned += out.records;
        report.batches_scanned += out.batches;
        entry.index.prepend(out.index);
        st.corruptions.extend(out.corruptions);
        match out.end {
            ScanEnd::Clean { position: p, next_offset, chain: c } => {
                position = p;
                offset = next_offset;
                chain = c;
            }
            ScanEnd::DamagedTail { batch_start, batch_first_offset, chain: c, damage } if !last => {
                // A later segment exists, so this batch was durable before the roll.
                st.corruptions.push(Corruption {
                    segment_base: f.base,
                    position: damage.position as u64,
                    first_offset: damage.offset,
                    end_offset: u64::MAX, // up to the next segment's base, set below
                    what: format!("{:?} in the last batch of a sealed segment", damage.fault),
                });
                let _ = (batch_start, batch_first_offset, c);
                offset = u64::MAX;
            }
            ScanEnd::DamagedTail { batch_start, batch_first_offset, chain: c, damage } => {
                match classify_tail(&entry.map, batch_start, batch_first_offset, limits) {
                    TailVerdict::Torn => {
                        let window_end = (segment_size as usize).min(batch_start + limits.batch_bytes_max);
                        let last_nonzero = entry.map[batch_start..window_end].iter().rposition(|b| *b != 0).unwrap_or(0);
                        let cut_end = align_up(batch_start + last_nonzero + 1);
                        zero_range(&f.file, batch_start, cut_end, &f.path).await?;
                        report.bytes_cut = (cut_end - batch_start) as u64;
                        report.torn_tail = Some(TornTail {
                            segment_base: f.base,
                            position: batch_start as u64,
                            first_offset: batch_first_offset,
                        });
                        position = batch_start;
                        offset = batch_first_offset;
                        chain = c;
                    }
                    TailVerdict::Corrupt { record_count: Some(k), end: Some(e), chain: claimed } => {
                        st.corruptions.push(Corruption {
                            segment_base: f.base,
                            position: damage.position as u64,
                            first_offset: damage.offset,
                            end_offset: batch_first_offset + k as u64,
                            what: format!("{:?} in the last committed batch", damage.fault),
                        });
                        entry.index.force(batch_first_offset, batch_start);
                        position = e;
                        offset = batch_first_offset + k as u64;
                        chain = claimed.unwrap_or(CHAIN_GENESIS);
                    }
                    TailVerdict::Corrupt { .. } => {
                        return Err(LogError::Unrecoverable {
                            path: f.path,
                            what: format!(
                                "the last batch at position {batch_start} is damaged ({:?}) and its extent cannot be read",
                                damage.fault
                            ),
                        })
                    }
                }
            }
        }
        report.bytes_scanned += position.saturating_sub(scan_from) as u64;
        if offset == u64::MAX {
            st.segments.push(entry);
            let _ = f.file.close().await;
            continue;
        }
        st.segments.push(entry);
        if last {
            st.active_file = Some(Rc::new(f.file));
        } else {
            let _ = f.file.close().await;
        }
    }
    // Close the ranges left open ("up to the next segment's base").
    let bases: Vec<u64> = st.segments.iter().map(|s| s.base_offset).collect();
    for c in st.corruptions.iter_mut() {
        if c.end_offset == u64::MAX {
            let next = bases.iter().find(|b| **b > c.segment_base).copied();
            c.end_offset = next.unwrap_or(c.first_offset);
        }
    }
    // Lazy ranges of sealed segments end where the next segment starts.
    for i in 0..st.segments.len() {
        let next = st.segments.get(i + 1).map(|s| s.base_offset);
        if let (Some(lazy), Some(next)) = (st.segments[i].lazy.as_mut(), next) {
            if lazy.until_offset == u64::MAX {
                lazy.until_offset = next;
            }
        }
    }
    assert!(
        offset != u64::MAX,
        "the last segment always has a readable header"
    );
    st.write_position = position;
    st.next_offset = offset;
    st.durable_offset = offset;
    st.flush_wanted_offset = offset;
    st.start_offset = st.segments[0].base_offset;
    st.chain = chain;
    st.mark = checkpoint.as_ref().map_or(0, |c| c.mark);
    st.checkpoint = checkpoint.filter(|_| start_idx.is_some());
    report.segments = st.segments.len();
    report.start_offset = st.start_offset;
    report.next_offset = offset;
    report.corruptions = st.corruptions.clone();
    report.elapsed = started.elapsed();
    tracing::info!(
        dir = %dir.display(),
        segments = report.segments,
        next_offset = report.next_offset,
        from_checkpoint = report.from_checkpoint,
        bytes_scanned = report.bytes_scanned,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "log recovered"
    );
    if let Some(t) = &report.torn_tail {
        tracing::info!(
            segment = t.segment_base,
            position = t.position,
            bytes_cut = report.bytes_cut,
            "cut a torn tail (never acknowledged)"
        );
    }
    for c in &report.corruptions {
        tracing::error!(segment = c.segment_base, position = c.position, first_offset = c.first_offset, end_offset = c.end_offset, what = %c.what, "damaged committed records: reported, not served");
    }
    Ok((st, report))
}

async fn zero_range(file: &DmaFile, start: usize, end: usize, path: &Path) -> Result<(), LogError> {
    let mut pos = start;
    // Bounded by end - start, which is at most one batch.
    while pos < end {
        let len = (end - pos).min(1 << 20);
        let mut buf = glommio::allocate_dma_buffer(len);
        buf.as_bytes_mut().fill(0);
        journal!(crate::journal::write(path, pos as u64, buf.as_bytes()));
        let n = file
            .write_at(buf, pos as u64)
            .await
            .map_err(|e| LogError::io("zero torn tail", path, os_error(e)))?;
        if n != len {
            return Err(LogError::io(
                "zero torn tail",
                path,
                std::io::Error::from_raw_os_error(libc::EIO),
            ));
        }
        pos += len;
    }
    file.fdatasync()
        .await
        .map_err(|e| LogError::io("sync torn tail", path, os_error(e)))?;
    journal!(crate::journal::sync(path));
    Ok(())
}
