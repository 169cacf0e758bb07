//! Runs one plan (rt, bulk, or both at once) on the generator cores: one
//! OS thread per core, each with its own glommio executor, connections,
//! share of the rate, pacer and recorders; the main thread prints the
//! progress line, decides when the plan is over, and merges the recorders.
//!
//! Every wait is bounded: setup by [`SETUP_WAIT`], the rt drain by
//! [`RT_DRAIN_WAIT`], bulk by its `drain_timeout`, the whole plan by its
//! schedule plus those.

use crate::gonets::conn::{error_name, Conn, GonetsTarget};
use crate::gonets::http_call::{self, HttpCaller};
use crate::params::{BulkParams, Cores, RtParams};
use crate::process::CpuWindow;
use crate::record::Recorder;
use crate::registry;
use crate::result::HubCost;
use crate::schedule::{OpenLoop, Pacer};
use bytes::Bytes;
use gonets_client::ClientError;
use gonets_types::{DataKindId, NewRequest, QueueId};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest connect-and-subscribe phase.
pub const SETUP_WAIT: Duration = Duration::from_secs(120);
/// Longest wait for the last rt answers after the schedule ends (the
/// realtime deadline is 2 s; the rest is slack for a stalled disk).
pub const RT_DRAIN_WAIT: Duration = Duration::from_secs(10);
/// Subscription credits of a provider.
const CREDITS: u32 = 1024;
/// Answers or acks in flight per provider connection.
const SETTLE_IN_FLIGHT_MAX: u64 = 4096;
/// The generator's timer tick.
const TICK: Duration = Duration::from_micros(250);

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The phase name shown on the progress line.
    pub label: String,
    /// Realtime calls at a fixed rate.
    pub rt: Option<RtParams>,
    /// Bulk sending (and draining).
    pub bulk: Option<BulkPlan>,
    /// When set, an rt call issued while it reads false is recorded apart
    /// ([`RtOutcome::apart`]): a workload that turns something on and off
    /// in windows compares the two sets of calls of one run.
    pub split: Option<Arc<AtomicBool>>,
}

/// The bulk part of a plan.
#[derive(Clone, Debug)]
pub struct BulkPlan {
    /// Sizes and counts.
    pub params: BulkParams,
    /// Providers drain (ack) what is sent; false leaves it waiting (backlog, recovery).
    pub drain: bool,
    /// Send until the rt part is over instead of `messages` (mixed).
    pub until_rt_done: bool,
    /// Consumers whose connections send (participants LGC1..).
    pub consumers: usize,
}

/// The rt part's result, merged over the cores.
#[derive(Debug, Default)]
pub struct RtOutcome {
    /// Latencies and counts of the measured window.
    pub rec: Recorder,
    /// Calls scheduled in the measured window.
    pub issued: u64,
    /// The most a measured call started behind schedule.
    pub lag_max: Duration,
    /// Calls still unanswered when the drain wait ended.
    pub unfinished: u64,
    /// With [`Plan::split`]: the measured calls issued while the flag read
    /// false (`rec` then holds those issued while it read true).
    pub apart: Recorder,
    /// With [`Plan::split`]: calls scheduled in the measured window while
    /// the flag read false.
    pub issued_apart: u64,
}

/// One rt thread's results.
#[derive(Default)]
struct RtThreadOut {
    rec: Recorder,
    apart: Recorder,
    issued: u64,
    issued_apart: u64,
    lag_max: Duration,
    unfinished: u64,
}

/// The bulk part's result, merged over the cores.
#[derive(Debug, Default)]
pub struct BulkOutcome {
    /// Acceptance latencies (send to durable `Accepted`) and counts.
    pub rec: Recorder,
    /// Requests accepted.
    pub accepted: u64,
    /// Requests drained (acked by providers).
    pub drained: u64,
    /// First send to last acceptance.
    pub accept_window: Duration,
    /// First send to last drain ack.
    pub drain_window: Duration,
    /// Whether the drain finished before its timeout.
    pub drain_complete: bool,
}

/// What a plan produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The rt part.
    pub rt: Option<RtOutcome>,
    /// The bulk part.
    pub bulk: Option<BulkOutcome>,
    /// The hub's CPU per 1,000 operations and peak RSS over the plan.
    pub hub: HubCost,
    /// Wall time of the plan after setup.
    pub wall: Duration,
}

