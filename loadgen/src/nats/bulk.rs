//! `bulk` against JetStream: one file-storage stream, S senders publishing
//! N messages with at most `window` PubAcks outstanding each, P providers
//! draining with pull consumers and acking each message
//! (docs/nats-mapping.md).
//!
//! Message k (0..N) goes from sender k mod S to provider k mod P, subject
//! `bulk.p<k mod P>`. Accepted = PubAck received; acceptance is measured
//! from the first publish to the last PubAck, the drain from the first
//! publish to the last provider ack.

use super::fleet::{run_fleet, Gate};
use super::names::{hosted, share, Names};
use super::{
    check_target, common_setup, connect, jetstream, pull_consumer, pull_messages, with_streams,
    ConsumerSpec, NatsTarget, IO_TIMEOUT,
};
use crate::params::{BulkParams, Cores};
use crate::process::CpuWindow;
use crate::record::Recorder;
use crate::result::{HubCost, Phase, RunResult};
use async_nats::jetstream::consumer::pull::Stream as PullStream;
use async_nats::jetstream::context::{Publish, PublishAckFuture};
use bytes::Bytes;
use futures_lite::StreamExt;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Messages per pull request of a draining provider.
const PULL_BATCH: usize = 500;
/// Unacknowledged messages a provider may hold (server side bound).
const PROVIDER_MAX_ACK_PENDING: i64 = 20_000;
/// How often the drain loops look at their stop conditions.
const POLL: Duration = Duration::from_millis(100);

/// What every generator thread shares.
struct Shared {
    url: String,
    names: Names,
    p: BulkParams,
    threads: usize,
    /// Whether the providers drain (`bulk`) or the messages stay waiting (`fill`).
    drain: bool,
    published: AtomicU64,
    accepted: AtomicU64,
    failed: AtomicU64,
    drained: AtomicU64,
    errors: AtomicU64,
    senders_done: AtomicUsize,
    /// When the last sender finished, ns after the start (0: not yet).
    senders_done_at_ns: AtomicU64,
}

/// One thread's counts at the end.
struct ThreadOut {
    rec: Recorder,
    first_publish: Option<Instant>,
    last_accept: Option<Instant>,
    last_drain: Option<Instant>,
    drained: u64,
}

/// What a generator thread's tasks share.
struct Local {
    rec: RefCell<Recorder>,
    first_publish: Cell<Option<Instant>>,
    last_accept: Cell<Option<Instant>>,
    last_drain: Cell<Option<Instant>>,
    drained: Cell<u64>,
}

impl Local {
    fn error(&self, sh: &Shared, kind: &str) {
        self.rec.borrow_mut().error(kind);
        sh.errors.fetch_add(1, Relaxed);
    }
}

fn check(p: &BulkParams, max_payload: usize) -> Result<(), String> {
    if p.messages == 0 || p.senders == 0 || p.window == 0 || p.providers == 0 {
        return Err("bulk: messages, senders, window and providers must be positive".into());
    }
    if p.window > Semaphore::MAX_PERMITS || u32::try_from(p.window).is_err() {
        return Err(format!("bulk: window {} is too large", p.window));
    }
    if max_payload > 0 && p.message_bytes > max_payload {
        return Err(format!(
            "bulk: a message of {} bytes is over the server's max_payload of {max_payload}",
            p.message_bytes
        ));
    }
    Ok(())
}

/// The `bulk` workload (see the module docs).
pub(crate) fn run(
    target: &NatsTarget,
    p: &BulkParams,
    cores: &Cores,
) -> Result<(RunResult, Recorder), String> {
    check_target(target)?;
    check(p, 0)?;
    if cores.count() == 0 {
        return Err("bulk: no generator threads".into());
    }
    let names = Names::fresh();
    let streams = [(names.stream("BULK"), names.bulk_subjects())];
    let stream_names = vec![streams[0].0.clone()];
    let consumers: Vec<ConsumerSpec> = (0..p.providers)
        .map(|prov| ConsumerSpec {
            stream: 0,
            durable: Names::bulk_durable(prov),
            subject: names.bulk_subject(prov),
            max_ack_pending: PROVIDER_MAX_ACK_PENDING,
        })
        .collect();
    let ((mut phase, rec), version, setup_s) = with_streams(
        target,
        &streams,
        &consumers,
        |max_payload| check(p, max_payload),
        || measure(target, p, cores, &names, true),
    )?;
    phase.extra.insert(
        "setup_s".into(),
        serde_json::json!((setup_s * 1000.0).round() / 1000.0),
    );
    let mut run = RunResult::new("nats", "bulk");
    common_setup(&mut run, target, &version, &names, cores);
    let setup = &mut run.setup;
    setup.insert("streams".into(), serde_json::json!(stream_names));
    setup.insert("messages".into(), p.messages.into());
    setup.insert("message_bytes".into(), p.message_bytes.into());
    setup.insert("senders".into(), p.senders.into());
    setup.insert("window".into(), p.window.into());
    setup.insert("providers".into(), p.providers.into());
    setup.insert("pull_batch".into(), PULL_BATCH.into());
    setup.insert(
        "drain_timeout_s".into(),
        p.drain_timeout.as_secs_f64().into(),
    );
    setup.insert(
        "publish".into(),
        "JetStream async publish, PubAcks awaited, window per sender".into(),
    );
    run.push(phase);
    Ok((run, rec))
}

