//! gonets-loadgen: the named workloads of DESIGN.md §4 against a gonets hub
//! (or, for comparison, NATS JetStream), open loop, thread per core, with
//! per-core HDR histograms merged at the end. See `loadgen/README.md`.

pub mod agency_record;
pub mod disk_ways;
pub mod embedded;
pub mod gonets;
pub mod hub_counters;
pub mod inprocess;
pub mod limits;
pub mod nats;
pub mod params;
pub mod plot;
pub mod process;
pub mod record;
pub mod registry;
pub mod report;
pub mod result;
pub mod scenario;
pub mod schedule;
pub mod storage_report;
