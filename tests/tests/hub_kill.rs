//! Kill -9 cycles of a whole hub: a child process (`gonets-hub-child`) runs
//! an embedded hub with live traffic and reports every acceptance and every
//! answer it saw; the test SIGKILLs it at random moments (during start-up
//! and recovery too) and starts it again on the same data directory, with
//! some idempotency keys sent again. A final clean run in this process then
//! drains the hub and checks that every accepted request still exists and
//! ended exactly once: one answer id per request, whatever the redeliveries.
//!
//! With the rt journal on (docs/adr/0036), the children also call a
//! realtime kind back to back beside padded requests, and the drain checks
//! that every call answered before a kill still has that answer.
//!
//! `GONETS_HUB_KILL_CYCLES` sets the number of cycles (default 8);
//! `GONETS_HUB_KILL_SEED` replays a run (the seed is printed).

use futures_lite::future::block_on;
use gonets_engine::registry::Mode;
use gonets_engine::{Hub, HubConfig, LogConfig, Registry};
use gonets_tests::signing::{signed_by_its_sender, signed_response};
use gonets_tests::{env_number, print_uncaptured, seed_from_env};
use gonets_types::{DataKindId, HubError, MessageId, QueueId};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Cycles by default.
const CYCLES_DEFAULT: usize = 8;
/// Cycles by default with calls and the rt journal.
const CALL_CYCLES_DEFAULT: usize = 24;
/// Keys below the highest one reported that the next child sends again.
const RESEND_KEYS: u64 = 8;
/// How long to wait for the child's `ready` before killing it anyway.
const READY_WAIT: Duration = Duration::from_secs(30);
/// How long the final drain may take.
const DRAIN_TIME_MAX: Duration = Duration::from_secs(30);
/// Long-poll wait of the drain's fetches.
const DRAIN_FETCH_WAIT: Duration = Duration::from_millis(50);

/// Accepted requests after which some child must have checkpointed a snapshot mark.
const MARK_EXPECTED_FROM_ACCEPTED: usize = 200;

/// The snapshot mark in a shard's checkpoint (bytes 64..72, docs/storage.md §5); 0 if none.
fn checkpoint_mark(dir: &Path, shard: u16) -> u64 {
    std::fs::read(dir.join(format!("shard-{shard}")).join("checkpoint"))
        .ok()
        .and_then(|b| Some(u64::from_le_bytes(b.get(64..72)?.try_into().ok()?)))
        .unwrap_or(0)
}

/// What the children send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Traffic {
    /// Requests and answers.
    Plain,
    /// The same, every send and answer signed.
    Signed,
    /// Padded requests and answers, and calls of a realtime kind, on a hub
    /// that keeps an rt journal.
    Calls,
}

/// The child's hub configuration (`src/bin/hub_child.rs`); the segment size
/// and the shard count must match for the drain to open the same logs.
fn hub_config(dir: PathBuf, traffic: Traffic) -> HubConfig {
    let mut c = HubConfig::new(dir);
    c.shards = 2;
    c.log = LogConfig::small_for_tests();
    c.snapshot_every_records = 64;
    c.shard.lease_timeout_ms = 300;
    c.shard.deliveries_max = 1000;
    c.shard.rt_journal = traffic == Traffic::Calls;
    if traffic == Traffic::Signed {
        // As the child's: signed traffic, receipts signed.
        c.registry = std::sync::Arc::new(gonets_tests::signing::signed_registry());
        c.hub_key = Some(std::sync::Arc::new(gonets_trust::HubKey::generate()));
    }
    c
}

