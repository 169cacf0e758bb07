//! Why a hub did not start: each cause named with the shard and what to do.

use gonets_storage::LogError;
use std::path::PathBuf;

/// Why [`crate::Hub::start`] failed. Shards already started were stopped.
#[derive(Debug, thiserror::Error)]
pub enum HubStartError {
    /// The configuration breaks a bound.
    #[error("invalid hub configuration: {0}")]
    Config(String),
    /// The attachment store (DATA_DIR/attachments) did not open.
    #[error("{0}")]
    Attachments(String),
    /// The data directory could not be created or read.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A shard's glommio executor did not start (io_uring, locked memory or CPU placement).
    #[error(
        "shard {shard} ({placement}): cannot start its glommio executor: {reason}. glommio \
         needs io_uring (Linux 5.8 or later) and a locked-memory limit (RLIMIT_MEMLOCK) of at \
         least 512 KiB: raise it with `ulimit -l` (or memlock in /etc/security/limits.conf), or \
         lower HubConfig::io_memory_bytes; a pinned shard needs its core to exist and be allowed"
    )]
    Executor {
        /// The shard.
        shard: u16,
        /// Where it was to run, e.g. "pinned to core 3" or "unpinned".
        placement: String,
        /// glommio's words.
        reason: String,
    },
    /// The kernel refused to place a shard's io-wq workers
    /// ([`crate::HubConfig::io_worker_cores`]).
    #[error(
        "shard {shard}: cannot place its io-wq workers on cores {cores:?}: {reason} \
         (io_worker_cores names CPUs this machine has and allows; Linux 5.14 or later)"
    )]
    IoWorkers {
        /// The shard.
        shard: u16,
        /// The cores asked for.
        cores: Vec<usize>,
        /// The kernel's words.
        reason: String,
    },
    /// A shard's log did not open.
    #[error("shard {shard}: cannot open its log: {source}")]
    Log {
        /// The shard.
        shard: u16,
        /// The log's error.
        source: LogError,
    },
    /// A shard's log holds something replay cannot rebuild state from.
    #[error("shard {shard}: replay failed at log offset {offset}: {reason}")]
    Replay {
        /// The shard.
        shard: u16,
        /// Where.
        offset: u64,
        /// What was found.
        reason: String,
    },
    /// Committed records in the replayed part of a shard's log are damaged.
    /// The hub does not start without them unless the operator accepts
    /// their loss with `gonets repair` (docs/storage.md §7.4).
    #[error(
        "shard {shard}: committed records at offsets {first_offset}..{end_offset} of the log in \
         {dir} are damaged ({what}); the hub will not start without them. To set the damage \
         aside and serve everything else, stop every hub on this data directory and run \
         `gonets repair {data_dir}` (with the same --config as serve): it copies the damaged \
         bytes to quarantine/ with a report of what is lost; then start again",
        dir = .dir.display(),
        data_dir = .dir.parent().unwrap_or(.dir).display()
    )]
    Damaged {
        /// The shard.
        shard: u16,
        /// Its log directory.
        dir: PathBuf,
        /// First damaged offset.
        first_offset: u64,
        /// Offset after the last damaged one.
        end_offset: u64,
        /// What the log found.
        what: String,
    },
    /// A shard's thread could not be started or died while starting.
    #[error("shard {shard}: its thread failed: {reason}")]
    Thread {
        /// The shard.
        shard: u16,
        /// What happened.
        reason: String,
    },
}
