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
//! Modules, one job each: `settings` (where it listens, and the loopback
//! rule, TLS), `server` (the thread, the accept loop, the TLS handshake and
//! operator check), `routes` (path to
//! handler, the list of served paths), `gather` (asking every shard),
//! `views` (JSON bodies), `metrics` (the Prometheus text), `reply` (JSON
//! responses and errors), `rss` (the process's resident memory),
//! `console` (the console page, embedded).

mod console;
mod error;
mod gather;
mod metrics;
mod reply;
mod routes;
mod rss;
mod server;
mod settings;
mod views;

pub use error::OperatorError;
pub use routes::ROUTES;
pub use server::{OperatorServer, RunningOperator};
pub use settings::{
    parse_listen, AuthorizeOperator, HubInfo, OperatorSettings, OperatorTls, ProfileInfo,
    OPERATOR_LISTEN_DEFAULT,
};
