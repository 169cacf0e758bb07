//! Files and directories made durable the way the log's segments are
//! (`docs/storage.md`, "What a sync covers"): a file is written under a
//! temporary name, synced, renamed into place and its directory synced, so
//! that after a power loss it is either absent or whole, never empty or
//! cut; a new directory's entry is synced in its parent. The calls block:
//! for start-up, tools and the attachment store's own thread, never on a
//! reactor's hot path.
//!
//! One implementation with two faces: the functions at the top return the
//! OS error alone (the files the server creates outside the logs); those of
//! [`stepwise`] also say which step failed and whether it was a sync (the
//! attachment store, for which a failed sync is fatal).
//!
//! With the `failpoints` feature every step is recorded in the test-only
//! I/O journal (`crate::journal`), so that the power-loss tests can build
//! every disk a crash may leave.

use std::io;
use std::path::{Path, PathBuf};

/// Suffix of the temporary file a [`write`] goes through (`<name>.tmp`
/// beside the file; a crash may leave one, which the next write replaces).
pub const TMP_SUFFIX: &str = ".tmp";

/// Writes `bytes` as the whole content of `path`, with permissions `mode`
/// from the first byte on (0600 keeps a secret unreadable to others even
/// while it is written), durably: temporary file, sync, rename, directory
/// sync. A crash leaves the old file or the new one, never a mix.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    stepwise::write(path, bytes, Some(mode)).map_err(io::Error::from)
}

/// Creates `dir` and its missing ancestors, each one's entry synced in its
/// parent before the next is made. When `dir` existed already its parent is
/// synced all the same (where it can be opened): an earlier run may have
/// been killed between its `mkdir` and that sync.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    stepwise::create_dir_all(dir).map_err(io::Error::from)
}

/// Removes `path` if it exists, durably (its directory synced after).
pub fn remove_file(path: &Path) -> io::Result<()> {
    stepwise::remove(path)?;
    sync_dir(parent_of(path))
}

/// Makes the entries of `dir` (files created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    stepwise::sync_dir(dir).map_err(io::Error::from)
}

/// The temporary file a [`write`] of `path` goes through: `<path>.tmp`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The same steps, each failure naming its step and file and saying
/// whether it was a sync: after a failed sync the page cache's state is
/// unknown, so a caller that keeps running (the attachment store) stops
/// on one, while any other failure only fails the call.
pub mod stepwise {
    #[cfg(feature = "failpoints")]
    use crate::journal::{record, IoEvent};
    use std::fs::{self, File, OpenOptions, Permissions};
    use std::io::{self, Write};
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::path::Path;

    use super::{parent_of, tmp_path};

