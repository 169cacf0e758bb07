//! Deterministic simulation of the hub's shards, in the FoundationDB /
//! TigerBeetle style.
//!
//! One seed builds a hub of one to three sans-IO shards over simulated logs
//! and drives it with a random workload (consumers sending, calling,
//! fetching and acking answers; providers fetching, subscribing, acking,
//! nacking and answering; an operator; bad operations) and random faults
//! (lost connections, lease timeouts, clock jumps and a lagging wall clock,
//! failed storage, whole-node crashes that keep only the durable prefix and
//! replay it, from a snapshot or from the start). Group commits, peer
//! messages, snapshots and log retention happen at random moments.
//!
//! The shards run what ships: `ShardConfig::production()` with its times
//! shrunk per seed (leases, idempotency windows, eviction of finished
//! exchanges, the retention period) and a small log record limit. The
//! history archive is simulated too: every `Output::Archive` is written to
//! a per-shard archive that survives crashes and reported back
//! (`Input::Archived`) after a random delay, which a crash may cut (the
//! restarted shard must ask again); `status` of an exchange that left
//! memory is answered from that archive (`Output::StatusFromArchive`), and
//! every history that left memory must be there, exactly as the log tells
//! it. Sends and answers too large for the log are refused by the shard;
//! leases the runtime cannot hand over come back as `Input::GiveBack`.
//! Two kinds check JSON Schema formats (`sim/formats.rs`) and two require
//! sender signatures (`sim/signing.rs`, docs/adr/0019): the workload signs
//! well, badly or not at all, the model predicts each `BadSignature` where
//! the door's order puts it, and the judge checks every stored seal and
//! every audit record a refusal leaves (ADR 0020, under its rate bound).
//! The hub has a key, as `gonets serve` always does: every receipt a shard
//! hands out, alone or in its step's tree (ADR 0023), is verified.
//!
//! Every output of every step is judged against a reference model (a plain
//! fold over the log plus the queue rules of docs/engine.md: places, leases,
//! FIFO order, routing, counters), every reply against a prediction made
//! before the step, and after every step the state is compared (all of it
//! every 64 steps and after every crash) and these hold: no acknowledged
//! message is lost; a request ends at most once, and after the final drain
//! exactly once with one answer reaching its consumer; nothing is delivered
//! again after its ack stood; no answer comes later than its deadline plus
//! the timer granularity; every history tells the story of its outcome; the
//! same seed takes the same path twice.
//!
//! Each concern draws from its own random stream derived from the seed
//! (setup, workload, faults, clock, I/O scheduling), so adding draws to one
//! leaves the others alone. A failure prints its seed, its step and how to
//! run it alone.
//!
//! `GONETS_SIM_SEEDS=N` runs N seeds (300 by default with `--release`, 60
//! in a debug build), starting at
//! `GONETS_SIM_FIRST_SEED` (0); `GONETS_SIM_SEED=S` runs seed S alone, and
//! `GONETS_SIM_TRACE=1` with it prints every input and output
//! (`-- --nocapture` to see a passing run's).

#[path = "sim/formats.rs"]
mod formats;
#[path = "sim/judge.rs"]
mod judge;
#[path = "sim/model.rs"]
mod model;
#[path = "sim/signing.rs"]
mod signing;
#[path = "sim/workload.rs"]
mod workload;
#[path = "sim/world.rs"]
mod world;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use world::{Options, Stats, World, CURRENT_STEP};

/// Seeds run with a lying rt journal: a loss needs an answer the journal
/// alone made durable when a crash comes, which only some seeds meet.
const JOURNAL_LIES_SEEDS: u64 = 300;
/// Of those, the fewest that must report a lost answer.
const JOURNAL_LIES_CAUGHT_MIN: usize = 3;
/// Steps of random work per seed before the drain.
const STEPS: u64 = 1_500;
/// Seeds run by default: an optimized build (`--release`, as CI runs it)
/// does 300 in seconds; a debug build is about ten times slower.
const SEEDS_DEFAULT: u64 = if cfg!(debug_assertions) { 60 } else { 300 };

/// One failed seed.
#[derive(Debug)]
struct Failure {
    seed: u64,
    step: u64,
    reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sim failed: seed={} step={}: {}\n  reproduce: GONETS_SIM_SEED={} cargo test -p gonets-engine --release --test sim",
            self.seed, self.step, self.reason, self.seed
        )
    }
}

