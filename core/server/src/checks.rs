//! Start-up checks of `gonets serve`, each failing with what to do.

use crate::ServerError;
use std::path::Path;

/// The locked-memory limit glommio needs at least, bytes.
pub const MEMLOCK_BYTES_MIN: u64 = 512 * 1024;

/// Raises RLIMIT_MEMLOCK to at least `want_bytes` where allowed, then checks it.
pub fn locked_memory(want_bytes: u64) -> Result<u64, ServerError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Err(ServerError::Check(format!(
            "cannot read the locked-memory limit: {}",
            std::io::Error::last_os_error()
        )));
    }
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < want_bytes {
        let raised = libc::rlimit {
            rlim_cur: want_bytes.min(limit.rlim_max),
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            limit = raised;
        }
    }
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < MEMLOCK_BYTES_MIN {
        return Err(ServerError::Check(format!(
            "the locked-memory limit (RLIMIT_MEMLOCK) is {} KiB; glommio needs at least {} KiB \
             for its io_uring buffers. Raise it: `ulimit -l unlimited` as root, memlock in \
             /etc/security/limits.conf, or LimitMEMLOCK=infinity in the systemd unit",
            limit.rlim_cur / 1024,
            MEMLOCK_BYTES_MIN / 1024
        )));
    }
    Ok(limit.rlim_cur)
}

/// Checks the kernel offers io_uring (Linux 5.8 or later, not disabled by sysctl).
pub fn io_uring() -> Result<(), ServerError> {
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup with 1 entry and a zeroed params struct; the
    // returned fd is closed at once.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(ServerError::Check(format!(
            "io_uring is not available ({e}): gonets needs Linux 5.8 or later with io_uring \
             enabled (check the sysctl kernel.io_uring_disabled and container seccomp profiles)"
        )));
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// Checks the data directory exists or can be made, and takes a file.
pub fn data_dir_writable(dir: &Path) -> Result<(), ServerError> {
    let fail = |e: std::io::Error| {
        ServerError::Check(format!(
            "data directory {} is not writable: {e}; create it and give the gonets user write \
             access, or set data_dir in the config",
            dir.display()
        ))
    };
    gonets_storage::durable_file::create_dir_all(dir).map_err(fail)?;
    // A probe removed at once: unlike every file the server keeps, it need not be durable.
    let probe = dir.join(".gonets-write-check");
    std::fs::write(&probe, b"ok").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)?;
    Ok(())
}
