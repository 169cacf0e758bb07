//! End-to-end rt benchmark over the network: a consumer (MFC) calls the
//! realtime data kind at a fixed open-loop rate while a provider (MVD)
//! answers, both as real clients of a running `gonets serve`, over mutual
//! TLS or plain loopback (dev-token mode). Latency is measured from each
//! call's intended start (no coordinated omission); the server's CPU per
//! request comes from /proc/PID/stat of the server process.
//!
//!   net-rt --addr 127.0.0.1:7400 --security tls --certs DIR --rate 5000 \
//!          --seconds 10 --warmup 2 --server-pid PID [--core 0] [--json FILE]

use clap::Parser;
use gonets_core::client::{Client, ClientConfig, ClientSecurity};
use gonets_core::{tls, DataKindId, NewRequest, QueueId};
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

const KIND: &str = "urn:gonets:mvd:passport-validity:1";
/// Calls in flight beyond which the generator stops starting new ones (and counts them as not sent).
const OUTSTANDING_MAX: u64 = 20_000;
/// Provider subscription credits.
const CREDITS: u32 = 1024;

#[derive(Parser)]
#[command(about = "gonets end-to-end rt benchmark (open loop) against a running server")]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:7400")]
    addr: SocketAddr,
    /// tls or plain (the server's security must match).
    #[arg(long, default_value = "tls")]
    security: String,
    /// Development certificates directory (tls).
    #[arg(long, default_value = "gonets-data/dev-certs")]
    certs: PathBuf,
    /// Calls per second.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Unmeasured seconds first.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// The server's process id (CPU accounting).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Pin the generator to this core.
    #[arg(long)]
    core: Option<usize>,
    /// Payload bytes per call.
    #[arg(long, default_value_t = 64)]
    payload_bytes: usize,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn security(args: &Args, who: &str) -> ClientSecurity {
    match args.security.as_str() {
        "plain" => ClientSecurity::DevToken {
            participant: who.into(),
            token: format!("dev-{}", who.to_lowercase()),
        },
        _ => {
            let files = tls::ClientTlsFiles {
                ca: args.certs.join("ca.pem"),
                cert: args.certs.join("clients").join(format!("{who}.pem")),
                key: args.certs.join("clients").join(format!("{who}.key")),
            };
            ClientSecurity::Tls {
                config: tls::client_config(&files).expect("client TLS files"),
                server_name: "localhost".into(),
            }
        }
    }
}

/// CPU seconds (user + system) of process `pid`.
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

struct Counters {
    ok: Cell<u64>,
    failed: Cell<u64>,
    outstanding: Cell<u64>,
    not_sent: Cell<u64>,
    latency_us: RefCell<Histogram<u64>>,
    measuring: Cell<bool>,
}

fn main() {
    let args = Args::parse();
    let placement = match args.core {
        Some(c) => glommio::Placement::Fixed(c),
        None => glommio::Placement::Unbound,
    };
    let _nudged = gonets_core::runtime::nudge::nudge_this_thread();
    let executor = glommio::LocalExecutorBuilder::new(placement)
        .preempt_timer(Duration::from_millis(1))
        .make()
        .expect("glommio executor (raise ulimit -l?)");
    let line = executor.run(run(args));
    println!("{line}");
}

