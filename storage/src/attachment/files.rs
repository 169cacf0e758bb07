//! Blocking file steps of the attachment store, each recorded in the
//! test-only I/O journal (`failpoints` feature) so that the power-loss test
//! can build every disk a crash may leave. What it shares with the server's
//! files (a small file written durably: temporary name, sync, rename,
//! directory sync; directories made, synced, renamed into, removed from)
//! is [`crate::durable_file`]; here is what only the store does: its data
//! and chunk files, written back in pieces, with its fail points.
//!
//! Every error says which step failed, because a failed sync is fatal for
//! the store (the page cache state after it is unknown) while a failed write
//! or rename only fails the call.

#[cfg(feature = "failpoints")]
use crate::journal::{record, IoEvent};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::durable_file::stepwise;
pub(crate) use crate::durable_file::stepwise::{
    create_dir_all, remove, rename, sync_dir, Step, StepError as FileError,
    StepResult as FileResult,
};
// Suffix of a temporary file (`<name>.tmp`); one left by a crash is removed on open.
pub(crate) use crate::durable_file::TMP_SUFFIX;

fn fail(step: Step, op: &str, path: &Path, source: io::Error) -> FileError {
    FileError::new(step, op, path, source)
}

/// Creates a new empty file for reading and writing (it must not exist).
pub(crate) fn create_new(path: &Path) -> FileResult<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| fail(Step::Other, "create", path, e))?;
    journal!(record(|| IoEvent::Create {
        path: path.to_path_buf(),
        size: 0,
    }));
    Ok(file)
}

/// Opens an existing file for reading and writing.
pub(crate) fn open_rw(path: &Path) -> FileResult<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| fail(Step::Other, "open", path, e))
}

/// Opens an existing file for reading.
pub(crate) fn open_ro(path: &Path) -> FileResult<File> {
    File::open(path).map_err(|e| fail(Step::Other, "open", path, e))
}

/// An error when test fail point `name` is armed with a `return(S)` whose
/// `S` occurs in `path` (so that tests running side by side, each in its
/// own directory, do not trip each other); never outside the `failpoints`
/// feature.
fn injected(name: &str, path: &Path, errno: i32) -> io::Result<()> {
    #[cfg(feature = "failpoints")]
    {
        let armed = || -> Option<String> {
            fail::fail_point!(name, |arg: Option<String>| arg);
            None
        };
        if let Some(needle) = armed() {
            if path.to_string_lossy().contains(needle.as_str()) {
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
    }
    let _ = (name, path, errno);
    Ok(())
}

/// Writes all of `bytes` at `position` (not yet durable). Fail point
/// `attachment::write` (ENOSPC).
pub(crate) fn write_at(file: &File, path: &Path, position: u64, bytes: &[u8]) -> FileResult<()> {
    injected("attachment::write", path, libc::ENOSPC)
        .map_err(|e| fail(Step::Other, "write", path, e))?;
    file.write_all_at(bytes, position)
        .map_err(|e| fail(Step::Other, "write", path, e))?;
    journal!(crate::journal::write(path, position, bytes));
    Ok(())
}

/// Bytes written back to the device at a time by [`write_trickled`].
pub const WRITEBACK_PIECE_BYTES: usize = 64 << 10;

/// Asked before each piece of a chunk is written: where the store's
/// owner paces its writes (it may sleep; the store runs on a thread of
/// its own). Pieces are at most [`WRITEBACK_PIECE_BYTES`], so a pace set
/// here spreads a chunk evenly instead of letting it go in one burst.
pub trait WriteGate: Send {
    /// Returns once a write of `bytes` may go.
    fn before_write(&mut self, bytes: usize);
}

/// Writes `bytes` at `position` in pieces of [`WRITEBACK_PIECE_BYTES`],
/// each sent to the device (`sync_file_range`: written back, not yet
/// durable) before the next. Why: the shards' logs share the device, and
/// each of their `fdatasync`s flushes the device's cache; on a virtual disk
/// that flush waits for whatever reached the device since the last one.
/// A chunk written back whole by its own `fdatasync` made every log commit
/// in that window wait for megabytes; in pieces, a commit waits for at
/// most one. `gate` is asked before each piece. Durability is still the
/// caller's `fdatasync`.
pub(crate) fn write_trickled(
    file: &File,
    path: &Path,
    position: u64,
    bytes: &[u8],
    gate: &mut dyn WriteGate,
) -> FileResult<()> {
    use std::os::fd::AsRawFd;
    // Bounded by the chunk's length.
    for (i, piece) in bytes.chunks(WRITEBACK_PIECE_BYTES).enumerate() {
        let at = position + (i * WRITEBACK_PIECE_BYTES) as u64;
        gate.before_write(piece.len());
        write_at(file, path, at, piece)?;
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: a range of an open file of ours; no memory is passed.
        let rc = unsafe {
            libc::sync_file_range(file.as_raw_fd(), at as i64, piece.len() as i64, flags)
        };
        if rc != 0 {
            // Only a hint: the fdatasync that follows makes it durable.
            let e = std::io::Error::last_os_error();
            tracing::debug!(path = %path.display(), error = %e, "sync_file_range");
        }
    }
    Ok(())
}

/// `fdatasync`: the file's bytes and the metadata to read them back are
/// stable. Fail point `attachment::fdatasync` (EIO).
pub(crate) fn sync_data(file: &File, path: &Path) -> FileResult<()> {
    injected("attachment::fdatasync", path, libc::EIO)
        .and_then(|()| file.sync_data())
        .map_err(|e| fail(Step::Sync, "fdatasync", path, e))?;
    journal!(crate::journal::sync(path));
    Ok(())
}

/// Reads exactly `buf.len()` bytes at `position`; a short file is `UnexpectedEof`.
pub(crate) fn read_exact_at(
    file: &File,
    path: &Path,
    position: u64,
    buf: &mut [u8],
) -> FileResult<()> {
    file.read_exact_at(buf, position)
        .map_err(|e| fail(Step::Other, "read", path, e))
}

/// Cuts `file` to `len` bytes and syncs it (recovery only: not journaled,
/// the power-loss test replays the workload, not recovery).
pub(crate) fn truncate(file: &File, path: &Path, len: u64) -> FileResult<()> {
    file.set_len(len)
        .map_err(|e| fail(Step::Other, "truncate", path, e))?;
    sync_data(file, path)
}

/// Writes a meta file durably ([`crate::durable_file`]: temporary file,
/// fsync, rename, directory sync), with the mode the store's other files
/// get (0666 less the umask). A crash leaves the old file or the new one
/// (and perhaps a temporary file, removed on open), never a mix.
pub(crate) fn write_durable(path: &Path, bytes: &[u8]) -> FileResult<()> {
    stepwise::write(path, bytes, None)
}

/// The names in `dir` (files only), bounded by what the directory holds.
pub(crate) fn list(dir: &Path) -> FileResult<Vec<String>> {
    let entries = fs::read_dir(dir).map_err(|e| fail(Step::Other, "list", dir, e))?;
    let mut names = vec![];
    for entry in entries {
        let entry = entry.map_err(|e| fail(Step::Other, "list", dir, e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Reads at most `max_bytes + 1` bytes of `path` (a meta file), so that a
/// damaged or foreign file cannot make the store allocate without bound;
/// the decoder refuses anything longer than `max_bytes`.
pub(crate) fn read_bounded(path: &Path, max_bytes: u64) -> FileResult<Vec<u8>> {
    use std::io::Read;
    let file = open_ro(path)?;
    let mut bytes = vec![];
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(Step::Other, "read", path, e))?;
    Ok(bytes)
}
