//! gonets-loadgen: load against a running hub over the network.
//!
//! Built so far (the load-generator issue's first step): the `rt` workload
//! of DESIGN.md §4 against `--target`, open loop on one glommio core. A
//! consumer (MFC) calls the realtime passport kind at a fixed rate while a
//! provider (MVD) answers through a subscription; latency runs from each
//! call's scheduled start to its durable answer (no coordinated omission).
//! If the generator falls behind its own schedule by more than
//! `--lag-max-ms`, the run is marked invalid. A progress line once a
//! second, a summary, and a JSON result. Not built yet: the other workloads,
//! `--embedded`, scenario files, several cores, `--find-max`, the NATS
//! driver and plots.

use clap::Parser;
use gonets_core::client::{Client, ClientConfig, ClientError, ClientSecurity};
use gonets_core::{tls, DataKindId, NewRequest, QueueId};
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The realtime data kind the `rt` workload calls.
const RT_KIND: &str = "urn:gonets:mvd:passport-validity:1";
/// Calls in flight beyond which no new call starts (counted as not sent).
const OUTSTANDING_MAX: u64 = 50_000;
/// Provider subscription credits.
const CREDITS: u32 = 1024;
/// Latency histogram bound, µs.
const LATENCY_US_MAX: u64 = 120_000_000;
/// The budget: a call slower than this failed the realtime contract.
const BUDGET_US: u64 = 2_000_000;

#[derive(Parser)]
#[command(
    name = "gonets-loadgen",
    version,
    about = "gonets load generator (rt workload, open loop)"
)]
struct Args {
    /// The workload (only `rt` is built so far).
    #[arg(default_value = "rt")]
    workload: String,
    /// A running hub's address.
    #[arg(long, default_value = "127.0.0.1:7400")]
    target: SocketAddr,
    /// `tls` (development certificates under --certs) or `plain` (dev-token mode).
    #[arg(long, default_value = "tls")]
    security: String,
    /// Development certificates (made by `gonets serve` under its data dir).
    #[arg(long, default_value = "gonets-data/dev-certs")]
    certs: PathBuf,
    /// Calls per second.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Unmeasured seconds first.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Payload bytes per call.
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    /// Pin the generator to this core.
    #[arg(long)]
    core: Option<usize>,
    /// Largest lag behind the schedule before the run is marked invalid, ms.
    #[arg(long, default_value_t = 50)]
    lag_max_ms: u64,
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The hub's process id, to report its CPU per request (same machine only).
    #[arg(long)]
    server_pid: Option<u32>,
}

/// CPU seconds (user + system) of process `pid`, from /proc.
fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

fn security(args: &Args, who: &str) -> Result<ClientSecurity, String> {
    match args.security.as_str() {
        "plain" => Ok(ClientSecurity::DevToken {
            participant: who.into(),
            token: format!("dev-{}", who.to_lowercase()),
        }),
        "tls" => {
            let files = tls::DevCerts::layout(&args.certs, &[who])
                .client_files(who)
                .expect("the layout names the participant");
            Ok(ClientSecurity::Tls {
                config: tls::client_config(&files).map_err(|e| e.to_string())?,
                server_name: "localhost".into(),
            })
        }
        other => Err(format!("--security {other:?}: expected tls or plain")),
    }
}

/// What the run counted.
struct Tally {
    answered: Cell<u64>,
    outstanding: Cell<u64>,
    not_sent: Cell<u64>,
    errors: RefCell<BTreeMap<String, u64>>,
    latency_us: RefCell<Histogram<u64>>,
    lag_max_us: Cell<u64>,
}

