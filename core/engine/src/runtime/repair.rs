//! `gonets repair`: sets damaged committed records aside so the hub starts
//! and serves everything else (docs/storage.md §7.4).
//!
//! Runs with the hub stopped (each log's `LOCK` refuses a second opener). For
//! every shard's log and history log it runs the storage's repair: damaged
//! ranges are copied to the log's `quarantine/` folder with a report, and
//! recorded as accepted, so replay skips them from then on.

use crate::record::Record;
use gonets_storage::frame::{self, HEADER_SIZE_BYTES};
use gonets_storage::{LogConfig, RepairReport, QUARANTINE_DIR};
use std::path::{Path, PathBuf};

/// File in a log's `quarantine/` listing what the damaged bytes still name.
pub const LOST_IDS_FILE: &str = "lost-ids.txt";

/// One log's repair.
#[derive(Debug)]
pub struct LogRepair {
    /// The log directory.
    pub dir: PathBuf,
    /// What the storage did.
    pub report: RepairReport,
    /// Records still recognisable in the damaged bytes, one line each
    /// (unverified: their CRC failed or lies in the damage).
    pub unverified: Vec<String>,
}

/// Why a repair could not be done.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The data directory is missing or unreadable.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory holds no shard log.
    #[error("{0} holds no shard directory (shard-0, shard-1, …): is it a gonets data directory?")]
    NotADataDir(PathBuf),
    /// No glommio executor could be started for the repair.
    #[error("cannot start a glommio executor: {0}")]
    Executor(String),
    /// A log could not be repaired.
    #[error("log {dir}: {source}")]
    Log {
        /// The log directory.
        dir: PathBuf,
        /// The log's error.
        source: gonets_storage::LogError,
    },
}

/// The log directories of a data directory, in shard order: each shard's
/// log, then its history log where one exists.
pub fn log_dirs(data_dir: &Path) -> Result<Vec<PathBuf>, RepairError> {
    let io = |source| RepairError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    };
    let mut shards: Vec<(u32, PathBuf)> = Vec::new();
    // Bounded by the directory's entries.
    for entry in std::fs::read_dir(data_dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let n = entry
            .file_name()
            .to_str()
            .and_then(|s| s.strip_prefix("shard-"))
            .and_then(|s| s.parse::<u32>().ok());
        if let Some(n) = n.filter(|_| entry.path().is_dir()) {
            shards.push((n, entry.path()));
        }
    }
    if shards.is_empty() {
        return Err(RepairError::NotADataDir(data_dir.to_path_buf()));
    }
    shards.sort();
    let mut dirs = Vec::with_capacity(shards.len() * 2);
    for (_, dir) in shards {
        let history = dir.join("history");
        dirs.push(dir);
        if history.is_dir() {
            dirs.push(history);
        }
    }
    Ok(dirs)
}

/// Repairs every log of `data_dir` (the hub must be stopped), calling
/// `progress` after each. Blocks the calling thread; runs its own executor.
pub fn repair_data_dir(
    data_dir: &Path,
    log_config: &LogConfig,
    mut progress: impl FnMut(&LogRepair),
) -> Result<Vec<LogRepair>, RepairError> {
    let dirs = log_dirs(data_dir)?;
    let executor = glommio::LocalExecutorBuilder::default()
        .name("gonets-repair")
        .make()
        .map_err(|e| RepairError::Executor(e.to_string()))?;
    let config = log_config.clone();
    executor.run(async move {
        let mut done = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let config = if dir.ends_with("history") {
                crate::runtime::archive::history_log_config(&config)
            } else {
                config.clone()
            };
            let report = gonets_storage::repair(&dir, config)
                .await
                .map_err(|source| RepairError::Log {
                    dir: dir.clone(),
                    source,
                })?;
            let repair = LogRepair {
                unverified: name_lost(&dir, &report)?,
                dir,
                report,
            };
            progress(&repair);
            done.push(repair);
        }
        Ok(done)
    })
}

