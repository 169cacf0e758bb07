//! glommio executors still preempt a busy task queue on time now that the
//! vendored copy keeps its preemption timer armed across executor loops
//! instead of re-arming it on each (docs/adr/0014, "Timer re-arming").
//!
//! The patch keeps an armed latency-ring timer when it fires no later than
//! needed. Were it to keep one that already fired, or one armed for longer
//! (the 60 s user timer a sleeping executor arms), a task that computes
//! until `need_preempt()` would never be told to yield. Here a task does,
//! round after round, what exercises each path: it sleeps on a message from
//! another executor (the executor parks with a 60 s timer of another task
//! armed), takes a few 1 µs timers (executor loops that keep the armed
//! preemption timer) and then computes until preempted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};

/// How long the rounds go on, ms.
const RUN_MS: u64 = 2_000;
/// The shards' preemption timer (hub.rs), ms.
const PREEMPT_MS: u64 = 1;
/// A compute slice not preempted after this is a missing timer, ms: it is
/// preempted after about `PREEMPT_MS`; the rest is room for a loaded box.
const SLICE_BOUND_MS: u64 = 2_000;
/// How long an overdue slice goes on before it counts, ms: after a pause of
/// the whole VM (seen on this shared one) an armed timer fires at once,
/// while a missing one stays missing.
const CONFIRM_MS: u64 = 500;
/// Executor loops between two compute slices that keep the armed timer.
const SHORT_TIMERS_PER_ROUND: usize = 5;
/// How often the peer executor sends, µs.
const PEER_SEND_EVERY_US: u64 = 3_000;

fn builder(name: &str) -> LocalExecutorBuilder {
    LocalExecutorBuilder::new(Placement::Unbound)
        .name(name)
        .preempt_timer(Duration::from_millis(PREEMPT_MS))
}

/// Computes until `need_preempt()`; the slice's length, or `None` if no
/// preemption came within `SLICE_BOUND_MS + CONFIRM_MS`.
fn compute_until_preempted() -> Option<Duration> {
    let start = Instant::now();
    let give_up = Duration::from_millis(SLICE_BOUND_MS + CONFIRM_MS);
    let mut x = 0u64;
    while !glommio::executor().need_preempt() {
        if start.elapsed() > give_up {
            return None;
        }
        // Work the optimizer cannot drop.
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    Some(start.elapsed())
}

/// What the rounds saw: how many, and the longest compute slice.
struct Rounds {
    done: u64,
    longest_slice: Duration,
    unpreempted: bool,
}

async fn rounds(peer: shared_channel::SharedReceiver<u64>) -> Rounds {
    let peer = peer.connect().await;
    // A long timer of another task: every park arms the latency ring's
    // timer for it (about 60 s), which the next loop must not keep.
    glommio::spawn_local(glommio::timer::sleep(Duration::from_secs(60))).detach();
    let epoch = Instant::now();
    let mut seen = Rounds {
        done: 0,
        longest_slice: Duration::ZERO,
        unpreempted: false,
    };
    while epoch.elapsed() < Duration::from_millis(RUN_MS) {
        peer.recv().await.expect("peer executor");
        for _ in 0..SHORT_TIMERS_PER_ROUND {
            glommio::timer::sleep(Duration::from_micros(1)).await;
        }
        let Some(slice) = compute_until_preempted() else {
            seen.unpreempted = true;
            break;
        };
        seen.longest_slice = seen.longest_slice.max(slice);
        seen.done += 1;
        glommio::executor().yield_if_needed().await;
    }
    seen
}

#[test]
fn given_an_executor_that_parks_and_loops_when_a_task_computes_then_it_is_preempted_on_time() {
    let (tx, rx) = shared_channel::new_bounded::<u64>(1);
    let stop = Arc::new(AtomicBool::new(false));
    let peer_stop = stop.clone();
    let peer = builder("preempt-peer")
        .spawn(move || async move {
            let tx = tx.connect().await;
            let mut n = 0u64;
            while !peer_stop.load(Ordering::Relaxed) {
                glommio::timer::sleep(Duration::from_micros(PEER_SEND_EVERY_US)).await;
                n += 1;
                if tx.send(n).await.is_err() {
                    break;
                }
            }
        })
        .expect("peer executor");
    let seen = builder("preempt-rounds")
        .spawn(move || rounds(rx))
        .expect("rounds executor")
        .join()
        .expect("rounds");
    stop.store(true, Ordering::Relaxed);
    peer.join().expect("peer");

    assert!(
        !seen.unpreempted,
        "a compute slice was not preempted within {} ms (preemption timer {PREEMPT_MS} ms) \
         after {} rounds",
        SLICE_BOUND_MS + CONFIRM_MS,
        seen.done
    );
    assert!(seen.done >= 10, "only {} rounds in {RUN_MS} ms", seen.done);
    eprintln!(
        "{} rounds, longest compute slice {:?}",
        seen.done, seen.longest_slice
    );
}
