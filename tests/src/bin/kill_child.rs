//! The process the kill test SIGKILLs: appends deterministic records to a log
//! from several tasks, commits them in random groups, and reports every
//! acknowledged offset on stdout.
//!
//! Usage: `gonets-kill-child <dir> <seed> <segment_size_bytes> <commit_window_us> <tasks>`
//!
//! Stdout protocol, one line each, flushed after every commit:
//! `start <next_offset>` once the log is open, then `ack <offset> <crc32c>` for
//! every offset once a commit covering it resolved, in increasing order.
//! Any failure is reported on stderr with a non-zero exit status; the child
//! also exits on its own after `CHILD_RUN_SECS_MAX` in case nobody kills it.

use gonets_storage::Log;
use gonets_tests::{append_expected, block_on, expected_crc, kill_config};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The child exits by itself after this long (the parent kills it far sooner).
const CHILD_RUN_SECS_MAX: u64 = 60;
/// Largest group of appends covered by one commit.
const GROUP_MAX: usize = 24;

fn die(what: String) -> ! {
    eprintln!("gonets-kill-child: {what}");
    std::process::exit(2);
}

fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        // The parent is gone; nothing left to report to.
        die(format!("write to stdout: {e}"));
    }
}

/// Reports every offset from the last reported one up to `upto` as acknowledged.
fn acknowledge(acked: &Cell<u64>, upto: u64) {
    let from = acked.get();
    if upto < from {
        return;
    }
    let mut text = String::with_capacity(((upto - from + 1) * 24) as usize);
    for o in from..=upto {
        text.push_str(&format!("ack {o} {}\n", expected_crc(o)));
    }
    acked.set(upto + 1);
    emit(&text);
}

async fn writer(log: Log, acked: Rc<Cell<u64>>, seed: u64, deadline: Instant) {
    let mut rng = StdRng::seed_from_u64(seed);
    while Instant::now() < deadline {
        let group = rng.gen_range(1..=GROUP_MAX);
        let mut last = 0;
        for _ in 0..group {
            last = append_expected(&log)
                .await
                .unwrap_or_else(|e| die(format!("append: {e}")));
        }
        if rng.gen_ratio(1, 8) {
            // commit_all covers everything appended so far, by any task.
            let covered = log.stats().next_offset - 1;
            log.commit_all()
                .await
                .unwrap_or_else(|e| die(format!("commit_all: {e}")));
            acknowledge(&acked, covered);
        } else {
            log.commit(last)
                .await
                .unwrap_or_else(|e| die(format!("commit {last}: {e}")));
            acknowledge(&acked, last);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        die(format!(
            "usage: {} <dir> <seed> <segment_size_bytes> <commit_window_us> <tasks>",
            args[0]
        ));
    }
    let num = |i: usize| -> u64 {
        args[i]
            .parse()
            .unwrap_or_else(|e| die(format!("argument {i} {:?}: {e}", args[i])))
    };
    let dir = std::path::PathBuf::from(&args[1]);
    let (seed, segment_size, window_us, tasks) = (num(2), num(3), num(4), num(5));
    let config = kill_config(segment_size, window_us);
    block_on(async move {
        let (log, report) = Log::open(&dir, config)
            .await
            .unwrap_or_else(|e| die(format!("open {}: {e}", dir.display())));
        if !report.corruptions.is_empty() {
            die(format!("recovery reported corruptions: {report:?}"));
        }
        emit(&format!("start {}\n", report.next_offset));
        let acked = Rc::new(Cell::new(report.next_offset));
        let deadline = Instant::now() + Duration::from_secs(CHILD_RUN_SECS_MAX);
        let handles: Vec<_> = (0..tasks.max(1))
            .map(|t| {
                let (log, acked) = (log.clone(), acked.clone());
                let task_seed = seed.wrapping_mul(31).wrapping_add(t);
                glommio::spawn_local(writer(log, acked, task_seed, deadline))
            })
            .collect();
        for h in handles {
            h.await;
        }
        die(format!(
            "ran for {CHILD_RUN_SECS_MAX} s without being killed"
        ));
    });
}
