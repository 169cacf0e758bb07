//! Kill -9 cycles: a child process (`gonets-kill-child`) appends deterministic
//! records from several tasks and reports each acknowledged offset; the test
//! SIGKILLs it at a random moment, reopens the log and checks that every
//! acknowledged record is intact and that nothing else is in the log.
//!
//! `GONETS_KILL_CYCLES` sets how many cycles must acknowledge something
//! (default 100); `GONETS_KILL_SEED` replays a run (the seed is printed).

use gonets_storage::{Log, RecoveryReport};
use gonets_tests::{
    block_on, check_log_contents, check_offsets, env_number, expected_crc, kill_config,
    print_uncaptured, seed_from_env, segment_files,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Counted cycles (those that acknowledged something) by default.
const CYCLES_DEFAULT: usize = 100;
/// Counted cycles in one log directory before starting a fresh one (bounds the check cost).
const CYCLES_PER_DIR: usize = 20;
/// How long to wait for the child's first acknowledgement before killing it anyway.
const FIRST_ACK_WAIT: Duration = Duration::from_secs(30);
/// How long to watch for a new segment file before killing anyway.
const ROLL_WATCH: Duration = Duration::from_secs(3);
/// Segment sizes used by alternate directories: the standard small one, and a
/// tiny one (a header and one full batch plus a little) that makes rolls frequent.
const SEGMENT_SIZES: [u64; 2] = [256 << 10, 48 << 10];
/// Commit windows the child is started with (only the segment size must match across cycles).
const COMMIT_WINDOWS_US: [u64; 4] = [0, 0, 100, 500];

/// When the child is killed.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// This long after the first acknowledgement.
    AfterFirstAck(Duration),
    /// This long after spawning (may land during recovery; often acknowledges nothing).
    AfterSpawn(Duration),
    /// As soon as a new segment file appears after the first acknowledgement:
    /// lands inside the roll (preallocation, header write, syncs).
    OnNewSegment,
}

/// What the child printed before it died.
#[derive(Debug, Default)]
struct ChildOutput {
    start: Option<u64>,
    acks: Vec<(u64, u32)>,
    bad_lines: Vec<String>,
}

/// Kills and reaps the child if the test panics while it runs.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn read_stdout(stdout: ChildStdout, first_ack: mpsc::Sender<()>) -> ChildOutput {
    let mut out = ChildOutput::default();
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') {
            // Cut by the kill in the middle of a line: never a complete acknowledgement.
            break;
        }
        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
        let words: Vec<&str> = text.split(' ').collect();
        match words.as_slice() {
            ["start", n] if n.parse::<u64>().is_ok() && out.start.is_none() => {
                out.start = n.parse().ok();
            }
            ["ack", o, c] => match (o.parse::<u64>(), c.parse::<u32>()) {
                (Ok(o), Ok(c)) => {
                    if out.acks.is_empty() {
                        let _ = first_ack.send(());
                    }
                    out.acks.push((o, c));
                }
                _ => out.bad_lines.push(text),
            },
            _ => out.bad_lines.push(text),
        }
    }
    out
}

/// One child run: what it acknowledged, and how it ended.
struct ChildRun {
    output: ChildOutput,
    stderr: String,
    note: String,
}

