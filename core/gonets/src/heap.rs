//! The hub keeps the memory it frees (docs/adr/0026-the-hub-keeps-freed-memory.md).
//!
//! Why: glibc's allocator hands large blocks back to the kernel as soon as
//! they are freed: a block of at least its moving mmap threshold (a log's
//! 1 MiB batch buffer, one a commit) is `mmap`ed and `munmap`ed each time,
//! and a heap's free top is trimmed. Every such block's next use then
//! faults its pages in afresh, and on a VM that reports freed pages to its
//! host each first touch is slow. At rt 2,000 calls/s on the project VM,
//! `mmap`, `munmap` and page faults were ~10 % of the shard thread's samples.

/// The fixed mmap threshold: blocks below it come from the heap. 32 MiB is
/// glibc's largest (half its 64 MiB per-thread heap).
#[cfg(target_env = "gnu")]
const MMAP_THRESHOLD_BYTES: libc::c_int = 32 * 1024 * 1024;

/// Asks the allocator to serve blocks under 32 MiB from its heaps and never
/// to trim them, so freed memory is reused without system calls or page
/// faults. Returns what the allocator refused, if anything (`None` on a C
/// library without `mallopt`, where nothing is asked).
pub(crate) fn keep_freed_memory() -> Option<&'static str> {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt only sets the allocator's parameters, under the
        // allocator's own locks.
        let mmap = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) };
        // SAFETY: as above.
        let trim = unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX) };
        // mallopt returns 1 on success.
        match (mmap, trim) {
            (1, 1) => None,
            (1, _) => Some("M_TRIM_THRESHOLD"),
            _ => Some("M_MMAP_THRESHOLD"),
        }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        None
    }
}

/// [`keep_freed_memory`], with a warning when the allocator refused.
pub(crate) fn keep_freed_memory_or_warn() {
    if let Some(setting) = keep_freed_memory() {
        tracing::warn!(
            setting,
            "the allocator refused a setting: freed memory may go back to the kernel"
        );
    }
}

#[cfg(all(test, target_env = "gnu"))]
mod tests {
    use super::*;

    /// Blocks the allocator holds as their own mappings now.
    fn mapped_blocks() -> usize {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        unsafe { libc::mallinfo2() }.hblks
    }

    #[test]
    fn given_freed_memory_kept_when_a_batch_sized_block_is_allocated_then_it_comes_from_the_heap() {
        assert_eq!(keep_freed_memory(), None);
        let before = mapped_blocks();
        // A log's batch buffer: 1 MiB. glibc's default threshold (128 KiB,
        // rising only to the largest block freed so far) maps it.
        let block = vec![7u8; 1 << 20];
        assert_eq!(mapped_blocks(), before, "a 1 MiB block was mmapped");
        assert_eq!(block.iter().map(|b| *b as usize).sum::<usize>(), 7 << 20);
    }
}