/// Publishes `p.messages` to the BULK stream of `names`, which the caller
/// made with a durable consumer per provider, and leaves them there: no
/// provider pulls (`backlog` and `recovery`). The phase is named `name`.
pub(crate) fn fill(
    target: &NatsTarget,
    p: &BulkParams,
    cores: &Cores,
    names: &Names,
    name: &str,
) -> Result<(Phase, Recorder), String> {
    check(p, 0)?;
    if cores.count() == 0 {
        return Err("fill: no generator threads".into());
    }
    let (mut phase, rec) = measure(target, p, cores, names, false)?;
    phase.name = name.into();
    Ok((phase, rec))
}

/// Runs the threads; the phase.
fn measure(
    target: &NatsTarget,
    p: &BulkParams,
    cores: &Cores,
    names: &Names,
    drain: bool,
) -> Result<(Phase, Recorder), String> {
    let sh = Arc::new(Shared {
        url: target.url.clone(),
        names: names.clone(),
        p: p.clone(),
        threads: cores.count(),
        drain,
        published: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        drained: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        senders_done: AtomicUsize::new(0),
        senders_done_at_ns: AtomicU64::new(0),
    });
    let mut window: Option<CpuWindow> = None;
    let mut cost: Option<HubCost> = None;
    let mut started = false;
    let mut next_progress = Duration::from_secs(1);
    let outs = run_fleet(
        cores,
        |t, gate| thread(t, gate, sh.clone()),
        |start, now| {
            if !started {
                started = true;
                window = CpuWindow::start(target.server_pid);
            }
            let accepted = sh.accepted.load(Relaxed);
            let done = sh.senders_done.load(Relaxed) == p.senders
                && (!drain || sh.drained.load(Relaxed) >= accepted);
            if done && cost.is_none() {
                if let Some(w) = window.take() {
                    cost = Some(w.finish(accepted));
                }
            }
            let el = now.saturating_duration_since(start);
            if el >= next_progress {
                next_progress += Duration::from_secs(1);
                let published = sh.published.load(Relaxed);
                let failed = sh.failed.load(Relaxed);
                eprintln!(
                    "[{:>5.1}s] nats bulk: published {published} accepted {accepted} in flight {} drained {} errors {}",
                    el.as_secs_f64(),
                    published.saturating_sub(accepted + failed),
                    sh.drained.load(Relaxed),
                    sh.errors.load(Relaxed),
                );
            }
        },
    )?;
    if let Some(w) = window.take() {
        cost = Some(w.finish(sh.accepted.load(Relaxed)));
    }
    let ends = Ends::merge(&outs);
    let phase = bulk_phase(p, &sh, &ends, cost);
    Ok((phase, ends.rec))
}

/// Every thread's counts, merged.
struct Ends {
    rec: Recorder,
    first: Option<Instant>,
    last_accept: Option<Instant>,
    last_drain: Option<Instant>,
    drained: u64,
}

impl Ends {
    fn merge(outs: &[ThreadOut]) -> Ends {
        let mut e = Ends {
            rec: Recorder::new(),
            first: None,
            last_accept: None,
            last_drain: None,
            drained: 0,
        };
        for o in outs {
            e.rec.merge(&o.rec);
            e.first = earliest(e.first, o.first_publish);
            e.last_accept = latest(e.last_accept, o.last_accept);
            e.last_drain = latest(e.last_drain, o.last_drain);
            e.drained += o.drained;
        }
        e
    }
}