fn run_child(
    dir: &Path,
    seed: u64,
    segment_size: u64,
    window_us: u64,
    tasks: u64,
    kill_at: KillAt,
) -> Result<ChildRun, String> {
    let child = Command::new(env!("CARGO_BIN_EXE_gonets-kill-child"))
        .arg(dir)
        .args([seed, segment_size, window_us, tasks].map(|n| n.to_string()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn the kill child: {e}"))?;
    let mut guard = ChildGuard(child);
    let stdout = guard.0.stdout.take().expect("piped stdout");
    let mut stderr = guard.0.stderr.take().expect("piped stderr");
    let (tx, first_ack) = mpsc::channel();
    let out_thread: JoinHandle<ChildOutput> = std::thread::spawn(move || read_stdout(stdout, tx));
    let err_thread: JoinHandle<String> = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut note = String::new();
    match kill_at {
        KillAt::AfterSpawn(d) => std::thread::sleep(d),
        KillAt::AfterFirstAck(d) => match first_ack.recv_timeout(FIRST_ACK_WAIT) {
            Ok(()) => std::thread::sleep(d),
            Err(e) => note = format!("no acknowledgement before the kill ({e})"),
        },
        KillAt::OnNewSegment => match first_ack.recv_timeout(FIRST_ACK_WAIT) {
            Ok(()) => {
                let before = segment_files(dir).len();
                let until = Instant::now() + ROLL_WATCH;
                while segment_files(dir).len() == before && Instant::now() < until {
                    std::thread::sleep(Duration::from_micros(100));
                }
                if segment_files(dir).len() == before {
                    note = "no new segment seen before the kill".into();
                }
            }
            Err(e) => note = format!("no acknowledgement before the kill ({e})"),
        },
    }
    let early_exit = guard
        .0
        .try_wait()
        .map_err(|e| format!("poll the kill child: {e}"))?;
    if early_exit.is_none() {
        guard
            .0
            .kill()
            .map_err(|e| format!("SIGKILL the child: {e}"))?;
    }
    let status = guard
        .0
        .wait()
        .map_err(|e| format!("reap the kill child: {e}"))?;
    let output = out_thread.join().expect("stdout reader");
    let stderr = err_thread.join().expect("stderr reader");
    if status.signal() != Some(libc::SIGKILL) {
        return Err(format!(
            "the child ended on its own ({status}) before the kill; stderr:\n{stderr}"
        ));
    }
    if !output.bad_lines.is_empty() {
        return Err(format!(
            "the child printed lines outside its protocol: {:?}",
            output.bad_lines
        ));
    }
    Ok(ChildRun {
        output,
        stderr,
        note,
    })
}

/// What the reopen after a kill found.
struct Reopened {
    next_offset: u64,
    report: RecoveryReport,
    lost: Vec<String>,
    problems: Vec<String>,
}

/// Reopens the log after a kill and checks it; closes it so the next child can lock it.
fn reopen_and_check(dir: &Path, segment_size: u64, acked: &[u64], prev_next: u64) -> Reopened {
    let dir = dir.to_path_buf();
    block_on(async move {
        let (log, report) = match Log::open(&dir, kill_config(segment_size, 0)).await {
            Ok(x) => x,
            Err(e) => {
                return Reopened {
                    next_offset: 0,
                    report: RecoveryReport::default(),
                    lost: acked
                        .iter()
                        .map(|o| format!("offset {o}: log does not open"))
                        .collect(),
                    problems: vec![format!("reopen failed: {e}")],
                }
            }
        };
        let mut problems = vec![];
        if !report.corruptions.is_empty() {
            problems.push(format!(
                "recovery reported corruptions: {:?}",
                report.corruptions
            ));
        }
        let next_offset = report.next_offset;
        if next_offset < prev_next {
            problems.push(format!(
                "next offset went back from {prev_next} (verified and closed cleanly) to {next_offset}"
            ));
        }
        // Random access to every acknowledged offset; then the whole log in order.
        let lost = check_offsets(&log, acked.iter().copied());
        if let Err(e) = check_log_contents(&log) {
            problems.push(e);
        }
        check_close(&log, &mut problems).await;
        Reopened {
            next_offset,
            report,
            lost,
            problems,
        }
    })
}

async fn check_close(log: &Log, problems: &mut Vec<String>) {
    if let Err(e) = log.close().await {
        problems.push(format!("close after the check failed: {e}"));
    }
}

fn summary(cycles: usize, acked: usize, lost: usize) -> String {
    format!("kill cycles: {cycles}, acknowledged: {acked}, lost: {lost}")
}

#[test]
fn given_sigkill_at_random_moments_when_reopened_then_every_acknowledged_record_intact() {
    let target = env_number("GONETS_KILL_CYCLES").map_or(CYCLES_DEFAULT, |n| n as usize);
    let attempts_max = target * 3 + 50;
    let seed = seed_from_env("GONETS_KILL_SEED");
    print_uncaptured(&format!(
        "kill test: seed {seed} (GONETS_KILL_SEED), {target} cycles (GONETS_KILL_CYCLES)"
    ));
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let (mut counted, mut attempts, mut total_acked) = (0usize, 0usize, 0usize);
    let (mut torn_tails, mut interrupted_rolls, mut roll_kills, mut dirs) = (0, 0, 0, 0);
    while counted < target {
        let dir = tempfile::Builder::new()
            .prefix("gonets-kill-")
            .tempdir()
            .expect("create a log directory");
        let segment_size = SEGMENT_SIZES[dirs % SEGMENT_SIZES.len()];
        dirs += 1;
        let mut acked: Vec<u64> = vec![];
        let mut prev_next = 0u64;
        let mut counted_here = 0;
        while counted_here < CYCLES_PER_DIR && counted < target {
            assert!(
                attempts < attempts_max,
                "{attempts} attempts gave only {counted} cycles that acknowledged something (seed {seed})"
            );
            attempts += 1;
            let kill_at = match rng.gen_range(0..100) {
                0..=14 => KillAt::AfterSpawn(Duration::from_millis(rng.gen_range(0..=40))),
                15..=39 => KillAt::OnNewSegment,
                _ => KillAt::AfterFirstAck(Duration::from_millis(rng.gen_range(5..=80))),
            };
            let window_us = COMMIT_WINDOWS_US[rng.gen_range(0..COMMIT_WINDOWS_US.len())];
            let tasks = rng.gen_range(1..=4);
            let cycle_no = counted;
            let context = |what: &str| {
                format!(
                    "seed {seed}, attempt {attempts}, counted cycles so far {cycle_no}, dir {}, segment {segment_size} B, \
                     window {window_us} us, {tasks} tasks, kill {kill_at:?}: {what}",
                    dir.path().display()
                )
            };
            let run = match run_child(
                dir.path(),
                rng.gen(),
                segment_size,
                window_us,
                tasks,
                kill_at,
            ) {
                Ok(run) => run,
                Err(e) => {
                    let msg = context(&e);
                    let kept: PathBuf = dir.keep();
                    panic!("{msg} (log kept at {})", kept.display());
                }
            };
            // The child's own report must be consistent before it can be trusted.
            let mut harness = vec![];
            if let Some(start) = run.output.start {
                if start != prev_next {
                    harness.push(format!(
                        "child opened at next offset {start}, the parent had closed at {prev_next}"
                    ));
                }
            }
            let first = run.output.start.unwrap_or(prev_next);
            for (i, (o, crc)) in run.output.acks.iter().enumerate() {
                if *o != first + i as u64 {
                    harness.push(format!(
                        "ack {i} is offset {o}, expected {}",
                        first + i as u64
                    ));
                    break;
                }
                if *crc != expected_crc(*o) {
                    harness.push(format!(
                        "ack of offset {o} has crc {crc}, expected {}",
                        expected_crc(*o)
                    ));
                    break;
                }
            }
            if !harness.is_empty() {
                let msg = context(&harness.join("; "));
                let kept = dir.keep();
                panic!(
                    "{msg} (log kept at {})\nchild stderr:\n{}",
                    kept.display(),
                    run.stderr
                );
            }
            let new_acks = run.output.acks.len();
            acked.extend(run.output.acks.iter().map(|(o, _)| *o));
            let reopened = reopen_and_check(dir.path(), segment_size, &acked, prev_next);
            if new_acks > 0 {
                counted += 1;
                counted_here += 1;
                total_acked += new_acks;
            }
            if !reopened.lost.is_empty() || !reopened.problems.is_empty() {
                print_uncaptured(&summary(counted, total_acked, reopened.lost.len()));
                let msg = context("check after reopen failed");
                let kept = dir.keep();
                panic!(
                    "{msg}\nlost acknowledged records ({}): {:?}\nproblems: {:?}\nrecovery report: {:?}\n\
                     child note: {}\nchild stderr:\n{}\n(log kept at {})",
                    reopened.lost.len(),
                    &reopened.lost[..reopened.lost.len().min(20)],
                    reopened.problems,
                    reopened.report,
                    run.note,
                    run.stderr,
                    kept.display()
                );
            }
            if reopened.report.torn_tail.is_some() {
                torn_tails += 1;
            }
            if !reopened.report.removed_files.is_empty() {
                interrupted_rolls += 1;
            }
            if matches!(kill_at, KillAt::OnNewSegment) && run.note.is_empty() {
                roll_kills += 1;
            }
            prev_next = reopened.next_offset;
        }
    }
    print_uncaptured(&format!(
        "kill test: {attempts} attempts in {dirs} log directories, {roll_kills} kills as a segment appeared, \
         {interrupted_rolls} recoveries removed an interrupted segment, {torn_tails} torn tails cut, {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    print_uncaptured(&summary(counted, total_acked, 0));
}
