//! Helpers shared by the black-box tests in `tests/tests/` and the kill child.
//!
//! Every record the tests write is a deterministic function of its offset
//! (payload, timestamp, flags), so any record found in a log can be checked
//! without remembering what was written.
//!
//! `net`: the harness of the network tests (`tests/tests/net_*.rs`): a
//! `gonets serve` child process, clients with its development certificates,
//! raw sockets for malformed input.

pub mod net;
pub mod power_disk;
pub mod signing;

use gonets_storage::{Log, LogConfig, LogError, Slot};
use std::ffi::CString;
use std::future::Future;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Payload lengths are `0..PAYLOAD_LEN_MODULUS` bytes.
pub const PAYLOAD_LEN_MODULUS: u64 = 4000;

/// Consecutive `Busy` answers tolerated before `append_expected` gives up.
const BUSY_RETRIES_MAX: usize = 10_000;

/// SplitMix64 finalizer: a well-mixed 64-bit hash of `x`.
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Length of the payload of the record at `offset`.
pub fn payload_len(offset: u64) -> usize {
    (mix64(offset ^ 0x005E_ED0F_1E46_7400) % PAYLOAD_LEN_MODULUS) as usize
}

/// The payload of the record at `offset`: `payload_len(offset)` bytes from a PRNG seeded by the offset.
pub fn payload_for(offset: u64) -> Vec<u8> {
    let len = payload_len(offset);
    let mut out = Vec::with_capacity(len + 8);
    let mut state = mix64(offset.wrapping_mul(0xA24B_AED4_963E_E407));
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        out.extend_from_slice(&mix64(state).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The timestamp the tests give the record at `offset`.
pub fn timestamp_for(offset: u64) -> u64 {
    1_700_000_000_000_000_000 + offset * 1_000
}

/// The flags the tests give the record at `offset`.
pub fn flags_for(offset: u64) -> u8 {
    (mix64(offset) >> 56) as u8
}

/// CRC32C of the payload of the record at `offset`.
pub fn expected_crc(offset: u64) -> u32 {
    crc32c::crc32c(&payload_for(offset))
}

/// Checks that `slot`, read at `offset`, holds exactly the deterministic record; describes any mismatch.
pub fn check_slot(offset: u64, slot: &Slot) -> Result<(), String> {
    let r = match slot {
        Slot::Present(r) => r,
        other => {
            return Err(format!(
                "offset {offset}: expected Present, found {other:?}"
            ))
        }
    };
    if r.offset() != offset {
        return Err(format!(
            "offset {offset}: the record read says offset {}",
            r.offset()
        ));
    }
    let want = payload_for(offset);
    if r.payload() != want.as_slice() {
        let first_diff = r
            .payload()
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(r.payload().len().min(want.len()));
        return Err(format!(
            "offset {offset}: payload differs (len {} vs expected {}, first difference at byte {first_diff})",
            r.payload().len(),
            want.len()
        ));
    }
    if r.timestamp_ns() != timestamp_for(offset) || r.flags() != flags_for(offset) {
        return Err(format!(
            "offset {offset}: timestamp/flags {}/{} differ from expected {}/{}",
            r.timestamp_ns(),
            r.flags(),
            timestamp_for(offset),
            flags_for(offset)
        ));
    }
    Ok(())
}

/// Verifies an open log end to end: offsets `0..next_offset` contiguous, each present and
/// deterministic (so nothing that was never written), `next_offset` empty; returns `next_offset`.
pub fn check_log_contents(log: &Log) -> Result<u64, String> {
    let stats = log.stats();
    if stats.start_offset != 0 {
        return Err(format!("start offset {} (expected 0)", stats.start_offset));
    }
    if stats.durable_offset != stats.next_offset {
        return Err(format!(
            "after open durable offset {} differs from next offset {}",
            stats.durable_offset, stats.next_offset
        ));
    }
    let next = stats.next_offset;
    let mut seen = 0u64;
    for (i, slot) in log.iter_from(0).enumerate() {
        let i = i as u64;
        if i >= next {
            return Err(format!(
                "iteration yields offset {i} at or past next offset {next}"
            ));
        }
        check_slot(i, &slot).map_err(|e| format!("iterating: {e}"))?;
        seen += 1;
    }
    if seen != next {
        return Err(format!(
            "iteration yielded {seen} records, next offset is {next}"
        ));
    }
    match log.read(next) {
        Slot::Empty => Ok(next),
        other => Err(format!(
            "read(next_offset {next}) is {other:?}, expected Empty"
        )),
    }
}

/// Reads each offset with `Log::read` and describes every one that is not present and intact.
pub fn check_offsets(log: &Log, offsets: impl IntoIterator<Item = u64>) -> Vec<String> {
    offsets
        .into_iter()
        .filter_map(|o| check_slot(o, &log.read(o)).err())
        .collect()
}

/// Runs `fut` to completion on a fresh glommio executor on this thread.
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .make()
        .expect("start a glommio executor (is RLIMIT_MEMLOCK large enough?)")
        .run(fut)
}

/// Appends the deterministic record for the log's next offset; returns that offset.
/// Waits on a commit while every batch buffer is busy, so the offset is known before appending.
pub async fn append_expected(log: &Log) -> Result<u64, LogError> {
    for attempt in 0..BUSY_RETRIES_MAX {
        let next = log.stats().next_offset;
        let payload = payload_for(next);
        match log.try_append(&payload, timestamp_for(next), flags_for(next)) {
            Ok(offset) => {
                assert_eq!(
                    offset, next,
                    "try_append gave an offset other than next_offset"
                );
                return Ok(offset);
            }
            Err(LogError::Busy) => {
                // Buffers free up once the pending batches are written.
                log.commit(next - 1).await?;
                if attempt > 0 {
                    // Committed yet still busy: let the flusher run before asking again.
                    glommio::timer::sleep(std::time::Duration::from_micros(200)).await;
                }
            }
            Err(e) => return Err(e),
        }
    }
    panic!(
        "try_append stayed Busy {BUSY_RETRIES_MAX} times although every wait committed (a hang)"
    );
}

/// The log configuration of the kill test: `small_for_tests` with a chosen segment size and commit window.
pub fn kill_config(segment_size_bytes: u64, commit_window_us: u64) -> LogConfig {
    LogConfig {
        segment_size_bytes,
        commit_window_us,
        ..LogConfig::small_for_tests()
    }
}

/// Segment files in a log directory, by base offset.
pub fn segment_files(dir: &Path) -> Vec<u64> {
    let mut bases: Vec<u64> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let name = e.ok()?.file_name();
                gonets_storage::segment::parse_file_name(name.to_str()?)
            })
            .collect()
        })
        .unwrap_or_default();
    bases.sort_unstable();
    bases
}

