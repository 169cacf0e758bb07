//! The process `tests/tests/hub_kill.rs` SIGKILLs at random moments: it runs
//! an embedded hub on a data directory with live traffic (two consumer
//! threads sending requests with idempotency keys, a provider answering
//! them, the consumer fetching and acking the answers) and reports every
//! acceptance and every answer it saw on stdout.
//!
//! Usage: `gonets-hub-child <data_dir> <seed> <first_key> <kind> <consumer>
//! [signed | calls <rt_kind> <caller>]`
//!
//! With `calls`, the hub keeps an rt journal (docs/adr/0036), the requests
//! carry 4 KiB each, and two threads of `caller` call `rt_kind` back to
//! back while its provider answers them.
//!
//! Stdout protocol, one flushed line each:
//! - `ready` once the hub has recovered;
//! - `accepted <key> <request_id> <0|1>` once `send_request` of key `key`
//!   answered `Accepted` (1: a duplicate of an earlier send);
//! - `answer <request_id> <answer_id>` for every answer delivered to the
//!   consumer, printed before it is acked;
//! - `called <request_id> <answer_id>` for every call answered.
//!
//! Requests carry `req-<key>`. The provider leaves every third request
//! alone on its first delivery (its lease times out and it comes back),
//! refuses every fifth, and answers the rest. Any unexpected error ends the
//! child with status 2 and a line on stderr; it also exits by itself after
//! `CHILD_RUN_SECS_MAX` in case nobody kills it.

use futures_lite::future::block_on;
use gonets_engine::{Hub, HubConfig, LogConfig, Session};
use gonets_tests::signing;
use gonets_types::{
    Accepted, DataKindId, HubError, Message, NewRequest, ParticipantId, QueueId, RefusalCode, Reply,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The child exits by itself after this long (the parent kills it far sooner).
const CHILD_RUN_SECS_MAX: u64 = 60;
/// Sending threads.
const SENDERS: u64 = 2;
/// Longest pause between two sends of one thread, ms (keeps the log small).
const SEND_PAUSE_MS_MAX: u64 = 3;
/// Long-poll wait of the provider's and the consumer's fetches.
const FETCH_WAIT: Duration = Duration::from_millis(100);
/// Messages per fetch.
const FETCH_MAX: u32 = 32;
/// Threads calling the rt kind, with `calls`.
const CALLERS: u64 = 2;
/// Bytes of a request's padding with `calls` (bulk bytes beside the calls).
const PADDING_BYTES: usize = 4096;

/// The hub configuration (the parent's final drain uses the same).
fn hub_config(dir: PathBuf, signed: bool, journal: bool) -> HubConfig {
    let mut c = HubConfig::new(dir);
    c.shards = 2;
    c.log = LogConfig::small_for_tests();
    // Frequent snapshots: restarts replay from a mark, retention drops segments.
    c.snapshot_every_records = 64;
    c.shard.lease_timeout_ms = 300;
    // Leases run out quickly here; never dead-letter a request for it.
    c.shard.deliveries_max = 1000;
    if signed {
        // Signed traffic (issue 18): every kind requires signatures, and
        // the hub signs receipts, so kills land in the signing paths too.
        c.registry = std::sync::Arc::new(gonets_tests::signing::signed_registry());
        c.hub_key = Some(std::sync::Arc::new(gonets_trust::HubKey::generate()));
    }
    c.shard.rt_journal = journal;
    c
}

/// The acceptance of a signed send (its reply's only shape).
fn accepted(reply: Reply) -> Accepted {
    match reply {
        Reply::Accepted(a) => {
            // A repeat's receipt came with the original's acceptance.
            if a.receipt.is_none() && !a.duplicate {
                die(format!("acceptance of {} without the hub's receipt", a.id));
            }
            a
        }
        other => die(format!("a send answered {other:?}")),
    }
}

fn die(what: String) -> ! {
    eprintln!("gonets-hub-child: {what}");
    std::process::exit(2);
}

fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        // The parent is gone; nothing left to report to.
        die(format!("write to stdout: {e}"));
    }
}

/// The key a request payload `req-<key>[ <padding>]` carries.
fn key_of(m: &Message) -> u64 {
    std::str::from_utf8(&m.payload)
        .ok()
        .and_then(|s| s.strip_prefix("req-"))
        .and_then(|k| k.split(' ').next())
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| die(format!("request {} has payload {:?}", m.id, m.payload)))
}

