//! Files and directories the server creates outside the logs, made durable
//! the way the log's segments are (`docs/storage.md`, "What a sync
//! covers"): a file is written under a temporary name, synced, renamed into
//! place and its directory synced, so that after a power loss it is either
//! absent or whole, never empty or cut; a new directory's entry is synced
//! in its parent. The calls block: for start-up and tools, never on a
//! reactor's hot path.
//!
//! With the `failpoints` feature every step is recorded in the storage
//! layer's test journal (`gonets_storage::journal`), so that the
//! power-loss tests can build every disk a crash during start-up may leave.

#[cfg(feature = "failpoints")]
use gonets_storage::journal::{record, IoEvent};
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Suffix of the temporary file a [`write`] goes through (`<name>.tmp`
/// beside the file; a crash may leave one, which the next write replaces).
pub const TMP_SUFFIX: &str = ".tmp";

/// Writes `bytes` as the whole content of `path`, with permissions `mode`
/// from the first byte on (0600 keeps a secret unreadable to others even
/// while it is written), durably: temporary file, sync, rename, directory
/// sync. A crash leaves the old file or the new one, never a mix.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        ));
    };
    let dir = parent_of(path);
    let mut tmp_name = name.to_os_string();
    tmp_name.push(TMP_SUFFIX);
    let tmp = dir.join(tmp_name);
    let placed = write_synced(&tmp, bytes, mode).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = placed {
        // Best effort: a stale temporary file would only be replaced later.
        if fs::remove_file(&tmp).is_ok() {
            journal!(record(|| IoEvent::Remove { path: tmp.clone() }));
        }
        return Err(e);
    }
    journal!(record(|| IoEvent::Rename {
        from: tmp.clone(),
        to: path.to_path_buf(),
    }));
    sync_dir(dir)
}

/// Writes `bytes` to a new (or truncated) `path` with `mode` and syncs it.
fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    // `mode` applies only to a new file; a stale temporary file keeps its
    // old mode, which could be wider, so set it before any byte lands.
    file.set_permissions(Permissions::from_mode(mode))?;
    journal!(record(|| IoEvent::Create {
        path: path.to_path_buf(),
        size: 0,
    }));
    file.write_all(bytes)?;
    journal!(record(|| IoEvent::Write {
        path: path.to_path_buf(),
        position: 0,
        bytes: bytes.to_vec(),
    }));
    file.sync_all()?;
    journal!(record(|| IoEvent::Sync {
        path: path.to_path_buf()
    }));
    Ok(())
}

/// Creates `dir` and its missing ancestors, each one's entry synced in its
/// parent before the next is made. When `dir` existed already its parent is
/// synced all the same (where it can be opened): an earlier run may have
/// been killed between its `mkdir` and that sync.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    // Bounded by the path's components.
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.is_dir())
        .collect();
    if missing.is_empty() {
        return match sync_dir(parent_of(dir)) {
            // Not ours to sync (e.g. a parent without read permission): the
            // operator made `dir`, and its entry is as durable as they left it.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok(()),
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
            Err(e) => return Err(e),
        }
        sync_dir(parent_of(d))?;
    }
    Ok(())
}

/// Removes `path` if it exists, durably (its directory synced after).
pub fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            journal!(record(|| IoEvent::Remove {
                path: path.to_path_buf(),
            }));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    sync_dir(parent_of(path))
}

/// Makes the entries of `dir` (files created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()?;
    journal!(record(|| IoEvent::SyncDir {
        dir: dir.to_path_buf(),
    }));
    Ok(())
}

/// The directory holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

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
}
