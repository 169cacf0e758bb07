//! The C allocator's settings for a hub process.
//!
//! A fetch's reply frame holds its messages' payloads (100 × 4 KiB is
//! ~430 KB), and the frame is freed once written. glibc serves such a block
//! with its own `mmap` and gives it back with `munmap` (or, in the
//! executors' per-thread arenas, trims the heap's top with `madvise`), so
//! every frame's pages were faulted in afresh and zeroed by the kernel:
//! 5–7 % of the hub's CPU in the bulk benchmark (page faults under the copy
//! into the frame, `madvise` under `free`). Raising both thresholds keeps
//! such blocks in the arenas to be reused. What it costs: freed memory up
//! to the trim threshold stays with the process instead of going back to
//! the kernel at once.

/// Blocks up to this size come from the arenas, not from their own `mmap`.
const MMAP_THRESHOLD_BYTES: libc::c_int = 32 << 20;
/// Free memory at an arena's top is given back to the kernel only past this.
const TRIM_THRESHOLD_BYTES: libc::c_int = 128 << 20;

/// Applies the hub's allocator settings; call it first thing in `main`,
/// before any thread starts (glibc reads them on every allocation, but
/// arenas made before keep what they already mapped).
pub(crate) fn tune() {
    // SAFETY: mallopt only sets glibc's tunables; it takes no pointers.
    // A refused setting (0) leaves glibc's default, which is correct, only slower.
    unsafe {
        if libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 0 {
            eprintln!(
                "gonets: note: the C allocator refused M_MMAP_THRESHOLD; large frames use mmap"
            );
        }
        if libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 0 {
            eprintln!("gonets: note: the C allocator refused M_TRIM_THRESHOLD");
        }
    }
}