/// The bulk phase: acceptance over first publish to last PubAck, the drain
/// beside it; invalid if not everything was accepted and drained.
fn bulk_phase(p: &BulkParams, sh: &Shared, ends: &Ends, cost: Option<HubCost>) -> Phase {
    let (rec, drained) = (&ends.rec, ends.drained);
    let published = sh.published.load(Relaxed);
    let failed = sh.failed.load(Relaxed);
    let since_first = |t: Option<Instant>| match (ends.first, t) {
        (Some(a), Some(b)) => b.saturating_duration_since(a),
        _ => Duration::ZERO,
    };
    let accept_time = since_first(ends.last_accept);
    let drain_time = since_first(ends.last_drain);
    let mut phase = Phase::new("bulk", accept_time, published, rec);
    phase.unfinished = published.saturating_sub(rec.ok_count() + failed);
    if let Some(c) = cost {
        phase.hub = c;
    }
    let accepted = rec.ok_count();
    if accepted < p.messages {
        phase.invalidate(format!(
            "only {accepted} of {} messages were accepted",
            p.messages
        ));
    }
    if !sh.drain {
        phase.extra.insert("accepted".into(), accepted.into());
        return phase;
    }
    let drain_s = drain_time.as_secs_f64();
    phase
        .extra
        .insert("drain_s".into(), serde_json::json!(round3(drain_s)));
    phase.extra.insert("drained".into(), drained.into());
    phase.extra.insert(
        "drained_per_s".into(),
        serde_json::json!(if drain_s > 0.0 {
            (drained as f64 / drain_s).round()
        } else {
            0.0
        }),
    );
    if drained < accepted {
        phase.invalidate(format!(
            "only {drained} of {accepted} accepted messages were drained (drain timeout {} s)",
            p.drain_timeout.as_secs_f64()
        ));
    }
    phase
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn latest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// One generator thread: its senders publish their messages, its providers drain theirs.
async fn thread(t: usize, mut gate: Gate, sh: Arc<Shared>) -> Result<ThreadOut, String> {
    let p = &sh.p;
    let stream = sh.names.stream("BULK");
    let mut senders = Vec::new();
    for s in hosted(t, sh.threads, p.senders) {
        let js = jetstream(connect(&sh.url, &format!("sender s{s}")).await?);
        senders.push((s, js));
    }
    let mut providers = Vec::new();
    // A fill leaves every message waiting: nobody pulls.
    let draining = if sh.drain { p.providers } else { 0 };
    for prov in hosted(t, sh.threads, draining) {
        let js = jetstream(connect(&sh.url, &format!("provider p{prov}")).await?);
        let consumer = pull_consumer(&js, &stream, &Names::bulk_durable(prov)).await?;
        let messages = pull_messages(&consumer, PULL_BATCH).await?;
        providers.push((prov, messages));
    }
    let start = gate.ready().await?;
    tokio::time::sleep_until(start.into()).await;
    let local = Rc::new(Local {
        rec: RefCell::new(Recorder::new()),
        first_publish: Cell::new(None),
        last_accept: Cell::new(None),
        last_drain: Cell::new(None),
        drained: Cell::new(0),
    });
    let mut drains = Vec::new();
    for (prov, messages) in providers {
        drains.push(tokio::task::spawn_local(drain(
            prov,
            messages,
            start,
            local.clone(),
            sh.clone(),
        )));
    }
    let mut sends = Vec::new();
    for (s, js) in senders {
        sends.push(tokio::task::spawn_local(send(
            s,
            js,
            start,
            local.clone(),
            sh.clone(),
        )));
    }
    for s in sends {
        if s.await.is_err() {
            local.error(&sh, "sender:panicked");
        }
    }
    for d in drains {
        if d.await.is_err() {
            local.error(&sh, "provider:panicked");
        }
    }
    Ok(ThreadOut {
        rec: local.rec.replace(Recorder::new()),
        first_publish: local.first_publish.get(),
        last_accept: local.last_accept.get(),
        last_drain: local.last_drain.get(),
        drained: local.drained.get(),
    })
}

/// Sender `s`: messages s, s + S, s + 2S, ..., at most `window` PubAcks outstanding.
async fn send(
    s: usize,
    js: async_nats::jetstream::Context,
    start: Instant,
    local: Rc<Local>,
    sh: Arc<Shared>,
) {
    let p = &sh.p;
    let payload = Bytes::from(vec![b'b'; p.message_bytes]);
    let bytes = p.message_bytes as u64;
    let window = Arc::new(Semaphore::new(p.window));
    let mut attempted = 0u64;
    let mine = super::names::share(p.messages, p.senders, s);
    for k in (s as u64..p.messages).step_by(p.senders) {
        // Every PubAck outstanding times out within IO_TIMEOUT, so a slot
        // frees within that (twice, for margin).
        let permit =
            match tokio::time::timeout(2 * IO_TIMEOUT, window.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    local.error(&sh, "sender:window-stalled");
                    break;
                }
            };
        attempted += 1;
        let subject = sh.names.bulk_subject((k % p.providers as u64) as usize);
        let sent_at = Instant::now();
        if local.first_publish.get().is_none() {
            local.first_publish.set(Some(sent_at));
        }
        sh.published.fetch_add(1, Relaxed);
        match js
            .send_publish(subject, Publish::build().payload(payload.clone()))
            .await
        {
            Ok(ack) => await_ack(ack, permit, sent_at, bytes, local.clone(), sh.clone()),
            Err(e) => {
                drop(permit);
                local.error(&sh, &format!("publish:{:?}", e.kind()));
                sh.failed.fetch_add(1, Relaxed);
            }
        }
    }
    for _ in attempted..mine {
        local.rec.borrow_mut().not_sent();
    }
    // Wait for the window to empty (each PubAck is bounded by IO_TIMEOUT).
    let all = u32::try_from(p.window).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(2 * IO_TIMEOUT, window.acquire_many(all)).await;
    let at = start.elapsed().as_nanos().max(1) as u64;
    sh.senders_done_at_ns.fetch_max(at, Relaxed);
    sh.senders_done.fetch_add(1, Relaxed);
}