/// An async kind and one of its consumers whose queues sit on different
/// shards of 2, so answers cross between shards.
fn cross_shard_pair(registry: &Registry) -> (String, String) {
    let mut kinds: Vec<_> = registry.kinds().filter(|k| k.mode == Mode::Async).collect();
    kinds.sort_by(|a, b| a.id.cmp(&b.id));
    for k in kinds {
        let mut consumers: Vec<_> = k.consumers.iter().collect();
        consumers.sort();
        for c in consumers {
            if QueueId::Requests(k.id.clone()).shard(2) != QueueId::Answers(c.clone()).shard(2) {
                return (k.id.to_string(), c.to_string());
            }
        }
    }
    panic!("the embedded registry has no async kind and consumer on different shards of 2");
}

/// A realtime kind and one of its consumers (the first of each by name).
fn rt_pair(registry: &Registry) -> (String, String) {
    let mut kinds: Vec<_> = registry
        .kinds()
        .filter(|k| k.mode == Mode::Realtime)
        .collect();
    kinds.sort_by(|a, b| a.id.cmp(&b.id));
    let kind = kinds
        .first()
        .expect("the embedded registry has a realtime kind");
    let caller = kind.consumers.iter().min().expect("a consumer");
    (kind.id.to_string(), caller.to_string())
}

/// When the child is killed.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// This long after it said `ready`.
    AfterReady(Duration),
    /// This long after spawning (lands in start-up or recovery).
    AfterSpawn(Duration),
}

/// One line of the child's protocol.
#[derive(Debug)]
enum Line {
    Ready,
    Accepted {
        key: u64,
        id: MessageId,
        duplicate: bool,
    },
    Answer {
        request: MessageId,
        answer: MessageId,
    },
    Called {
        request: MessageId,
        answer: MessageId,
    },
}

fn parse(text: &str) -> Option<Line> {
    let words: Vec<&str> = text.split(' ').collect();
    match words.as_slice() {
        ["ready"] => Some(Line::Ready),
        ["accepted", k, id, d] => Some(Line::Accepted {
            key: k.parse().ok()?,
            id: id.parse().ok()?,
            duplicate: match *d {
                "0" => false,
                "1" => true,
                _ => return None,
            },
        }),
        ["answer", r, a] => Some(Line::Answer {
            request: r.parse().ok()?,
            answer: a.parse().ok()?,
        }),
        ["called", r, a] => Some(Line::Called {
            request: r.parse().ok()?,
            answer: a.parse().ok()?,
        }),
        _ => None,
    }
}

/// What a child printed before it died.
#[derive(Debug, Default)]
struct ChildOutput {
    lines: Vec<Line>,
    bad_lines: Vec<String>,
}

fn read_stdout(stdout: ChildStdout, ready: mpsc::Sender<()>) -> ChildOutput {
    let mut out = ChildOutput::default();
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    // Bounded by the child's output, which ends when it is killed.
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') {
            break; // cut by the kill in the middle of a line: never a whole report
        }
        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
        match parse(&text) {
            Some(Line::Ready) => {
                let _ = ready.send(());
                out.lines.push(Line::Ready);
            }
            Some(l) => out.lines.push(l),
            None => out.bad_lines.push(text),
        }
    }
    out
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

