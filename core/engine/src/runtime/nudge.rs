//! A periodic signal to every registered executor thread, so that a thread
//! asleep in `io_uring_enter` returns and looks at its rings again.
//!
//! Why: on the kernels of our machines (6.18) an executor thread sometimes
//! sleeps in `io_uring_enter` for minutes although its completions are
//! posted — a wake-up that never arrives (seen starting hubs and under heavy
//! disk pressure; the thread resumed the moment a debugger attached, which
//! interrupts the syscall). glommio treats `EINTR` from its sleep as a
//! normal return, reaps its rings and goes on, so a signal every
//! [`NUDGE_INTERVAL_MS`] bounds such a stall to that interval. The cost is
//! one signal and one executor loop per interval per thread.
//!
//! The registry of threads is one process-wide mutex, taken when a thread
//! registers or leaves and once per interval by the nudging thread: never
//! on a request's path, never between shards.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How often each registered thread is signalled, ms.
pub const NUDGE_INTERVAL_MS: u64 = 20;
/// The signal: SIGURG's default action is to ignore it, and a handler
/// installed without SA_RESTART makes it interrupt blocking syscalls.
const NUDGE_SIGNAL: libc::c_int = libc::SIGURG;

struct Registry {
    next_id: u64,
    threads: Vec<(u64, libc::pthread_t)>,
}

static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();

extern "C" fn on_nudge(_: libc::c_int) {}

fn registry() -> &'static Mutex<Registry> {
    REGISTRY.get_or_init(|| {
        // SAFETY: installs a handler that does nothing (async-signal-safe),
        // without SA_RESTART so that a blocking io_uring_enter returns EINTR.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_nudge as *const () as usize;
            action.sa_flags = 0;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(NUDGE_SIGNAL, &action, std::ptr::null_mut());
        }
        let spawned = std::thread::Builder::new()
            .name("gonets-nudge".into())
            .spawn(nudge_loop);
        if let Err(e) = spawned {
            tracing::warn!("cannot start the nudging thread ({e}); executors may stall");
        }
        Mutex::new(Registry {
            next_id: 0,
            threads: Vec::new(),
        })
    })
}

fn nudge_loop() {
    // Runs for the life of the process.
    loop {
        std::thread::sleep(Duration::from_millis(NUDGE_INTERVAL_MS));
        let Some(registry) = REGISTRY.get() else {
            continue;
        };
        let registry = registry.lock().unwrap_or_else(|p| p.into_inner());
        for (_, thread) in &registry.threads {
            // SAFETY: a registered thread is alive: it leaves the registry
            // (under this lock) before it ends.
            unsafe { libc::pthread_kill(*thread, NUDGE_SIGNAL) };
        }
    }
}

/// Keeps the current thread nudged until dropped (drop it on that thread,
/// before it ends).
#[derive(Debug)]
pub struct NudgeGuard {
    id: u64,
}

/// Registers the current thread (an executor's) for periodic nudges.
pub fn nudge_this_thread() -> NudgeGuard {
    let mut registry = registry().lock().unwrap_or_else(|p| p.into_inner());
    let id = registry.next_id;
    registry.next_id += 1;
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    registry.threads.push((id, me));
    NudgeGuard { id }
}

impl Drop for NudgeGuard {
    fn drop(&mut self) {
        let mut registry = registry().lock().unwrap_or_else(|p| p.into_inner());
        registry.threads.retain(|(id, _)| *id != self.id);
    }
}
