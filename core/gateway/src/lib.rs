//! The gonets HTTP/JSON gateway: every operation of DESIGN.md §2 over
//! HTTP/1.1, for agency systems that speak HTTP and JSON rather than the
//! native protocol (docs/gateway.md). The same identities as the native
//! port (mutual TLS; development tokens as HTTP Basic on loopback), the
//! same `Command`s run on the same shards, every typed error one HTTP
//! status and an RFC 9457 problem with its stable code, and an OpenAPI
//! 3.1 contract generated from the route table (`/v1/openapi.json`).
//!
//! It runs on its own thread (a current-thread tokio runtime), off the
//! shards' cores, and reaches the shards by message (docs/adr/0021).

mod attachments;
mod body;
mod error;
mod openapi;
mod ops;
mod problem;
mod request;
mod routes;
mod server;
mod settings;
mod stream;
mod views;

pub use error::GatewayError;
pub use openapi::document as openapi_document;
pub use problem::{status_of, Problem, PROBLEM_TYPE_PREFIX};
pub use request::{
    EXPIRES_IN_MS, EXPIRES_IN_MS_MAX, IDEMPOTENCY_KEY, SIGNATURE, STATE_SECRET, TEST, TRANSACTION,
};
pub use routes::{Op, Route, ROUTES};
pub use server::{GatewayServer, RunningGateway};
pub use settings::{
    parse_listen, GatewayAuth, GatewaySettings, IdentifyClient, BODY_BYTES_MAX_DEFAULT,
    FETCH_MAX_DEFAULT, FETCH_WAIT_MS_MAX, GATEWAY_LISTEN_SUGGESTED,
};
