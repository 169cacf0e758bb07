//! gonets-loadgen: the named workloads of DESIGN.md §4 — rt, bulk, mixed,
//! backlog, recovery — against a running hub (`--target`) or one it starts
//! (`--embedded`), rt and bulk with the hub inside this process
//! (`--in-process`), or against NATS JetStream (`--system nats`); plus the
//! machine's own limits (`limits`, `--ways` for the storage write ways),
//! the reports (`report`, `report --storage`) and the loadgen registry
//! (`registry`). The one tool of the benchmarks (`bench/*.sh` call it).
//! Open loop from scheduled times, thread per core, per-core HDR
//! histograms merged; a progress line a second; a summary, a JSON result
//! and an SVG latency plot. See loadgen/README.md.

use clap::Parser;
use gonets_loadgen::agency_record::PayloadFormat;
use gonets_loadgen::disk_ways::WaysConfig;
use gonets_loadgen::embedded::{EmbeddedHub, HubSpec};
use gonets_loadgen::gonets::attachment::{AttachmentParams, UploaderPriority};
use gonets_loadgen::gonets::workloads::{self, Run};
use gonets_loadgen::gonets::GonetsTarget;
use gonets_loadgen::inprocess::{self, InProcessSpec};
use gonets_loadgen::params::{BulkParams, Cores, RtParams};
use gonets_loadgen::storage_report::{self, StorageReport};
use gonets_loadgen::{limits, nats, plot, registry, report, scenario};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "gonets-loadgen",
    version,
    about = "gonets load generator: rt, bulk, mixed, backlog, recovery, attachment (open loop, thread per core)",
    args_override_self = true,
    after_help = "Workloads: rt | bulk | mixed | backlog | recovery | attachment | limits | report | registry.\n\
                  Examples:\n  gonets-loadgen rt --embedded --rate 5000 --duration 10\n  \
                  gonets-loadgen bulk --embedded --messages 200000\n  \
                  gonets-loadgen rt --in-process --rate 10000 --hub-cores 1 --cores 0\n  \
                  gonets-loadgen limits --ways --limits-dir /var/lib/gonets --json limits.json\n  \
                  gonets-loadgen rt --embedded --find-max --p999-max-ms 10\n  \
                  gonets-loadgen rt --system nats --nats-url 127.0.0.1:4222 --rate 1000\n  \
                  gonets-loadgen --scenario bench/scenarios/quick-rt.toml"
)]
struct Args {
    /// rt, bulk, mixed, backlog, recovery, limits, registry or report.
    workload: Option<String>,
    /// A scenario file (TOML) whose keys are these flags (`rate = 5000`);
    /// flags given on the command line win.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// `gonets` or `nats`.
    #[arg(long, default_value = "gonets")]
    system: String,

