//! `rt` against JetStream: requests and answers as durable file-storage
//! streams, pull consumers with explicit ack (docs/nats-mapping.md).
//!
//! A call: consumer `c` publishes the request (a `Gonets-Call` header with
//! the call's index on its thread, a `Gonets-Reply` header naming
//! `ans.c<c>`) to `req.p<p>` and waits for the PubAck; provider `p` pulls
//! it, publishes the answer to the reply subject, waits for that PubAck,
//! then acks the request; consumer `c` pulls the answer, acks it, and the
//! latency runs from the call's scheduled time to that receipt.

use super::fleet::{run_fleet, Gate};
use super::names::{hosted, Names};
use super::{
    check_target, common_setup, connect, jetstream, pull_consumer, pull_messages, with_streams,
    ConsumerSpec, NatsTarget, IO_TIMEOUT,
};
use crate::params::{Cores, RtParams};
use crate::process::CpuWindow;
use crate::record::Recorder;
use crate::result::{HubCost, Phase, RunResult};
use crate::schedule::{OpenLoop, Pacer};
use async_nats::jetstream::consumer::pull::Stream as PullStream;
use async_nats::jetstream::context::Publish;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_lite::StreamExt;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The header carrying a call's index on its generator thread.
pub(crate) const CALL_HEADER: &str = "Gonets-Call";
/// The header naming the subject the answer goes to.
pub(crate) const REPLY_HEADER: &str = "Gonets-Reply";
/// Messages per pull request.
const PULL_BATCH: usize = 256;
/// Unacknowledged requests a provider may hold (server side bound).
const PROVIDER_MAX_ACK_PENDING: i64 = 10_000;
/// Unacknowledged answers a consumer may hold (server side bound).
const CONSUMER_MAX_ACK_PENDING: i64 = 10_000;
/// How long the calls still in flight at the end of the schedule may take.
const DRAIN: Duration = Duration::from_secs(10);
/// How often the pull loops look at the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// A pacer sleeping longer than this sleeps on the timer (1 ms grain), shorter spins.
const SPIN: Duration = Duration::from_millis(2);

/// What every generator thread shares (read-only but for the counters).
struct Shared {
    url: String,
    names: Names,
    p: RtParams,
    /// All generator threads.
    threads: usize,
    /// Generator threads hosting consumers (the first `min(threads, consumers)`).
    callers: usize,
    issued: AtomicU64,
    answered: AtomicU64,
    in_flight: AtomicU64,
    errors: AtomicU64,
    callers_done: AtomicUsize,
}

/// One thread's counts at the end.
struct ThreadOut {
    rec: Recorder,
    lag: Duration,
    issued_measured: u64,
    unfinished: u64,
}

/// What a generator thread's tasks share.
struct Local {
    /// Calls in flight: index → measured.
    in_flight: RefCell<HashMap<u64, bool>>,
    rec: RefCell<Recorder>,
    /// The thread stopped waiting for its calls; what is left is unfinished.
    closed: Cell<bool>,
    stop: Cell<bool>,
}

impl Local {
    fn error(&self, sh: &Shared, kind: &str) {
        self.rec.borrow_mut().error(kind);
        sh.errors.fetch_add(1, Relaxed);
    }

    /// Ends call `i`: Some(measured) if it was in flight.
    fn finish(&self, sh: &Shared, i: u64) -> Option<bool> {
        let m = self.in_flight.borrow_mut().remove(&i);
        if m.is_some() {
            sh.in_flight.fetch_sub(1, Relaxed);
        }
        m
    }
}

/// A consumer (caller) hosted by a thread.
struct Caller {
    js: async_nats::jetstream::Context,
    reply: String,
    answers: PullStream,
}

/// A provider hosted by a thread.
struct Provider {
    js: async_nats::jetstream::Context,
    requests: PullStream,
}

fn check(p: &RtParams, max_payload: usize) -> Result<(), String> {
    if !(p.rate_per_s.is_finite() && p.rate_per_s > 0.0) {
        return Err(format!(
            "rt: the rate must be positive (got {})",
            p.rate_per_s
        ));
    }
    if p.duration.is_zero() {
        return Err("rt: the measured duration must be positive".into());
    }
    if p.consumers == 0 || p.providers == 0 {
        return Err("rt: at least one consumer and one provider".into());
    }
    if p.outstanding_max == 0 {
        return Err("rt: outstanding_max must be positive".into());
    }
    let largest = p.request_bytes.max(p.answer_bytes);
    if max_payload > 0 && largest > max_payload {
        return Err(format!(
            "rt: a payload of {largest} bytes is over the server's max_payload of {max_payload}"
        ));
    }
    Ok(())
}

