//! Disk space: preallocating files (with a fallback for filesystems without
//! `fallocate`) and the per-log reserve that keeps a full disk from stopping
//! the log.
//!
//! **The reserve.** Each log holds `reserve_segments` segments' worth of
//! space in a preallocated file named [`RESERVE_FILE`] in its directory
//! (recovery lists only segment names, so it never reads it). Segments are
//! preallocated, so a full disk shows at a roll, before anything of the batch
//! is written. The roll then removes the reserve (and syncs the directory)
//! and creates the segment in the freed space: every pending commit still
//! succeeds and nothing is poisoned. The log is then *space low*
//! ([`Log::space_low`]): the engine refuses new work at the door while reads,
//! deliveries, acks and answers (which are how an operator drains the disk)
//! go on. A background task tries, every `reserve_retry_ms`, to make the
//! reserve again (only when `statvfs` shows room for it); when that succeeds
//! the log leaves the low state. A roll that finds the disk full with no
//! reserve left poisons the log with `StorageFull`, as before.
//!
//! **Without `fallocate`.** FUSE and some network filesystems answer
//! `fallocate` with `EOPNOTSUPP`. A file is then extended by writing zeros
//! (O_DIRECT, in [`ZERO_FILL_CHUNK_BYTES`] writes); the caller's `fdatasync`
//! makes the size and the blocks durable before the file is used, as after a
//! `fallocate`, and later batches land on written blocks (no extent
//! conversion). Logged once per process at WARN.

use crate::error::LogError;
use crate::log::{injected, os_error, sync_dir, Log, State};
use glommio::io::{DmaFile, OpenOptions};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// File name of a log's disk reserve; never parsed as a segment name.
pub const RESERVE_FILE: &str = "reserve";
/// Size of one zero write when a filesystem cannot `fallocate`; a multiple of 4 KiB.
pub const ZERO_FILL_CHUNK_BYTES: usize = 256 << 10;

/// Set once the process has logged that `fallocate` is unsupported.
static FALLOCATE_UNSUPPORTED_LOGGED: AtomicBool = AtomicBool::new(false);

impl State {
    /// Wakes the reserve retry task (the log stops, or it should look again).
    pub(crate) fn wake_reserve_retry(&mut self) {
        if let Some(w) = self.reserve_retry_waker.take() {
            w.wake();
        }
    }
}

impl Log {
    /// True while the log's disk reserve is used up (a roll found the disk
    /// full and rolled into the reserve's space) or could not be made at
    /// open. Commits still succeed; the owner should refuse new work until
    /// this turns false again, which happens once the reserve is remade.
    pub fn space_low(&self) -> bool {
        self.state.borrow().space_low
    }

    /// Bytes free for an unprivileged writer on the log's filesystem
    /// (`statvfs`; a blocking call, for reports only), if it can be read.
    pub fn free_bytes(&self) -> Option<u64> {
        let dir = self.state.borrow().dir.clone();
        free_bytes_of(&dir)
    }