async fn run(args: Args) -> String {
    let consumer = Client::connect(ClientConfig::new(args.addr, security(&args, "MFC")))
        .await
        .expect("consumer connects");
    let provider = Client::connect(ClientConfig::new(args.addr, security(&args, "MVD")))
        .await
        .expect("provider connects");
    let queue = QueueId::Requests(DataKindId::new(KIND));
    let mut sub = provider
        .subscribe(&queue, CREDITS)
        .await
        .expect("subscribe");
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
    let c = Rc::new(Counters {
        ok: Cell::new(0),
        failed: Cell::new(0),
        outstanding: Cell::new(0),
        not_sent: Cell::new(0),
        latency_us: RefCell::new(Histogram::new_with_bounds(1, 120_000_000, 3).expect("bounds")),
        measuring: Cell::new(false),
    });
    let payload = bytes::Bytes::from(vec![b'p'; args.payload_bytes]);
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let start = Instant::now();
    let warm_end = start + Duration::from_secs(args.warmup);
    let end = warm_end + Duration::from_secs(args.seconds);
    let mut cpu_start = None;
    let mut measured_from = warm_end;
    let mut issued: u64 = 0;
    let mut measured_issued: u64 = 0;
    // Open loop: every tick starts the calls that are due by now.
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if !c.measuring.get() && now >= warm_end {
            c.measuring.set(true);
            measured_from = now;
            cpu_start = args.server_pid.and_then(process_cpu_s);
        }
        let due = (now.duration_since(start).as_secs_f64() * args.rate as f64) as u64;
        while issued < due {
            let intended = start + interval.mul_f64(issued as f64);
            issued += 1;
            if c.measuring.get() {
                measured_issued += 1;
            }
            if c.outstanding.get() >= OUTSTANDING_MAX {
                c.not_sent.set(c.not_sent.get() + 1);
                continue;
            }
            c.outstanding.set(c.outstanding.get() + 1);
            let (consumer, c, payload) = (consumer.clone(), c.clone(), payload.clone());
            let measured = c.measuring.get();
            glommio::spawn_local(async move {
                let r = consumer.call(NewRequest::new(KIND, payload)).await;
                c.outstanding.set(c.outstanding.get() - 1);
                if measured {
                    match r {
                        Ok(_) => {
                            c.ok.set(c.ok.get() + 1);
                            let us = intended.elapsed().as_micros().clamp(1, 120_000_000) as u64;
                            let _ = c.latency_us.borrow_mut().record(us);
                        }
                        Err(_) => c.failed.set(c.failed.get() + 1),
                    }
                }
            })
            .detach();
        }
        glommio::timer::sleep(Duration::from_micros(500)).await;
    }
    let elapsed = measured_from.elapsed();
    let cpu_end = args.server_pid.and_then(process_cpu_s);
    // Let the last calls finish (bounded by the 2 s budget plus slack).
    let drain_until = Instant::now() + Duration::from_secs(5);
    while c.outstanding.get() > 0 && Instant::now() < drain_until {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    drop(answering);
    let h = c.latency_us.borrow();
    let cpu_per_request_us = match (cpu_start, cpu_end) {
        (Some(a), Some(b)) if c.ok.get() > 0 => Some((b - a) * 1e6 / c.ok.get() as f64),
        _ => None,
    };
    let server_cpu_share = match (cpu_start, cpu_end) {
        (Some(a), Some(b)) => Some((b - a) / elapsed.as_secs_f64()),
        _ => None,
    };
    let json = serde_json::json!({
        "workload": "rt-net",
        "security": args.security,
        "rate_offered": args.rate,
        "seconds": elapsed.as_secs_f64(),
        "issued": measured_issued,
        "answered": c.ok.get(),
        "failed": c.failed.get(),
        "not_sent": c.not_sent.get(),
        "p50_us": h.value_at_quantile(0.50),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
        "over_2s": h.count_between(2_000_000, 120_000_000),
        "server_cpu_per_request_us": cpu_per_request_us,
        "server_cpu_cores_used": server_cpu_share,
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&json).expect("json")).expect("write json");
    }
    format!(
        "rt-net {}: offered {}/s for {:.1} s: answered {} failed {} not-sent {} | p50 {} us p99 {} us p99.9 {} us max {} us | server CPU {} us/request ({} cores)",
        args.security,
        args.rate,
        elapsed.as_secs_f64(),
        c.ok.get(),
        c.failed.get(),
        c.not_sent.get(),
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        cpu_per_request_us.map_or("?".into(), |v| format!("{v:.1}")),
        server_cpu_share.map_or("?".into(), |v| format!("{v:.2}")),
    )
}
