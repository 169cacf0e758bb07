//! The placement and settings `gonets hw detect` recommends for a machine,
//! each with the reason it is based on (written as a comment in the
//! profile). Pure functions of the facts, so every rule is tested here.

use super::disk::SyncLatency;
use super::topology::Topology;
use gonets_types::ids::MessageId;

/// Machines with fewer physical cores than this set none aside: every
/// core runs a shard and the OS and the operator thread float among them.
const CORES_TO_SET_ASIDE_MIN: usize = 4;
/// Machines with at least this many physical cores give the operator API
/// a core of its own.
const CORES_FOR_OWN_OPERATOR_CORE_MIN: usize = 8;
/// The default segment (ADR 0002: bigger preallocations hit a slow ext4 path).
pub(crate) const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
/// The smallest segment recommended when the disk is small.
const SEGMENT_BYTES_MIN: u64 = 8 << 20;
/// Segment files a fresh data directory holds per shard: two logs, each
/// with an active segment and a reserve (docs/operations.md, "A full disk").
const SEGMENTS_PER_SHARD_FRESH: u64 = 4;
/// Room to grow asked for on top of a fresh data directory.
const GROWTH_FACTOR: u64 = 16;
/// The group-commit window's bounds, µs: the upper one is the measured
/// default (bench/RESULTS.md, the 2-core VM).
const WINDOW_US_MIN: u64 = 50;
const WINDOW_US_MAX: u64 = 200;
/// Memory kept for the OS (page cache of the logs, other services): at
/// least this, bytes, or an eighth of the memory.
const OS_MEMORY_BYTES_MIN: u64 = 1 << 30;

/// A recommended value and what it is based on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Why<T> {
    pub(crate) value: T,
    pub(crate) based_on: String,
}

fn why<T>(value: T, based_on: impl Into<String>) -> Why<T> {
    Why {
        value,
        based_on: based_on.into(),
    }
}

/// Which cores run what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    /// Shard i runs on `shard_cores[i]`.
    pub(crate) shard_cores: Vec<usize>,
    /// Where the operator API's thread (and `serve`'s main thread) runs.
    pub(crate) operator_cores: Vec<usize>,
    /// Cores left to the OS, interrupts and other services.
    pub(crate) os_cores: Vec<usize>,
}

/// Which cores run what, and why.
pub(crate) fn placement(t: &Topology) -> Why<Placement> {
    let shards_max = usize::from(MessageId::SHARD_MAX) + 1;
    let first_threads = |cores: &[&Vec<usize>]| -> Vec<usize> {
        let mut v: Vec<usize> = cores.iter().map(|c| c[0]).collect();
        v.truncate(shards_max);
        v
    };
    if !t.isolated.is_empty() {
        let isolated: Vec<&Vec<usize>> = t
            .cores
            .iter()
            .filter(|c| t.isolated.contains(&c[0]))
            .collect();
        let rest: Vec<usize> = t
            .online
            .iter()
            .copied()
            .filter(|c| !t.isolated.contains(c))
            .collect();
        let operator = rest.last().map_or_else(Vec::new, |c| vec![*c]);
        return why(
            Placement {
                shard_cores: first_threads(&isolated),
                operator_cores: operator,
                os_cores: rest,
            },
            "isolated CPUs (isolcpus) found: one shard on the first thread of each isolated \
             core, the operator thread on the last CPU the scheduler still uses, the rest to the OS",
        );
    }
    let all: Vec<&Vec<usize>> = t.cores.iter().collect();
    if t.cores.len() < CORES_TO_SET_ASIDE_MIN {
        return why(
            Placement {
                shard_cores: first_threads(&all),
                operator_cores: t.online.clone(),
                os_cores: t.online.clone(),
            },
            format!(
                "{} physical cores, fewer than {CORES_TO_SET_ASIDE_MIN}: none is set aside; a \
                 shard per core, the OS and the operator thread float over every CPU",
                t.cores.len()
            ),
        );
    }
    set_aside(t)
}

