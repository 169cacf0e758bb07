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
