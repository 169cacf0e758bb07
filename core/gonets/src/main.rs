//! `gonets`: the hub server and its tools.
//!
//! - `gonets serve [--config FILE]`: run the hub (docs/operations.md).
//! - `gonets demo`: a hub on loopback with TLS and three demo agencies
//!   exchanging realtime and bulk traffic for about 10 s, then a report.
//! - `gonets certs dev [--dir DIR]`: a development CA, server and client certificates.
//! - `gonets repair [DATA_DIR]`: set damaged committed records aside so the
//!   hub starts and serves the rest (docs/storage.md §7.4).
//! - `gonets status ID`, `gonets queues`: read a running hub.
//! - `gonets hw detect [--out FILE]`, `gonets hw check FILE`: hardware
//!   profiles (hw-profiles/), which `serve --profile FILE` applies.
//! - `gonets report sla [--from T] [--to T]`: the SLA report from a data directory.
//! - `gonets verify DATA_DIR [--anchors FILE] [--hub-key FILE]`, `gonets
//!   anchors DATA_DIR`, `gonets audit DATA_DIR`, `gonets verify-receipt FILE
//!   --hub-key FILE`: the auditor's checks (docs/adr/0020).

mod admin;
mod demo;
mod heap;
mod hw;
mod repair;
mod report;
mod serve;
mod trust_cmds;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gonets",
    version,
    about = "gonets: the relay core of an inter-agency data exchange"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub server until SIGTERM or SIGINT.
    Serve {
        /// TOML configuration (default: loopback, embedded demo registry, development TLS);
        /// relative paths in it are relative to its own directory.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The operator API's address (loopback only), or `none` to turn it
        /// off; overrides the file's `operator_listen` (default 127.0.0.1:7480).
        #[arg(long, value_name = "ADDR|none")]
        operator_listen: Option<String>,
        /// The HTTP/JSON gateway's address (loopback unless TLS), or `none`;
        /// overrides the file's `gateway_listen` (default: none, off).
        #[arg(long, value_name = "ADDR|none")]
        gateway_listen: Option<String>,
        /// A hardware profile (`gonets hw detect`, hw-profiles/): its placement
        /// and settings fill the keys the config leaves unset (the config wins).
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
    },
    /// Start a hub on loopback with TLS, run demo agencies against it for a
    /// few seconds and print a report.
    Demo {
        /// Seconds of traffic (realtime, then bulk).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Where the hub keeps its data (default: ./gonets-demo, replaced on every run).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Shards (default: one per core).
        #[arg(long)]
        shards: Option<u16>,
        /// History-index entries a shard holds before it writes an index run
        /// (default: the hub's, 65536; a small value shows runs in a short demo).
        #[arg(long)]
        index_table_entries_max: Option<usize>,
    },
    /// Set damaged committed records aside (copied to each log's
    /// quarantine/ with a report) so the hub starts and serves everything
    /// else. Run it with the hub stopped, after `serve` refused to start.
    Repair {
        /// The data directory (default: the config's, else ./gonets-data).
        data_dir: Option<PathBuf>,
        /// The TOML configuration `serve` runs with (for the segment size).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Hardware profiles: detect this machine, or check a profile against it.
    Hw {
        #[command(subcommand)]
        command: HwCommand,
    },
    /// Certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Print the history of a message from a running hub.
    Status {
        /// The request's or answer's id.
        id: String,
        #[command(flatten)]
        connect: admin::ConnectArgs,
    },
    /// Print every queue's depth, in-flight count and oldest age from a running hub.
    Queues {
        #[command(flatten)]
        connect: admin::ConnectArgs,
    },
    /// Check a stopped hub's data directory: every record CRC, every
    /// commit marker, the hash chain, every in-log anchor, and (with
    /// --anchors) every exported anchor. Exit 0 verified, 1 a break, 2
    /// usage or I/O error. Read-only.
    Verify {
        /// The data directory.
        data_dir: PathBuf,
        /// Anchors exported earlier (`gonets anchors`, the operator API's
        /// /anchors): one JSON line each. Without them authenticity is not proven.
        #[arg(long, value_name = "FILE")]
        anchors: Option<PathBuf>,
        /// The hub's public key (default DATA_DIR/hub.pub).
        #[arg(long, value_name = "FILE")]
        hub_key: Option<PathBuf>,
    },
    /// Print every chain anchor in a stopped hub's logs, one JSON line
    /// each: what an auditor copies away and keeps.
    Anchors {
        /// The data directory.
        data_dir: PathBuf,
    },
    /// Print every audit record (refusals: state secret, bad signature,
    /// not authorised) in a stopped hub's logs, one JSON line each.
    Audit {
        /// The data directory.
        data_dir: PathBuf,
    },
    /// Check a receipt the hub signed: prints OK and its fields, or why
    /// not (exit 1).
    VerifyReceipt {
        /// The receipt's JSON (`-`: standard input).
        file: PathBuf,
        /// The hub's public key (`hub.pub`).
        #[arg(long, value_name = "FILE")]
        hub_key: PathBuf,
    },
    /// Print the HTTP gateway's OpenAPI 3.1 contract (as served at
    /// `/v1/openapi.json`; docs/gateway/openapi.json).
    Openapi,
    /// Reports read from a data directory.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Per data kind and provider over a period: requests, answered in
    /// time and late, refused by code, expired, p50/p99 time to answer,
    /// the share within 2 s for real-time kinds; test traffic apart. Reads
    /// the SLA files of the data directory (the hub may be running; the
    /// last `sla_flush_ms` of counts may not be written yet).
    Sla {
        /// Start, inclusive: Unix ms or UTC (2026-12-02T13:00:00Z, 2026-12-02);
        /// default a day before `--to`.
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive (default now).
        #[arg(long)]
        to: Option<String>,
        /// The data directory (default: the config's, else ./gonets-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The TOML configuration `serve` runs with (for its data directory).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the JSON the operator API's `/sla` gives instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Make a development CA, a server certificate (localhost, 127.0.0.1) and
    /// a client certificate for every participant of the registry.
    Dev {
        /// Output directory.
        #[arg(long, default_value = "gonets-data/dev-certs")]
        dir: PathBuf,
        /// Registry file (default: the embedded demo registry).
        #[arg(long)]
        registry: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum HwCommand {
    /// Look at this machine (CPUs, NUMA nodes, memory, the data disk and its
    /// fdatasync latency, io_uring, the locked-memory limit) and write a
    /// profile with the placement and settings recommended for it.
    Detect {
        /// The directory whose disk is measured (default ./gonets-data; made if missing).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where to write the profile (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The profile's name (default: the host name).
        #[arg(long)]
        name: Option<String>,
        /// Most fdatasync samples (each a 4 KiB overwrite and an fdatasync).
        #[arg(long, default_value_t = 200)]
        samples: u32,
        /// Most time the samples may take, ms.
        #[arg(long, default_value_t = 2_000)]
        time_budget_ms: u64,
    },
    /// Read a profile, check it against this machine and print what
    /// `serve --profile` would apply, and the systemd unit's lines.
    Check {
        /// The profile.
        profile: PathBuf,
        /// The configuration `serve` runs with (its keys win over the profile's).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The default address of a local hub.
pub(crate) fn default_addr() -> SocketAddr {
    gonets_server::config_file::LISTEN_DEFAULT
        .parse()
        .expect("the default address parses")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify {
            data_dir,
            anchors,
            hub_key,
        } => {
            let data_dir = trust_cmds::absolute(data_dir);
            return trust_cmds::verify(&data_dir, anchors.as_deref(), hub_key.as_deref());
        }
        Command::Anchors { data_dir } => return trust_cmds::list(&data_dir, false),
        Command::Audit { data_dir } => return trust_cmds::list(&data_dir, true),
        Command::VerifyReceipt { file, hub_key } => {
            return trust_cmds::verify_receipt(&file, &hub_key)
        }
        Command::Openapi => {
            let doc = gonets_gateway::openapi_document();
            println!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
            Ok(())
        }
        Command::Serve {
            config,
            operator_listen,
            gateway_listen,
            profile,
        } => serve::run(config, operator_listen, gateway_listen, profile),
        Command::Demo {
            seconds,
            data_dir,
            shards,
            index_table_entries_max,
        } => demo::run(demo::DemoArgs {
            seconds,
            data_dir,
            shards,
            index_table_entries_max,
        }),
        Command::Repair { data_dir, config } => repair::run(data_dir, config),
        Command::Hw {
            command:
                HwCommand::Detect {
                    data_dir,
                    out,
                    name,
                    samples,
                    time_budget_ms,
                },
        } => hw::detect(hw::DetectArgs {
            data_dir,
            out,
            name,
            samples,
            time_budget_ms,
        }),
        Command::Hw {
            command: HwCommand::Check { profile, config },
        } => hw::check(&profile, config.as_deref()),
        Command::Certs {
            command: CertsCommand::Dev { dir, registry },
        } => admin::certs_dev(&dir, registry.as_deref()),
        Command::Status { id, connect } => admin::status(&id, &connect),
        Command::Queues { connect } => admin::queues(&connect),
        Command::Report {
            command:
                ReportCommand::Sla {
                    from,
                    to,
                    data_dir,
                    config,
                    json,
                },
        } => report::sla(report::SlaArgs {
            from,
            to,
            data_dir,
            config,
            json,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gonets: error: {e}");
            ExitCode::FAILURE
        }
    }
}
