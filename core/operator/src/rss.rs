//! The process's resident memory, from `/proc/self/statm` (Linux).

/// Resident set size, bytes; `None` where `/proc` cannot be read.
pub(crate) fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    };
    Some(pages * page)
}

#[cfg(test)]
mod tests {
    #[test]
    fn given_this_process_when_read_then_resident_memory_is_above_zero() {
        assert!(super::resident_bytes().unwrap() > 0);
    }
}
