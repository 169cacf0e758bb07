//! `gonets demo`: a hub on loopback with mutual TLS, three demo agencies as
//! network clients (MFC asks, MVD answers in real time, FNS answers
//! asynchronously), a realtime phase then a bulk phase, and a report.

mod trust;

use gonets_client::glommio::Client;
use gonets_client::{ClientConfig, ClientSecurity, Message};
use gonets_engine::{Hub, HubConfig};
use gonets_server::config_file::ensure_dev_certs;
use gonets_server::tls;
use gonets_server::{checks, start_front_ends, Security, ServerSettings};
use gonets_storage::durable_file;
use gonets_types::AnswerBody;
use gonets_types::DeliveryBody;
use gonets_types::{DataKindId, NewRequest, ParticipantId, QueueId, RefusalCode};
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

type Failure = Box<dyn std::error::Error>;
/// The agencies' report and the first bulk request's receipt, or why they failed.
type Outcome = Result<(String, Option<gonets_types::Receipt>), String>;

const REALTIME_KIND: &str = "urn:gonets:mvd:passport-validity:1";
const ASYNC_KIND: &str = "urn:gonets:fns:egrul-extract:1";
/// Concurrent realtime callers of the consumer.
const CALLERS: usize = 16;
/// Bulk requests in flight from the consumer.
const BULK_WINDOW: usize = 256;
/// Bulk request payload, bytes.
const BULK_PAYLOAD_BYTES: usize = 1024;
/// Every n-th bulk request is refused NO_DATA by the provider.
const REFUSE_EVERY: u64 = 20;
/// Where the demo keeps its hub's data by default (replaced on every run).
const DEMO_DIR_DEFAULT: &str = "gonets-demo";
/// The file that marks a directory as the demo's own, safe to replace.
const DEMO_MARKER: &str = ".gonets-demo";

/// Empties `dir` for a new run if it is a previous demo's (marked), refuses
/// to touch it otherwise, and marks it.
fn prepare_demo_dir(dir: &std::path::Path) -> Result<(), Failure> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty && !dir.join(DEMO_MARKER).exists() {
            return Err(format!(
                "{} exists and is not a previous demo's data directory; pass --data-dir with a new or empty directory",
                dir.display()
            )
            .into());
        }
        std::fs::remove_dir_all(dir)?;
    }
    // Durable, so that a power loss does not leave a demo directory the
    // next run refuses to replace for want of its marker.
    durable_file::create_dir_all(dir)?;
    durable_file::write(
        &dir.join(DEMO_MARKER),
        b"made by gonets demo; replaced by its next run\n",
        0o644,
    )?;
    Ok(())
}

/// Time the bulk phase waits for the last answers after sending stops.
const DRAIN_GRACE: Duration = Duration::from_secs(15);