/// State shared by the generator threads and the main thread (atomics
/// only on the per-operation path).
struct Shared {
    threads: usize,
    /// The threads that run the rt half, and those that run bulk
    /// ([`Cores::rt_threads`], [`Cores::bulk_threads`]).
    rt_threads: Vec<usize>,
    bulk_threads: Vec<usize>,
    epoch: Instant,
    ready: AtomicUsize,
    failure: Mutex<Option<String>>,
    failed: AtomicBool,
    rt_done: AtomicUsize,
    bulk_next: AtomicU64,
    bulk_stop: AtomicBool,
    senders_done: AtomicUsize,
    accepted: AtomicU64,
    drained: AtomicU64,
    first_send_ns: AtomicU64,
    last_accept_ns: AtomicU64,
    last_drain_ns: AtomicU64,
    stop: AtomicBool,
    issued: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    in_flight: AtomicI64,
    p99_us: Vec<AtomicU64>,
    /// The slowest measured rt call since the last progress line, µs: when
    /// in a run the tail happened.
    rt_max_since_line_us: AtomicU64,
    /// rt calls and bulk sends through the HTTP gateway (`--via http`).
    gateway: Option<Gateway>,
}

/// The HTTP gateway, and how each participant reaches it (the native
/// connections' security: a development token, or mutual TLS).
struct Gateway {
    addr: std::net::SocketAddr,
    target: GonetsTarget,
}

impl Gateway {
    /// A caller as `who`. Its settings are the ones its native connection
    /// was already made with, so they cannot fail here.
    fn caller(&self, who: &str) -> HttpCaller {
        let config = self
            .target
            .client_config(who)
            .expect("the participant's native connection was made with these settings");
        HttpCaller::new(self.addr, &config.security)
    }
}

impl Shared {
    /// Fresh state for the generator threads of `cores`.
    fn new(cores: &Cores, gateway: Option<Gateway>) -> Shared {
        let threads = cores.count();
        Shared {
            threads,
            rt_threads: cores.rt_threads(),
            bulk_threads: cores.bulk_threads(),
            epoch: Instant::now(),
            ready: AtomicUsize::new(0),
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
            rt_done: AtomicUsize::new(0),
            bulk_next: AtomicU64::new(0),
            bulk_stop: AtomicBool::new(false),
            senders_done: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            drained: AtomicU64::new(0),
            first_send_ns: AtomicU64::new(u64::MAX),
            last_accept_ns: AtomicU64::new(0),
            last_drain_ns: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            issued: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            p99_us: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            rt_max_since_line_us: AtomicU64::new(0),
            gateway,
        }
    }

    fn fail(&self, why: String) {
        let mut f = self.failure.lock().expect("not poisoned");
        if f.is_none() {
            *f = Some(why);
        }
        self.failed.store(true, Relaxed);
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Thread `k`'s place among the rt threads, and their count.
    fn rt_slot(&self, k: usize) -> Option<Slot> {
        Slot::of(&self.rt_threads, k)
    }

    /// Thread `k`'s place among the bulk threads, and their count.
    fn bulk_slot(&self, k: usize) -> Option<Slot> {
        Slot::of(&self.bulk_threads, k)
    }
}

/// A thread's place among the threads that run one half of a plan: it
/// takes the participants `p` with `p % count == index`, and `1 / count`
/// of the rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    index: usize,
    count: usize,
}

impl Slot {
    fn of(threads: &[usize], k: usize) -> Option<Slot> {
        let index = threads.iter().position(|&t| t == k)?;
        Some(Slot {
            index,
            count: threads.len(),
        })
    }
}

/// One thread's results.
#[derive(Default)]
struct ThreadOut {
    rt: Option<RtThreadOut>,
    bulk: Option<Recorder>,
}

/// A generator thread: its results, or why it failed.
type Generator = std::thread::JoinHandle<Result<ThreadOut, String>>;