    // Where the hub is.
    /// A running hub's address (start it with the registry `gonets-loadgen registry` prints).
    #[arg(long)]
    target: Option<SocketAddr>,
    /// Start a hub (`gonets serve`, next to this binary) with the loadgen registry.
    #[arg(long)]
    embedded: bool,
    /// rt and bulk only: run the hub inside this process through the
    /// embedding API (no network, no protocol: the engine's own figures),
    /// one consumer and one provider participant, the generator on the
    /// first of --cores.
    #[arg(long)]
    in_process: bool,
    /// In-process hub: what a commit waits for, `dsync` (the hub's
    /// default, ADR 0027), `fdatasync` or `none`.
    #[arg(long, default_value = "dsync")]
    durability: String,
    /// In-process hub: records between state snapshots (default: the hub's).
    #[arg(long)]
    snapshot_every: Option<u64>,
    /// `tls` (mutual TLS, development certificates) or `plain` (dev tokens, loopback only).
    #[arg(long, default_value = "tls")]
    security: String,
    /// The development certificates of a `--target` hub (its data dir's dev-certs).
    #[arg(long, default_value = "gonets-data/dev-certs")]
    certs: PathBuf,
    /// One connection per shard, each operation sent to its owning shard.
    #[arg(long)]
    shard_aware: bool,
    /// rt: connections each consumer opens per generator thread.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// The hub's process id, for its CPU and memory (`--target` on this machine).
    #[arg(long)]
    server_pid: Option<u32>,
    /// The hub's operator API (`--target`; plain HTTP, e.g. 127.0.0.1:7480): its
    /// commits and fdatasyncs per operation are reported. An embedded hub's is known.
    #[arg(long)]
    hub_operator: Option<std::net::SocketAddr>,
    /// Embedded hub: shards.
    #[arg(long, default_value_t = 1)]
    hub_shards: u16,
    /// Embedded hub: pin its shards to these cores (comma list).
    #[arg(long, value_delimiter = ',')]
    hub_cores: Vec<usize>,
    /// Embedded hub with --via http: pin the HTTP gateway's thread to these
    /// cores (comma list; default unpinned).
    #[arg(long, value_delimiter = ',')]
    gateway_cores: Vec<usize>,
    /// Embedded hub: run the kernel's io-wq workers (every `fdatasync`) on
    /// these cores (comma list; `io_worker_cores`, ADR 0024; default: the
    /// shard's own).
    #[arg(long, value_delimiter = ',')]
    io_worker_cores: Vec<usize>,
    /// Embedded hub: log each shard task queue run that goes this many ms
    /// over its budget, with its stack, to the hub's log (`<data-dir>.log`)
    /// and count it per lane (`stall_report_ms`, ADR 0031; default off).
    /// A diagnosis tool: each report costs the shard milliseconds.
    #[arg(long)]
    stall_report_ms: Option<u64>,
    /// Embedded hub: data directory (replaced; removed afterwards unless --keep-data).
    #[arg(long, default_value = "gonets-loadgen-data")]
    data_dir: PathBuf,
    /// Keep the embedded hub's data directory.
    #[arg(long)]
    keep_data: bool,
    /// Embedded hub: segment size, MiB (`[commit] segment_size_bytes`).
    #[arg(long)]
    segment_mib: Option<u64>,
    /// Embedded hub: most bytes in one commit batch, KiB (`[commit] batch_bytes_max`).
    #[arg(long)]
    commit_batch_kib: Option<u64>,
    /// Embedded hub: bulk bytes its logs may hold unwritten while rt
    /// commands come, KiB (`[commit] bulk_unwritten_bytes_max`, ADR 0015).
    #[arg(long)]
    bulk_unwritten_kib: Option<u64>,
    /// Embedded hub: keep an rt journal per shard (`[commit] rt_journal`,
    /// ADR 0036): a call's answer goes out once the journal or the log
    /// holds it.
    #[arg(long)]
    rt_journal: bool,
    /// Embedded hub: most time a record nobody awaits waits for a commit,
    /// ms (`[commit] unawaited_delay_ms`, ADR 0025; 0: every turn commits).
    #[arg(long)]
    unawaited_commit_ms: Option<u64>,
    /// Embedded hub: how a batch is made durable, `fdatasync` or `dsync`
    /// (`[commit] sync`, ADR 0027; default the hub's, dsync).
    #[arg(long, value_parser = ["fdatasync", "dsync"])]
    commit_sync: Option<String>,
    /// Embedded hub with dsync: `worker` hands each batch write to an io-wq
    /// worker, `inline` submits it from the shard's thread, `auto` the
    /// first while rt calls and bulk both come (`[commit] dsync_writes`,
    /// ADR 0028; default the hub's, auto).
    #[arg(long, value_parser = ["auto", "worker", "inline"])]
    dsync_writes: Option<String>,
    /// Embedded hub: overwrite each log's active segment with zeros this
    /// far ahead of its write position in idle time while commits come
    /// sparsely, MiB (`[commit] prewrite_ahead_bytes`, ADR 0037; default
    /// the hub's, 32; 0: none).
    #[arg(long)]
    prewrite_ahead_mib: Option<u64>,
    /// Embedded hub: the longest a commit waits to gather more records
    /// while less than its window's bytes are pending, µs (`[commit]
    /// window_us`; default the hub's, 0: no wait).
    #[arg(long)]
    commit_window_us: Option<u64>,

    // The generator.
    /// Pin one generator thread to each of these cores (comma list).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Unpinned generator threads (when --cores is not given).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// gonets: run the rt half (its consumers and providers) on threads of
    /// its own, one pinned to each of these cores (comma list), apart from
    /// the bulk senders and drainers on --cores, as separate agency systems
    /// are; default: every generator thread runs both halves.
    #[arg(long, value_delimiter = ',')]
    rt_cores: Vec<usize>,

    // rt.
    /// rt: calls per second, all consumers together.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// rt: measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// rt: unmeasured seconds first.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// rt: request payload bytes.
    #[arg(long, default_value_t = 1024)]
    request_bytes: usize,
    /// rt: answer payload bytes.
    #[arg(long, default_value_t = 2048)]
    answer_bytes: usize,
    /// Consumers (participants LGC1..).
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// Providers (participants LGP1.., one realtime and one async kind each).
    #[arg(long, default_value_t = 2)]
    providers: usize,
    /// rt: the run is invalid if the generator falls further behind its schedule, ms.
    #[arg(long, default_value_t = 50)]
    lag_max_ms: u64,
    /// rt: calls in flight per generator thread before a call is counted not sent.
    #[arg(long, default_value_t = 50_000)]
    outstanding_max: u64,