/// What the agencies counted.
struct Tally {
    started: Instant,
    calls_ok: Cell<u64>,
    calls_failed: Cell<u64>,
    call_latency_us: RefCell<Histogram<u64>>,
    sent: Cell<u64>,
    send_failed: Cell<u64>,
    accept_latency_us: RefCell<Histogram<u64>>,
    answers_data: Cell<u64>,
    answers_refused: Cell<u64>,
    provider_errors: Cell<u64>,
    first_bulk_id: Cell<Option<gonets_types::MessageId>>,
    /// The hub's signed receipt of the first bulk request.
    first_receipt: RefCell<Option<gonets_types::Receipt>>,
    payload_bytes: Cell<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

fn bump(c: &Cell<u64>, by: u64) {
    c.set(c.get() + by);
}

fn record(h: &RefCell<Histogram<u64>>, since: Instant) {
    let us = since.elapsed().as_micros().clamp(1, 60_000_000) as u64;
    let _ = h.borrow_mut().record(us);
}

fn fmt_ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// What `gonets demo` runs with.
pub(crate) struct DemoArgs {
    /// Seconds of traffic.
    pub(crate) seconds: u64,
    /// The data directory (default: [`DEMO_DIR_DEFAULT`]).
    pub(crate) data_dir: Option<PathBuf>,
    /// Shards (default: one per core).
    pub(crate) shards: Option<u16>,
    /// History-index entries per shard before a run is written (default: the hub's).
    pub(crate) index_table_entries_max: Option<usize>,
}

pub(crate) fn run(args: DemoArgs) -> Result<(), Failure> {
    let DemoArgs {
        seconds,
        data_dir,
        shards,
        index_table_entries_max,
    } = args;
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    crate::serve::init_logs();
    crate::heap::keep_freed_memory_or_warn();
    let seconds = seconds.clamp(2, 600);
    let dir = demo_dir(data_dir)?;
    let mut config = hub_config(&dir, shards, index_table_entries_max);
    let hub_key = trust::hub_key(&dir)?;
    config.hub_key = Some(hub_key.clone());
    // Anchors every second, so the demo's short run has some to export.
    config.anchor_interval_ms = trust::ANCHOR_INTERVAL_MS;
    let certs = ensure_dev_certs(&dir.join("dev-certs"), &config.registry)?;
    println!(
        "gonets demo: {} shard(s), data in {}, mutual TLS with development certificates",
        config.shards,
        dir.display()
    );
    let hub = Hub::start(config)?;
    let listen = "127.0.0.1:0".parse().expect("address parses");
    let settings = ServerSettings::new(
        listen,
        Security::Tls(tls::server_config(&certs.server_files())?),
    );
    let front = match start_front_ends(&hub, settings) {
        Ok(f) => f,
        Err(e) => {
            let _ = hub.shutdown();
            return Err(e.into());
        }
    };
    println!(
        "hub listening on {}; agencies MFC (consumer), MVD (realtime provider), FNS (async provider) connect over TLS",
        front.addr
    );
    let outcome = run_agencies(front.addr, certs, seconds)?;
    // What an auditor would fetch from the operator API's /anchors.
    let anchors = hub.handle().anchors(0);
    let stopped = hub.shutdown();
    finish(&outcome, stopped, &dir)?;
    let Ok((_, receipt)) = &outcome else {
        unreachable!("finish returned an error for a failed outcome")
    };
    trust::report(&dir, &hub_key.public(), receipt.as_ref(), &anchors)
}

/// The demo's data directory, made absolute, emptied and checked (io_uring,
/// locked memory, writable).
fn demo_dir(data_dir: Option<PathBuf>) -> Result<PathBuf, Failure> {
    // Resolved once, here, against the working directory: everything after
    // (the hub, the certificates, the report) sees one absolute path.
    let dir = std::path::absolute(data_dir.unwrap_or_else(|| PathBuf::from(DEMO_DIR_DEFAULT)))?;
    prepare_demo_dir(&dir)?;
    checks::io_uring()?;
    checks::locked_memory(64 * 1024 * 1024)?;
    checks::data_dir_writable(&dir)?;
    Ok(dir)
}

/// The demo hub's settings: the defaults with the shards and index table
/// size asked for.
fn hub_config(
    dir: &std::path::Path,
    shards: Option<u16>,
    index_table_entries_max: Option<usize>,
) -> HubConfig {
    let mut config = HubConfig::new(dir);
    if let Some(n) = shards {
        config.shards = n;
    }
    if let Some(n) = index_table_entries_max {
        config.index_table_entries_max = n;
    }
    config
}

/// Runs the agencies on their own executor thread until they finish: their
/// report, or why they failed.
fn run_agencies(
    addr: std::net::SocketAddr,
    certs: tls::DevCerts,
    seconds: u64,
) -> Result<Outcome, Failure> {
    let agencies = std::thread::Builder::new()
        .name("demo-agencies".into())
        .spawn(move || -> Outcome {
            let executor = glommio::LocalExecutorBuilder::default()
                .name("demo-agencies")
                .make()
                .map_err(|e| format!("cannot start the agencies' executor: {e}"))?;
            executor.run(agencies(addr, certs, seconds))
        })?;
    Ok(agencies
        .join()
        .unwrap_or_else(|_| Err("the agencies' thread panicked".into())))
}

/// Prints the report once the agencies and the hub ended well; the demo's
/// failure otherwise.
fn finish(
    outcome: &Outcome,
    stopped: Result<(), gonets_types::error::HubError>,
    dir: &std::path::Path,
) -> Result<(), Failure> {
    match (outcome, stopped) {
        (Ok((report, _)), Ok(())) => {
            println!("{report}");
            let size_mb = dir_bytes(dir) as f64 / 1e6;
            println!(
                "data lives in {} ({size_mb:.0} MB: shard-N/ segment logs and snapshots, \
                 dev-certs/); the next demo run replaces it",
                dir.display()
            );
            Ok(())
        }
        (Err(e), _) => Err(format!("demo failed: {e}").into()),
        (Ok(_), Err(e)) => Err(format!("hub did not stop cleanly: {e}").into()),
    }
}

/// Bytes of the files under `dir` (bounded by the demo's few directories).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

async fn connect(
    addr: std::net::SocketAddr,
    certs: &tls::DevCerts,
    who: &str,
) -> Result<Client, String> {
    let files = certs
        .client_files(who)
        .ok_or_else(|| format!("no certificate for {who}"))?;
    let config = tls::client_config(&files).map_err(|e| e.to_string())?;
    let security = ClientSecurity::Tls {
        config,
        server_name: "localhost".into(),
    };
    Client::connect(ClientConfig::new(addr, security))
        .await
        .map_err(|e| format!("{who} cannot connect: {e}"))
}

async fn agencies(addr: std::net::SocketAddr, certs: tls::DevCerts, seconds: u64) -> Outcome {
    let mfc = connect(addr, &certs, "MFC").await?;
    let mvd = connect(addr, &certs, "MVD").await?;
    let fns = connect(addr, &certs, "FNS").await?;
    let tally = Rc::new(Tally::new());
    let stop = Rc::new(Cell::new(false));
    let realtime_for = Duration::from_millis(seconds * 400);
    let bulk_for = Duration::from_millis(seconds * 600);

    // Providers run for the whole demo.
    let mvd_task = glommio::spawn_local(realtime_provider(mvd, tally.clone(), stop.clone()));
    let fns_task = glommio::spawn_local(async_provider(fns, tally.clone(), stop.clone()));
    let progress = glommio::spawn_local(progress_line(tally.clone(), stop.clone()));

    let realtime_elapsed = realtime_phase(&mfc, &tally, realtime_for).await;
    let (send_elapsed, bulk_elapsed, collector) = bulk_phase(&mfc, &tally, bulk_for).await;
    stop.set(true);
    collector.cancel().await;
    progress.await;
    let _ = mvd_task.cancel().await;
    let _ = fns_task.cancel().await;
    eprintln!();

    let history = bulk_history(&mfc, &tally).await;
    let report = report(
        &tally,
        realtime_elapsed,
        send_elapsed,
        bulk_elapsed,
        &history,
    );
    let receipt = tally.first_receipt.borrow_mut().take();
    verdict(&tally, report).map(|r| (r, receipt))
}

impl Tally {
    fn new() -> Tally {
        Tally {
            started: Instant::now(),
            calls_ok: Cell::new(0),
            calls_failed: Cell::new(0),
            call_latency_us: RefCell::new(histogram()),
            sent: Cell::new(0),
            send_failed: Cell::new(0),
            accept_latency_us: RefCell::new(histogram()),
            answers_data: Cell::new(0),
            answers_refused: Cell::new(0),
            provider_errors: Cell::new(0),
            first_bulk_id: Cell::new(None),
            first_receipt: RefCell::new(None),
            payload_bytes: Cell::new(0),
        }
    }
}

/// The realtime phase: CALLERS callers for `realtime_for`; the time since
/// the demo started once they are all done.
async fn realtime_phase(mfc: &Client, tally: &Rc<Tally>, realtime_for: Duration) -> Duration {
    let until = Instant::now() + realtime_for;
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| glommio::spawn_local(caller(mfc.clone(), tally.clone(), until, i)))
        .collect();
    for c in callers {
        c.await;
    }
    tally.started.elapsed()
}