/// What a child does, besides its data directory.
#[derive(Clone)]
struct Plan {
    kind: String,
    first_key: u64,
    seed: u64,
    deadline: Instant,
    /// Every send and answer signed (and checked on delivery).
    signed: bool,
    /// Requests padded to carry bulk bytes beside the calls.
    padded: bool,
}

fn sender(session: Session, plan: Plan, lane: u64) {
    let Plan {
        kind,
        first_key,
        seed,
        deadline,
        signed,
        padded,
    } = plan;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut key = first_key + lane;
    let padding = if padded {
        format!(" {}", "b".repeat(PADDING_BYTES))
    } else {
        String::new()
    };
    while Instant::now() < deadline {
        let mut request = NewRequest::new(&kind, format!("req-{key}{padding}"));
        request.idempotency_key = Some(format!("key-{key}"));
        let sent = if signed {
            let command = signing::signed_request(session.participant(), request);
            block_on(session.execute(command)).map(accepted)
        } else {
            block_on(session.send_request(request))
        };
        match sent {
            Ok(a) => emit(&format!(
                "accepted {key} {} {}\n",
                a.id,
                u8::from(a.duplicate)
            )),
            Err(e) => die(format!("send_request key {key}: {e}")),
        }
        key += SENDERS;
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..=SEND_PAUSE_MS_MAX)));
    }
}

fn provider(session: Session, plan: Plan) {
    let Plan {
        kind,
        deadline,
        signed,
        ..
    } = plan;
    let queue = QueueId::Requests(DataKindId::new(&kind));
    while Instant::now() < deadline {
        let batch = block_on(session.fetch(queue.clone(), FETCH_MAX, FETCH_WAIT))
            .unwrap_or_else(|e| die(format!("provider fetch: {e}")));
        for m in batch {
            let key = key_of(&m);
            if signed && !signing::signed_by_its_sender(&m) {
                die(format!("request {} (key {key}) lost its signature", m.id));
            }
            let me = session.participant().clone();
            let answered = if key.is_multiple_of(3) && m.delivery_count < 2 {
                continue; // left to its lease timeout
            } else if key.is_multiple_of(5) {
                let reason = format!("none for {key}");
                if signed {
                    let refusal = signing::signed_refusal(&me, m.id, RefusalCode::NoData, reason);
                    block_on(session.execute(refusal)).map(|_| ())
                } else {
                    block_on(session.send_refusal(m.id, RefusalCode::NoData, reason))
                }
            } else if signed {
                let answer = signing::signed_response(&me, m.id, format!("ans-{key}"));
                block_on(session.execute(answer)).map(|_| ())
            } else {
                block_on(session.send_response(m.id, format!("ans-{key}")))
            };
            match answered {
                Ok(()) => {}
                // Answering takes a request out of its queue: it is never
                // delivered again after an answer.
                Err(HubError::AlreadyAnswered(_)) => {
                    die(format!("request {} (key {key}) was answered twice", m.id))
                }
                Err(e) => die(format!("answer to {} (key {key}): {e}", m.id)),
            }
        }
    }
}

/// Calls `kind` back to back; a call past its budget (a slow machine, a
/// provider still starting) is simply not reported.
fn caller(session: Session, kind: String, lane: u64, deadline: Instant) {
    let mut n = lane;
    while Instant::now() < deadline {
        match block_on(session.call(NewRequest::new(&kind, format!("call-{n}")))) {
            Ok(answer) => {
                let Some(request) = answer.reply_to else {
                    die(format!("call answer {} without reply_to", answer.id));
                };
                emit(&format!("called {request} {}\n", answer.id));
            }
            Err(HubError::DeadlineExceeded) => {}
            Err(e) => die(format!("call {n}: {e}")),
        }
        n += CALLERS;
    }
}

/// Answers every call of `kind`; a call whose caller gave up (its budget
/// spent, or a call left by the killed process) may refuse the answer.
fn call_provider(session: Session, kind: String, deadline: Instant) {
    let queue = QueueId::Requests(DataKindId::new(&kind));
    while Instant::now() < deadline {
        let batch = block_on(session.fetch(queue.clone(), FETCH_MAX, FETCH_WAIT))
            .unwrap_or_else(|e| die(format!("call provider fetch: {e}")));
        for m in batch {
            match block_on(session.send_response(m.id, "answered")) {
                Ok(()) | Err(HubError::DeadlineExceeded | HubError::NotFound) => {}
                Err(e) => die(format!("answer to call {}: {e}", m.id)),
            }
        }
    }
}