    // bulk.
    /// bulk: requests in all (backlog: requests left waiting).
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// bulk: payload bytes per request.
    #[arg(long, default_value_t = 4096)]
    message_bytes: usize,
    /// bulk: senders, one connection each.
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// bulk: requests in flight per sender.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// bulk: requests per frame (send_requests) and acks per ack_many, the
    /// providers fetching up to this many at once; 1 = one operation per
    /// message (the figures before batching). With N > 1 each of a sender's
    /// --window lanes has one batch of N in flight.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// bulk: seconds to wait for the drain after the last send.
    #[arg(long, default_value_t = 120)]
    drain_timeout_s: u64,
    /// bulk (and `registry`): the bulk kinds' request format. `bytes`: none,
    /// filler payloads; `json-schema`: an agency record schema the hub
    /// checks at the door, every payload a valid record of --message-bytes
    /// (run bulk both ways for the validation cost per message).
    #[arg(long, default_value = "bytes")]
    format: String,
    /// rt and bulk (and `registry`), over the network: every consumer and
    /// provider registers a key, every kind requires signatures, and each
    /// send, call, answer and batch (once) is signed; the hub (`gonets
    /// serve`, which has a key) signs receipts. Run with and without it for
    /// the cost of signatures.
    #[arg(long)]
    sign: bool,
    /// rt and bulk: how the consumers call or send: `native` (the binary
    /// protocol) or `http` (the HTTP gateway of an --embedded hub, with
    /// development tokens under --security plain, mutual TLS under
    /// --security tls); providers answer and drain over the native
    /// protocol either way.
    #[arg(long, default_value = "native")]
    via: String,
    /// backlog: requests left waiting.
    #[arg(long, default_value_t = 1_000_000)]
    backlog: u64,
    /// backlog: payload bytes of the waiting requests.
    #[arg(long, default_value_t = 128)]
    backlog_bytes: usize,
    /// recovery: GiB of log before the kill.
    #[arg(long, default_value_t = 1.0)]
    log_gib: f64,
    /// attachment: MiB of the attachment uploaded (its connection dropped
    /// halfway) and read back beside the rt calls.
    #[arg(long, default_value_t = 1024)]
    attachment_mib: u64,
    /// The embedded hub's pace of attachment chunk writes, MiB/s
    /// (`[attachments] write_mib_per_s`; 0: unpaced; absent: the hub's default).
    #[arg(long)]
    attachment_write_mib_per_s: Option<u64>,
    /// The embedded hub's pace of attachment chunk writes while rt calls
    /// come, MiB/s (`[attachments] beside_rt_write_mib_per_s`; 0: none of
    /// its own; absent: the hub's default).
    #[arg(long)]
    attachment_beside_rt_write_mib_per_s: Option<u64>,
    /// attachment: CPU priority of the uploading client's thread, `idle`
    /// (`SCHED_IDLE`: the uploader stands for another machine, so it never
    /// takes the core from the rt generator) or `normal` (both compete).
    #[arg(long, default_value = "idle", value_parser = ["idle", "normal"])]
    attachment_uploader_priority: String,
    /// attachment: 0 runs rt alone, then rt beside the transfer. N > 0 runs
    /// one phase of rt calls in which the transfer moves only in every other
    /// window of N seconds, and compares the calls issued while it moved
    /// with the others (give --duration room: about twice the transfer).
    #[arg(long, default_value_t = 0)]
    attachment_interleave_s: u64,

    // find-max.
    /// rt: search the highest rate meeting --p999-max-ms with nothing over 2 s.
    #[arg(long)]
    find_max: bool,
    /// find-max: the p99.9 bound, ms.
    #[arg(long, default_value_t = 10.0)]
    p999_max_ms: f64,
    /// find-max: the first rate tried.
    #[arg(long, default_value_t = 1000.0)]
    find_max_from: f64,
    /// find-max: bisection steps after the first miss.
    #[arg(long, default_value_t = 5)]
    find_max_steps: usize,

    // NATS.
    /// NATS server URL (`--system nats`).
    #[arg(long, default_value = "127.0.0.1:4222")]
    nats_url: String,
    /// The NATS server's JetStream sync_interval (`always` or `default`), recorded in the result.
    #[arg(long, default_value = "default")]
    nats_sync: String,
    /// NATS recovery: the command (run with `sh -c`) that starts the server
    /// again after the SIGKILL and prints its new PID on its last line, e.g.
    /// `bash bench/nats.sh start --sync default --port 4222 --dir D`.
    #[arg(long)]
    restart_cmd: Option<String>,

    // Output.
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the latency plot (SVG) here (default: next to --json).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// limits: the directory to measure the disk in.
    #[arg(long, default_value = ".")]
    limits_dir: PathBuf,
    /// limits: a short measurement.
    #[arg(long)]
    quick: bool,
    /// limits: also the storage design's write ways through io_uring:
    /// (b) buffered, (c) O_DIRECT, (d) O_DIRECT over written blocks.
    #[arg(long)]
    ways: bool,
    /// limits --ways: MiB written by each sequential test, in 1 MiB chunks.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    ways_mib: u64,
    /// limits --ways: size of each preallocated file of the sequential test, MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    ways_file_mib: u64,
    /// limits --ways: 4 KiB write+fdatasync iterations per way.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    ways_iters: u64,
    /// report: the results directory of a `bench/run`.
    #[arg(long)]
    results: Option<PathBuf>,
    /// report: where to write the Markdown (default RESULTS_DIR/REPORT.md).
    #[arg(long)]
    report: Option<PathBuf>,
    /// report: the storage report of a `bench/storage.sh` folder of
    /// run-*/{limits,commit-latency,recovery-bench}.json (printed; --json
    /// writes the combined JSON).
    #[arg(long)]
    storage: bool,
    /// report --storage: criterion's output folder (target/criterion).
    #[arg(long)]
    criterion: Option<PathBuf>,
    /// report --storage: only criterion estimates written after this (seconds since the epoch).
    #[arg(long, default_value_t = 0)]
    since: u64,
}