/// The bulk phase: sends for `bulk_for`, then waits (at most DRAIN_GRACE)
/// for every answer. The sending time, the whole phase's, and the answer
/// collector, still running.
async fn bulk_phase(
    mfc: &Client,
    tally: &Rc<Tally>,
    bulk_for: Duration,
) -> (Duration, Duration, glommio::Task<()>) {
    let bulk_started = Instant::now();
    let collector = glommio::spawn_local(answer_collector(mfc.clone(), tally.clone()));
    bulk_sender(mfc, tally, bulk_started + bulk_for).await;
    let send_elapsed = bulk_started.elapsed();
    let drain_until = Instant::now() + DRAIN_GRACE;
    while tally.answers_data.get() + tally.answers_refused.get() < tally.sent.get()
        && Instant::now() < drain_until
    {
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    (send_elapsed, bulk_started.elapsed(), collector)
}

/// One bulk request's history, read back as its consumer.
async fn bulk_history(mfc: &Client, tally: &Tally) -> String {
    match tally.first_bulk_id.get() {
        Some(id) => match mfc.status(id).await {
            Ok(s) => {
                let start = s.events.first().map_or(0, |e| e.time_ms);
                let steps: Vec<String> = s
                    .events
                    .iter()
                    .map(|e| format!("{} +{} ms", e.kind, e.time_ms.saturating_sub(start)))
                    .collect();
                format!("history of {id}: {}", steps.join(", "))
            }
            Err(e) => format!("history of {id}: unreadable: {e}"),
        },
        None => "no bulk request was sent".into(),
    }
}

/// The report if every request was answered and nothing failed; else an
/// error that carries it.
fn verdict(tally: &Tally, report: String) -> Result<String, String> {
    let unanswered = tally.sent.get() - tally.answers_data.get() - tally.answers_refused.get();
    if tally.calls_ok.get() == 0 || tally.sent.get() == 0 {
        return Err(format!("no traffic went through\n{report}"));
    }
    if unanswered > 0
        || tally.calls_failed.get() > 0
        || tally.send_failed.get() > 0
        || tally.provider_errors.get() > 0
    {
        return Err(format!(
            "{unanswered} requests unanswered, or operations failed\n{report}"
        ));
    }
    Ok(report)
}

fn report(t: &Tally, realtime: Duration, send: Duration, bulk: Duration, history: &str) -> String {
    let calls = t.call_latency_us.borrow();
    let accepts = t.accept_latency_us.borrow();
    let answered = t.answers_data.get() + t.answers_refused.get();
    let mut r = String::new();
    r.push_str("\n== gonets demo report ==\n");
    r.push_str(&format!(
        "realtime ({REALTIME_KIND}, {CALLERS} concurrent callers, {:.1} s):\n  calls answered {}  failed {}  throughput {:.0}/s\n  latency p50 {}  p99 {}  max {}\n",
        realtime.as_secs_f64(),
        t.calls_ok.get(),
        t.calls_failed.get(),
        t.calls_ok.get() as f64 / realtime.as_secs_f64().max(1e-9),
        fmt_ms(calls.value_at_quantile(0.5)),
        fmt_ms(calls.value_at_quantile(0.99)),
        fmt_ms(calls.max()),
    ));
    r.push_str(&format!(
        "bulk ({ASYNC_KIND}, {BULK_PAYLOAD_BYTES} B payloads, {BULK_WINDOW} in flight):\n  requests accepted {} in {:.1} s ({:.0}/s)  send failures {}\n  acceptance (durable) latency p50 {}  p99 {}  max {}\n  answers {} = {} data + {} refusals NO_DATA, all acked, in {:.1} s ({:.0}/s end to end)\n",
        t.sent.get(),
        send.as_secs_f64(),
        t.sent.get() as f64 / send.as_secs_f64().max(1e-9),
        t.send_failed.get(),
        fmt_ms(accepts.value_at_quantile(0.5)),
        fmt_ms(accepts.value_at_quantile(0.99)),
        fmt_ms(accepts.max()),
        answered,
        t.answers_data.get(),
        t.answers_refused.get(),
        bulk.as_secs_f64(),
        answered as f64 / bulk.as_secs_f64().max(1e-9),
    ));
    r.push_str(&format!(
        "provider errors {}; payload bytes moved {:.1} MB\n{history}\n",
        t.provider_errors.get(),
        t.payload_bytes.get() as f64 / 1e6
    ));
    r
}

async fn progress_line(t: Rc<Tally>, stop: Rc<Cell<bool>>) {
    use std::io::Write;
    while !stop.get() {
        glommio::timer::sleep(Duration::from_millis(500)).await;
        eprint!(
            "\r[{:>5.1}s] realtime calls {:>7}  bulk accepted {:>7}  answered {:>7}  ",
            t.started.elapsed().as_secs_f64(),
            t.calls_ok.get(),
            t.sent.get(),
            t.answers_data.get() + t.answers_refused.get()
        );
        let _ = std::io::stderr().flush();
    }
}

async fn caller(mfc: Client, t: Rc<Tally>, until: Instant, i: usize) {
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let payload = format!("passport 45{:02} {:06}", i, n);
        let started = Instant::now();
        match mfc.call(NewRequest::new(REALTIME_KIND, payload)).await {
            Ok(answer) => {
                record(&t.call_latency_us, started);
                bump(&t.calls_ok, 1);
                bump(&t.payload_bytes, answer.payload.len() as u64);
            }
            Err(e) => {
                bump(&t.calls_failed, 1);
                tracing::warn!("realtime call failed: {e}");
            }
        }
    }
}