/// Runs `plan` against `target` on `cores`; `progress` gets a line a second.
pub fn run(
    target: &GonetsTarget,
    plan: &Plan,
    cores: &Cores,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, String> {
    if let Some(rt) = &plan.rt {
        assert!(rt.consumers > 0 && rt.providers > 0);
    }
    let gateway = target.gateway.map(|addr| Gateway {
        addr,
        target: target.clone(),
    });
    let sh = Arc::new(Shared::new(cores, gateway));
    let handles = spawn_generators(&sh, plan, target, cores)?;
    let result = supervise(&sh, plan, target, progress);
    sh.stop.store(true, Relaxed);
    let outs = join_generators(&sh, handles);
    if let Some(why) = sh.failure.lock().expect("not poisoned").take() {
        return Err(why);
    }
    let (hub, wall) = result?;
    Ok(Outcome {
        rt: plan.rt.as_ref().map(|_| merge_rt(&outs)),
        bulk: plan.bulk.as_ref().map(|bp| merge_bulk(&sh, bp, &outs)),
        hub,
        wall,
    })
}

/// Starts one generator thread per entry of `cores`, pinned where asked.
fn spawn_generators(
    sh: &Arc<Shared>,
    plan: &Plan,
    target: &GonetsTarget,
    cores: &Cores,
) -> Result<Vec<Generator>, String> {
    let mut handles = Vec::with_capacity(cores.count());
    for (k, pin) in cores.all_pins().into_iter().enumerate() {
        let (sh, plan, target) = (sh.clone(), plan.clone(), target.clone());
        let h = std::thread::Builder::new()
            .name(format!("loadgen-{k}"))
            .spawn(move || generator_thread(k, pin, sh, plan, target))
            .map_err(|e| format!("cannot start a generator thread: {e}"))?;
        handles.push(h);
    }
    Ok(handles)
}

/// The body of generator thread `k`: its own glommio executor running
/// [`thread_main`]; a failure is also recorded in `sh` so the others stop.
fn generator_thread(
    k: usize,
    pin: Option<usize>,
    sh: Arc<Shared>,
    plan: Plan,
    target: GonetsTarget,
) -> Result<ThreadOut, String> {
    let placement = match pin {
        Some(c) => glommio::Placement::Fixed(c),
        None => glommio::Placement::Unbound,
    };
    let ex = glommio::LocalExecutorBuilder::new(placement)
        .preempt_timer(Duration::from_millis(1))
        .make();
    let r = match ex {
        Ok(ex) => ex
            .run(thread_main(k, sh.clone(), plan, target))
            .map_err(|e| format!("generator thread {k}: {e}")),
        Err(e) => Err(format!(
            "generator thread {k}: cannot start a glommio executor: {e} (raise ulimit -l?)"
        )),
    };
    if let Err(e) = &r {
        sh.fail(e.clone());
    }
    r
}

/// Waits for every generator thread; their results, failures noted in `sh`.
fn join_generators(sh: &Shared, handles: Vec<Generator>) -> Vec<ThreadOut> {
    let mut outs = Vec::with_capacity(handles.len());
    for h in handles {
        match h.join() {
            Ok(Ok(o)) => outs.push(o),
            Ok(Err(e)) => sh.fail(e),
            Err(_) => sh.fail("a generator thread panicked".into()),
        }
    }
    outs
}

/// The rt part of every thread, merged.
fn merge_rt(outs: &[ThreadOut]) -> RtOutcome {
    let mut rt = RtOutcome::default();
    for o in outs.iter().filter_map(|o| o.rt.as_ref()) {
        rt.rec.merge(&o.rec);
        rt.apart.merge(&o.apart);
        rt.issued += o.issued;
        rt.issued_apart += o.issued_apart;
        rt.lag_max = rt.lag_max.max(o.lag_max);
        rt.unfinished += o.unfinished;
    }
    rt
}

/// The bulk part of every thread, merged, with the shared counts and windows.
fn merge_bulk(sh: &Shared, bp: &BulkPlan, outs: &[ThreadOut]) -> BulkOutcome {
    let mut b = BulkOutcome::default();
    for rec in outs.iter().filter_map(|o| o.bulk.as_ref()) {
        b.rec.merge(rec);
    }
    b.accepted = sh.accepted.load(Relaxed);
    b.drained = sh.drained.load(Relaxed);
    let first = sh.first_send_ns.load(Relaxed);
    if first != u64::MAX {
        b.accept_window =
            Duration::from_nanos(sh.last_accept_ns.load(Relaxed).saturating_sub(first));
        b.drain_window = Duration::from_nanos(sh.last_drain_ns.load(Relaxed).saturating_sub(first));
    }
    b.drain_complete = bp.drain && b.drained >= b.accepted;
    b
}

/// The main thread's part: wait for setup, print progress, decide the end.
fn supervise(
    sh: &Shared,
    plan: &Plan,
    target: &GonetsTarget,
    progress: &mut dyn FnMut(&str),
) -> Result<(HubCost, Duration), String> {
    wait_for_setup(sh)?;
    let cpu = CpuWindow::start_with(target.server_pid, target.operator);
    let started = Instant::now();
    let hard_end = plan_deadline(plan, started);
    let senders = plan.bulk.as_ref().map_or(0, |b| b.params.senders);
    let mut senders_done_at: Option<Instant> = None;
    let mut next_line = started + Duration::from_secs(1);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if sh.failed.load(Relaxed) {
            return Err("a generator thread failed".into());
        }
        let rt_over = plan.rt.is_none() || sh.rt_done.load(Relaxed) >= sh.rt_threads.len();
        if let Some(b) = &plan.bulk {
            if b.until_rt_done && rt_over {
                sh.bulk_stop.store(true, Relaxed);
            }
        }
        let sending_over = sh.senders_done.load(Relaxed) >= senders;
        if sending_over && senders_done_at.is_none() {
            senders_done_at = Some(now);
        }
        let drain_over = drain_over(sh, plan, sending_over, senders_done_at, now);
        if now >= next_line {
            next_line += Duration::from_secs(1);
            progress(&progress_line(sh, plan, now.duration_since(started)));
        }
        if (rt_over && drain_over) || now > hard_end {
            let ops = sh.ok.load(Relaxed);
            let hub = cpu.map(|c| c.finish(ops)).unwrap_or_default();
            return Ok((hub, now.duration_since(started)));
        }
    }
}