/// The `rt` workload (see the module docs).
pub(crate) fn run(
    target: &NatsTarget,
    p: &RtParams,
    cores: &Cores,
) -> Result<(RunResult, Recorder), String> {
    check_target(target)?;
    check(p, 0)?;
    if cores.count() == 0 {
        return Err("rt: no generator threads".into());
    }
    let names = Names::fresh();
    let streams = [
        (names.stream("REQ"), names.req_subjects()),
        (names.stream("ANS"), names.ans_subjects()),
    ];
    let stream_names: Vec<String> = streams.iter().map(|s| s.0.clone()).collect();
    let mut consumers: Vec<ConsumerSpec> = (0..p.providers)
        .map(|prov| ConsumerSpec {
            stream: 0,
            durable: Names::req_durable(prov),
            subject: names.req_subject(prov),
            max_ack_pending: PROVIDER_MAX_ACK_PENDING,
        })
        .collect();
    consumers.extend((0..p.consumers).map(|c| ConsumerSpec {
        stream: 1,
        durable: Names::ans_durable(c),
        subject: names.ans_subject(c),
        max_ack_pending: CONSUMER_MAX_ACK_PENDING,
    }));
    let ((mut phase, calling_threads, rec), version, setup_s) = with_streams(
        target,
        &streams,
        &consumers,
        |max_payload| check(p, max_payload),
        || measure(target, p, cores, &names),
    )?;
    phase.extra.insert(
        "setup_s".into(),
        serde_json::json!((setup_s * 1000.0).round() / 1000.0),
    );
    let mut run = RunResult::new("nats", "rt");
    common_setup(&mut run, target, &version, &names, cores);
    let setup = &mut run.setup;
    setup.insert("streams".into(), serde_json::json!(stream_names));
    setup.insert("request_bytes".into(), p.request_bytes.into());
    setup.insert("answer_bytes".into(), p.answer_bytes.into());
    setup.insert("consumers".into(), p.consumers.into());
    setup.insert("providers".into(), p.providers.into());
    setup.insert("calling_threads".into(), calling_threads.into());
    setup.insert("outstanding_max".into(), p.outstanding_max.into());
    setup.insert("warmup_s".into(), p.warmup.as_secs_f64().into());
    setup.insert(
        "publish".into(),
        "JetStream publish, PubAck awaited (request and answer)".into(),
    );
    run.push(phase);
    Ok((run, rec))
}

/// Runs the threads; the phase and how many threads called.
fn measure(
    target: &NatsTarget,
    p: &RtParams,
    cores: &Cores,
    names: &Names,
) -> Result<(Phase, usize, Recorder), String> {
    let threads = cores.count();
    let callers = threads.min(p.consumers);
    let sh = Arc::new(Shared {
        url: target.url.clone(),
        names: names.clone(),
        p: p.clone(),
        threads,
        callers,
        issued: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        callers_done: AtomicUsize::new(0),
    });
    let window_from = p.warmup;
    let window_to = p.warmup + p.duration;
    let mut window: Option<(CpuWindow, u64)> = None;
    let mut cost: Option<HubCost> = None;
    let mut next_progress = Duration::from_secs(1);
    let outs = run_fleet(
        cores,
        |t, gate| thread(t, gate, sh.clone()),
        |start, now| {
            let el = now.saturating_duration_since(start);
            if el >= window_from && window.is_none() && cost.is_none() {
                window =
                    CpuWindow::start(target.server_pid).map(|w| (w, sh.answered.load(Relaxed)));
            }
            if el >= window_to && cost.is_none() {
                if let Some((w, answered_before)) = window.take() {
                    cost = Some(w.finish(sh.answered.load(Relaxed) - answered_before));
                }
            }
            if el >= next_progress {
                next_progress += Duration::from_secs(1);
                eprintln!(
                    "[{:>5.1}s] nats rt: issued {} answered {} in flight {} errors {}",
                    el.as_secs_f64(),
                    sh.issued.load(Relaxed),
                    sh.answered.load(Relaxed),
                    sh.in_flight.load(Relaxed),
                    sh.errors.load(Relaxed),
                );
            }
        },
    )?;
    let mut rec = Recorder::new();
    let (mut lag, mut issued, mut unfinished) = (Duration::ZERO, 0, 0);
    for o in &outs {
        rec.merge(&o.rec);
        lag = lag.max(o.lag);
        issued += o.issued_measured;
        unfinished += o.unfinished;
    }
    let mut phase = Phase::new("rt", p.duration, issued, &rec);
    phase.rate_offered = Some(p.rate_per_s);
    phase.unanswered(unfinished);
    phase.judge_generator(lag, p.lag_max);
    if let Some(c) = cost {
        phase.hub = c;
    }
    Ok((phase, callers, rec))
}