async fn realtime_provider(mvd: Client, t: Rc<Tally>, stop: Rc<Cell<bool>>) {
    let queue = QueueId::Requests(DataKindId::new(REALTIME_KIND));
    let credits = 256;
    let mut sub = match mvd.subscribe(&queue, credits).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("MVD cannot subscribe: {e}");
            bump(&t.provider_errors, 1);
            return;
        }
    };
    let mut taken = 0u32;
    while !stop.get() {
        let request = match sub.recv().await {
            Ok(r) => r,
            Err(_) => return,
        };
        let mvd = mvd.clone();
        let t2 = t.clone();
        glommio::spawn_local(async move {
            if let Err(e) = mvd
                .send_response(request.id, "VALID: not in the lost-passport register")
                .await
            {
                tracing::warn!("MVD answer failed: {e}");
                bump(&t2.provider_errors, 1);
            }
        })
        .detach();
        taken += 1;
        if taken >= credits / 2 {
            if sub.add_credits(taken).await.is_err() {
                return;
            }
            taken = 0;
        }
    }
}

async fn async_provider(fns: Client, t: Rc<Tally>, stop: Rc<Cell<bool>>) {
    let queue = QueueId::Requests(DataKindId::new(ASYNC_KIND));
    let extract = vec![b'E'; 2048];
    let mut n = 0u64;
    while !stop.get() {
        let batch = match fns.fetch(&queue, 256, Duration::from_millis(100)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("FNS fetch failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut answers = Vec::with_capacity(batch.len());
        for request in batch {
            n += 1;
            let fns = fns.clone();
            let refuse = n.is_multiple_of(REFUSE_EVERY);
            let extract = extract.clone();
            answers.push(glommio::spawn_local(async move {
                if refuse {
                    fns.send_refusal(request.id, RefusalCode::NoData, "no such legal entity")
                        .await
                } else {
                    fns.send_response(request.id, extract).await
                }
            }));
        }
        for a in answers {
            if let Err(e) = a.await {
                tracing::warn!("FNS answer failed: {e}");
                bump(&t.provider_errors, 1);
            }
        }
    }
}

async fn bulk_sender(mfc: &Client, t: &Rc<Tally>, until: Instant) {
    let window = Rc::new(glommio::sync::Semaphore::new(BULK_WINDOW as u64));
    let payload = bytes::Bytes::from(vec![b'R'; BULK_PAYLOAD_BYTES]);
    let mut n = 0u64;
    while Instant::now() < until {
        let Ok(permit) = window.acquire_static_permit(1).await else {
            break;
        };
        n += 1;
        let (mfc, t, payload) = (mfc.clone(), t.clone(), payload.clone());
        glommio::spawn_local(async move {
            let mut request = NewRequest::new(ASYNC_KIND, payload);
            request.transaction = Some(format!("case-{}", n / 10));
            let started = Instant::now();
            match mfc.send_request(request).await {
                Ok(a) => {
                    record(&t.accept_latency_us, started);
                    bump(&t.sent, 1);
                    if t.first_bulk_id.get().is_none() {
                        t.first_bulk_id.set(Some(a.id));
                        if let Some(gonets_types::AcceptanceReceipt::One(r)) = a.receipt {
                            *t.first_receipt.borrow_mut() = Some(*r);
                        }
                    }
                }
                Err(e) => {
                    bump(&t.send_failed, 1);
                    tracing::warn!("bulk send failed: {e}");
                }
            }
            drop(permit);
        })
        .detach();
    }
    // Every send in flight finishes before the phase is measured.
    let _ = window.acquire(BULK_WINDOW as u64).await;
}

async fn answer_collector(mfc: Client, t: Rc<Tally>) {
    let queue = QueueId::Answers(ParticipantId::new("MFC"));
    loop {
        let batch = match mfc.fetch(&queue, 256, Duration::from_millis(100)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("MFC answer fetch failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acks: Vec<_> = batch
            .into_iter()
            .map(|answer| {
                count_answer(&t, &answer);
                let mfc = mfc.clone();
                glommio::spawn_local(async move { mfc.ack(&answer).await })
            })
            .collect();
        for a in acks {
            if let Err(e) = a.await {
                tracing::warn!("MFC ack failed: {e}");
            }
        }
    }
}

fn count_answer(t: &Tally, answer: &Message) {
    bump(&t.payload_bytes, answer.payload.len() as u64);
    match &answer.body {
        DeliveryBody::Answer(AnswerBody::Data) => bump(&t.answers_data, 1),
        DeliveryBody::Answer(AnswerBody::Refusal { .. }) => bump(&t.answers_refused, 1),
        DeliveryBody::Request => {}
    }
}