/// Lists what the quarantined copies of `report`'s ranges still name, and
/// writes it to the log's `quarantine/lost-ids.txt` (durably).
fn name_lost(dir: &Path, report: &RepairReport) -> Result<Vec<String>, RepairError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RepairError::DataDir { path, source }
    };
    let mut lines = Vec::new();
    for copy in &report.quarantine_files {
        let bytes = std::fs::read(copy).map_err(io(copy))?;
        lines.extend(unverified_records(&bytes));
    }
    if !report.damaged.is_empty() {
        let path = dir.join(QUARANTINE_DIR).join(LOST_IDS_FILE);
        let mut text = String::from(
            "# Records recognisable in the damaged bytes (unverified: decoded without a valid \
             CRC). Their loss may leave these exchanges without the step the record held.\n",
        );
        for line in &lines {
            text.push_str(line);
            text.push('\n');
        }
        gonets_storage::durable_file::write(&path, text.as_bytes(), 0o644).map_err(io(&path))?;
    }
    Ok(lines)
}

/// The records whose frames can still be found in damaged bytes, decoded
/// without trusting their CRC: one line each, "offset N: what (ids)".
pub fn unverified_records(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut p = 0usize;
    // Bounded by the bytes: every step moves `p` forward.
    while p + HEADER_SIZE_BYTES <= bytes.len() {
        let Some((size, offset)) = frame::sniff(bytes, p) else {
            p += 1;
            continue;
        };
        let end = p.saturating_add(size).min(bytes.len());
        let what = Record::decode(&bytes[(p + HEADER_SIZE_BYTES).min(end)..end])
            .ok()
            .and_then(|r| describe(&r));
        if let Some(what) = what {
            out.push(format!("offset {offset}: {what}"));
        }
        p += HEADER_SIZE_BYTES.max(size.min(end - p));
    }
    out
}

fn describe(record: &Record) -> Option<String> {
    Some(match record {
        Record::Request(r) => format!(
            "request {} ({}, from {} to {})",
            r.id, r.kind, r.consumer, r.provider
        ),
        Record::Answer(a) => format!("answer {} to request {}", a.id, a.request_id),
        Record::Event(e) => format!("{:?} of request {}", e.kind, e.request_id),
        Record::Events(es) => format!("{} history steps", es.len()),
        Record::Audit(a) => format!("audit record {}", a.to_json_line(0, 0)),
        Record::Lost => "a lost offset filled at recovery (docs/adr/0036)".to_string(),
        Record::SnapshotPart(_) | Record::SnapshotEnd { .. } | Record::Anchor(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::unverified_records;
    use crate::record::{Record, RequestRecord};
    use bytes::Bytes;
    use gonets_storage::frame::{seal_in_place, RecordKind, HEADER_SIZE_BYTES};
    use gonets_types::ids::{DataKindId, MessageId, ParticipantId};

    fn framed(offset: u64, record: &Record) -> Vec<u8> {
        let mut payload = Vec::new();
        record.encode(&mut payload);
        let mut out = vec![0u8; HEADER_SIZE_BYTES + payload.len()];
        out[HEADER_SIZE_BYTES..].copy_from_slice(&payload);
        seal_in_place(&mut out, payload.len(), offset, 0, RecordKind::Data, 0);
        out
    }

    #[test]
    fn given_damaged_bytes_holding_a_request_frame_when_read_then_its_id_is_named_unverified() {
        let id = MessageId::new(5, 1, 2);
        let request = Record::Request(RequestRecord {
            seal: None,
            id,
            kind: DataKindId::new("urn:k"),
            consumer: ParticipantId::new("MVD"),
            provider: ParticipantId::new("FNS"),
            time_ms: 10,
            deadline_ms: 20,
            test: false,
            call: false,
            transaction: None,
            idempotency_key: None,
            payload: Bytes::from_static(b"passport 4510"),
        });
        let mut bytes = vec![0xa5u8; 37]; // garbage before it
        let frame = framed(42, &request);
        let crc_at = bytes.len();
        bytes.extend_from_slice(&frame);
        bytes[crc_at] ^= 0xff; // its CRC no longer checks out
        bytes.extend_from_slice(&[0u8; 100]);
        let lines = unverified_records(&bytes);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("offset 42: request "), "{lines:?}");
        assert!(lines[0].contains(&id.to_string()), "{lines:?}");
        assert!(unverified_records(&[0u8; 4096]).is_empty());
        assert!(
            unverified_records(&bytes[..crc_at + 40]).is_empty(),
            "a cut frame names nothing"
        );
    }
}
