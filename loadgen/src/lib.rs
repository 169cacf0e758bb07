//! gonets-loadgen: the named workloads of DESIGN.md §4 against a gonets hub
//! (or, for comparison, NATS JetStream), open loop, thread per core, with
//! per-core HDR histograms merged at the end. See `loadgen/README.md`.

pub mod process;
pub mod record;
pub mod result;
pub mod schedule;
pub mod nats;
pub mod params;
