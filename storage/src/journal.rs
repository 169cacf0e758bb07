//! Test-only journal of every write, sync, create, rename and remove the log
//! issues, in order, with the bytes written. A power-loss test replays it to
//! build the disk a crash would leave (only what a sync covered, plus any
//! subset of the rest) and recovers from that. Compiled only with the
//! `failpoints` feature; off until a test calls [`start`] (this thread) or
//! [`start_process`] (every thread: a hub's shards and its start-up files).
//! [`replay`] holds what the tests that replay a journal share.

pub mod replay;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One step the log took against the filesystem.
#[derive(Clone, Debug)]
pub enum IoEvent {
    /// A file was created and preallocated to `size` bytes (zeros).
    Create {
        /// The file.
        path: PathBuf,
        /// Its size after preallocation.
        size: u64,
    },
    /// Bytes were written (the write completed, not yet synced).
    Write {
        /// The file.
        path: PathBuf,
        /// Position of the first byte.
        position: u64,
        /// What was written.
        bytes: Vec<u8>,
    },
    /// `fdatasync` of a file returned success.
    Sync {
        /// The file.
        path: PathBuf,
    },
    /// `fsync` of a directory returned success.
    SyncDir {
        /// The directory.
        dir: PathBuf,
    },
    /// A file was renamed.
    Rename {
        /// Old name.
        from: PathBuf,
        /// New name.
        to: PathBuf,
    },
    /// A directory was created (its entry durable once its parent is synced).
    CreateDir {
        /// The directory.
        path: PathBuf,
    },
    /// A file was removed.
    Remove {
        /// The file.
        path: PathBuf,
    },
    /// The test's own note: every offset below this was acknowledged.
    Acknowledged {
        /// The offset after the last acknowledged record.
        end_offset: u64,
    },
}

thread_local! {
    static JOURNAL: RefCell<Option<Vec<IoEvent>>> = const { RefCell::new(None) };
}

/// The process-wide journal: events of threads that record nothing of their own.
static PROCESS: Mutex<Option<Vec<IoEvent>>> = Mutex::new(None);

/// Starts recording on every thread that is not recording on its own
/// ([`start`]), in the order the events are recorded. One test at a time
/// per process may use it.
pub fn start_process() {
    *PROCESS.lock().unwrap_or_else(|p| p.into_inner()) = Some(vec![]);
}

/// Stops the process-wide recording and returns what was recorded.
pub fn take_process() -> Vec<IoEvent> {
    PROCESS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .unwrap_or_default()
}

/// Starts recording on this thread (the executor's).
pub fn start() {
    JOURNAL.with(|j| *j.borrow_mut() = Some(vec![]));
}

/// Stops recording and returns what was recorded.
pub fn take() -> Vec<IoEvent> {
    JOURNAL.with(|j| j.borrow_mut().take().unwrap_or_default())
}

/// True while recording (on this thread or process-wide).
pub fn active() -> bool {
    JOURNAL.with(|j| j.borrow().is_some())
        || PROCESS.lock().unwrap_or_else(|p| p.into_inner()).is_some()
}

/// Records an event if recording: in this thread's journal, else in the
/// process-wide one.
pub fn record(event: impl FnOnce() -> IoEvent) {
    let event = JOURNAL.with(|j| match j.borrow_mut().as_mut() {
        Some(v) => {
            v.push(event());
            None
        }
        None => Some(event),
    });
    if let Some(event) = event {
        if let Some(v) = PROCESS.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            v.push(event());
        }
    }
}

/// Records that the test saw every offset below `end_offset` acknowledged.
pub fn acknowledged(end_offset: u64) {
    record(|| IoEvent::Acknowledged { end_offset });
}

pub(crate) fn write(path: &Path, position: u64, bytes: &[u8]) {
    record(|| IoEvent::Write {
        path: path.to_path_buf(),
        position,
        bytes: bytes.to_vec(),
    });
}

pub(crate) fn sync(path: &Path) {
    record(|| IoEvent::Sync {
        path: path.to_path_buf(),
    });
}
