//! A process's CPU time and resident memory, read from /proc (the hub's
//! cost when it runs on the same machine).

use crate::hub_counters::CommitCounts;
use std::net::SocketAddr;

/// CPU seconds (user + system) of process `pid` so far.
pub fn cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Peak resident memory of `pid` since start or the last [`reset_peak_rss`], bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:").map(|k| k * 1024)
}

/// Resident memory of `pid` now, bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:").map(|k| k * 1024)
}

/// Starts a new peak-RSS window for `pid` (Linux `clear_refs` 5); false if
/// not allowed, in which case the peak is since the process started.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), b"5").is_ok()
}

/// A window over which a process's CPU (and, for a gonets hub whose
/// operator API is known, its commit counters) is measured.
#[derive(Clone, Copy, Debug)]
pub struct CpuWindow {
    pid: u32,
    cpu_start_s: Option<f64>,
    operator: Option<SocketAddr>,
    commits_start: Option<CommitCounts>,
}

impl CpuWindow {
    /// Starts measuring `pid` (None: nothing to measure).
    pub fn start(pid: Option<u32>) -> Option<CpuWindow> {
        CpuWindow::start_with(pid, None)
    }

    /// Starts measuring `pid` and, with `operator`, the hub's commit counters.
    pub fn start_with(pid: Option<u32>, operator: Option<SocketAddr>) -> Option<CpuWindow> {
        let pid = pid?;
        reset_peak_rss(pid);
        Some(CpuWindow {
            pid,
            cpu_start_s: cpu_s(pid),
            operator,
            commits_start: operator.and_then(read_commits),
        })
    }

    /// CPU seconds per 1,000 operations, and the peak RSS, over the window.
    pub fn finish(&self, operations: u64) -> crate::result::HubCost {
        let cpu = match (self.cpu_start_s, cpu_s(self.pid)) {
            (Some(a), Some(b)) if operations > 0 => Some((b - a) * 1000.0 / operations as f64),
            _ => None,
        };
        let commits = match (self.commits_start, self.operator.and_then(read_commits)) {
            (Some(a), Some(b)) if operations > 0 => Some(a.since(&b)),
            _ => None,
        };
        let per_op = |n: u64| n as f64 / operations as f64;
        crate::result::HubCost {
            cpu_s_per_1000: cpu,
            peak_rss_bytes: peak_rss_bytes(self.pid),
            commits_per_op: commits.map(|c| per_op(c.message_commits)),
            fdatasyncs_per_op: commits.map(|c| per_op(c.fdatasyncs())),
            receipt_signatures_per_op: commits.map(|c| per_op(c.receipt_signatures)),
        }
    }
}

/// The hub's commit counters, or None (said once on stderr per failure).
fn read_commits(operator: SocketAddr) -> Option<CommitCounts> {
    match crate::hub_counters::read(operator) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("hub commit counters not read (operator API): {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_own_process_when_read_then_cpu_and_memory_are_known() {
        let me = std::process::id();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_s(me).is_some());
        let rss = rss_bytes(me).unwrap();
        assert!(rss > 0 && peak_rss_bytes(me).unwrap() >= rss / 2);
    }
}