    /// What kind of step failed.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Step {
        /// An `fsync`/`fdatasync`: the page cache's state after it is unknown.
        Sync,
        /// Anything else: fails the call only.
        Other,
    }

    /// A failed step.
    #[derive(Debug)]
    pub struct StepError {
        /// What kind of step.
        pub step: Step,
        /// The step and its file, for the operator (`fsync directory /a/b`).
        pub what: String,
        /// The OS error.
        pub source: io::Error,
    }

    impl StepError {
        /// A failure of step `op` (`write`, `rename`, ...) on `path`.
        pub fn new(step: Step, op: &str, path: &Path, source: io::Error) -> StepError {
            StepError {
                step,
                what: format!("{op} {}", path.display()),
                source,
            }
        }
    }

    impl From<StepError> for io::Error {
        /// The OS error alone, as the plain functions return it.
        fn from(e: StepError) -> io::Error {
            e.source
        }
    }

    /// Result of a step.
    pub type StepResult<T> = Result<T, StepError>;

    /// [`super::write`], with `mode` `None` for the process's default
    /// (0666 less the umask, as `open` gives any new file).
    pub fn write(path: &Path, bytes: &[u8], mode: Option<u32>) -> StepResult<()> {
        if path.file_name().is_none() {
            let e = io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} names no file", path.display()),
            );
            return Err(StepError::new(Step::Other, "write", path, e));
        }
        let tmp = tmp_path(path);
        let placed = write_synced(&tmp, bytes, mode).and_then(|()| rename(&tmp, path));
        if let Err(e) = placed {
            // Best effort: a stale temporary file would only be replaced later.
            let _ = remove(&tmp);
            return Err(e);
        }
        sync_dir(parent_of(path))
    }

    /// Writes `bytes` to a new (or truncated) `path` with `mode` and syncs it.
    fn write_synced(path: &Path, bytes: &[u8], mode: Option<u32>) -> StepResult<()> {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        if let Some(mode) = mode {
            options.mode(mode);
        }
        let mut file = options
            .open(path)
            .map_err(|e| StepError::new(Step::Other, "create", path, e))?;
        if let Some(mode) = mode {
            // `mode` applies only to a new file; a stale temporary file keeps
            // its old mode, which could be wider, so set it before any byte
            // lands.
            file.set_permissions(Permissions::from_mode(mode))
                .map_err(|e| StepError::new(Step::Other, "set permissions", path, e))?;
        }
        journal!(record(|| IoEvent::Create {
            path: path.to_path_buf(),
            size: 0,
        }));
        file.write_all(bytes)
            .map_err(|e| StepError::new(Step::Other, "write", path, e))?;
        journal!(crate::journal::write(path, 0, bytes));
        file.sync_all()
            .map_err(|e| StepError::new(Step::Sync, "fsync", path, e))?;
        journal!(crate::journal::sync(path));
        Ok(())
    }

    /// [`super::create_dir_all`].
    pub fn create_dir_all(dir: &Path) -> StepResult<()> {
        // Bounded by the path's components.
        let missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.is_dir())
            .collect();
        if missing.is_empty() {
            return match sync_dir(parent_of(dir)) {
                // Not ours to sync (e.g. a parent without read permission): the
                // operator made `dir`, and its entry is as durable as they left it.
                Err(e) if e.source.kind() == io::ErrorKind::PermissionDenied => Ok(()),
                other => other,
            };
        }
        for d in missing.into_iter().rev() {
            match fs::create_dir(d) {
                Ok(()) => {
                    journal!(record(|| IoEvent::CreateDir {
                        path: d.to_path_buf(),
                    }));
                }
                // Made meanwhile by someone else: its entry still gets synced.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
                Err(e) => return Err(StepError::new(Step::Other, "create directory", d, e)),
            }
            sync_dir(parent_of(d))?;
        }
        Ok(())
    }

    /// [`super::sync_dir`].
    pub fn sync_dir(dir: &Path) -> StepResult<()> {
        let handle =
            File::open(dir).map_err(|e| StepError::new(Step::Other, "open directory", dir, e))?;
        handle
            .sync_all()
            .map_err(|e| StepError::new(Step::Sync, "fsync directory", dir, e))?;
        journal!(record(|| IoEvent::SyncDir {
            dir: dir.to_path_buf(),
        }));
        Ok(())
    }

    /// Renames `from` to `to` (durable once the directory of `to` is synced).
    pub fn rename(from: &Path, to: &Path) -> StepResult<()> {
        fs::rename(from, to).map_err(|e| StepError::new(Step::Other, "rename", from, e))?;
        journal!(record(|| IoEvent::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        }));
        Ok(())
    }

    /// Removes `path` if it exists (durable once its directory is synced);
    /// true when it existed.
    pub fn remove(path: &Path) -> StepResult<bool> {
        match fs::remove_file(path) {
            Ok(()) => {
                journal!(record(|| IoEvent::Remove {
                    path: path.to_path_buf(),
                }));
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StepError::new(Step::Other, "remove", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, Permissions};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn given_new_path_when_written_then_content_and_mode_hold_and_no_tmp_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("b").join("secret.key");
        create_dir_all(path.parent().unwrap()).unwrap();
        write(&path, b"first", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secret.key")]);
    }

    #[test]
    fn given_wider_stale_tmp_and_old_file_when_written_then_replaced_with_the_mode_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        fs::write(&path, b"old old old").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        let tmp = dir.path().join("server.key.tmp");
        fs::write(&tmp, b"stale").unwrap();
        fs::set_permissions(&tmp, Permissions::from_mode(0o666)).unwrap();
        write(&path, b"new", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert!(!tmp.exists());
    }

    #[test]
    fn given_existing_dir_or_bare_name_when_created_then_ok() {
        let dir = tempfile::tempdir().unwrap();
        create_dir_all(dir.path()).unwrap();
        create_dir_all(dir.path()).unwrap();
        assert!(write(Path::new("/"), b"x", 0o600).is_err());
    }

    #[test]
    fn given_failed_step_when_written_stepwise_then_step_and_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("meta");
        let e = stepwise::write(&path, b"x", None).unwrap_err();
        assert_eq!(e.step, stepwise::Step::Other);
        assert!(e.what.starts_with("create "), "{}", e.what);
        assert!(e.what.ends_with("meta.tmp"), "{}", e.what);
        assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound);
    }
}