/// One generator thread: its consumers call at its share of the rate, its
/// providers answer whoever calls them.
async fn thread(t: usize, mut gate: Gate, sh: Arc<Shared>) -> Result<ThreadOut, String> {
    let p = &sh.p;
    let callers = connect_callers(t, &sh).await?;
    let providers = connect_providers(t, &sh).await?;
    let start = gate.ready().await?;
    let local = Rc::new(Local {
        in_flight: RefCell::new(HashMap::new()),
        rec: RefCell::new(Recorder::new()),
        closed: Cell::new(false),
        stop: Cell::new(false),
    });
    // This thread's share of the rate: only threads with consumers call.
    let schedule = OpenLoop::new(
        p.rate_per_s / sh.callers.max(1) as f64,
        p.warmup,
        p.duration,
    );
    let mut loops = Vec::new();
    for prov in providers {
        loops.push(tokio::task::spawn_local(provide(
            prov,
            Bytes::from(vec![b'a'; p.answer_bytes]),
            local.clone(),
            sh.clone(),
        )));
    }
    let mut js_callers = Vec::new();
    for caller in callers {
        js_callers.push((caller.js, caller.reply));
        loops.push(tokio::task::spawn_local(receive(
            caller.answers,
            start,
            schedule,
            local.clone(),
            sh.clone(),
        )));
    }
    let mut out = ThreadOut {
        rec: Recorder::new(),
        lag: Duration::ZERO,
        issued_measured: 0,
        unfinished: 0,
    };
    if !js_callers.is_empty() {
        (out.lag, out.issued_measured, out.unfinished) =
            call_share(t, start, schedule, &js_callers, &local, &sh).await;
    }
    // Providers serve the other threads' calls until every caller is done
    // (each is bounded by its schedule and DRAIN).
    let until = start + p.warmup + p.duration + DRAIN + Duration::from_secs(5);
    while sh.callers_done.load(Relaxed) < sh.callers && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    local.stop.set(true);
    for l in loops {
        let _ = tokio::time::timeout(POLL * 3, l).await;
    }
    out.rec = local.rec.replace(Recorder::new());
    Ok(out)
}

/// The consumers thread `t` hosts, connected, each pulling its answers.
async fn connect_callers(t: usize, sh: &Shared) -> Result<Vec<Caller>, String> {
    let stream_ans = sh.names.stream("ANS");
    let mut callers = Vec::new();
    for c in hosted(t, sh.threads, sh.p.consumers) {
        let js = jetstream(connect(&sh.url, &format!("consumer c{c}")).await?);
        let consumer = pull_consumer(&js, &stream_ans, &Names::ans_durable(c)).await?;
        let answers = pull_messages(&consumer, PULL_BATCH).await?;
        callers.push(Caller {
            js,
            reply: sh.names.ans_subject(c),
            answers,
        });
    }
    Ok(callers)
}

/// The providers thread `t` hosts, connected, each pulling its requests.
async fn connect_providers(t: usize, sh: &Shared) -> Result<Vec<Provider>, String> {
    let stream_req = sh.names.stream("REQ");
    let mut providers = Vec::new();
    for prov in hosted(t, sh.threads, sh.p.providers) {
        let js = jetstream(connect(&sh.url, &format!("provider p{prov}")).await?);
        let consumer = pull_consumer(&js, &stream_req, &Names::req_durable(prov)).await?;
        let requests = pull_messages(&consumer, PULL_BATCH).await?;
        providers.push(Provider { js, requests });
    }
    Ok(providers)
}