/// A tmpfs mounted on a fresh temporary directory; unmounted (detached if busy) on drop, also on panic.
pub struct TmpfsMount {
    path: PathBuf,
    // Dropped after `Drop::drop` unmounts, so the empty mount point is removed last.
    _dir: tempfile::TempDir,
}

fn c_string(s: &str) -> CString {
    CString::new(s).expect("no NUL inside")
}

fn mount_tmpfs(target: &Path, flags: libc::c_ulong, size: &str) -> Result<(), String> {
    let target_c = CString::new(target.as_os_str().as_bytes()).expect("no NUL in a temp path");
    let source = c_string("tmpfs");
    let data = c_string(&format!("size={size},mode=0755"));
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target_c.as_ptr(),
            source.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

impl TmpfsMount {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it, e.g. "1m") on a new temporary directory.
    pub fn new(size: &str) -> Result<TmpfsMount, String> {
        let dir = tempfile::Builder::new()
            .prefix("gonets-tmpfs-")
            .tempdir()
            .map_err(|e| format!("create a mount point: {e}"))?;
        let path = dir.path().to_path_buf();
        mount_tmpfs(&path, 0, size).map_err(|e| {
            format!(
                "mount -t tmpfs -o size={size} tmpfs {} failed: {e} (needs root or CAP_SYS_ADMIN)",
                path.display()
            )
        })?;
        Ok(TmpfsMount { path, _dir: dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes the size of the mounted tmpfs (`mount -o remount,size=...`), keeping its files.
    pub fn resize(&self, size: &str) -> Result<(), String> {
        mount_tmpfs(&self.path, libc::MS_REMOUNT, size).map_err(|e| {
            format!(
                "mount -o remount,size={size} {} failed: {e}",
                self.path.display()
            )
        })
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let target = CString::new(self.path.as_os_str().as_bytes()).expect("no NUL in a temp path");
        // SAFETY: a valid NUL-terminated path.
        let rc = unsafe { libc::umount2(target.as_ptr(), 0) };
        if rc != 0 {
            // Files still open (a panic left a log alive): detach now, freed when closed.
            // SAFETY: as above.
            let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
            if rc != 0 {
                eprintln!(
                    "warning: could not unmount {}: {}",
                    self.path.display(),
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// Appends deterministic records and commits them in random groups of
/// 1..=`group_max` until an append or a commit fails; returns the end of what
/// was acknowledged and the error, or `None` if `appends_max` records went in
/// without a failure.
pub async fn append_until_error(
    log: &Log,
    rng: &mut impl rand::Rng,
    appends_max: u64,
    group_max: usize,
) -> Option<(u64, LogError)> {
    let mut acked_end = log.stats().durable_offset;
    while log.stats().next_offset < appends_max {
        let mut last = 0;
        for _ in 0..rng.gen_range(1..=group_max) {
            match append_expected(log).await {
                Ok(o) => last = o,
                Err(e) => return Some((acked_end, e)),
            }
        }
        match log.commit(last).await {
            Ok(()) => acked_end = last + 1,
            Err(e) => return Some((acked_end, e)),
        }
    }
    None
}

/// Prints past the test harness's capture so the line shows in CI logs.
pub fn print_uncaptured(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A number from the environment variable `name`, if set; panics with the
/// variable's name when it is set but not a number (a test knob typo).
pub fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}")),
    )
}

/// The seed in `name` if set, else one from the clock (printed by the caller
/// so a failing run can be replayed).
pub fn seed_from_env(name: &str) -> u64 {
    env_number(name).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    })
}
