//! `gonets repair`: sets damaged committed records aside so the hub starts
//! and serves everything else (docs/storage.md §7.4).
//!
//! Runs with the hub stopped (each log's `LOCK` refuses a second opener). For
//! every shard's log and history log it runs the storage's repair: damaged
//! ranges are copied to the log's `quarantine/` folder with a report, and
//! recorded as accepted, so replay skips them from then on.

use gonets_storage::{LogConfig, RepairReport};
use std::path::{Path, PathBuf};

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
    mut progress: impl FnMut(&Path, &RepairReport),
) -> Result<Vec<(PathBuf, RepairReport)>, RepairError> {
    let dirs = log_dirs(data_dir)?;
    let _nudged = crate::runtime::nudge::nudge_this_thread();
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
            progress(&dir, &report);
            done.push((dir, report));
        }
        Ok(done)
    })
}
