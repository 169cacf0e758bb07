//! gonets operator API: an HTTP/1.1 listener on its own port (default
//! `127.0.0.1:7480`) that serves health, readiness, queue stats, one
//! message's history, hub info (JSON), Prometheus metrics and a console
//! page (docs/operations.md, docs/operator-api.yaml).
//!
//! On loopback it serves plain HTTP; off loopback only HTTPS with mutual
//! TLS to clients whose certificate is an operator's ([`OperatorTls`]).
//!
//! It runs on its own thread with a small current-thread tokio runtime, off
//! the shards' cores. It asks the shards by message
//! ([`gonets_engine::HubHandle::shard_stats`], the `status` operation) and
//! never touches their state: the shards copy their plain counters into
//! their replies, so nothing is shared or locked on the hot path.
//!
//! The monitor (`monitor`, on the same thread) asks the shards every
//! `interval_ms`: provider states (`providers`), operator events on
//! `/events` (`events`, `sse`), and the SLA counts in time buckets on disk
//! (`sla_store`, `sla_report`, `timefmt`).
//!
//! Modules, one job each: `settings` (where it listens, and the loopback
//! rule, TLS), `server` (the thread, the accept loop, the TLS handshake and
//! operator check), `routes` (path to
//! handler, the list of served paths), `gather` (asking every shard),
//! `views` (JSON bodies), `metrics` (the Prometheus text), `reply` (JSON
//! responses and errors), `rss` (the process's resident memory),
//! `console` (the console page, embedded).

mod console;
mod error;
mod events;
mod gather;
mod metrics;
mod monitor;
mod providers;
mod reply;
mod routes;
mod rss;
mod server;
mod settings;
mod sla_report;
mod sla_store;
mod sse;
mod timefmt;
mod views;

pub use error::OperatorError;
pub use monitor::{
    MonitorSettings, DEADLINE_RISK_PERCENT_DEFAULT, MONITOR_INTERVAL_MS_DEFAULT,
    SLA_FLUSH_MS_DEFAULT,
};
pub use routes::ROUTES;
pub use server::{OperatorServer, RunningOperator};
pub use settings::{
    parse_listen, AuthorizeOperator, HubInfo, OperatorSettings, OperatorTls, ProfileInfo,
    OPERATOR_LISTEN_DEFAULT,
};
pub use sla_report::{report_json, report_table, PERIOD_MS_DEFAULT};
pub use sla_store::{sum_data_dir, Bucket, KindCounts, BUCKET_MS};
pub use timefmt::{format_time_ms, parse_time_ms};