fn consumer(session: Session, deadline: Instant) {
    let queue = QueueId::Answers(session.participant().clone());
    while Instant::now() < deadline {
        let batch = block_on(session.fetch(queue.clone(), FETCH_MAX, FETCH_WAIT))
            .unwrap_or_else(|e| die(format!("consumer fetch: {e}")));
        for m in batch {
            let Some(request) = m.reply_to else {
                die(format!("answer {} without reply_to", m.id));
            };
            emit(&format!("answer {request} {}\n", m.id));
            match block_on(session.ack(&m)) {
                // The lease ran out first (a slow machine): it comes again, same id.
                Ok(()) | Err(HubError::NotFound) => {}
                Err(e) => die(format!("ack {}: {e}", m.id)),
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let signed = args.get(6).map(String::as_str) == Some("signed");
    let calls = (args.get(6).map(String::as_str) == Some("calls") && args.len() == 9)
        .then(|| (args[7].clone(), args[8].clone()));
    if !(args.len() == 6 || args.len() == 7 && signed || calls.is_some()) {
        die(format!(
            "usage: {} <data_dir> <seed> <first_key> <kind> <consumer> [signed | calls <rt_kind> <caller>]",
            args[0]
        ));
    }
    let num = |i: usize| -> u64 {
        args[i]
            .parse()
            .unwrap_or_else(|e| die(format!("argument {i} {:?}: {e}", args[i])))
    };
    let (seed, first_key) = (num(2), num(3));
    let kind = args[4].clone();
    let consumer_id = args[5].clone();
    let hub = Hub::start(hub_config(PathBuf::from(&args[1]), signed, calls.is_some()))
        .unwrap_or_else(|e| die(format!("start the hub: {e}")));
    let provider_id = hub
        .registry()
        .kind(&DataKindId::new(&kind))
        .unwrap_or_else(|| die(format!("unknown kind {kind}")))
        .provider
        .clone();
    let session = |who: &ParticipantId| {
        hub.session(who.as_str())
            .unwrap_or_else(|e| die(format!("session {who}: {e}")))
    };
    let consumer_session = session(&ParticipantId::new(&consumer_id));
    let provider_session = session(&provider_id);
    let call_sessions = calls.as_ref().map(|(rt_kind, caller_id)| {
        let rt_provider = hub
            .registry()
            .kind(&DataKindId::new(rt_kind))
            .unwrap_or_else(|| die(format!("unknown kind {rt_kind}")))
            .provider
            .clone();
        (
            session(&ParticipantId::new(caller_id)),
            session(&rt_provider),
        )
    });
    emit("ready\n");
    let deadline = Instant::now() + Duration::from_secs(CHILD_RUN_SECS_MAX);
    let mut threads = Vec::new();
    let plan = Plan {
        kind,
        first_key,
        seed,
        deadline,
        signed,
        padded: calls.is_some(),
    };
    if let (Some((rt_kind, _)), Some((caller_session, rt_provider))) = (&calls, call_sessions) {
        for lane in 0..CALLERS {
            let (s, k) = (caller_session.clone(), rt_kind.clone());
            threads.push(std::thread::spawn(move || caller(s, k, lane, deadline)));
        }
        let k = rt_kind.clone();
        threads.push(std::thread::spawn(move || {
            call_provider(rt_provider, k, deadline)
        }));
    }
    for lane in 0..SENDERS {
        let s = consumer_session.clone();
        let lane_plan = Plan {
            seed: seed.wrapping_mul(31).wrapping_add(lane),
            ..plan.clone()
        };
        threads.push(std::thread::spawn(move || sender(s, lane_plan, lane)));
    }
    let s = provider_session;
    threads.push(std::thread::spawn(move || provider(s, plan)));
    let s = consumer_session;
    threads.push(std::thread::spawn(move || consumer(s, deadline)));
    for t in threads {
        if t.join().is_err() {
            die("a traffic thread panicked".into());
        }
    }
    die(format!(
        "ran for {CHILD_RUN_SECS_MAX} s without being killed"
    ));
}