/// One core per NUMA node to the OS, one more to the operator on big
/// machines, a shard on the first thread of every other core.
fn set_aside(t: &Topology) -> Why<Placement> {
    let mut reserved: Vec<&Vec<usize>> = Vec::new();
    for node in &t.nodes {
        if let Some(core) = t.cores.iter().find(|c| node.contains(&c[0])) {
            reserved.push(core);
        }
    }
    let os_threads: Vec<usize> = reserved.iter().flat_map(|c| c.iter().copied()).collect();
    let os_cores = super::cpulist::sorted(&os_threads);
    let own_operator = t.cores.len() >= CORES_FOR_OWN_OPERATOR_CORE_MIN;
    let operator_core = own_operator
        .then(|| t.cores.iter().find(|c| !reserved.contains(c)))
        .flatten();
    let operator_cores = match operator_core {
        Some(c) => {
            reserved.push(c);
            c.clone()
        }
        None => os_cores.clone(),
    };
    let mut shard_cores: Vec<usize> = t
        .cores
        .iter()
        .filter(|c| !reserved.contains(c))
        .map(|c| c[0])
        .collect();
    // Grouped by NUMA node, so a node's shards are neighbours in the list.
    shard_cores.sort_by_key(|&c| (t.node_of(c), c));
    shard_cores.truncate(usize::from(MessageId::SHARD_MAX) + 1);
    let operator_why = if own_operator {
        format!(
            "a core of its own for the operator thread ({CORES_FOR_OWN_OPERATOR_CORE_MIN}+ cores)"
        )
    } else {
        "the operator thread shares the OS cores".to_string()
    };
    why(
        Placement {
            shard_cores,
            operator_cores,
            os_cores,
        },
        format!(
            "{} physical cores on {} NUMA node(s): the first core of each node (with its \
             hyperthreads) to the OS and interrupts; {operator_why}; one shard on the first \
             thread of every other core (a shard's reactor busy-polls: its sibling thread \
             is left idle rather than shared)",
            t.cores.len(),
            t.nodes.len()
        ),
    )
}

/// The segment size: the default unless the disk cannot hold a fresh data
/// directory with room to grow, then halved until it can.
pub(crate) fn segment_size_bytes(free_bytes: u64, shards: usize) -> Why<u64> {
    let need = |seg: u64| seg * SEGMENTS_PER_SHARD_FRESH * GROWTH_FACTOR * shards.max(1) as u64;
    let mut seg = SEGMENT_BYTES_DEFAULT;
    while seg > SEGMENT_BYTES_MIN && need(seg) > free_bytes {
        seg /= 2;
    }
    let based_on = format!(
        "{} MiB free on the data disk; {shards} shard(s) x {SEGMENTS_PER_SHARD_FRESH} segments \
         (two logs, each with a reserve) x {GROWTH_FACTOR} for growth must fit; the default \
         is {} MiB (ADR 0002), the floor {} MiB",
        free_bytes >> 20,
        SEGMENT_BYTES_DEFAULT >> 20,
        SEGMENT_BYTES_MIN >> 20
    );
    why(seg, based_on)
}

/// The group-commit window: a quarter of one `fdatasync`, within bounds.
pub(crate) fn commit_window_us(sync: &SyncLatency) -> Why<u64> {
    let window = (sync.p50_us / 4).clamp(WINDOW_US_MIN, WINDOW_US_MAX);
    why(
        window,
        format!(
            "fdatasync p50 {} us here: wait a quarter of one sync for more appends (what \
             arrives during a sync joins the next batch anyway), between {WINDOW_US_MIN} and \
             {WINDOW_US_MAX} us (the measured default)",
            sync.p50_us
        ),
    )
}