/// Runs one seed; a panic inside a shard is a failure of that seed too.
fn run_seed(seed: u64, opts: &Options) -> Result<(Stats, u64), Failure> {
    CURRENT_STEP.with(|c| c.set(0));
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut w = World::new(seed, opts.clone()).map_err(|e| (0, e))?;
        match w.run() {
            Ok(()) => Ok((w.stats.clone(), w.digest)),
            Err(e) => Err((w.step, e)),
        }
    }));
    match result {
        Ok(Ok(done)) => Ok(done),
        Ok(Err((step, reason))) => Err(Failure { seed, step, reason }),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(Failure {
                seed,
                step: CURRENT_STEP.with(|c| c.get()),
                reason: format!("panicked: {reason}"),
            })
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

/// The seeds to run, from the environment.
fn seeds() -> Vec<u64> {
    if let Some(seed) = env_u64("GONETS_SIM_SEED") {
        return vec![seed];
    }
    let first = env_u64("GONETS_SIM_FIRST_SEED").unwrap_or(0);
    let count = env_u64("GONETS_SIM_SEEDS").unwrap_or(SEEDS_DEFAULT);
    (first..first + count).collect()
}

/// Runs `seeds` on every core; failures sorted by seed, and the totals.
fn run_seeds(seeds: &[u64], opts: &Options) -> (Vec<Failure>, Stats) {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let totals = Mutex::new(Stats::default());
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(seeds.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else {
                    return;
                };
                match run_seed(seed, opts) {
                    Ok((stats, _)) => totals.lock().unwrap().add(&stats),
                    Err(f) => failures.lock().unwrap().push(f),
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|f| f.seed);
    (failures, totals.into_inner().unwrap())
}

#[test]
fn given_random_workloads_and_faults_when_simulated_then_invariants_hold() {
    let seeds = seeds();
    let opts = Options {
        steps: STEPS,
        lying_storage: false,
        rt_journal: false,
    };
    let started = Instant::now();
    let (failures, t) = run_seeds(&seeds, &opts);
    println!(
        "sim: {} seeds in {:.1?}: {} steps, {} commits, {} crashes ({} replays from a snapshot, {} from the start), \
         {} lost connections, {} clock jumps, {} storage failures, {} accepted, {} duplicates, {} answers, \
         {} expired ({} before an older one), {} dead-lettered, {} lease timeouts, {} redeliveries, {} call answers, {} call expiries, \
         {} repeated calls answered, {} repeated calls refused, \
         {} typed errors, {} ack_many replies, {} send_requests replies, {} reads after a storage failure, {} snapshots ({} awaiting entries in them), {} retention moves, \
         {} archive hand-offs ({} asked again after a restart, {} cut by a crash), {} reported archived, \
         {} evictions, {} statuses from the archive, {} records too large for the log, {} give-backs, \
         {} nack_many replies, {} sends over a byte quota, {} answers over an answer bound, \
         {} requests and {} answers refused for their format",
        seeds.len(),
        started.elapsed(),
        t.steps,
        t.commits,
        t.crashes,
        t.snapshot_replays,
        t.full_replays,
        t.disconnects,
        t.jumps,
        t.storage_failures,
        t.accepted,
        t.duplicates,
        t.answers,
        t.expired,
        t.expired_out_of_order,
        t.dead_lettered,
        t.lease_timeouts,
        t.redeliveries,
        t.call_answers,
        t.call_expiries,
        t.call_repeat_answers,
        t.call_repeat_refusals,
        t.typed_errors,
        t.acks_many,
        t.batches_sent,
        t.reads_after_failure,
        t.snapshots,
        t.awaiting_in_snapshots,
        t.retention_moves,
        t.archive_asks,
        t.archive_reasks,
        t.archive_cut,
        t.archived,
        t.evictions,
        t.archive_statuses,
        t.records_too_large,
        t.give_backs,
        t.nacks_many,
        t.byte_quota_refusals,
        t.answer_quota_refusals,
        t.request_format_refusals,
        t.answer_format_refusals,
    );
    eprintln!(
        "signature refusals: {} requests, {} answers; receipts verified: {} ({} signed in a tree)",
        t.request_signature_refusals,
        t.answer_signature_refusals,
        t.receipts_checked,
        t.receipts_in_trees
    );
    fail_on(&failures, seeds.len(), "");
    if seeds.len() >= 50 {
        let reached = [
            ("crashes", t.crashes),
            ("replays from a snapshot", t.snapshot_replays),
            ("replays from the start", t.full_replays),
            ("storage failures", t.storage_failures),
            ("reads after a storage failure", t.reads_after_failure),
            ("duplicates", t.duplicates),
            ("expiries", t.expired),
            ("expiries before an older request", t.expired_out_of_order),
            ("dead letters", t.dead_lettered),
            ("lease timeouts", t.lease_timeouts),
            ("redeliveries", t.redeliveries),
            ("call answers", t.call_answers),
            ("call expiries", t.call_expiries),
            ("repeated calls answered", t.call_repeat_answers),
            ("repeated calls refused", t.call_repeat_refusals),
            ("retention moves", t.retention_moves),
            ("archive hand-offs", t.archive_asks),
            (
                "archive hand-offs asked again after a restart",
                t.archive_reasks,
            ),
            ("archive hand-offs cut by a crash", t.archive_cut),
            ("hand-offs reported archived", t.archived),
            ("evictions", t.evictions),
            ("statuses from the archive", t.archive_statuses),
            ("records too large for the log", t.records_too_large),
            ("give-backs", t.give_backs),
            ("nack_many replies", t.nacks_many),
            ("sends over a byte quota", t.byte_quota_refusals),
            ("answers over an answer bound", t.answer_quota_refusals),
            (
                "requests refused for their format",
                t.request_format_refusals,
            ),
            ("answers refused for their format", t.answer_format_refusals),
            (
                "requests refused for their signature",
                t.request_signature_refusals,
            ),
            (
                "answers refused for their signature",
                t.answer_signature_refusals,
            ),
            ("receipts verified", t.receipts_checked),
            ("receipts signed in a tree", t.receipts_in_trees),
        ];
        assert_reached(&reached, seeds.len(), "");
    }
}

/// Prints the first failures and panics if any seed failed.
fn fail_on(failures: &[Failure], seeds: usize, setting: &str) {
    if failures.is_empty() {
        return;
    }
    for f in failures.iter().take(10) {
        eprintln!("{f}\n");
    }
    panic!(
        "{} of {seeds} seeds failed{setting}; first: {}",
        failures.len(),
        failures[0]
    );
}

/// Many seeds that never reach a path prove nothing about it.
fn assert_reached(reached: &[(&str, u64)], seeds: usize, setting: &str) {
    for (what, count) in reached {
        assert!(*count > 0, "{seeds} seeds{setting} and no {what}");
    }
}

/// The same worlds with the rt journal on (docs/adr/0036): calls' records
/// journaled, the journal committed on its own schedule and routing calls'
/// answers before the log has them, and every crash keeping each log's
/// durable part alone, then folding the journal into the log.
#[test]
fn given_rt_journal_when_simulated_with_faults_then_invariants_hold() {
    let seeds = seeds();
    let opts = Options {
        steps: STEPS,
        lying_storage: false,
        rt_journal: true,
    };
    let started = Instant::now();
    let (failures, t) = run_seeds(&seeds, &opts);
    println!(
        "sim with the rt journal: {} seeds in {:.1?}: {} steps, {} crashes, {} call answers, \
         {} journal commits, {} answers routed by the journal, {} records restored by folds, \
         {} offsets filled as lost",
        seeds.len(),
        started.elapsed(),
        t.steps,
        t.crashes,
        t.call_answers,
        t.journal_commits,
        t.answers_routed_by_journal,
        t.journal_restored,
        t.journal_lost_fills,
    );
    fail_on(&failures, seeds.len(), " with the rt journal");
    if seeds.len() >= 50 {
        let reached = [
            ("crashes", t.crashes),
            ("call answers", t.call_answers),
            ("journal commits", t.journal_commits),
            ("answers routed by the journal", t.answers_routed_by_journal),
            ("records restored by a fold", t.journal_restored),
            ("offsets filled as lost", t.journal_lost_fills),
        ];
        assert_reached(&reached, seeds.len(), " with the rt journal");
    }
}

#[test]
fn given_storage_that_loses_durable_records_when_simulated_then_the_loss_is_caught() {
    // A world that breaks the durability promise: the checks must notice,
    // or they would pass a hub that loses acknowledged messages.
    let opts = Options {
        steps: STEPS,
        lying_storage: true,
        rt_journal: false,
    };
    let seeds: Vec<u64> = (0..20).collect();
    let (failures, _) = run_seeds(&seeds, &opts);
    let caught = failures
        .iter()
        .filter(|f| f.reason.contains("(invariant 1)"))
        .count();
    assert!(
        caught >= seeds.len() / 2,
        "only {caught} of {} seeds with lying storage reported a lost message: {failures:#?}",
        seeds.len()
    );
}

/// The same proof for the rt journal (docs/adr/0036): a journal that
/// loses what it made durable loses answers its callers already had, and
/// the checks must say so.
#[test]
fn given_a_journal_that_loses_durable_records_when_simulated_then_the_loss_is_caught() {
    let opts = Options {
        steps: STEPS,
        lying_storage: true,
        rt_journal: true,
    };
    let seeds: Vec<u64> = (0..JOURNAL_LIES_SEEDS).collect();
    let (failures, _) = run_seeds(&seeds, &opts);
    let caught = failures
        .iter()
        .filter(|f| f.reason.contains("(invariant 1)"))
        .count();
    println!(
        "sim with a lying rt journal: {caught} of {} seeds reported a lost answer",
        seeds.len()
    );
    assert!(
        caught >= JOURNAL_LIES_CAUGHT_MIN,
        "only {caught} of {} seeds with a lying rt journal reported a lost answer: {failures:#?}",
        seeds.len()
    );
}

#[test]
fn given_a_seed_when_simulated_twice_then_the_runs_are_identical() {
    let opts = Options {
        steps: STEPS,
        lying_storage: false,
        rt_journal: false,
    };
    for seed in 0..10 {
        let a = run_seed(seed, &opts).unwrap_or_else(|f| panic!("{f}"));
        let b = run_seed(seed, &opts).unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(a.1, b.1, "seed {seed}: two runs took different paths");
    }
}

#[test]
fn given_the_sim_formats_when_payloads_checked_then_model_and_validator_agree() {
    // The model reads payloads off the shapes the workload makes
    // (`formats.rs`); the shard asks the validator. They must agree on
    // every shape, or the simulation would test the model's mistakes.
    use gonets_engine::format::Direction;
    use gonets_types::ids::DataKindId;
    use rand::{rngs::StdRng, SeedableRng};
    let registry = world::registry().expect("the sim registry loads");
    let kind = |id: &str| {
        registry
            .kind(&DataKindId::new(id))
            .expect("a sim kind")
            .clone()
    };
    let (pension, inn) = (kind("urn:sim:sfr:pension:1"), kind("urn:sim:fns:inn:1"));
    assert!(pension.format(Direction::Answer).is_bytes());
    let mut rng = StdRng::seed_from_u64(18);
    let (mut refused_requests, mut refused_answers) = (0, 0);
    for _ in 0..2_000 {
        let payload = formats::request_payload(&mut rng);
        let model = formats::request_refusal(&payload).map(str::to_string);
        for k in [&pension, &inn] {
            let hub = match k.format(Direction::Request).check(&payload) {
                Ok(()) => None,
                Err(gonets_types::error::HubError::InvalidFormat { path, .. }) => Some(path),
                Err(e) => panic!("{e:?}"),
            };
            assert_eq!(model, hub, "{}", String::from_utf8_lossy(&payload));
        }
        refused_requests += usize::from(model.is_some());
        let payload = formats::answer_payload(&mut rng);
        let model = formats::answer_refusal(&payload).map(str::to_string);
        let hub = match inn.format(Direction::Answer).check(&payload) {
            Ok(()) => None,
            Err(gonets_types::error::HubError::InvalidFormat { path, .. }) => Some(path),
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(model, hub, "{}", String::from_utf8_lossy(&payload));
        refused_answers += usize::from(model.is_some());
    }
    assert!(refused_requests > 200 && refused_answers > 200);
}

#[test]
fn given_the_sim_keys_when_signatures_checked_then_model_and_key_rings_agree() {
    // The model says whether a signature the workload makes holds
    // (`signing::holds`); the shard asks the sender's key ring. They must
    // agree for every participant and way of signing, or the simulation
    // would test the model's mistakes.
    use gonets_engine::shard::{Command, NewRequest};
    use gonets_types::ids::ParticipantId;
    use signing::SignMode;
    let registry = world::registry().expect("the sim registry loads");
    let (mut mismatched, mut keyless) = (0, 0);
    for id in ["MFC", "SFR", "FNS", "MVD", "OPERATOR"] {
        let caller = ParticipantId::new(id);
        let keys = &registry
            .participant(&caller)
            .expect("a sim participant")
            .keys;
        for i in 0..16 {
            let r = NewRequest::new("urn:sim:sfr:pension:1", format!("payload {i}"));
            let command = Command::SendRequest(r.clone());
            for mode in [SignMode::Unsigned, SignMode::Covered] {
                let same = signing::signed(&caller, &command, mode);
                assert!(
                    matches!(same, Command::SendRequest(_)),
                    "{mode:?} signs nothing"
                );
            }
            for mode in [SignMode::Good, SignMode::Bad] {
                let Command::Signed { signature, .. } = signing::signed(&caller, &command, mode)
                else {
                    panic!("{mode:?} signs");
                };
                assert_eq!(
                    signing::signature_bytes(),
                    2 + signature.key_id.len() + 4 + signature.bytes.len()
                );
                let digest = gonets_trust::request_digest(&caller, &r);
                let checked = keys.check(id, &signature, &digest, 0);
                assert_eq!(
                    checked.is_ok(),
                    signing::holds(&caller, mode),
                    "{id} {mode:?}: {checked:?}"
                );
                let why = checked.err().map(|e| e.to_string()).unwrap_or_default();
                mismatched += usize::from(why.contains("does not match"));
                keyless += usize::from(why.contains("has no key"));
            }
        }
    }
    // Both ways of signing badly are made.
    assert!(mismatched > 0 && keyless > 0, "{mismatched} {keyless}");
}