/// Runs one child until the kill; returns what it printed and its stderr.
fn run_child(
    dir: &Path,
    seed: u64,
    first_key: u64,
    (kind, consumer): (&str, &str),
    kill_at: KillAt,
    traffic: Traffic,
) -> Result<(ChildOutput, String), String> {
    let mode: Vec<String> = match traffic {
        Traffic::Plain => vec![],
        Traffic::Signed => vec!["signed".into()],
        Traffic::Calls => {
            let (rt_kind, caller) = rt_pair(&Registry::embedded_default());
            vec!["calls".into(), rt_kind, caller]
        }
    };
    let child = Command::new(env!("CARGO_BIN_EXE_gonets-hub-child"))
        .arg(dir)
        .args([seed.to_string(), first_key.to_string()])
        .args([kind, consumer])
        .args(mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn the hub child: {e}"))?;
    let mut guard = ChildGuard(child);
    let stdout = guard.0.stdout.take().ok_or("no piped stdout")?;
    let mut stderr = guard.0.stderr.take().ok_or("no piped stderr")?;
    let (ready_tx, ready) = mpsc::channel();
    let out_thread = std::thread::spawn(move || read_stdout(stdout, ready_tx));
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    match kill_at {
        KillAt::AfterSpawn(d) => std::thread::sleep(d),
        KillAt::AfterReady(d) => {
            if ready.recv_timeout(READY_WAIT).is_ok() {
                std::thread::sleep(d);
            }
        }
    }
    let early_exit = guard
        .0
        .try_wait()
        .map_err(|e| format!("poll the child: {e}"))?;
    if early_exit.is_none() {
        guard
            .0
            .kill()
            .map_err(|e| format!("SIGKILL the child: {e}"))?;
    }
    let status = guard.0.wait().map_err(|e| format!("reap the child: {e}"))?;
    let output = out_thread.join().map_err(|_| "stdout reader panicked")?;
    let stderr = err_thread.join().map_err(|_| "stderr reader panicked")?;
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
    Ok((output, stderr))
}

/// Everything the children (and the drain) reported.
#[derive(Debug, Default)]
struct Ledger {
    /// Idempotency key to the id it was accepted as.
    by_key: BTreeMap<u64, MessageId>,
    /// Request id to every distinct answer id delivered for it.
    answers: HashMap<MessageId, BTreeSet<MessageId>>,
    /// Calls answered: request id to its answer's id.
    calls: BTreeMap<MessageId, MessageId>,
    /// Breaches of the promises, described.
    problems: Vec<String>,
}

impl Ledger {
    fn accepted(&mut self, key: u64, id: MessageId, duplicate: bool) {
        match self.by_key.get(&key) {
            None => {
                self.by_key.insert(key, id);
            }
            Some(known) if *known != id => self.problems.push(format!(
                "key {key} accepted as {known} and again as a different id {id}"
            )),
            Some(_) if !duplicate => self.problems.push(format!(
                "key {key} ({id}) accepted again without being reported a duplicate"
            )),
            Some(_) => {}
        }
    }

    fn answer(&mut self, request: MessageId, answer: MessageId) {
        self.answers.entry(request).or_default().insert(answer);
    }

    fn called(&mut self, request: MessageId, answer: MessageId) {
        if let Some(known) = self.calls.insert(request, answer) {
            self.problems.push(format!(
                "call {request} answered as {known} and again as {answer}"
            ));
        }
    }

    fn next_first_key(&self) -> u64 {
        self.by_key
            .keys()
            .next_back()
            .map_or(0, |k| (k + 1).saturating_sub(RESEND_KEYS))
    }

    fn unanswered(&self) -> usize {
        self.by_key
            .values()
            .filter(|id| !self.answers.contains_key(id))
            .count()
    }
}

/// Starts the hub in this process, answers every open request, takes every
/// answer, then checks every accepted request's history. Returns the number lost.
fn drain_and_check(
    dir: &Path,
    (kind, consumer): (&str, &str),
    ledger: &mut Ledger,
    traffic: Traffic,
) -> usize {
    let signed = traffic == Traffic::Signed;
    let hub = Hub::start(hub_config(dir.to_path_buf(), traffic)).expect("the final hub starts");
    let provider_id = hub
        .registry()
        .kind(&DataKindId::new(kind))
        .expect("kind")
        .provider
        .to_string();
    let provider = hub.session(&provider_id).expect("provider session");
    let consumer = hub.session(consumer).expect("consumer session");
    let requests = QueueId::Requests(DataKindId::new(kind));
    let answers = QueueId::Answers(consumer.participant().clone());
    let until = Instant::now() + DRAIN_TIME_MAX;
    // Bounded by the drain time.
    while ledger.unanswered() > 0 && Instant::now() < until {
        for m in block_on(provider.fetch(requests.clone(), 256, DRAIN_FETCH_WAIT)).expect("fetch") {
            if signed {
                assert!(signed_by_its_sender(&m), "{} keeps its signature", m.id);
                let answer = signed_response(provider.participant(), m.id, "drained".into());
                block_on(provider.execute(answer)).expect("answer in the drain");
            } else {
                block_on(provider.send_response(m.id, "drained")).expect("answer in the drain");
            }
        }
        for m in block_on(consumer.fetch(answers.clone(), 256, DRAIN_FETCH_WAIT)).expect("fetch") {
            ledger.answer(m.reply_to.expect("an answer names its request"), m.id);
            match block_on(consumer.ack(&m)) {
                // The lease ran out first (a slow machine): it comes again, same id.
                Ok(()) | Err(HubError::NotFound) => {}
                Err(e) => panic!("ack in the drain: {e}"),
            }
        }
    }
    let mut lost = 0;
    let ids: Vec<(u64, MessageId)> = ledger.by_key.iter().map(|(k, id)| (*k, *id)).collect();
    for (key, id) in ids {
        match block_on(consumer.status(id)) {
            Err(e) => {
                lost += 1;
                ledger
                    .problems
                    .push(format!("key {key} ({id}): status fails: {e}"));
            }
            Ok(s) => {
                let seen = ledger.answers.get(&id).cloned().unwrap_or_default();
                match s.answer_id {
                    None => {
                        lost += 1;
                        ledger.problems.push(format!(
                            "key {key} ({id}) never ended; history {:?}",
                            s.events
                        ));
                    }
                    Some(a) if seen.len() != 1 || !seen.contains(&a) => {
                        ledger.problems.push(format!(
                            "key {key} ({id}) ended as {a} but answers {seen:?} were delivered"
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    lost += calls_lost(&hub, ledger);
    for (request, seen) in &ledger.answers {
        if seen.len() != 1 {
            ledger.problems.push(format!(
                "request {request} got {} different answers: {seen:?}",
                seen.len()
            ));
        }
    }
    hub.shutdown().expect("the final hub shuts down cleanly");
    lost
}

/// Every call a child saw answered still has that answer in its history.
/// Returns the number lost.
fn calls_lost(hub: &Hub, ledger: &mut Ledger) -> usize {
    if ledger.calls.is_empty() {
        return 0;
    }
    let (_, caller) = rt_pair(hub.registry());
    let caller = hub.session(&caller).expect("caller session");
    let mut lost = 0;
    for (request, answer) in &ledger.calls {
        match block_on(caller.status(*request)) {
            Ok(s) if s.answer_id == Some(*answer) => {}
            Ok(s) => {
                lost += 1;
                ledger.problems.push(format!(
                    "call {request} was answered {answer}, its history says {:?}: {:?}",
                    s.answer_id, s.events
                ));
            }
            Err(e) => {
                lost += 1;
                ledger.problems.push(format!(
                    "call {request} (answered {answer}): status fails: {e}"
                ));
            }
        }
    }
    lost
}

#[test]
fn given_hub_killed_at_random_moments_when_restarted_then_every_accepted_request_ends_once() {
    kill_cycles(Traffic::Plain);
}

/// With the rt journal on (docs/adr/0036, plan step 4): calls answered back
/// to back beside padded requests; every call answered before a kill keeps
/// its answer, and every accepted request still ends once.
#[test]
fn given_rt_journal_and_calls_beside_bulk_when_hub_killed_at_random_moments_then_every_answered_call_keeps_its_answer(
) {
    kill_cycles(Traffic::Calls);
}

/// The same with signed traffic (issue 18): every kind requires
/// signatures, every send and answer is signed, the hub signs receipts,
/// and every request reaches its provider with its signature, across the
/// kills and in the final drain.
#[test]
fn given_signed_traffic_when_hub_killed_at_random_moments_then_every_accepted_request_ends_once_still_signed(
) {
    kill_cycles(Traffic::Signed);
}

fn kill_cycles(traffic: Traffic) {
    // Calls lose an answer to a kill only when the log's batch that held it
    // was not written yet: more cycles find such moments.
    let default = match traffic {
        Traffic::Calls => CALL_CYCLES_DEFAULT,
        Traffic::Plain | Traffic::Signed => CYCLES_DEFAULT,
    };
    let cycles = env_number("GONETS_HUB_KILL_CYCLES").map_or(default, |n| n as usize);
    let seed = seed_from_env("GONETS_HUB_KILL_SEED");
    print_uncaptured(&format!(
        "hub kill test: seed {seed} (GONETS_HUB_KILL_SEED), {cycles} cycles (GONETS_HUB_KILL_CYCLES)"
    ));
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::Builder::new()
        .prefix("gonets-hub-kill-")
        .tempdir()
        .expect("create a data directory");
    let (kind, consumer) = cross_shard_pair(&Registry::embedded_default());
    let mut ledger = Ledger::default();
    for cycle in 0..cycles {
        let kill_at = if rng.gen_ratio(1, 5) {
            KillAt::AfterSpawn(Duration::from_millis(rng.gen_range(0..=60)))
        } else {
            KillAt::AfterReady(Duration::from_millis(rng.gen_range(20..=400)))
        };
        let first_key = ledger.next_first_key();
        let pair = (kind.as_str(), consumer.as_str());
        let run = run_child(dir.path(), rng.gen(), first_key, pair, kill_at, traffic);
        let (output, stderr) = match run {
            Ok(x) => x,
            Err(e) => {
                let kept = dir.keep();
                panic!(
                    "seed {seed}, cycle {cycle}, kill {kill_at:?}: {e} (data kept at {})",
                    kept.display()
                );
            }
        };
        for line in output.lines {
            match line {
                Line::Ready => {}
                Line::Accepted { key, id, duplicate } => ledger.accepted(key, id, duplicate),
                Line::Answer { request, answer } => ledger.answer(request, answer),
                Line::Called { request, answer } => ledger.called(request, answer),
            }
        }
        if !ledger.problems.is_empty() {
            let kept = dir.keep();
            panic!(
                "seed {seed}, cycle {cycle}, kill {kill_at:?}: {:?}\nchild stderr:\n{stderr}\n(data kept at {})",
                ledger.problems,
                kept.display()
            );
        }
    }
    let accepted = ledger.by_key.len();
    assert!(
        accepted > 0,
        "seed {seed}: no child accepted anything before its kill"
    );
    // Snapshots every 64 records: with this much traffic the children
    // restarted from snapshot marks, and retention dropped old segments.
    let marks: Vec<u64> = (0..2).map(|s| checkpoint_mark(dir.path(), s)).collect();
    print_uncaptured(&format!("snapshot marks left by the children: {marks:?}"));
    if accepted >= MARK_EXPECTED_FROM_ACCEPTED {
        assert!(
            marks.iter().any(|m| *m > 0),
            "seed {seed}: no snapshot mark after {accepted} requests"
        );
    }
    let calls = ledger.calls.len();
    if traffic == Traffic::Calls {
        assert!(calls > 0, "seed {seed}: no call answered before a kill");
    }
    let lost = drain_and_check(dir.path(), (&kind, &consumer), &mut ledger, traffic);
    print_uncaptured(&format!(
        "hub kill cycles ({traffic:?}): {cycles}, accepted: {accepted}, calls answered: {calls}, lost: {lost}"
    ));
    if lost > 0 || !ledger.problems.is_empty() {
        let kept = dir.keep();
        panic!(
            "seed {seed}: lost {lost}; problems ({}): {:?} (data kept at {})",
            ledger.problems.len(),
            &ledger.problems[..ledger.problems.len().min(20)],
            kept.display()
        );
    }
}
