//! The profile `gonets hw detect` writes: TOML text with a comment on
//! every recommendation saying what it is based on (serde would drop
//! comments, so the text is written here and read back by
//! [`super::profile::Profile`] in the tests).

use super::cpulist;
use super::disk::{Disk, SyncLatency};
use super::recommend::{self, Placement, Why};
use super::topology::Topology;
use super::uring::IoUring;
use std::fmt::Write as _;

/// Everything detected on a machine.
#[derive(Clone, Debug)]
pub(crate) struct Detected {
    pub(crate) host: String,
    pub(crate) kernel: String,
    pub(crate) topology: Topology,
    /// `None`: unlimited.
    pub(crate) memlock_bytes: Option<u64>,
    pub(crate) data_dir: String,
    pub(crate) disk: Disk,
    pub(crate) sync: SyncLatency,
    pub(crate) io_uring: IoUring,
}

/// What is recommended for it.
pub(crate) struct Recommended {
    pub(crate) placement: Why<Placement>,
    pub(crate) window_us: Why<u64>,
    pub(crate) segment_size_bytes: Why<u64>,
    pub(crate) budget_bytes: Why<u64>,
}

impl Recommended {
    /// The recommendations for `d`.
    pub(crate) fn for_machine(d: &Detected) -> Recommended {
        let placement = recommend::placement(&d.topology);
        let shards = placement.value.shard_cores.len();
        Recommended {
            window_us: recommend::commit_window_us(&d.sync),
            segment_size_bytes: recommend::segment_size_bytes(d.disk.free_bytes, shards),
            budget_bytes: recommend::memory_budget_bytes(d.topology.memory_bytes),
            placement,
        }
    }
}

fn quoted_list(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", q.join(", "))
}

fn numbers(cpus: &[usize]) -> String {
    let s: Vec<String> = cpus.iter().map(usize::to_string).collect();
    format!("[{}]", s.join(", "))
}

/// The profile text for `d` with `r`, named `name`, stamped `when`.
pub(crate) fn profile_text(d: &Detected, r: &Recommended, name: &str, when: &str) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# gonets hardware profile, written by `gonets hw detect` on {} ({when}).",
        d.host
    );
    t.push_str("# Use: gonets serve --profile FILE (keys of --config win; docs/operations.md).\n");
    t.push_str("# [machine] is what was found (serve reads none of it); the other sections\n");
    t.push_str("# are what serve applies, each with what it is based on.\n\n");
    let _ = writeln!(t, "[profile]\nname = {name:?}\nsource = \"detected\"");
    let desc = format!(
        "{} CPUs, {} physical cores, {} NUMA node(s), {} MiB, data disk {} ({})",
        d.topology.online.len(),
        d.topology.cores.len(),
        d.topology.nodes.len(),
        d.topology.memory_bytes >> 20,
        d.disk.device,
        d.disk.model
    );
    let _ = writeln!(t, "description = {desc:?}\n");
    machine(&mut t, d);
    settings(&mut t, r);
    t
}

fn machine(t: &mut String, d: &Detected) {
    let topo = &d.topology;
    let nodes: Vec<String> = topo.nodes.iter().map(|n| cpulist::format(n)).collect();
    let cores: Vec<String> = topo.cores.iter().map(|c| cpulist::format(c)).collect();
    let memlock = d
        .memlock_bytes
        .map_or_else(|| "unlimited".to_string(), |b| b.to_string());
    let _ = writeln!(t, "[machine]\nkernel = {:?}", d.kernel);
    let _ = writeln!(t, "cpus_online = {:?}", cpulist::format(&topo.online));
    let _ = writeln!(t, "numa_nodes = {}  # node i's CPUs", quoted_list(&nodes));
    let _ = writeln!(
        t,
        "physical_cores = {}  # each core's hyperthreads",
        quoted_list(&cores)
    );
    let _ = writeln!(
        t,
        "isolated_cpus = {:?}  # isolcpus=",
        cpulist::format(&topo.isolated)
    );
    let _ = writeln!(t, "memory_bytes = {}", topo.memory_bytes);
    let _ = writeln!(
        t,
        "memlock = {memlock:?}  # RLIMIT_MEMLOCK of the shell that ran detect\n"
    );
    let disk = &d.disk;
    let _ = writeln!(t, "[machine.disk]\ndata_dir = {:?}", d.data_dir);
    let _ = writeln!(t, "device = {:?}\nmodel = {:?}", disk.device, disk.model);
    let _ = writeln!(t, "rotational = {}\nnvme = {}", disk.rotational, disk.nvme);
    let _ = writeln!(t, "free_bytes = {}", disk.free_bytes);
    let _ = writeln!(
        t,
        "fdatasync_samples = {}  # 4 KiB overwrite + fdatasync each",
        d.sync.samples
    );
    let _ = writeln!(
        t,
        "fdatasync_p50_us = {}\nfdatasync_p99_us = {}\n",
        d.sync.p50_us, d.sync.p99_us
    );
    let u = &d.io_uring;
    let _ = writeln!(t, "[machine.io_uring]\navailable = {}", u.available);
    if let Some(e) = &u.error {
        let _ = writeln!(t, "# io_uring_setup failed: {e}");
    }
    if let Some(s) = u.disabled_sysctl {
        let _ = writeln!(t, "# kernel.io_uring_disabled = {s}");
    }
    let _ = writeln!(t, "features = {}\n", quoted_list(&u.features));
}