/// This thread's calls: paced, then DRAIN for those in flight; what is
/// left is closed as unfinished. (lag, measured calls issued, measured
/// calls unfinished).
async fn call_share(
    t: usize,
    start: Instant,
    schedule: OpenLoop,
    js_callers: &[(async_nats::jetstream::Context, String)],
    local: &Rc<Local>,
    sh: &Arc<Shared>,
) -> (Duration, u64, u64) {
    let (lag, issued) = pace(t, start, schedule, js_callers, local, sh).await;
    // The calls still in flight get DRAIN to finish.
    let until = Instant::now() + DRAIN;
    while !local.in_flight.borrow().is_empty() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // What is still in flight stays unfinished: an answer arriving
    // later is not counted (it would be "answer:late").
    let left: Vec<bool> = local
        .in_flight
        .borrow_mut()
        .drain()
        .map(|(_, m)| m)
        .collect();
    sh.in_flight.fetch_sub(left.len() as u64, Relaxed);
    let unfinished = left.iter().filter(|&&m| m).count() as u64;
    local.closed.set(true);
    sh.callers_done.fetch_add(1, Relaxed);
    (lag, issued, unfinished)
}

/// Starts every call as it falls due; (lag, measured calls issued).
async fn pace(
    t: usize,
    start: Instant,
    schedule: OpenLoop,
    callers: &[(async_nats::jetstream::Context, String)],
    local: &Rc<Local>,
    sh: &Arc<Shared>,
) -> (Duration, u64) {
    let p = &sh.p;
    let payload = Bytes::from(vec![b'q'; p.request_bytes]);
    let mut pacer = Pacer::new(schedule);
    let mut issued_measured = 0;
    tokio::time::sleep_until(start.into()).await;
    while !pacer.finished() {
        let due = pacer.due(start.elapsed());
        let next = due.end;
        for i in due {
            let measured = schedule.is_measured(i);
            issued_measured += u64::from(measured);
            sh.issued.fetch_add(1, Relaxed);
            if local.in_flight.borrow().len() as u64 >= p.outstanding_max {
                if measured {
                    local.rec.borrow_mut().not_sent();
                }
                continue;
            }
            let (js, reply) = &callers[(i % callers.len() as u64) as usize];
            // Round robin over providers across all calling threads: this
            // thread's call i is the run's call i * callers + t.
            let provider = ((i * sh.callers as u64 + t as u64) % p.providers as u64) as usize;
            local.in_flight.borrow_mut().insert(i, measured);
            sh.in_flight.fetch_add(1, Relaxed);
            let mut headers = HeaderMap::new();
            headers.insert(CALL_HEADER, i.to_string());
            headers.insert(REPLY_HEADER, reply.as_str());
            let publish = Publish::build().payload(payload.clone()).headers(headers);
            let (js, subject) = (js.clone(), sh.names.req_subject(provider));
            let (local, sh) = (local.clone(), sh.clone());
            tokio::task::spawn_local(async move {
                let acked = match js.send_publish(subject, publish).await {
                    Ok(ack) => ack.await.map(|_| ()),
                    Err(e) => Err(e),
                };
                if let Err(e) = acked {
                    if local.finish(&sh, i) == Some(true) {
                        local.error(&sh, &format!("request:{:?}", e.kind()));
                    } else {
                        sh.errors.fetch_add(1, Relaxed);
                    }
                }
            });
        }
        if pacer.finished() {
            break;
        }
        let wait = schedule.due_at(next).saturating_sub(start.elapsed());
        if wait > SPIN {
            tokio::time::sleep(wait - Duration::from_millis(1)).await;
        } else {
            // Under the timer's grain: let the other threads on this core
            // (sched_yield) and this thread's other tasks run, come back.
            std::thread::yield_now();
            tokio::task::yield_now().await;
        }
    }
    (pacer.lag_max(), issued_measured)
}

/// The next message of `stream` within POLL: Ok(None) if none came yet,
/// Err(()) if the stream ended.
async fn next_message(
    stream: &mut PullStream,
    local: &Local,
    sh: &Shared,
    what: &str,
) -> Result<Option<async_nats::jetstream::Message>, ()> {
    match tokio::time::timeout(POLL, stream.next()).await {
        Err(_) => Ok(None),
        Ok(None) => {
            local.error(sh, &format!("{what}:pull-ended"));
            Err(())
        }
        Ok(Some(Err(e))) => {
            local.error(sh, &format!("{what}:pull:{:?}", e.kind()));
            // A failing pull is retried by the client; don't spin on it.
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(None)
        }
        Ok(Some(Ok(m))) => Ok(Some(m)),
    }
}

/// The header `name` of `m` as a string.
fn header<'a>(m: &'a async_nats::jetstream::Message, name: &str) -> Option<&'a str> {
    m.headers.as_ref()?.get(name).map(|v| v.as_str())
}

