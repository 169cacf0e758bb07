//! Blocking file steps of the attachment store, each recorded in the
//! test-only I/O journal (`failpoints` feature) so that the power-loss test
//! can build every disk a crash may leave. A small file is written the way
//! `core/engine/src/durable_file.rs` writes one: temporary name, sync,
//! rename, directory sync (docs/storage.md, "What a sync covers").
//!
//! Every error says which step failed, because a failed sync is fatal for
//! the store (the page cache state after it is unknown) while a failed write
//! or rename only fails the call.

#[cfg(feature = "failpoints")]
use crate::journal::{record, IoEvent};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Suffix of a temporary file (`<name>.tmp`); one left by a crash is removed on open.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// What kind of step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// An `fsync`/`fdatasync`: fatal for the store.
    Sync,
    /// Anything else: fails the call only.
    Other,
}

/// A failed file step.
#[derive(Debug)]
pub(crate) struct FileError {
    /// What kind of step.
    pub step: Step,
    /// The step and its file, for the operator.
    pub what: String,
    /// The OS error.
    pub source: io::Error,
}

/// Result of a file step.
pub(crate) type FileResult<T> = Result<T, FileError>;

fn fail(step: Step, op: &str, path: &Path, source: io::Error) -> FileError {
    FileError {
        step,
        what: format!("{op} {}", path.display()),
        source,
    }
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
pub(crate) const WRITEBACK_PIECE_BYTES: usize = 64 << 10;

/// Writes `bytes` at `position` in pieces of [`WRITEBACK_PIECE_BYTES`],
/// each sent to the device (`sync_file_range`: written back, not yet
/// durable) before the next. Why: the shards' logs share the device, and
/// each of their `fdatasync`s flushes the device's cache; on a virtual disk
/// that flush waits for whatever reached the device since the last one.
/// A chunk written back whole by its own `fdatasync` made every log commit
/// in that window wait for megabytes; in pieces, a commit waits for at
/// most one. Durability is still the caller's `fdatasync`.
pub(crate) fn write_trickled(
    file: &File,
    path: &Path,
    position: u64,
    bytes: &[u8],
) -> FileResult<()> {
    use std::os::fd::AsRawFd;
    // Bounded by the chunk's length.
    for (i, piece) in bytes.chunks(WRITEBACK_PIECE_BYTES).enumerate() {
        let at = position + (i * WRITEBACK_PIECE_BYTES) as u64;
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

/// Makes the entries of `dir` (files created, renamed or removed in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> FileResult<()> {
    let handle = File::open(dir).map_err(|e| fail(Step::Other, "open directory", dir, e))?;
    handle
        .sync_all()
        .map_err(|e| fail(Step::Sync, "fsync directory", dir, e))?;
    journal!(record(|| IoEvent::SyncDir {
        dir: dir.to_path_buf(),
    }));
    Ok(())
}

/// Renames `from` to `to` (durable once the directory of `to` is synced).
pub(crate) fn rename(from: &Path, to: &Path) -> FileResult<()> {
    fs::rename(from, to).map_err(|e| fail(Step::Other, "rename", from, e))?;
    journal!(record(|| IoEvent::Rename {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
    }));
    Ok(())
}

/// Removes `path` if it exists (durable once its directory is synced);
/// true when it existed.
pub(crate) fn remove(path: &Path) -> FileResult<bool> {
    match fs::remove_file(path) {
        Ok(()) => {
            journal!(record(|| IoEvent::Remove {
                path: path.to_path_buf(),
            }));
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(fail(Step::Other, "remove", path, e)),
    }
}

/// Writes `bytes` as the whole content of `path`, durably: temporary file,
/// sync, rename, directory sync. A crash leaves the old file or the new one
/// (and perhaps a temporary file, removed on open), never a mix.
pub(crate) fn write_durable(path: &Path, bytes: &[u8]) -> FileResult<()> {
    let tmp = tmp_path(path);
    // A stale temporary file from a crash would make `create_new` fail.
    remove(&tmp)?;
    let written = create_new(&tmp).and_then(|file| {
        write_at(&file, &tmp, 0, bytes)?;
        sync_data(&file, &tmp)
    });
    let placed = written.and_then(|()| rename(&tmp, path));
    if let Err(e) = placed {
        // Best effort: a leftover temporary file is removed on the next open.
        let _ = remove(&tmp);
        return Err(e);
    }
    sync_dir(parent_of(path))
}

/// Creates `dir` and its missing ancestors, each one's entry synced in its
/// parent before the next is made.
pub(crate) fn create_dir_all(dir: &Path) -> FileResult<()> {
    // Bounded by the path's components.
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.is_dir())
        .collect();
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {
                journal!(record(|| IoEvent::CreateDir {
                    path: d.to_path_buf(),
                }));
            }
            // Made meanwhile by someone else: its entry still gets synced.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(fail(Step::Other, "create directory", d, e)),
        }
        sync_dir(parent_of(d))?;
    }
    Ok(())
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

/// `<path>.tmp`.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// The directory holding `path` (`.` for a bare name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
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