fn secs(s: f64, what: &str) -> Result<Duration, String> {
    if s.is_finite() && s >= 0.0 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(format!("--{what} must be a non-negative number of seconds"))
    }
}

fn rt_params(a: &Args) -> Result<RtParams, String> {
    if !(a.rate > 0.0 && a.rate.is_finite()) {
        return Err("--rate must be positive".into());
    }
    if a.duration <= 0.0 {
        return Err("--duration must be positive".into());
    }
    if a.consumers == 0 || a.providers == 0 {
        return Err("--consumers and --providers must be positive".into());
    }
    Ok(RtParams {
        rate_per_s: a.rate,
        warmup: secs(a.warmup, "warmup")?,
        duration: secs(a.duration, "duration")?,
        request_bytes: a.request_bytes,
        answer_bytes: a.answer_bytes,
        consumers: a.consumers,
        providers: a.providers,
        lag_max: Duration::from_millis(a.lag_max_ms),
        outstanding_max: a.outstanding_max,
    })
}

fn bulk_params(a: &Args, messages: u64, bytes: usize) -> Result<BulkParams, String> {
    if a.senders == 0 || a.window == 0 || a.providers == 0 {
        return Err("--senders, --window and --providers must be positive".into());
    }
    if a.batch == 0 || a.batch > gonets_types::BATCH_MESSAGES_MAX {
        return Err(format!(
            "--batch must be from 1 to {}",
            gonets_types::BATCH_MESSAGES_MAX
        ));
    }
    Ok(BulkParams {
        messages,
        message_bytes: bytes,
        senders: a.senders,
        window: a.window,
        providers: a.providers,
        drain_timeout: Duration::from_secs(a.drain_timeout_s),
        batch: a.batch,
        format: PayloadFormat::parse(&a.format)?,
    })
}

/// `--format json-schema` changes the bulk kinds and their payloads: only
/// gonets' `bulk` (and `registry`, which prints that registry) take it.
fn check_format(a: &Args, workload: &str) -> Result<(), String> {
    let format = PayloadFormat::parse(&a.format)?;
    let takes = matches!(workload, "bulk" | "registry") && a.system == "gonets";
    if format != PayloadFormat::Bytes && !takes {
        return Err(format!(
            "--format {} is for gonets' bulk and registry, not {} {workload}",
            format.name(),
            a.system
        ));
    }
    if workload == "bulk" {
        // Too small a record is refused before any hub starts.
        format.payloads(a.message_bytes)?;
    }
    Ok(())
}

/// `--sign` is for gonets' rt, bulk and registry over the network (the
/// in-process hub has no signing sessions yet).
fn check_via(a: &Args, workload: &str) -> Result<(), String> {
    match a.via.as_str() {
        "native" => Ok(()),
        "http" if matches!(workload, "rt" | "bulk") && a.system == "gonets" && a.embedded && !a.sign => Ok(()),
        "http" => Err(format!(
            "--via http is for gonets rt and bulk with --embedded and without --sign, not {} {workload}",
            a.system
        )),
        other => Err(format!("--via {other:?}: expected native or http")),
    }
}

/// `--rt-cores` splits gonets' generator threads by half; the workloads
/// with an rt half over the network are the ones it applies to.
fn check_rt_cores(a: &Args, workload: &str) -> Result<(), String> {
    let takes = matches!(workload, "rt" | "mixed" | "backlog") && a.system == "gonets";
    if !a.rt_cores.is_empty() && (!takes || a.in_process) {
        return Err(format!(
            "--rt-cores is for gonets' rt, mixed and backlog over the network, not {} {workload}{}",
            a.system,
            if a.in_process { " --in-process" } else { "" }
        ));
    }
    Ok(())
}

fn check_sign(a: &Args, workload: &str) -> Result<(), String> {
    let takes = matches!(workload, "rt" | "bulk" | "registry") && a.system == "gonets";
    if a.sign && (!takes || a.in_process) {
        return Err(format!(
            "--sign is for gonets' rt, bulk and registry with --embedded or --target, not {} {workload}{}",
            a.system,
            if a.in_process { " --in-process" } else { "" }
        ));
    }
    Ok(())
}

