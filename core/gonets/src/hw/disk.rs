//! The data directory's disk: which block device holds it, its model,
//! whether it spins or is NVMe, the free space, and how long one
//! `fdatasync` of a small overwrite takes there (measured briefly).

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes one probe write carries: one block, like a small group commit.
const PROBE_WRITE_BYTES: usize = 4096;
/// Name of the probe file in the data directory (removed afterwards).
const PROBE_FILE: &str = ".gonets-hw-fdatasync-probe";

/// What the disk under a directory is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Disk {
    /// The block device (`nvme0n1`, `vda`), or `unknown` (tmpfs, overlay, ...).
    pub(crate) device: String,
    /// The device's model (or vendor/driver when it reports no model).
    pub(crate) model: String,
    /// The kernel's `queue/rotational` (a spinning disk, or a virtual one
    /// the kernel cannot tell apart).
    pub(crate) rotational: bool,
    /// An NVMe namespace.
    pub(crate) nvme: bool,
    /// Free bytes of the directory's filesystem (for unprivileged users).
    pub(crate) free_bytes: u64,
}

/// A brief `fdatasync` measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SyncLatency {
    /// Writes made (each followed by `fdatasync`).
    pub(crate) samples: u32,
    /// Median, µs.
    pub(crate) p50_us: u64,
    /// 99th percentile, µs.
    pub(crate) p99_us: u64,
}

/// The disk holding `dir`, from the sysfs root `sys`.
pub(crate) fn describe(dir: &Path, sys: &Path) -> Result<Disk, String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let block = sys.join(format!("dev/block/{major}:{minor}"));
    let free_bytes = free_bytes(dir)?;
    let Ok(mut path) = std::fs::canonicalize(&block) else {
        // No block device: tmpfs, overlayfs, a network filesystem.
        return Ok(Disk {
            device: "unknown".into(),
            model: format!("no block device (device number {major}:{minor})"),
            rotational: false,
            nvme: false,
            free_bytes,
        });
    };
    if path.join("partition").exists() {
        path.pop(); // a partition's directory lies in its disk's
    }
    let device = path
        .file_name()
        .map_or_else(|| "unknown".into(), |n| n.to_string_lossy().into_owned());
    let read = |rel: &str| {
        std::fs::read_to_string(path.join(rel))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let driver = std::fs::read_link(path.join("device/driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let model = read("device/model")
        .or_else(|| read("device/vendor").map(|v| format!("vendor {v}")))
        .or(driver.map(|d| format!("driver {d}")))
        .unwrap_or_else(|| "unknown".into());
    Ok(Disk {
        nvme: device.starts_with("nvme"),
        rotational: read("queue/rotational").as_deref() == Some("1"),
        device,
        model,
        free_bytes,
    })
}

fn free_bytes(dir: &Path) -> Result<u64, String> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{} has a NUL byte", dir.display()))?;
    // SAFETY: statvfs fills one struct we own from a NUL-terminated path.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(format!(
            "statvfs {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}

/// Times `fdatasync` after a one-block overwrite in `dir`, `samples_max`
/// times or until `time_budget_ms` passed, whichever comes first; the
/// probe file is removed afterwards. The blocks are written once first, so
/// that each sync flushes data, not an extent conversion (as the log does
/// with its prewritten segments).
pub(crate) fn measure_fdatasync(
    dir: &Path,
    samples_max: u32,
    time_budget_ms: u64,
) -> Result<SyncLatency, String> {
    assert!(samples_max > 0, "at least one sample");
    let path = dir.join(PROBE_FILE);
    let fail = |e: std::io::Error| format!("fdatasync probe {}: {e}", path.display());
    let file = File::create(&path).map_err(fail)?;
    let result = (|| {
        let block = vec![0u8; PROBE_WRITE_BYTES];
        for i in 0..u64::from(samples_max) {
            file.write_all_at(&block, i * PROBE_WRITE_BYTES as u64)?;
        }
        file.sync_all()?;
        let mut micros = Vec::with_capacity(samples_max as usize);
        let budget = Duration::from_millis(time_budget_ms);
        let started = Instant::now();
        // Bounded by samples_max and by the time budget.
        for i in 0..u64::from(samples_max) {
            let t = Instant::now();
            file.write_all_at(&[1u8; 64], i * PROBE_WRITE_BYTES as u64)?;
            file.sync_data()?;
            micros.push(t.elapsed().as_micros() as u64);
            if started.elapsed() >= budget {
                break;
            }
        }
        Ok(micros)
    })();
    drop(file);
    let _ = std::fs::remove_file(&path);
    let mut micros = result.map_err(fail)?;
    micros.sort_unstable();
    Ok(SyncLatency {
        samples: micros.len() as u32,
        p50_us: percentile(&micros, 50),
        p99_us: percentile(&micros, 99),
    })
}

/// The `pct`th percentile of sorted `values` (nearest rank).
fn percentile(values: &[u64], pct: usize) -> u64 {
    assert!(!values.is_empty() && pct <= 100);
    let rank = (values.len() * pct).div_ceil(100).max(1);
    values[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_sorted_values_when_percentiles_taken_then_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), 50);
        assert_eq!(percentile(&v, 99), 99);
        assert_eq!(percentile(&[7], 99), 7);
    }

    #[test]
    fn given_a_directory_when_fdatasync_measured_then_bounded_and_the_probe_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let lat = measure_fdatasync(dir.path(), 20, 2_000).unwrap();
        assert!(lat.samples >= 1 && lat.samples <= 20, "{lat:?}");
        assert!(lat.p50_us <= lat.p99_us, "{lat:?}");
        assert!(!dir.path().join(PROBE_FILE).exists());
    }

    #[test]
    fn given_a_directory_when_described_then_free_space_is_known() {
        let dir = tempfile::tempdir().unwrap();
        let disk = describe(dir.path(), Path::new("/sys")).unwrap();
        assert!(disk.free_bytes > 0, "{disk:?}");
        assert!(
            !disk.device.is_empty() && !disk.model.is_empty(),
            "{disk:?}"
        );
    }
}
