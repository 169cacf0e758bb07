//! The hub process's memory allocator: mimalloc.
//!
//! Why not the C library's: a bulk message allocates and frees a handful of
//! small blocks on the shard's thread (its exchange, its id's text, the
//! reply's header) and every fetch frees a ~430 KB reply frame. glibc's
//! malloc took ~12 % of the hub's CPU in the bulk benchmark (`_int_malloc`,
//! `malloc_consolidate`, `unlink_chunk`, and with its default thresholds
//! `mmap`/`munmap` and page faults for every large frame, which needed
//! `mallopt` tuning). mimalloc keeps per-thread free lists and reuses large
//! blocks without going back to the kernel each time; measured in
//! bench/RESULTS.md.

/// Every Rust allocation of the `gonets` binary goes through mimalloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h` v3, `enum mi_option_e`:
/// the 16th entry). The `mimalloc` crate exposes no constant for it.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
/// v3's default for it, which identifies the option before it is changed.
const PURGE_DELAY_DEFAULT_MS: std::ffi::c_long = 1_000;
/// How long freed memory stays committed before it goes back to the kernel.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

// The statically linked mimalloc's own option API (declared here rather
// than through `libmimalloc-sys`'s `extended` feature, which would add a crate).
unsafe extern "C" {
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Keeps freed memory committed for 10 s instead of 1 s.
///
/// Why: the log's 1 MiB batch buffers live in the tail cache for well under
/// a second of a bulk run and are then freed; mimalloc handed their pages
/// back to the kernel and the next buffers faulted fresh, zeroed pages in
/// (~9,000 page faults in 3 s of a bulk run; `clear_page_erms` and the
/// fault path ~4 % of the hub's CPU). With a 10 s delay: ~50. Memory left
/// unused for 10 s still goes back. `MIMALLOC_PURGE_DELAY` in the
/// environment wins (the value then differs from the default and is left).
pub fn keep_freed_memory_warm() {
    // SAFETY: plain calls into the linked mimalloc; options are process-wide
    // atomics there, and this runs on the main thread before any executor.
    unsafe {
        if mi_option_get(MI_OPTION_PURGE_DELAY) == PURGE_DELAY_DEFAULT_MS {
            mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        }
    }
}