/// Waits, at most [`SETUP_WAIT`], until every generator thread is ready.
fn wait_for_setup(sh: &Shared) -> Result<(), String> {
    let setup_until = Instant::now() + SETUP_WAIT;
    while sh.ready.load(Relaxed) < sh.threads {
        if sh.failed.load(Relaxed) {
            return Err("setup failed".into());
        }
        if Instant::now() > setup_until {
            return Err(format!(
                "the generator threads were not ready within {SETUP_WAIT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// When the plan is over whatever is still in flight: the schedule, then
/// the drain, then a margin, after `started`.
fn plan_deadline(plan: &Plan, started: Instant) -> Instant {
    let rt_span = plan
        .rt
        .as_ref()
        .map(|r| r.warmup + r.duration + RT_DRAIN_WAIT);
    let bulk_span = plan.bulk.as_ref().map(|b| b.params.drain_timeout);
    started + rt_span.unwrap_or_default() + bulk_span.unwrap_or_default() + Duration::from_secs(60)
}

/// Whether the bulk part is over: sent, and (if it drains) drained or out
/// of drain time since the senders finished.
fn drain_over(
    sh: &Shared,
    plan: &Plan,
    sending_over: bool,
    senders_done_at: Option<Instant>,
    now: Instant,
) -> bool {
    match &plan.bulk {
        None => true,
        Some(b) if !b.drain => sending_over,
        Some(b) => {
            sending_over
                && (sh.drained.load(Relaxed) >= sh.accepted.load(Relaxed)
                    || senders_done_at.is_some_and(|t| now > t + b.params.drain_timeout))
        }
    }
}

/// The progress line, `elapsed` into the plan. It takes (and resets) the
/// slowest rt call since the last line.
fn progress_line(sh: &Shared, plan: &Plan, elapsed: Duration) -> String {
    let p99 = sh.p99_us.iter().map(|a| a.load(Relaxed)).max().unwrap_or(0);
    let mut line = format!(
        "[{} {:>5.1}s] issued {} ok {} in flight {} errors {}",
        plan.label,
        elapsed.as_secs_f64(),
        sh.issued.load(Relaxed),
        sh.ok.load(Relaxed),
        sh.in_flight.load(Relaxed),
        sh.errors.load(Relaxed),
    );
    if plan.rt.is_some() {
        let max_us = sh.rt_max_since_line_us.swap(0, Relaxed);
        line += &format!(
            " | rt p99 so far {:.2} ms (worst core), slowest since the last line {:.2} ms",
            p99 as f64 / 1e3,
            max_us as f64 / 1e3
        );
    }
    if plan.bulk.is_some() {
        line += &format!(
            " | bulk accepted {} drained {}",
            sh.accepted.load(Relaxed),
            sh.drained.load(Relaxed)
        );
    }
    line
}

/// One generator thread: connect, subscribe, wait for the others, run.
async fn thread_main(
    k: usize,
    sh: Arc<Shared>,
    plan: Plan,
    target: GonetsTarget,
) -> Result<ThreadOut, String> {
    let mut providers = Vec::new();
    let rt = plan.rt.as_ref().zip(sh.rt_slot(k));
    let bulk = plan.bulk.as_ref().zip(sh.bulk_slot(k));
    // Providers first: nothing may be called before it is served.
    let rt_conns = match rt {
        Some((rt, slot)) => connect_rt(slot, rt, &target, &mut providers).await?,
        None => Vec::new(),
    };
    let bulk_senders = match bulk {
        Some((b, slot)) => connect_bulk(slot, &sh, b, &target, &mut providers).await?,
        None => Vec::new(),
    };
    wait_for_the_others(k, &sh).await?;
    let rt_part = async {
        match rt {
            Some((rt, slot)) => {
                let r = rt_calls(k, slot, &sh, rt, &rt_conns, plan.split.clone()).await;
                sh.rt_done.fetch_add(1, Relaxed);
                Some(r)
            }
            None => None,
        }
    };
    let bulk_part = async {
        match bulk {
            Some((b, _)) => Some(bulk_send(&sh, b, &bulk_senders).await),
            None => None,
        }
    };
    let (rt, bulk) = futures_lite::future::zip(rt_part, bulk_part).await;
    // Providers keep serving until the whole plan is over.
    while !sh.stop.load(Relaxed) {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    // Close every connection before the executor goes: its detached tasks
    // would otherwise keep the sockets (and the subscriptions on the hub)
    // open for the life of the process.
    let senders = bulk_senders.iter().map(|(c, _)| c);
    for c in providers.iter().chain(&rt_conns).chain(senders) {
        c.disconnect();
    }
    Ok(ThreadOut { rt, bulk })
}

/// An rt thread's share of the rt participants: its realtime providers
/// (serving, added to `providers`), then its consumer connections (at
/// least one per thread), which it returns.
async fn connect_rt(
    slot: Slot,
    rt: &RtParams,
    target: &GonetsTarget,
    providers: &mut Vec<Conn>,
) -> Result<Vec<Conn>, String> {
    let (k, n) = (slot.index, slot.count);
    for p in (0..rt.providers).filter(|p| p % n == k) {
        let conn = Conn::connect(target, &registry::provider(p)).await?;
        providers.push(conn.clone());
        let answer = Bytes::from(vec![b'a'; rt.answer_bytes]);
        serve(conn, registry::rt_kind(p), Settle::Answer(answer)).await?;
    }
    let mine: Vec<usize> = (0..rt.consumers).filter(|c| c % n == k).collect();
    let mine = if mine.is_empty() {
        vec![k % rt.consumers]
    } else {
        mine
    };
    let mut conns = Vec::new();
    for c in mine {
        for _ in 0..target.connections.max(1) {
            conns.push(Conn::connect(target, &registry::consumer(c)).await?);
        }
    }
    Ok(conns)
}

/// A bulk thread's share of the bulk participants: its draining providers
/// (added to `providers`) if the plan drains, then its senders, returned.
async fn connect_bulk(
    slot: Slot,
    sh: &Arc<Shared>,
    b: &BulkPlan,
    target: &GonetsTarget,
    providers: &mut Vec<Conn>,
) -> Result<Vec<(Conn, String)>, String> {
    let (k, n) = (slot.index, slot.count);
    if b.drain {
        for p in (0..b.params.providers).filter(|p| p % n == k) {
            let conn = Conn::connect(target, &registry::provider(p)).await?;
            providers.push(conn.clone());
            if b.params.batch > 1 {
                drain_batched(conn, registry::bulk_kind(p), sh.clone(), &b.params);
            } else {
                serve(conn, registry::bulk_kind(p), Settle::Ack(sh.clone())).await?;
            }
        }
    }
    let mut senders = Vec::new();
    for s in (0..b.params.senders).filter(|s| s % n == k) {
        let who = registry::consumer(s % b.consumers);
        senders.push((Conn::connect(target, &who).await?, who));
    }
    Ok(senders)
}

/// Marks thread `k` ready and waits, at most [`SETUP_WAIT`], for the others.
async fn wait_for_the_others(k: usize, sh: &Shared) -> Result<(), String> {
    sh.ready.fetch_add(1, Relaxed);
    let until = Instant::now() + SETUP_WAIT;
    while sh.ready.load(Relaxed) < sh.threads {
        if sh.failed.load(Relaxed) || Instant::now() > until {
            return Err(format!(
                "generator thread {k}: the others did not get ready"
            ));
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// How a provider settles what it is given.
#[derive(Clone)]
enum Settle {
    /// Answer each request with this payload (rt).
    Answer(Bytes),
    /// Ack each request, counting the drain (bulk).
    Ack(Arc<Shared>),
}

/// Subscribes `conn` to `kind`'s request queue and settles every delivery
/// in a detached task, at most [`SETTLE_IN_FLIGHT_MAX`] at a time.
async fn serve(conn: Conn, kind: String, settle: Settle) -> Result<(), String> {
    let queue = QueueId::Requests(DataKindId::new(&kind));
    let mut sub = conn
        .for_queue(&queue)
        .subscribe(&queue, CREDITS)
        .await
        .map_err(|e| format!("cannot subscribe to {kind}: {e}"))?;
    let permits = Rc::new(glommio::sync::Semaphore::new(SETTLE_IN_FLIGHT_MAX));
    glommio::spawn_local(async move {
        let mut taken = 0;
        while let Ok(m) = sub.recv().await {
            let Ok(permit) = permits.acquire_static_permit(1).await else {
                return;
            };
            let (conn, settle) = (conn.clone(), settle.clone());
            glommio::spawn_local(async move {
                let _permit = permit;
                match settle {
                    Settle::Answer(body) => {
                        if let Ok(c) = conn.for_message(m.id) {
                            let _ = c.send_response(m.id, body).await;
                        }
                    }
                    Settle::Ack(sh) => {
                        if conn.for_queue(&m.queue).ack(&m).await.is_ok() {
                            sh.drained.fetch_add(1, Relaxed);
                            sh.last_drain_ns.fetch_max(sh.now_ns(), Relaxed);
                        }
                    }
                }
            })
            .detach();
            taken += 1;
            if taken >= CREDITS / 2 {
                if sub.add_credits(taken).await.is_err() {
                    return;
                }
                taken = 0;
            }
        }
    })
    .detach();
    Ok(())
}

/// Longest wait of a draining provider's fetch.
const FETCH_WAIT: Duration = Duration::from_millis(100);

/// Drains `kind`'s request queue with [`BulkParams::fetch_lanes`] detached
/// loops that fetch up to a batch and ack it with one `ack_many` (one's
/// round trips overlap another's), until the plan stops or the connection goes.
fn drain_batched(conn: Conn, kind: String, sh: Arc<Shared>, params: &BulkParams) {
    let queue = QueueId::Requests(DataKindId::new(&kind));
    let batch = params.batch;
    for _ in 0..params.fetch_lanes() {
        let (conn, queue, sh) = (conn.clone(), queue.clone(), sh.clone());
        glommio::spawn_local(async move {
            // Bounded by the plan's stop or the connection's end.
            while !sh.stop.load(Relaxed) {
                let client = conn.for_queue(&queue);
                let Ok(ms) = client.fetch(&queue, batch as u32, FETCH_WAIT).await else {
                    return;
                };
                if ms.is_empty() {
                    continue;
                }
                let Ok(refused) = client.ack_many(&ms).await else {
                    return;
                };
                let acked = ms.len() - refused.len();
                sh.drained.fetch_add(acked as u64, Relaxed);
                sh.last_drain_ns.fetch_max(sh.now_ns(), Relaxed);
            }
        })
        .detach();
    }
}

/// This thread's share of the realtime calls, open loop; returns its
/// recorders, calls issued in the measured window, lag and unfinished
/// calls. With `split`, a call issued while it reads false is recorded
/// apart.
async fn rt_calls(
    k: usize,
    slot: Slot,
    sh: &Arc<Shared>,
    rt: &RtParams,
    conns: &[Conn],
    split: Option<Arc<AtomicBool>>,
) -> RtThreadOut {
    assert!(
        !conns.is_empty(),
        "every rt thread has a consumer connection"
    );
    let share = rt.rate_per_s / slot.count as f64;
    let mut pacer = Pacer::new(OpenLoop::new(share, rt.warmup, rt.duration));
    let kinds: Vec<String> = (0..rt.providers).map(registry::rt_kind).collect();
    let queues: Vec<QueueId> = kinds
        .iter()
        .map(|k| QueueId::Requests(DataKindId::new(k)))
        .collect();
    let payload = Bytes::from(vec![b'r'; rt.request_bytes]);
    let book = CallBook {
        sh: sh.clone(),
        rec: Rc::new(RefCell::new(Recorder::new())),
        apart: Rc::new(RefCell::new(Recorder::new())),
        outstanding: Rc::new(Cell::new(0u64)),
        start: Instant::now(),
        // Payload moved by one call: request and answer, as the NATS driver counts.
        answer_bytes: (rt.request_bytes + rt.answer_bytes) as u64,
    };
    // `--via http`: calls go through the gateway as this thread's consumer.
    let http = sh.gateway.as_ref().map(|g| {
        let who = registry::consumer(slot.index % rt.consumers);
        Rc::new(g.caller(&who))
    });
    let (mut issued_measured, mut issued_apart) = (0, 0);
    let mut next_p99 = Duration::from_secs(1);
    while !pacer.finished() {
        let elapsed = book.start.elapsed();
        for i in pacer.due(elapsed) {
            let measured = pacer.schedule().is_measured(i);
            let recorded = match &split {
                Some(on) if !on.load(Relaxed) => Recorded::Apart,
                _ => Recorded::Main,
            };
            issued_measured += u64::from(measured && recorded == Recorded::Main);
            issued_apart += u64::from(measured && recorded == Recorded::Apart);
            let measured = measured.then_some(recorded);
            sh.issued.fetch_add(1, Relaxed);
            if book.outstanding.get() >= rt.outstanding_max {
                if let Some(r) = measured {
                    book.recorder(r).borrow_mut().not_sent();
                }
                continue;
            }
            let p = (i as usize) % kinds.len();
            let due = pacer.schedule().due_at(i);
            if let Some(http) = &http {
                let (http, kind, payload) = (http.clone(), kinds[p].clone(), payload.clone());
                book.spawn(
                    async move { http.call(&kind, &payload).await },
                    due,
                    measured,
                );
                continue;
            }
            let client = conns[(i as usize / kinds.len()) % conns.len()]
                .for_queue(&queues[p])
                .clone();
            let request = NewRequest::new(&kinds[p], payload.clone());
            let call = async move {
                client
                    .call(request)
                    .await
                    .map(drop)
                    .map_err(|e| error_name(&e))
            };
            book.spawn(call, due, measured);
        }
        if elapsed >= next_p99 {
            next_p99 += Duration::from_secs(1);
            let p99 = book.rec.borrow().latency_us().value_at_quantile(0.99);
            sh.p99_us[k].store(p99, Relaxed);
        }
        glommio::timer::sleep(TICK).await;
    }
    let until = Instant::now() + RT_DRAIN_WAIT;
    while book.outstanding.get() > 0 && Instant::now() < until {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    let rec = book.rec.borrow().clone();
    let apart = book.apart.borrow().clone();
    RtThreadOut {
        rec,
        apart,
        issued: issued_measured,
        issued_apart,
        lag_max: pacer.lag_max(),
        unfinished: book.outstanding.get(),
    }
}

/// Which recorder a measured call goes to ([`Plan::split`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recorded {
    Main,
    Apart,
}

/// What one thread's rt calls report into: its recorder, its calls in
/// flight, the shared counters, and the instant schedule times count from.
struct CallBook {
    sh: Arc<Shared>,
    rec: Rc<RefCell<Recorder>>,
    /// Calls issued while [`Plan::split`] read false.
    apart: Rc<RefCell<Recorder>>,
    outstanding: Rc<Cell<u64>>,
    start: Instant,
    /// Payload bytes one answered call moved.
    answer_bytes: u64,
}

impl CallBook {
    /// The recorder `r` names.
    fn recorder(&self, r: Recorded) -> &Rc<RefCell<Recorder>> {
        match r {
            Recorded::Main => &self.rec,
            Recorded::Apart => &self.apart,
        }
    }

    /// Runs one call in a detached task; its latency counts from `due`
    /// (open loop), and is recorded only if it is `measured`, in the
    /// recorder it names (an error by its name).
    fn spawn(
        &self,
        call: impl std::future::Future<Output = Result<(), String>> + 'static,
        due: Duration,
        measured: Option<Recorded>,
    ) {
        let measured_in = measured.map(|r| self.recorder(r).clone());
        let measured = measured_in.is_some();
        let rec = measured_in.unwrap_or_else(|| self.rec.clone());
        let outstanding = self.outstanding.clone();
        let (start, answer_bytes) = (self.start, self.answer_bytes);
        outstanding.set(outstanding.get() + 1);
        self.sh.in_flight.fetch_add(1, Relaxed);
        let sh = self.sh.clone();
        glommio::spawn_local(async move {
            let r = call.await;
            let done = start.elapsed();
            outstanding.set(outstanding.get() - 1);
            sh.in_flight.fetch_sub(1, Relaxed);
            match r {
                Ok(_) => {
                    sh.ok.fetch_add(1, Relaxed);
                    if measured {
                        let latency = done.saturating_sub(due);
                        let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                        sh.rt_max_since_line_us.fetch_max(latency_us, Relaxed);
                        rec.borrow_mut().ok(latency, answer_bytes);
                    }
                }
                Err(e) => {
                    sh.errors.fetch_add(1, Relaxed);
                    if measured {
                        rec.borrow_mut().error(&e);
                    }
                }
            }
        })
        .detach();
    }
}

/// One of a bulk sender's `window` lanes: one operation in flight (a
/// request, or a batch of `batch` with `send_requests`).
struct Lane {
    sh: Arc<Shared>,
    /// `--via http`: the lane sends through the gateway (one connection).
    http: Option<Rc<HttpCaller>>,
    /// The payloads' base64, for the gateway's JSON batches.
    payloads_base64: Rc<[String]>,
    conn: Conn,
    rec: Rc<RefCell<Recorder>>,
    /// Payloads of one size, request number `i` sending `i mod len`.
    payloads: Rc<[Bytes]>,
    kinds: Vec<String>,
    queues: Vec<QueueId>,
    limit: u64,
    batch: u64,
}

impl Lane {
    /// Sends until the plan's count is sent or the bulk part stops.
    async fn run(self) {
        let sh = &self.sh;
        // Bounded by `limit` or by bulk_stop.
        loop {
            if sh.bulk_stop.load(Relaxed) || sh.stop.load(Relaxed) {
                return;
            }
            let idx = sh.bulk_next.fetch_add(self.batch, Relaxed);
            if idx >= self.limit {
                return;
            }
            let n = (self.limit - idx).min(self.batch);
            // A batch is of one kind: batches go round the kinds.
            let p = ((idx / self.batch) as usize) % self.kinds.len();
            let sent = Instant::now();
            sh.first_send_ns.fetch_min(sh.now_ns(), Relaxed);
            sh.issued.fetch_add(n, Relaxed);
            sh.in_flight.fetch_add(n as i64, Relaxed);
            let client = self.conn.for_queue(&self.queues[p]);
            let request = |j: u64| NewRequest::new(&self.kinds[p], self.payload(idx + j));
            // Each request's outcome, errors by name.
            let results: Vec<Result<(), String>> = if let Some(http) = &self.http {
                self.send_http(http, &self.kinds[p], idx, n).await
            } else if self.batch == 1 {
                let r = client.send_request(request(0)).await;
                vec![r.map(|_| ()).map_err(|e| error_name(&e))]
            } else {
                match client.send_requests((0..n).map(request).collect()).await {
                    Ok(rs) => rs
                        .into_iter()
                        .map(|r| r.map(|_| ()).map_err(|e| error_name(&ClientError::Hub(e))))
                        .collect(),
                    Err(e) => vec![Err(error_name(&e)); n as usize],
                }
            };
            sh.in_flight.fetch_sub(n as i64, Relaxed);
            for r in results {
                self.count(r, sent);
            }
        }
    }

    /// Sends requests `idx..idx + n` through the gateway: one
    /// `send_request` (the body is the payload) or one `send_requests`
    /// (JSON, payloads in base64); each request's outcome.
    async fn send_http(
        &self,
        http: &HttpCaller,
        kind: &str,
        idx: u64,
        n: u64,
    ) -> Vec<Result<(), String>> {
        if self.batch == 1 {
            let path = format!("/v1/kinds/{kind}/requests");
            return vec![http.post(&path, &self.payload(idx), 202).await.map(drop)];
        }
        let len = self.payloads_base64.len() as u64;
        let mut body = String::from("{\"requests\":[");
        for j in 0..n {
            let b64 = &self.payloads_base64[((idx + j) % len) as usize];
            body.push_str(if j == 0 {
                "{\"payload_base64\":\""
            } else {
                ",{\"payload_base64\":\""
            });
            body.push_str(b64);
            body.push_str("\"}");
        }
        body.push_str("]}");
        let path = format!("/v1/kinds/{kind}/requests/batch");
        match http.post(&path, body.as_bytes(), 200).await {
            Ok(reply) => http_call::batch_results(&reply, n as usize),
            Err(e) => vec![Err(e); n as usize],
        }
    }

    /// The payload of request number `i`.
    fn payload(&self, i: u64) -> Bytes {
        self.payloads[(i % self.payloads.len() as u64) as usize].clone()
    }

    /// Counts one request's outcome.
    fn count(&self, r: Result<(), String>, sent: Instant) {
        let sh = &self.sh;
        match r {
            Ok(()) => {
                sh.ok.fetch_add(1, Relaxed);
                sh.accepted.fetch_add(1, Relaxed);
                sh.last_accept_ns.fetch_max(sh.now_ns(), Relaxed);
                let bytes = self.payloads[0].len() as u64;
                self.rec.borrow_mut().ok(sent.elapsed(), bytes);
            }
            Err(e) => {
                sh.errors.fetch_add(1, Relaxed);
                self.rec.borrow_mut().error(&e);
            }
        }
    }
}

/// This thread's bulk senders, `window` requests in flight each, until
/// the plan's count is sent or the rt part is over.
async fn bulk_send(sh: &Arc<Shared>, b: &BulkPlan, senders: &[(Conn, String)]) -> Recorder {
    let rec = Rc::new(RefCell::new(Recorder::new()));
    // Checked before the run started (`workloads::bulk`).
    let payloads: Rc<[Bytes]> = b
        .params
        .format
        .payloads(b.params.message_bytes)
        .unwrap_or_else(|e| panic!("bulk payloads: {e}"))
        .into();
    let kinds: Vec<String> = (0..b.params.providers).map(registry::bulk_kind).collect();
    let queues: Vec<QueueId> = kinds
        .iter()
        .map(|k| QueueId::Requests(DataKindId::new(k)))
        .collect();
    let limit = if b.until_rt_done {
        u64::MAX
    } else {
        b.params.messages
    };
    // `--via http`: each payload's base64, once (batches are JSON).
    let payloads_base64: Rc<[String]> = payloads.iter().map(|p| http_call::base64(p)).collect();
    let mut lanes = Vec::new();
    for (conn, who) in senders {
        let mut sender_lanes = Vec::new();
        for _ in 0..b.params.window {
            let http = sh.gateway.as_ref().map(|g| Rc::new(g.caller(who)));
            let lane = Lane {
                sh: sh.clone(),
                http,
                payloads_base64: payloads_base64.clone(),
                conn: conn.clone(),
                rec: rec.clone(),
                payloads: payloads.clone(),
                kinds: kinds.clone(),
                queues: queues.clone(),
                limit,
                batch: b.params.batch as u64,
            };
            sender_lanes.push(glommio::spawn_local(lane.run()));
        }
        lanes.push(sender_lanes);
    }
    for sender_lanes in lanes {
        for lane in sender_lanes {
            lane.await;
        }
        sh.senders_done.fetch_add(1, Relaxed);
    }
    let out = rec.borrow().clone();
    out
}
