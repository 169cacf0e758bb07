//! The parameters of the workloads, shared by the gonets and NATS drivers
//! so that both run exactly the same load.

use crate::agency_record::PayloadFormat;
use std::time::Duration;

/// Where the generator's threads run.
#[derive(Clone, Debug, PartialEq)]
pub struct Cores {
    /// One generator thread per entry, pinned to that CPU (None: unpinned).
    pub pins: Vec<Option<usize>>,
    /// Threads of the rt half's own, one pinned to each of these CPUs
    /// (`--rt-cores`): the real-time consumers and providers then run apart
    /// from the bulk senders and drainers, as separate agency systems do, so
    /// an rt call never waits behind the generator's own bulk work. Empty:
    /// every thread of `pins` runs both halves.
    pub rt_pins: Vec<usize>,
}

impl Cores {
    /// `n` unpinned threads.
    pub fn unpinned(n: usize) -> Cores {
        assert!(n > 0, "at least one generator thread");
        Cores {
            pins: vec![None; n],
            rt_pins: Vec::new(),
        }
    }

    /// One thread pinned to each of `cpus`.
    pub fn pinned(cpus: &[usize]) -> Cores {
        assert!(!cpus.is_empty(), "at least one generator core");
        Cores {
            pins: cpus.iter().map(|&c| Some(c)).collect(),
            rt_pins: Vec::new(),
        }
    }

    /// These cores, with the rt half on threads of its own pinned to `cpus`.
    pub fn with_rt_apart(mut self, cpus: &[usize]) -> Cores {
        self.rt_pins = cpus.to_vec();
        self
    }

    /// Generator threads, the rt half's own included.
    pub fn count(&self) -> usize {
        self.pins.len() + self.rt_pins.len()
    }

    /// Every thread's pin: `pins`, then the rt half's own.
    pub fn all_pins(&self) -> Vec<Option<usize>> {
        let apart = self.rt_pins.iter().map(|&c| Some(c));
        self.pins.iter().copied().chain(apart).collect()
    }

    /// The threads (indices into [`Cores::all_pins`]) that run the rt half.
    pub fn rt_threads(&self) -> Vec<usize> {
        if self.rt_pins.is_empty() {
            (0..self.pins.len()).collect()
        } else {
            (self.pins.len()..self.count()).collect()
        }
    }

    /// The threads that run the bulk half.
    pub fn bulk_threads(&self) -> Vec<usize> {
        (0..self.pins.len()).collect()
    }
}

/// The `rt` workload: C consumers call a realtime kind at a total open-loop
/// rate R; P providers answer; latency from each call's scheduled time to
/// the consumer's receipt of the durable answer.
#[derive(Clone, Debug, PartialEq)]
pub struct RtParams {
    /// Total calls per second over all consumers.
    pub rate_per_s: f64,
    /// Unmeasured seconds first.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
    /// Request payload, bytes (DESIGN.md: 1 KiB).
    pub request_bytes: usize,
    /// Answer payload, bytes (DESIGN.md: 2 KiB).
    pub answer_bytes: usize,
    /// Consumers (participants) calling.
    pub consumers: usize,
    /// Providers (participants), one realtime kind each; calls go round robin.
    pub providers: usize,
    /// Largest generator lag before the run is marked invalid.
    pub lag_max: Duration,
    /// Calls in flight per generator thread beyond which a call is not sent.
    pub outstanding_max: u64,
}

/// The `bulk` workload: N requests pipelined by S senders (W in flight
/// each), drained by P providers with ack.
#[derive(Clone, Debug, PartialEq)]
pub struct BulkParams {
    /// Requests in all.
    pub messages: u64,
    /// Payload per request, bytes (DESIGN.md: 4 KiB).
    pub message_bytes: usize,
    /// Senders (consumer participants), each its own connection.
    pub senders: usize,
    /// Requests in flight per sender.
    pub window: usize,
    /// Providers draining (one async kind each).
    pub providers: usize,
    /// How long to wait for the drain after the last acceptance.
    pub drain_timeout: Duration,
    /// Requests per frame (`send_requests`) and acks per `ack_many` (the
    /// providers fetch up to this many); 1 = the single-message operations.
    pub batch: usize,
    /// The bulk kinds' request format and so the payloads sent: filler
    /// bytes, or agency records checked against a JSON Schema at the door.
    pub format: PayloadFormat,
}

/// Fewest fetch loops a draining provider runs with `batch` > 1.
const FETCH_LANES_MIN: usize = 4;
/// Most fetch loops a draining provider runs.
const FETCH_LANES_MAX: usize = 64;

impl BulkParams {
    /// Fetch loops per draining provider with `batch` > 1: twice as many
    /// as the batches a kind's senders keep in flight (`senders × window /
    /// providers`; twice, since a loop spends half its round trips on its
    /// `ack_many`), so the drain keeps pace with the senders rather than
    /// falling behind by a share the generator fixed. With 4 loops against
    /// 4 senders × 4 batches on 2 kinds the drain took 14k msg/s while
    /// 37k/s were accepted, and the run measured a backlog read back from
    /// disk (bench/RESULTS.md, "Issue 15, third step"); with 8, 1.1 GB of
    /// the 1.2 GB sent was still read back.
    pub fn fetch_lanes(&self) -> usize {
        (2 * self.senders * self.window)
            .div_ceil(self.providers.max(1))
            .clamp(FETCH_LANES_MIN, FETCH_LANES_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_no_rt_cores_when_roles_are_read_then_every_thread_runs_both_halves() {
        let c = Cores::pinned(&[3, 4]);
        assert_eq!(c.count(), 2);
        assert_eq!(c.all_pins(), vec![Some(3), Some(4)]);
        assert_eq!(c.rt_threads(), vec![0, 1]);
        assert_eq!(c.bulk_threads(), vec![0, 1]);
    }

    #[test]
    fn given_rt_cores_when_roles_are_read_then_rt_runs_only_on_its_own_threads() {
        let c = Cores::pinned(&[3, 4]).with_rt_apart(&[5]);
        assert_eq!(c.count(), 3);
        assert_eq!(c.all_pins(), vec![Some(3), Some(4), Some(5)]);
        assert_eq!(c.rt_threads(), vec![2]);
        assert_eq!(c.bulk_threads(), vec![0, 1]);
        let u = Cores::unpinned(1).with_rt_apart(&[0, 1]);
        assert_eq!(u.rt_threads(), vec![1, 2]);
        assert_eq!(u.bulk_threads(), vec![0]);
    }
}