    /// At open: makes the reserve, or keeps the one an earlier run made. On
    /// a full disk the log opens space low and retries in the background;
    /// any other failure fails the open.
    pub(crate) async fn open_reserve(&self) -> Result<(), LogError> {
        let (dir, size) = {
            let st = self.state.borrow();
            (st.dir.clone(), st.config.reserve_bytes())
        };
        let path = dir.join(RESERVE_FILE);
        if size == 0 {
            // Configured off: a reserve left by an earlier configuration goes.
            match std::fs::remove_file(&path) {
                Ok(()) => sync_dir(&dir).await?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("remove reserve", &path, e)),
            }
            return Ok(());
        }
        match make_reserve(&dir, size).await {
            Ok(()) => {
                self.state.borrow_mut().reserve_held = true;
                Ok(())
            }
            Err(LogError::StorageFull) => {
                self.state.borrow_mut().space_low = true;
                tracing::warn!(
                    dir = %dir.display(),
                    free_bytes = free_bytes_of(&dir),
                    reserve_bytes = size,
                    "disk full at open: no room for the log's reserve; the log is space low (new work refused) until it can be made"
                );
                self.start_reserve_retry();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// At a roll that found the disk full: removes the reserve so the roll
    /// can use its space. False when there was none to release.
    pub(crate) async fn release_reserve(&self) -> bool {
        let (dir, size) = {
            let st = self.state.borrow();
            if !st.reserve_held {
                return false;
            }
            (st.dir.clone(), st.config.reserve_bytes())
        };
        let path = dir.join(RESERVE_FILE);
        match glommio::io::remove(&path).await.map_err(os_error) {
            Ok(()) => {
                journal!(crate::journal::record(|| crate::journal::IoEvent::Remove {
                    path: path.clone()
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove the disk reserve");
                return false;
            }
        }
        {
            let mut st = self.state.borrow_mut();
            st.reserve_held = false;
            st.space_low = true;
            st.reserve_releases += 1;
        }
        // The removal made durable; a failure here shows again in the
        // roll's own directory sync, which poisons.
        if let Err(e) = sync_dir(&dir).await {
            tracing::warn!(dir = %dir.display(), error = %e, "directory sync after removing the reserve failed");
        }
        tracing::warn!(
            dir = %dir.display(),
            free_bytes = free_bytes_of(&dir),
            reserve_bytes = size,
            "disk full at a segment roll: the log's reserve is released and rolled into; the log is space low (new work refused) until the reserve can be made again"
        );
        self.start_reserve_retry();
        true
    }

    /// Starts the task that remakes the reserve, unless it runs.
    fn start_reserve_retry(&self) {
        {
            let mut st = self.state.borrow_mut();
            if st.reserve_retry_running || st.stopping() {
                return;
            }
            st.reserve_retry_running = true;
        }
        let log = self.clone();
        glommio::spawn_local(async move { log.run_reserve_retry().await }).detach();
    }

    async fn run_reserve_retry(self) {
        let (dir, size, pause) = {
            let st = self.state.borrow();
            (
                st.dir.clone(),
                st.config.reserve_bytes(),
                Duration::from_millis(st.config.reserve_retry_ms),
            )
        };
        let mut failure_logged = false;
        // Bounded: one try per pause; ends once the reserve is back or the log stops.
        loop {
            let stop = RetryPause {
                log: &self,
                timer: glommio::timer::Timer::new(pause),
            }
            .await;
            if stop {
                break;
            }
            // Cheap check first: no file churn while the disk stays full.
            if free_bytes_of(&dir).is_some_and(|free| free < size) {
                continue;
            }
            match make_reserve(&dir, size).await {
                Ok(()) => {
                    let mut st = self.state.borrow_mut();
                    st.reserve_held = true;
                    st.space_low = false;
                    st.reserve_restores += 1;
                    drop(st);
                    tracing::warn!(
                        dir = %dir.display(),
                        free_bytes = free_bytes_of(&dir),
                        reserve_bytes = size,
                        "disk space is back: the log's reserve is made again; new work is accepted"
                    );
                    break;
                }
                Err(LogError::StorageFull) => {}
                Err(e) => {
                    if !failure_logged {
                        failure_logged = true;
                        tracing::warn!(dir = %dir.display(), error = %e, "remaking the disk reserve failed; retrying");
                    }
                }
            }
        }
        let mut st = self.state.borrow_mut();
        st.reserve_retry_running = false;
        for w in st.reserve_retry_done_waiters.drain(..) {
            w.wake();
        }
    }

    /// Waits until the reserve retry task has ended (it ends once the log stops).
    pub(crate) async fn reserve_retry_stopped(&self) {
        self.state.borrow_mut().wake_reserve_retry();
        RetryStopped { log: self }.await
    }
}

/// Makes `dir/reserve` hold `size` bytes (an existing one is kept or
/// resized); on failure no partial reserve is left.
async fn make_reserve(dir: &Path, size: u64) -> Result<(), LogError> {
    let path = dir.join(RESERVE_FILE);
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .dma_open(&path)
        .await
        .map_err(|e| LogError::io("create reserve", &path, os_error(e)))?;
    let result = async {
        let had = file
            .file_size()
            .await
            .map_err(|e| LogError::io("stat reserve", &path, os_error(e)))?;
        if had > size {
            file.truncate(size)
                .await
                .map_err(|e| LogError::io("truncate reserve", &path, os_error(e)))?;
        }
        preallocate(&file, &path, had.min(size), size, "preallocate reserve").await?;
        journal!(crate::journal::record(|| crate::journal::IoEvent::Create {
            path: path.clone(),
            size
        }));
        file.fdatasync()
            .await
            .map_err(|e| LogError::io("sync reserve", &path, os_error(e)))?;
        journal!(crate::journal::sync(&path));
        sync_dir(dir).await
    }
    .await;
    if result.is_err() {
        // A partial reserve would hold space nobody can use.
        let _ = file.remove().await;
    }
    let _ = file.close().await;
    result
}

/// Gives `file` `size` bytes of allocated space: `fallocate`, or where the
/// filesystem does not support it, zeros written from `written` (the bytes
/// already written by an earlier fill) to `size`. The caller syncs.
pub(crate) async fn preallocate(
    file: &DmaFile,
    path: &Path,
    written: u64,
    size: u64,
    op: &'static str,
) -> Result<(), LogError> {
    let errno = match injected("storage::fallocate") {
        Some(errno) => errno,
        None => match file.pre_allocate(size, false).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                let e = os_error(e);
                match e.raw_os_error() {
                    Some(errno) if errno == libc::EOPNOTSUPP || errno == libc::ENOSYS => errno,
                    _ => return Err(LogError::io(op, path, e)),
                }
            }
        },
    };
    if errno != libc::EOPNOTSUPP && errno != libc::ENOSYS {
        return Err(LogError::io(
            op,
            path,
            std::io::Error::from_raw_os_error(errno),
        ));
    }
    if !FALLOCATE_UNSUPPORTED_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            path = %path.display(),
            "the filesystem does not support fallocate; files are extended by writing zeros instead (slower rolls, same durability)"
        );
    }
    zero_fill(file, path, written, size, op).await
}

/// Writes zeros over `[from, size)` of `file` (`from` rounded down to 4 KiB).
async fn zero_fill(
    file: &DmaFile,
    path: &Path,
    from: u64,
    size: u64,
    op: &'static str,
) -> Result<(), LogError> {
    let block = crate::marker::BLOCK_SIZE_BYTES as u64;
    assert!(
        size.is_multiple_of(block),
        "preallocated sizes are whole blocks"
    );
    let mut at = from - from % block;
    // Bounded: each pass writes one chunk and moves forward.
    while at < size {
        let len = (size - at).min(ZERO_FILL_CHUNK_BYTES as u64) as usize;
        let mut buf = file.alloc_dma_buffer(len);
        buf.as_bytes_mut().fill(0);
        let n = file
            .write_at(buf, at)
            .await
            .map_err(|e| LogError::io(op, path, os_error(e)))?;
        if n != len {
            return Err(LogError::io(
                op,
                path,
                std::io::Error::from_raw_os_error(libc::EIO),
            ));
        }
        at += len as u64;
    }
    Ok(())
}

/// Bytes free for an unprivileged writer on the filesystem holding `dir`.
pub(crate) fn free_bytes_of(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data; all zeros is a valid value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `s` a valid out-parameter, both outliving the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    (rc == 0).then(|| (s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
}

/// The pause between two tries; `true` when the log stops meanwhile.
struct RetryPause<'a> {
    log: &'a Log,
    timer: glommio::timer::Timer,
}

impl Future for RetryPause<'_> {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        if self.log.state.borrow().stopping() {
            return Poll::Ready(true);
        }
        if Pin::new(&mut self.timer).poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        self.log.state.borrow_mut().reserve_retry_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

struct RetryStopped<'a> {
    log: &'a Log,
}

impl Future for RetryStopped<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.log.state.borrow_mut();
        if !st.reserve_retry_running {
            return Poll::Ready(());
        }
        st.reserve_retry_done_waiters.push(cx.waker().clone());
        Poll::Pending
    }
}