/// The memory the hub may plan for: all but the OS's share.
pub(crate) fn memory_budget_bytes(memory_bytes: u64) -> Why<u64> {
    let os = OS_MEMORY_BYTES_MIN.max(memory_bytes / 8);
    let budget = memory_bytes.saturating_sub(os).max(memory_bytes / 2);
    why(
        budget,
        format!(
            "{} MiB of memory less the OS's share (an eighth, at least {} MiB, and never more \
             than half): answer queues hold their payloads in memory, so the registry's \
             answer-queue byte bounds should add up to less",
            memory_bytes >> 20,
            OS_MEMORY_BYTES_MIN >> 20
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(cores: Vec<Vec<usize>>, nodes: Vec<Vec<usize>>, isolated: Vec<usize>) -> Topology {
        let mut online: Vec<usize> = cores.concat();
        online.sort_unstable();
        Topology {
            online,
            nodes,
            cores,
            isolated,
            memory_bytes: 8 << 30,
        }
    }

    #[test]
    fn given_a_two_core_vm_when_placed_then_a_shard_per_core_and_nothing_set_aside() {
        let t = topology(vec![vec![0], vec![1]], vec![vec![0, 1]], vec![]);
        let p = placement(&t).value;
        assert_eq!(p.shard_cores, vec![0, 1]);
        assert_eq!(p.operator_cores, vec![0, 1]);
        assert_eq!(p.os_cores, vec![0, 1]);
    }

    #[test]
    fn given_16_cores_with_hyperthreads_when_placed_then_os_and_operator_cores_are_set_aside() {
        let cores: Vec<Vec<usize>> = (0..16).map(|c| vec![c, c + 16]).collect();
        let t = topology(cores, vec![(0..32).collect()], vec![]);
        let p = placement(&t).value;
        assert_eq!(p.os_cores, vec![0, 16]);
        assert_eq!(p.operator_cores, vec![1, 17]);
        assert_eq!(p.shard_cores, (2..16).collect::<Vec<_>>());
    }

    #[test]
    fn given_two_numa_nodes_when_placed_then_each_node_keeps_an_os_core() {
        // Node 0: cores 0-7 (threads +16), node 1: cores 8-15.
        let cores: Vec<Vec<usize>> = (0..16).map(|c| vec![c, c + 16]).collect();
        let nodes = vec![
            (0..8).chain(16..24).collect(),
            (8..16).chain(24..32).collect(),
        ];
        let p = placement(&topology(cores, nodes, vec![])).value;
        assert_eq!(p.os_cores, vec![0, 8, 16, 24]);
        assert_eq!(p.operator_cores, vec![1, 17]);
        let expected: Vec<usize> = (2..8).chain(9..16).collect();
        assert_eq!(p.shard_cores, expected);
    }

    #[test]
    fn given_isolated_cpus_when_placed_then_shards_run_only_there() {
        let cores: Vec<Vec<usize>> = (0..4).map(|c| vec![c]).collect();
        let p = placement(&topology(cores, vec![(0..4).collect()], vec![2, 3])).value;
        assert_eq!(p.shard_cores, vec![2, 3]);
        assert_eq!(p.os_cores, vec![0, 1]);
        assert_eq!(p.operator_cores, vec![1]);
    }

    #[test]
    fn given_a_small_disk_when_sized_then_segments_shrink_to_fit_but_not_below_the_floor() {
        assert_eq!(segment_size_bytes(1 << 40, 8).value, 64 << 20);
        assert_eq!(segment_size_bytes(2 << 30, 2).value, 16 << 20);
        assert_eq!(segment_size_bytes(1 << 20, 2).value, 8 << 20);
    }

    #[test]
    fn given_sync_latencies_when_windowed_then_a_quarter_within_bounds() {
        let lat = |p50_us| SyncLatency {
            samples: 200,
            p50_us,
            p99_us: p50_us * 2,
        };
        assert_eq!(commit_window_us(&lat(20)).value, 50);
        assert_eq!(commit_window_us(&lat(400)).value, 100);
        assert_eq!(commit_window_us(&lat(5_000)).value, 200);
    }

    #[test]
    fn given_memory_when_budgeted_then_the_os_keeps_an_eighth_or_a_gib() {
        assert_eq!(memory_budget_bytes(64 << 30).value, 56 << 30);
        assert_eq!(memory_budget_bytes(4 << 30).value, 3 << 30);
        assert_eq!(memory_budget_bytes(1 << 30).value, 512 << 20);
    }
}