fn settings(t: &mut String, r: &Recommended) {
    let p = &r.placement.value;
    let _ = writeln!(t, "[placement]\n# {}", r.placement.based_on);
    let _ = writeln!(
        t,
        "shard_cores = {}  # shard i on shard_cores[i]",
        numbers(&p.shard_cores)
    );
    let _ = writeln!(
        t,
        "operator_cores = {}  # the operator API's thread",
        numbers(&p.operator_cores)
    );
    let _ = writeln!(t, "os_cores = {}\n", numbers(&p.os_cores));
    let _ = writeln!(t, "[commit]\n# {}", r.window_us.based_on);
    let _ = writeln!(t, "window_us = {}", r.window_us.value);
    let _ = writeln!(t, "# {}", r.segment_size_bytes.based_on);
    let _ = writeln!(t, "segment_size_bytes = {}\n", r.segment_size_bytes.value);
    let _ = writeln!(t, "[memory]\n# {}", r.budget_bytes.based_on);
    let _ = writeln!(t, "budget_bytes = {}", r.budget_bytes.value);
}

/// Profiles for the tests of other modules.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::hw::profile::Profile;
    use std::path::Path;

    /// A detected 4-CPU NVMe machine (two cores with two threads each).
    pub(crate) fn detected() -> Detected {
        Detected {
            host: "test".into(),
            kernel: "6.1.0".into(),
            topology: Topology {
                online: vec![0, 1, 2, 3],
                nodes: vec![vec![0, 1, 2, 3]],
                cores: vec![vec![0, 2], vec![1, 3]],
                isolated: vec![],
                memory_bytes: 4 << 30,
            },
            memlock_bytes: None,
            data_dir: "/var/lib/gonets".into(),
            disk: Disk {
                device: "nvme0n1".into(),
                model: "Some \"quoted\" NVMe".into(),
                rotational: false,
                nvme: true,
                free_bytes: 100 << 30,
            },
            sync: SyncLatency {
                samples: 200,
                p50_us: 40,
                p99_us: 90,
            },
            io_uring: IoUring {
                available: true,
                error: None,
                features: vec!["single_mmap".into(), "nodrop".into()],
                disabled_sysctl: Some(0),
            },
        }
    }

    /// The profile detect writes for a machine whose cores are `cores`
    /// (one thread each): a shard on each.
    pub(crate) fn profile_for_cores(cores: &[usize]) -> Profile {
        let mut d = detected();
        d.topology.online = cores.to_vec();
        d.topology.nodes = vec![cores.to_vec()];
        d.topology.cores = cores.iter().map(|c| vec![*c]).collect();
        let text = profile_text(&d, &Recommended::for_machine(&d), "test", "now");
        Profile::parse(&text, Path::new("test.toml")).expect("a detected profile parses")
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::detected;
    use super::*;
    use crate::hw::profile::Profile;
    use std::path::Path;

    #[test]
    fn given_a_detected_machine_when_rendered_then_the_text_reads_back_as_the_same_profile() {
        let d = detected();
        let r = Recommended::for_machine(&d);
        let text = profile_text(&d, &r, "test-box", "now");
        let p =
            Profile::parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(p.placement.shard_cores, vec![0, 1]);
        assert_eq!(p.commit.window_us, 50);
        assert_eq!(p.commit.segment_size_bytes, 64 << 20);
        assert_eq!(p.memory.budget_bytes, 3 << 30);
        assert_eq!(p.machine.physical_cores, vec!["0,2", "1,3"]);
        assert_eq!(p.machine.disk.model, "Some \"quoted\" NVMe");
        assert_eq!(p.machine.memlock, "unlimited");
        assert!(text.contains("# fdatasync p50 40 us here"), "{text}");
    }

    #[test]
    fn given_an_unknown_key_when_parsed_then_refused_naming_the_key() {
        let d = detected();
        let text = profile_text(&d, &Recommended::for_machine(&d), "x", "now")
            .replace("[memory]\n", "[memory]\nbudget_gigs = 3\n");
        let e = Profile::parse(&text, Path::new("bad.toml")).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("bad.toml") && m.contains("budget_gigs"), "{m}");
    }

    #[test]
    fn given_a_core_this_machine_lacks_when_checked_then_refused_naming_key_cpu_and_online() {
        let d = detected();
        let text = profile_text(&d, &Recommended::for_machine(&d), "x", "now");
        let p = Profile::parse(&text, Path::new("p.toml")).unwrap();
        let e = p.check_cpus(Path::new("p.toml"), &[0]).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("placement.shard_cores names CPU 1"), "{m}");
        assert!(m.contains("may run on CPUs 0 only"), "{m}");
        assert!(p.check_cpus(Path::new("p.toml"), &[0, 1, 2, 3]).is_ok());
    }

    #[test]
    fn given_bad_values_when_parsed_then_each_is_refused_with_its_key() {
        let d = detected();
        let good = profile_text(&d, &Recommended::for_machine(&d), "x", "now");
        let cases = [
            ("window_us = 50", "window_us = 5000000", "commit.window_us"),
            (
                "segment_size_bytes = 67108864",
                "segment_size_bytes = 1000",
                "commit.segment_size_bytes",
            ),
            (
                "shard_cores = [0, 1]",
                "shard_cores = [1, 1]",
                "placement.shard_cores",
            ),
            (
                "shard_cores = [0, 1]",
                "shard_cores = []",
                "placement.shard_cores",
            ),
            (
                "source = \"detected\"",
                "source = \"guessed\"",
                "profile.source",
            ),
            (
                "cpus_online = \"0-3\"",
                "cpus_online = \"0-x\"",
                "machine.cpus_online",
            ),
        ];
        for (from, to, key) in cases {
            assert!(good.contains(from), "{from} not in\n{good}");
            let e = Profile::parse(&good.replace(from, to), Path::new("p.toml")).unwrap_err();
            assert!(e.to_string().contains(key), "{to}: {e}");
        }
    }
}
