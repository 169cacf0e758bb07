//! The gonets driver: the workloads against a gonets hub over the real
//! protocol, one glommio executor per generator core.

pub mod attachment;
pub mod conn;
pub mod engine;
mod http_call;
pub mod workloads;

pub use conn::{Conn, GonetsTarget};