fn cores(a: &Args) -> Cores {
    let cores = if a.cores.is_empty() {
        Cores::unpinned(a.threads.max(1))
    } else {
        Cores::pinned(&a.cores)
    };
    cores.with_rt_apart(&a.rt_cores)
}

fn main() -> ExitCode {
    let args = match scenario::args_with_scenario(std::env::args_os().collect()) {
        Ok(argv) => Args::parse_from(argv),
        Err(e) => {
            eprintln!("gonets-loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("gonets-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs what `args` asks; Ok(valid).
fn run(args: &Args) -> Result<bool, String> {
    let workload = args
        .workload
        .clone()
        .ok_or("name a workload: rt, bulk, mixed, backlog, recovery, attachment, limits, report or registry")?;
    check_format(args, &workload)?;
    check_sign(args, &workload)?;
    check_rt_cores(args, &workload)?;
    check_via(args, &workload)?;
    match workload.as_str() {
        "registry" => {
            print!(
                "{}",
                registry::registry_toml(
                    args.consumers,
                    args.providers,
                    queue_max(args),
                    PayloadFormat::parse(&args.format)?,
                    args.sign,
                )
            );
            return Ok(true);
        }
        "limits" => {
            let l = limits::measure(
                &limits::LimitsConfig {
                    dir: args.limits_dir.clone(),
                    quick: args.quick,
                    seconds_each: None,
                    ways: args.ways.then_some(WaysConfig {
                        mib: args.ways_mib,
                        file_mib: args.ways_file_mib,
                        iters: args.ways_iters as usize,
                    }),
                },
                &mut |line: &str| eprintln!("{line}"),
            )?;
            println!("{}", l.summary());
            if let Some(p) = &args.json {
                let text = serde_json::to_vec_pretty(&l).map_err(|e| e.to_string())?;
                std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
            }
            return Ok(true);
        }
        "report" if args.storage => {
            let dir = args.results.as_ref().ok_or("report needs --results DIR")?;
            storage_report::write(&StorageReport {
                runs_dir: dir.clone(),
                criterion_dir: args.criterion.clone(),
                since_unix_s: args.since,
                out: args.json.clone(),
            })?;
            return Ok(true);
        }
        "report" => {
            let dir = args.results.as_ref().ok_or("report needs --results DIR")?;
            let r = report::Results::read(dir)?;
            let name = dir
                .file_name()
                .map_or("results".into(), |n| n.to_string_lossy().to_string());
            let text = report::render(&r, &name);
            let out = args.report.clone().unwrap_or_else(|| dir.join("REPORT.md"));
            std::fs::write(&out, text).map_err(|e| format!("{}: {e}", out.display()))?;
            println!("report: {}", out.display());
            return Ok(true);
        }
        "rt" | "bulk" | "mixed" | "backlog" | "recovery" | "attachment" => {}
        other => return Err(format!("unknown workload {other:?} (try --help)")),
    }
    let cores = cores(args);
    let run = match args.system.as_str() {
        "gonets" if args.in_process => run_in_process(args, &workload)?,
        "nats" => run_nats(args, &workload, &cores)?,
        "gonets" => run_gonets(args, &workload, &cores)?,
        other => return Err(format!("--system {other:?}: expected gonets or nats")),
    };
    report(args, run)
}

fn queue_max(args: &Args) -> u32 {
    let want = args
        .backlog
        .max(args.messages)
        .saturating_mul(2)
        .max(1_000_000);
    u32::try_from(want).unwrap_or(u32::MAX)
}

fn run_in_process(args: &Args, workload: &str) -> Result<Run, String> {
    if args.embedded || args.target.is_some() {
        return Err("give one of --in-process, --embedded or --target".into());
    }
    let spec = InProcessSpec {
        data_dir: args.data_dir.clone(),
        shards: args.hub_shards,
        hub_cores: args.hub_cores.clone(),
        generator_core: args.cores.first().copied(),
        durability: inprocess::durability(&args.durability)?,
        snapshot_every_records: args.snapshot_every,
        keep: args.keep_data,
    };
    if spec.shards == 0 || args.snapshot_every == Some(0) {
        return Err("--hub-shards and --snapshot-every must be positive".into());
    }
    inprocess::run(
        &spec,
        workload,
        &rt_params(args)?,
        &bulk_params(args, args.messages, args.message_bytes)?,
    )
}

fn run_nats(args: &Args, workload: &str, cores: &Cores) -> Result<Run, String> {
    let target = nats::NatsTarget {
        url: args.nats_url.clone(),
        sync: args.nats_sync.clone(),
        server_pid: args.server_pid,
    };
    let label = |what: &str| format!("NATS ({}) {what}", args.nats_sync);
    let run = |result, curves| Ok(Run { curves, result });
    match workload {
        "rt" => {
            let (r, rec) = nats::run_rt(&target, &rt_params(args)?, cores)?;
            run(r, vec![(label("rt"), rec)])
        }
        "bulk" => {
            let b = bulk_params(args, args.messages, args.message_bytes)?;
            let (r, rec) = nats::run_bulk(&target, &b, cores)?;
            run(r, vec![(label("bulk publish to PubAck"), rec)])
        }
        "backlog" => {
            let b = bulk_params(args, args.backlog, args.backlog_bytes)?;
            let (r, curves) = nats::run_backlog(&target, &rt_params(args)?, &b, cores)?;
            run(r, curves)
        }
        "recovery" => {
            let r = nats::run_recovery(
                &target,
                &bulk_params(args, args.messages, args.message_bytes)?,
                &rt_params(args)?,
                (args.log_gib * (1u64 << 30) as f64) as u64,
                args.restart_cmd.as_deref().unwrap_or(""),
                cores,
            )?;
            run(r, Vec::new())
        }
        other => Err(format!(
            "the NATS driver runs rt, bulk, backlog and recovery, not {other} (docs/nats-mapping.md)"
        )),
    }
}

fn run_gonets(args: &Args, workload: &str, cores: &Cores) -> Result<Run, String> {
    if workload == "recovery" && !args.embedded {
        return Err("recovery kills and restarts the hub: it needs --embedded".into());
    }
    let (target, mut hub) = gonets_target(args)?;
    let mut run = gonets_workload(args, workload, &target, hub.as_mut(), cores)?;
    if hub.is_some() {
        run.result
            .setup
            .insert("hub".into(), serde_json::json!("embedded"));
        run.result
            .setup
            .insert("hub_shards".into(), serde_json::json!(args.hub_shards));
        run.result
            .setup
            .insert("hub_cores".into(), serde_json::json!(args.hub_cores));
        if !args.gateway_cores.is_empty() {
            run.result.setup.insert(
                "gateway_cores".into(),
                serde_json::json!(args.gateway_cores),
            );
        }
        if !args.io_worker_cores.is_empty() {
            run.result.setup.insert(
                "io_worker_cores".into(),
                serde_json::json!(args.io_worker_cores),
            );
        }
        if let Some(ms) = args.stall_report_ms {
            run.result
                .setup
                .insert("stall_report_ms".into(), serde_json::json!(ms));
        }
    }
    drop(hub);
    Ok(run)
}

/// The hub to measure: the one at --target, or one started here
/// (--embedded), which is returned too so it lives as long as the run.
fn gonets_target(args: &Args) -> Result<(GonetsTarget, Option<EmbeddedHub>), String> {
    match (args.embedded, args.target) {
        (true, Some(_)) => Err("give --embedded or --target, not both".into()),
        (false, None) => {
            Err("give --embedded (start a hub) or --target ADDR (a running hub)".into())
        }
        (false, Some(addr)) => Ok((
            GonetsTarget {
                addr,
                security: args.security.clone(),
                certs: args.certs.clone(),
                shard_aware: args.shard_aware,
                server_pid: args.server_pid,
                operator: args.hub_operator,
                connections: args.connections,
                sign: args.sign,
                gateway: None,
                durability: "the target hub's [commit] sync (not known to the generator)".into(),
            },
            None,
        )),
        (true, None) => {
            let h = start_embedded_hub(args)?;
            let t = GonetsTarget {
                addr: h.addr(),
                security: args.security.clone(),
                certs: h.certs_dir(),
                shard_aware: args.shard_aware,
                server_pid: h.pid(),
                operator: Some(h.operator_addr()),
                connections: args.connections,
                sign: args.sign,
                gateway: h.gateway_addr(),
                durability: embedded_durability(args)?,
            };
            Ok((t, Some(h)))
        }
    }
}

/// The embedded hub's durability as the run's setup names it: --commit-sync,
/// or the log's default; with dsync, where its writes are submitted
/// (--dsync-writes, or the log's default).
fn embedded_durability(args: &Args) -> Result<String, String> {
    let log = gonets_storage::LogConfig::default();
    let durability = match &args.commit_sync {
        Some(name) => inprocess::durability(name)?,
        None => log.durability,
    };
    let name = inprocess::durability_name(durability);
    if durability != gonets_storage::Durability::Dsync {
        return Ok(name.to_string());
    }
    let writes = match args.dsync_writes.as_deref() {
        Some(name) => gonets_storage::DsyncWrites::from_name(name)
            .ok_or_else(|| format!("--dsync-writes {name}: expected auto, worker or inline"))?,
        None => log.dsync_writes,
    };
    let submitted = match writes {
        gonets_storage::DsyncWrites::Worker => "in an io-wq worker",
        gonets_storage::DsyncWrites::Inline => "inline",
        gonets_storage::DsyncWrites::WhileContended => {
            "in an io-wq worker while rt and bulk both come"
        }
    };
    Ok(format!("{name}, {submitted}"))
}

/// Starts a `gonets serve` child on --data-dir with the loadgen registry.
fn start_embedded_hub(args: &Args) -> Result<EmbeddedHub, String> {
    let data_dir = std::path::absolute(&args.data_dir)
        .map_err(|e| format!("{}: {e}", args.data_dir.display()))?;
    let mut sections = commit_section(&CommitKeys {
        segment_mib: args.segment_mib,
        batch_kib: args.commit_batch_kib,
        bulk_unwritten_kib: args.bulk_unwritten_kib,
        rt_journal: args.rt_journal,
        unawaited_ms: args.unawaited_commit_ms,
        sync: args.commit_sync.as_deref(),
        dsync_writes: args.dsync_writes.as_deref(),
        prewrite_ahead_mib: args.prewrite_ahead_mib,
        window_us: args.commit_window_us,
    });
    let paces = [
        ("write_mib_per_s", args.attachment_write_mib_per_s),
        (
            "beside_rt_write_mib_per_s",
            args.attachment_beside_rt_write_mib_per_s,
        ),
    ];
    if paces.iter().any(|(_, mib)| mib.is_some()) {
        sections += "[attachments]\n";
        for (key, mib) in paces {
            if let Some(mib) = mib {
                sections += &format!("{key} = {mib}\n");
            }
        }
    }
    eprintln!("starting an embedded hub in {} ...", data_dir.display());
    EmbeddedHub::start(HubSpec {
        data_dir,
        shards: args.hub_shards,
        cores: args.hub_cores.clone(),
        security: args.security.clone(),
        registry: registry::registry_toml(
            args.consumers.max(args.senders),
            args.providers,
            queue_max(args),
            PayloadFormat::parse(&args.format)?,
            args.sign,
        ),
        sections,
        keep: args.keep_data,
        gateway: args.via == "http",
        gateway_cores: args.gateway_cores.clone(),
        io_worker_cores: args.io_worker_cores.clone(),
        stall_report_ms: args.stall_report_ms,
    })
}

/// The `[commit]` keys the generator's flags set for an embedded hub.
#[derive(Default)]
struct CommitKeys<'a> {
    segment_mib: Option<u64>,
    batch_kib: Option<u64>,
    bulk_unwritten_kib: Option<u64>,
    rt_journal: bool,
    unawaited_ms: Option<u64>,
    sync: Option<&'a str>,
    dsync_writes: Option<&'a str>,
    prewrite_ahead_mib: Option<u64>,
    window_us: Option<u64>,
}

/// The embedded hub's `[commit]` section for the keys given (empty when none).
fn commit_section(k: &CommitKeys) -> String {
    let CommitKeys {
        segment_mib,
        batch_kib,
        bulk_unwritten_kib,
        rt_journal,
        unawaited_ms,
        sync,
        dsync_writes,
        prewrite_ahead_mib,
        window_us,
    } = *k;
    let mut keys = String::new();
    if let Some(mib) = segment_mib {
        keys += &format!("segment_size_bytes = {}\n", mib << 20);
    }
    if let Some(kib) = batch_kib {
        keys += &format!("batch_bytes_max = {}\n", kib << 10);
    }
    if let Some(kib) = bulk_unwritten_kib {
        keys += &format!("bulk_unwritten_bytes_max = {}\n", kib << 10);
    }
    if let Some(ms) = unawaited_ms {
        keys += &format!("unawaited_delay_ms = {ms}\n");
    }
    if rt_journal {
        keys += "rt_journal = true\n";
    }
    if let Some(sync) = sync {
        keys += &format!("sync = {sync:?}\n");
    }
    if let Some(writes) = dsync_writes {
        keys += &format!("dsync_writes = {writes:?}\n");
    }
    if let Some(us) = window_us {
        keys += &format!("window_us = {us}\n");
    }
    if let Some(mib) = prewrite_ahead_mib {
        keys += &format!("prewrite_ahead_bytes = {}\n", mib << 20);
    }
    if keys.is_empty() {
        keys
    } else {
        format!("[commit]\n{keys}")
    }
}

/// Runs `workload` against `target`; `hub` is the embedded hub, if any
/// (recovery kills and restarts it).
fn gonets_workload(
    args: &Args,
    workload: &str,
    target: &GonetsTarget,
    hub: Option<&mut EmbeddedHub>,
    cores: &Cores,
) -> Result<Run, String> {
    let consumers = args.consumers.max(args.senders);
    match workload {
        "rt" if args.find_max => workloads::find_max(
            target,
            &rt_params(args)?,
            cores,
            args.find_max_from,
            Duration::from_secs_f64(args.p999_max_ms / 1e3),
            args.find_max_steps,
        ),
        "rt" => workloads::rt(target, &rt_params(args)?, cores),
        "bulk" => workloads::bulk(
            target,
            &bulk_params(args, args.messages, args.message_bytes)?,
            consumers,
            cores,
        ),
        "mixed" => workloads::mixed(
            target,
            &rt_params(args)?,
            &bulk_params(args, args.messages, args.message_bytes)?,
            cores,
        ),
        "backlog" => workloads::backlog(
            target,
            &rt_params(args)?,
            &bulk_params(args, args.backlog, args.backlog_bytes)?,
            cores,
        ),
        "attachment" => gonets_loadgen::gonets::attachment::attachment(
            target,
            &rt_params(args)?,
            AttachmentParams {
                bytes: args.attachment_mib << 20,
                uploader: UploaderPriority::from_name(&args.attachment_uploader_priority)
                    .ok_or("--attachment-uploader-priority: `idle` or `normal`")?,
                interleave_s: args.attachment_interleave_s,
            },
            cores,
        ),
        "recovery" => workloads::recovery(
            hub.expect("recovery runs embedded"),
            target,
            &bulk_params(args, args.messages, args.message_bytes)?,
            &rt_params(args)?,
            (args.log_gib * (1u64 << 30) as f64) as u64,
            cores,
        ),
        _ => unreachable!("checked above"),
    }
}

/// Prints the summary, writes the plot and the JSON; Ok(valid).
fn report(args: &Args, mut run: Run) -> Result<bool, String> {
    let plot_path = args
        .plot
        .clone()
        .or_else(|| args.json.as_ref().map(|j| j.with_extension("svg")));
    if let Some(path) = plot_path {
        if !run.curves.is_empty() {
            let series: Vec<(String, &hdrhistogram::Histogram<u64>)> = run
                .curves
                .iter()
                .filter(|(_, r)| !r.latency_us().is_empty())
                .map(|(name, r)| (name.clone(), r.latency_us()))
                .collect();
            // A run where nothing succeeded has no curve to draw; its JSON
            // still says what happened.
            if !series.is_empty() {
                let title = format!("{} {} latency", run.result.system, run.result.workload);
                match plot::percentile_svg(&path, &title, &series) {
                    Ok(()) => run.result.plot = Some(path.display().to_string()),
                    // The figures matter more than the picture: keep going.
                    Err(e) => eprintln!("gonets-loadgen: warning: no plot: {e}"),
                }
            }
        }
    }
    print!("{}", run.result.summary());
    if let Some(v) = run.result.findings.get("max_rate_per_s") {
        println!("find-max: highest rate meeting the bound: {v} calls/s");
    }
    if let Some(v) = run
        .result
        .findings
        .get("idle_hub_cpu_cores")
        .and_then(|v| v.as_f64())
    {
        println!(
            "idle hub (3 s before the load): {:.2} % of a core",
            v * 100.0
        );
    }
    if let Some(p) = &args.json {
        run.result.write_json(p)?;
    }
    Ok(run.result.valid)
}

#[cfg(test)]
mod tests {
    use super::{commit_section, CommitKeys};
    use gonets_server::config_file::ConfigFile;

    #[test]
    fn given_segment_and_batch_sizes_when_commit_section_then_hub_parses_them() {
        let text = commit_section(&CommitKeys {
            segment_mib: Some(1024),
            batch_kib: Some(4096),
            bulk_unwritten_kib: Some(128),
            rt_journal: true,
            unawaited_ms: Some(0),
            sync: Some("dsync"),
            dsync_writes: Some("inline"),
            prewrite_ahead_mib: Some(32),
            window_us: Some(500),
        });
        let file = ConfigFile::parse(&text).expect("the hub's parser takes the section");
        assert_eq!(file.commit.segment_size_bytes, Some(1 << 30));
        assert_eq!(file.commit.batch_bytes_max, Some(4 << 20));
        assert_eq!(file.commit.bulk_unwritten_bytes_max, Some(128 << 10));
        assert_eq!(file.commit.unawaited_delay_ms, Some(0));
        assert_eq!(file.commit.sync.as_deref(), Some("dsync"));
        assert_eq!(file.commit.dsync_writes.as_deref(), Some("inline"));
        assert_eq!(file.commit.rt_journal, Some(true));
        assert_eq!(file.commit.prewrite_ahead_bytes, Some(32 << 20));
        assert_eq!(file.commit.window_us, Some(500));
    }

    #[test]
    fn given_dsync_writes_when_the_setup_names_the_durability_then_it_says_where_they_run() {
        use clap::Parser;
        let named = |extra: &[&str]| {
            let mut argv = vec!["gonets-loadgen", "rt", "--embedded"];
            argv.extend_from_slice(extra);
            super::embedded_durability(&super::Args::parse_from(argv)).unwrap()
        };
        assert_eq!(
            named(&[]),
            "O_DSYNC batch writes, in an io-wq worker while rt and bulk both come"
        );
        assert_eq!(
            named(&["--dsync-writes", "worker"]),
            "O_DSYNC batch writes, in an io-wq worker"
        );
        assert_eq!(
            named(&["--dsync-writes", "inline"]),
            "O_DSYNC batch writes, inline"
        );
        assert_eq!(
            named(&["--commit-sync", "fdatasync", "--dsync-writes", "inline"]),
            "fdatasync group commit"
        );
    }

    #[test]
    fn given_no_sizes_when_commit_section_then_empty() {
        assert_eq!(commit_section(&CommitKeys::default()), "");
    }
}