/// A consumer's answers: each one ends its call (latency from the call's
/// scheduled time) and is acked.
async fn receive(
    mut answers: PullStream,
    start: Instant,
    schedule: OpenLoop,
    local: Rc<Local>,
    sh: Arc<Shared>,
) {
    let clock = Pacer::new(schedule);
    let bytes = (sh.p.request_bytes + sh.p.answer_bytes) as u64;
    while !local.stop.get() {
        let m = match next_message(&mut answers, &local, &sh, "answer").await {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(()) => return,
        };
        let elapsed = start.elapsed();
        let call = header(&m, CALL_HEADER).and_then(|v| v.parse::<u64>().ok());
        match call.map(|i| (i, local.finish(&sh, i))) {
            Some((i, Some(measured))) => {
                sh.answered.fetch_add(1, Relaxed);
                if measured {
                    local.rec.borrow_mut().ok(clock.latency(i, elapsed), bytes);
                }
            }
            // After the end of this thread's wait for its calls.
            Some((_, None)) if local.closed.get() => local.error(&sh, "answer:late"),
            // Its call already failed (request PubAck lost) or a redelivery.
            Some((_, None)) => local.error(&sh, "answer:unexpected"),
            None => local.error(&sh, "answer:no-call-header"),
        }
        match tokio::time::timeout(IO_TIMEOUT, m.ack()).await {
            Ok(Ok(())) => {}
            _ => local.error(&sh, "answer:ack"),
        }
    }
}

/// A provider: each request is answered (published to its reply subject,
/// PubAck awaited) and then acked.
async fn provide(mut prov: Provider, answer: Bytes, local: Rc<Local>, sh: Arc<Shared>) {
    while !local.stop.get() {
        let m = match next_message(&mut prov.requests, &local, &sh, "provider").await {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(()) => return,
        };
        let (call, reply) = match (header(&m, CALL_HEADER), header(&m, REPLY_HEADER)) {
            (Some(c), Some(r)) => (c.to_string(), r.to_string()),
            _ => {
                local.error(&sh, "provider:bad-request");
                let _ = tokio::time::timeout(IO_TIMEOUT, m.ack()).await;
                continue;
            }
        };
        let mut headers = HeaderMap::new();
        headers.insert(CALL_HEADER, call);
        let publish = Publish::build().payload(answer.clone()).headers(headers);
        let (js, local, sh) = (prov.js.clone(), local.clone(), sh.clone());
        // In flight per provider: bounded by the consumer's max_ack_pending.
        tokio::task::spawn_local(async move {
            let acked = match js.send_publish(reply, publish).await {
                Ok(ack) => ack.await.map(|_| ()),
                Err(e) => Err(e),
            };
            match acked {
                Ok(()) => {
                    if !matches!(tokio::time::timeout(IO_TIMEOUT, m.ack()).await, Ok(Ok(()))) {
                        local.error(&sh, "provider:ack");
                    }
                }
                // Not acked: JetStream redelivers it after ack_wait.
                Err(e) => local.error(&sh, &format!("provider:answer:{:?}", e.kind())),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> RtParams {
        RtParams {
            rate_per_s: 100.0,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(1),
            request_bytes: 1024,
            answer_bytes: 2048,
            consumers: 1,
            providers: 1,
            lag_max: Duration::from_millis(50),
            outstanding_max: 1000,
        }
    }

    #[test]
    fn given_bad_parameters_when_checked_then_refused_before_connecting() {
        assert!(check(&params(), 1 << 20).is_ok());
        let mut p = params();
        p.rate_per_s = 0.0;
        assert!(check(&p, 0).is_err());
        let mut p = params();
        p.providers = 0;
        assert!(check(&p, 0).is_err());
        let mut p = params();
        p.answer_bytes = 2 << 20;
        assert!(check(&p, 1 << 20).unwrap_err().contains("max_payload"));
        let bad = NatsTarget {
            url: "nats://127.0.0.1:1".into(),
            sync: "sometimes".into(),
            server_pid: None,
        };
        assert!(run(&bad, &params(), &Cores::unpinned(1))
            .unwrap_err()
            .contains("sync"));
    }

    #[test]
    fn given_no_server_when_run_then_an_error_not_a_panic() {
        let target = NatsTarget {
            // Port 1 on loopback: refused at once.
            url: "nats://127.0.0.1:1".into(),
            sync: "default".into(),
            server_pid: None,
        };
        let e = run(&target, &params(), &Cores::unpinned(1)).unwrap_err();
        assert!(e.contains("cannot connect"), "{e}");
    }
}