/// Waits for one PubAck in a task of its own, then frees its window slot
/// and counts the message accepted (latency from `sent_at`) or failed.
fn await_ack(
    ack: PublishAckFuture,
    permit: OwnedSemaphorePermit,
    sent_at: Instant,
    bytes: u64,
    local: Rc<Local>,
    sh: Arc<Shared>,
) {
    tokio::task::spawn_local(async move {
        let r = ack.await;
        drop(permit);
        match r {
            Ok(_) => {
                let now = Instant::now();
                local.rec.borrow_mut().ok(now - sent_at, bytes);
                local
                    .last_accept
                    .set(latest(local.last_accept.get(), Some(now)));
                sh.accepted.fetch_add(1, Relaxed);
            }
            Err(e) => {
                local.error(&sh, &format!("publish:{:?}", e.kind()));
                sh.failed.fetch_add(1, Relaxed);
            }
        }
    });
}

/// Provider `prov`: pulls and acks its messages until it has its share,
/// or everything accepted is drained, or the drain timeout after the last
/// sender finished.
async fn drain(
    prov: usize,
    mut messages: PullStream,
    start: Instant,
    local: Rc<Local>,
    sh: Arc<Shared>,
) {
    let p = &sh.p;
    let mine = share(p.messages, p.providers, prov);
    let mut got = 0u64;
    while got < mine {
        if sh.senders_done.load(Relaxed) == p.senders {
            if sh.drained.load(Relaxed) >= sh.accepted.load(Relaxed) {
                break;
            }
            let done_at = start + Duration::from_nanos(sh.senders_done_at_ns.load(Relaxed));
            if Instant::now() > done_at + p.drain_timeout {
                local.error(&sh, "provider:drain-timeout");
                break;
            }
        }
        let m = match tokio::time::timeout(POLL, messages.next()).await {
            Err(_) => continue,
            Ok(None) => {
                local.error(&sh, "provider:pull-ended");
                break;
            }
            Ok(Some(Err(e))) => {
                local.error(&sh, &format!("provider:pull:{:?}", e.kind()));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Ok(Some(Ok(m))) => m,
        };
        match tokio::time::timeout(IO_TIMEOUT, m.ack()).await {
            Ok(Ok(())) => {
                got += 1;
                sh.drained.fetch_add(1, Relaxed);
                local.drained.set(local.drained.get() + 1);
                local.last_drain.set(Some(Instant::now()));
            }
            _ => local.error(&sh, "provider:ack"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> BulkParams {
        BulkParams {
            messages: 100,
            message_bytes: 4096,
            senders: 2,
            window: 64,
            providers: 2,
            drain_timeout: Duration::from_secs(5),
            batch: 1,
            format: crate::agency_record::PayloadFormat::Bytes,
        }
    }

    #[test]
    fn given_bad_parameters_when_checked_then_refused_before_connecting() {
        assert!(check(&params(), 1 << 20).is_ok());
        let mut p = params();
        p.window = 0;
        assert!(check(&p, 0).is_err());
        let mut p = params();
        p.message_bytes = 2 << 20;
        assert!(check(&p, 1 << 20).unwrap_err().contains("max_payload"));
    }

    #[test]
    fn given_no_server_when_run_then_an_error_not_a_panic() {
        let target = NatsTarget {
            url: "nats://127.0.0.1:1".into(),
            sync: "always".into(),
            server_pid: None,
        };
        let e = run(&target, &params(), &Cores::unpinned(2)).unwrap_err();
        assert!(e.contains("cannot connect"), "{e}");
    }

    #[test]
    fn given_instants_when_combined_then_earliest_and_latest_ignore_missing() {
        let a = Instant::now();
        let b = a + Duration::from_millis(5);
        assert_eq!(earliest(Some(b), Some(a)), Some(a));
        assert_eq!(earliest(None, Some(b)), Some(b));
        assert_eq!(latest(Some(a), Some(b)), Some(b));
        assert_eq!(latest(None, None), None);
    }
}