fn error_name(e: &ClientError) -> String {
    match e {
        ClientError::Hub(h) => format!("{:?}", gonets_core::protocol::ErrorCode::of(h)),
        ClientError::Protocol { code, .. } => code.clone(),
        ClientError::Disconnected(_) => "Disconnected".into(),
        ClientError::Timeout(_) => "Timeout".into(),
        ClientError::Tls(_) => "Tls".into(),
        ClientError::BadReply(_) => "BadReply".into(),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.workload != "rt" {
        eprintln!(
            "gonets-loadgen: workload {:?} is not built yet (only rt; bulk, mixed, backlog and \
             recovery belong to the load-generator issue)",
            args.workload
        );
        return ExitCode::from(2);
    }
    if args.rate == 0 || args.duration == 0 {
        eprintln!("gonets-loadgen: --rate and --duration must be positive");
        return ExitCode::from(2);
    }
    let placement = match args.core {
        Some(c) => glommio::Placement::Fixed(c),
        None => glommio::Placement::Unbound,
    };
    let _nudged = gonets_core::runtime::nudge::nudge_this_thread();
    let executor = match glommio::LocalExecutorBuilder::new(placement)
        .preempt_timer(Duration::from_millis(1))
        .make()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("gonets-loadgen: cannot start a glommio executor: {e} (raise ulimit -l?)");
            return ExitCode::FAILURE;
        }
    };
    match executor.run(rt(args)) {
        Ok(valid) if valid => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(3),
        Err(e) => {
            eprintln!("gonets-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `rt`; Ok(valid).
async fn rt(args: Args) -> Result<bool, String> {
    let connect = |who: &'static str| {
        let config = security(&args, who).map(|s| ClientConfig::new(args.target, s));
        async move {
            Client::connect(config?)
                .await
                .map_err(|e| format!("{who} cannot connect to the hub: {e}"))
        }
    };
    let consumer = connect("MFC").await?;
    let provider = connect("MVD").await?;
    let queue = QueueId::Requests(DataKindId::new(RT_KIND));
    let mut sub = provider
        .subscribe(&queue, CREDITS)
        .await
        .map_err(|e| format!("MVD cannot subscribe: {e}"))?;
    let answering = glommio::spawn_local(async move {
        let mut taken = 0;
        while let Ok(request) = sub.recv().await {
            let p = provider.clone();
            glommio::spawn_local(async move {
                let _ = p.send_response(request.id, "VALID").await;
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
    });
    let t = Rc::new(Tally {
        answered: Cell::new(0),
        outstanding: Cell::new(0),
        not_sent: Cell::new(0),
        errors: RefCell::new(BTreeMap::new()),
        latency_us: RefCell::new(
            Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).map_err(|e| e.to_string())?,
        ),
        lag_max_us: Cell::new(0),
    });
    let payload = bytes::Bytes::from(vec![b'p'; args.payload_bytes]);
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.duration);
    let mut issued: u64 = 0;
    let mut measured_issued: u64 = 0;
    let mut next_progress = start + Duration::from_secs(1);
    let mut cpu_start = None;
    // Open loop: each tick starts every call whose scheduled time has come.
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if cpu_start.is_none() && now >= measure_from {
            cpu_start = Some(args.server_pid.and_then(process_cpu_s));
        }
        let due = (now.duration_since(start).as_secs_f64() * args.rate as f64) as u64;
        while issued < due {
            let scheduled = start + interval.mul_f64(issued as f64);
            issued += 1;
            let measured = scheduled >= measure_from;
            if measured {
                measured_issued += 1;
                let lag_us = now.saturating_duration_since(scheduled).as_micros() as u64;
                t.lag_max_us.set(t.lag_max_us.get().max(lag_us));
            }
            if t.outstanding.get() >= OUTSTANDING_MAX {
                t.not_sent.set(t.not_sent.get() + u64::from(measured));
                continue;
            }
            t.outstanding.set(t.outstanding.get() + 1);
            let (consumer, t, payload) = (consumer.clone(), t.clone(), payload.clone());
            glommio::spawn_local(async move {
                let r = consumer.call(NewRequest::new(RT_KIND, payload)).await;
                t.outstanding.set(t.outstanding.get() - 1);
                if !measured {
                    return;
                }
                match r {
                    Ok(_) => {
                        t.answered.set(t.answered.get() + 1);
                        let us = scheduled
                            .elapsed()
                            .as_micros()
                            .clamp(1, LATENCY_US_MAX.into())
                            as u64;
                        let _ = t.latency_us.borrow_mut().record(us);
                    }
                    Err(e) => *t.errors.borrow_mut().entry(error_name(&e)).or_insert(0) += 1,
                }
            })
            .detach();
        }
        if now >= next_progress {
            next_progress += Duration::from_secs(1);
            let h = t.latency_us.borrow();
            eprintln!(
                "[{:>5.1}s] issued {issued} answered {} in flight {} p99 so far {:.2} ms errors {}",
                now.duration_since(start).as_secs_f64(),
                t.answered.get(),
                t.outstanding.get(),
                h.value_at_quantile(0.99) as f64 / 1000.0,
                t.errors.borrow().values().sum::<u64>(),
            );
        }
        glommio::timer::sleep(Duration::from_micros(250)).await;
    }
    let cpu_end = args.server_pid.and_then(process_cpu_s);
    let server_cpu_us_per_request = match (cpu_start.flatten(), cpu_end) {
        (Some(a), Some(b)) if t.answered.get() > 0 => Some((b - a) * 1e6 / t.answered.get() as f64),
        _ => None,
    };
    let drain_until = Instant::now() + Duration::from_secs(5);
    while t.outstanding.get() > 0 && Instant::now() < drain_until {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    drop(answering);
    let unfinished = t.outstanding.get();
    let h = t.latency_us.borrow();
    let lag_ms = t.lag_max_us.get() as f64 / 1000.0;
    let valid = lag_ms <= args.lag_max_ms as f64 && t.not_sent.get() == 0;
    let over_budget = h.count_between(BUDGET_US, LATENCY_US_MAX);
    let q = |p: f64| h.value_at_quantile(p);
    let result = serde_json::json!({
        "workload": "rt",
        "target": args.target.to_string(),
        "security": args.security,
        "rate_offered": args.rate,
        "seconds": args.duration,
        "issued": measured_issued,
        "answered": t.answered.get(),
        "achieved_per_s": t.answered.get() as f64 / args.duration as f64,
        "errors": *t.errors.borrow(),
        "not_sent": t.not_sent.get(),
        "unfinished": unfinished,
        "p50_us": q(0.5), "p90_us": q(0.9), "p99_us": q(0.99), "p999_us": q(0.999),
        "p9999_us": q(0.9999), "max_us": h.max(),
        "over_2s": over_budget,
        "generator_lag_max_ms": lag_ms,
        "server_cpu_per_request_us": server_cpu_us_per_request,
        "valid": valid,
    });
    println!(
        "rt {} at {}/s for {} s: answered {} of {} | p50 {:.2} ms p90 {:.2} p99 {:.2} p99.9 {:.2} \
         p99.99 {:.2} max {:.2} | over 2 s: {over_budget} | errors {:?} | server CPU {} us/request | generator lag max {lag_ms:.1} ms{}",
        args.security,
        args.rate,
        args.duration,
        t.answered.get(),
        measured_issued,
        q(0.5) as f64 / 1000.0,
        q(0.9) as f64 / 1000.0,
        q(0.99) as f64 / 1000.0,
        q(0.999) as f64 / 1000.0,
        q(0.9999) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
        t.errors.borrow(),
        server_cpu_us_per_request.map_or("?".into(), |v| format!("{v:.1}")),
        if valid { "" } else { " — INVALID: the generator fell behind its schedule (or could not send); figures not trustworthy" },
    );
    if let Some(path) = &args.json {
        let text = serde_json::to_vec_pretty(&result).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(valid)
}
