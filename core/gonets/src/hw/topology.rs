//! The machine's CPUs and memory as the kernel describes them: online
//! CPUs, each one's NUMA node and hyperthread siblings, the isolated CPUs
//! (`isolcpus=`), total memory and the locked-memory limit. Read from a
//! sysfs root (`/sys`, or a copy in tests) and `/proc/meminfo`.

use super::cpulist;
use std::path::Path;

/// CPUs, NUMA nodes, siblings and memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Topology {
    /// Online CPUs, sorted.
    pub(crate) online: Vec<usize>,
    /// Each NUMA node's online CPUs, by node number (one node without NUMA).
    pub(crate) nodes: Vec<Vec<usize>>,
    /// Physical cores: each one's online hyperthreads, sorted by first CPU.
    pub(crate) cores: Vec<Vec<usize>>,
    /// CPUs the kernel keeps the scheduler off (`isolcpus=`), online ones.
    pub(crate) isolated: Vec<usize>,
    /// Total memory, bytes.
    pub(crate) memory_bytes: u64,
}

impl Topology {
    /// Keeps only the CPUs in `allowed` (the process's affinity: a
    /// container's `--cpuset-cpus`, a unit's `CPUAffinity=`), where /sys
    /// still lists every CPU of the host. Cores and nodes left empty go.
    pub(crate) fn restrict_to(&mut self, allowed: &[usize]) {
        let keep = |cpus: &mut Vec<usize>| cpus.retain(|c| allowed.contains(c));
        keep(&mut self.online);
        keep(&mut self.isolated);
        self.cores.iter_mut().for_each(keep);
        self.cores.retain(|c| !c.is_empty());
        self.nodes.iter_mut().for_each(keep);
    }

    /// The NUMA node of `cpu` (0 when no node lists it).
    pub(crate) fn node_of(&self, cpu: usize) -> usize {
        self.nodes
            .iter()
            .position(|n| n.contains(&cpu))
            .unwrap_or(0)
    }
}

fn read_list(path: &Path) -> Result<Vec<usize>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    cpulist::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads the topology under the sysfs root `sys`, memory from `meminfo`.
pub(crate) fn read(sys: &Path, meminfo: &Path) -> Result<Topology, String> {
    let cpu_dir = sys.join("devices/system/cpu");
    let online = read_list(&cpu_dir.join("online"))?;
    if online.is_empty() {
        return Err(format!("{} lists no CPU", cpu_dir.join("online").display()));
    }
    let isolated = match read_list(&cpu_dir.join("isolated")) {
        Ok(list) => list.into_iter().filter(|c| online.contains(c)).collect(),
        // Kernels without the file isolate nothing.
        Err(_) => Vec::new(),
    };
    let mut cores: Vec<Vec<usize>> = Vec::new();
    for &cpu in &online {
        let path = cpu_dir.join(format!("cpu{cpu}/topology/thread_siblings_list"));
        let siblings: Vec<usize> = read_list(&path)
            .unwrap_or_else(|_| vec![cpu])
            .into_iter()
            .filter(|c| online.contains(c))
            .collect();
        if !cores.contains(&siblings) {
            cores.push(siblings);
        }
    }
    cores.sort_by_key(|c| c.first().copied());
    Ok(Topology {
        nodes: numa_nodes(sys, &online),
        online,
        cores,
        isolated,
        memory_bytes: memory_bytes(meminfo)?,
    })
}

/// Each NUMA node's online CPUs; one node with every CPU where sysfs has no nodes.
fn numa_nodes(sys: &Path, online: &[usize]) -> Vec<Vec<usize>> {
    let node_dir = sys.join("devices/system/node");
    let ids = read_list(&node_dir.join("online")).unwrap_or_default();
    let mut nodes: Vec<Vec<usize>> = Vec::new();
    for id in ids {
        let cpus = read_list(&node_dir.join(format!("node{id}/cpulist"))).unwrap_or_default();
        if nodes.len() <= id {
            nodes.resize(id + 1, Vec::new());
        }
        nodes[id] = cpus.into_iter().filter(|c| online.contains(c)).collect();
    }
    if nodes.iter().all(Vec::is_empty) {
        return vec![online.to_vec()];
    }
    nodes
}

/// `MemTotal` of `/proc/meminfo`, bytes.
fn memory_bytes(meminfo: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(meminfo)
        .map_err(|e| format!("cannot read {}: {e}", meminfo.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("{} has no MemTotal line", meminfo.display()))
}

/// The CPUs this process may run on (its affinity mask), sorted.
pub(crate) fn allowed_cpus() -> Result<Vec<usize>, String> {
    // SAFETY: a zeroed cpu_set_t is the empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("cannot read this process's CPU affinity: {e}"));
    }
    let capacity = std::mem::size_of::<libc::cpu_set_t>() * 8;
    // SAFETY: every index is below the set's capacity.
    Ok((0..capacity)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// The locked-memory limit (RLIMIT_MEMLOCK, soft), bytes; `None`: unlimited.
pub(crate) fn memlock_bytes() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Some(0);
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A 2-node, 4-core, 8-thread machine with CPUs 3 and 7 isolated.
    fn fake_sys(root: &Path) {
        write(root, "devices/system/cpu/online", "0-7\n");
        write(root, "devices/system/cpu/isolated", "3,7\n");
        for cpu in 0..8 {
            let sibling = if cpu < 4 { cpu + 4 } else { cpu - 4 };
            let (a, b) = (cpu.min(sibling), cpu.max(sibling));
            let rel = format!("devices/system/cpu/cpu{cpu}/topology/thread_siblings_list");
            write(root, &rel, &format!("{a},{b}\n"));
        }
        write(root, "devices/system/node/online", "0-1\n");
        write(root, "devices/system/node/node0/cpulist", "0-1,4-5\n");
        write(root, "devices/system/node/node1/cpulist", "2-3,6-7\n");
        write(root, "meminfo", "MemTotal:       16384 kB\nMemFree: 1 kB\n");
    }

    #[test]
    fn given_a_two_node_sysfs_when_read_then_nodes_cores_and_isolated_cpus_are_found() {
        let dir = tempfile::tempdir().unwrap();
        fake_sys(dir.path());
        let t = read(dir.path(), &dir.path().join("meminfo")).unwrap();
        assert_eq!(t.online, (0..8).collect::<Vec<_>>());
        assert_eq!(t.nodes, vec![vec![0, 1, 4, 5], vec![2, 3, 6, 7]]);
        assert_eq!(
            t.cores,
            vec![vec![0, 4], vec![1, 5], vec![2, 6], vec![3, 7]]
        );
        assert_eq!(t.isolated, vec![3, 7]);
        assert_eq!(t.memory_bytes, 16384 * 1024);
        assert_eq!(t.node_of(6), 1);
    }

    #[test]
    fn given_an_affinity_mask_when_restricted_then_only_its_cpus_remain() {
        let dir = tempfile::tempdir().unwrap();
        fake_sys(dir.path());
        let mut t = read(dir.path(), &dir.path().join("meminfo")).unwrap();
        t.restrict_to(&[2, 3, 6]);
        assert_eq!(t.online, vec![2, 3, 6]);
        assert_eq!(t.cores, vec![vec![2, 6], vec![3]]);
        assert_eq!(t.nodes, vec![vec![], vec![2, 3, 6]]);
        assert_eq!(t.isolated, vec![3]);
    }

    #[test]
    fn given_this_process_when_its_affinity_is_read_then_it_may_run_somewhere() {
        let allowed = allowed_cpus().unwrap();
        assert!(!allowed.is_empty());
        assert!(allowed.windows(2).all(|w| w[0] < w[1]), "{allowed:?}");
    }

    #[test]
    fn given_no_numa_directory_when_read_then_one_node_holds_every_cpu() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "devices/system/cpu/online", "0-1\n");
        write(dir.path(), "meminfo", "MemTotal: 2048 kB\n");
        let t = read(dir.path(), &dir.path().join("meminfo")).unwrap();
        assert_eq!(t.nodes, vec![vec![0, 1]]);
        assert_eq!(
            t.cores,
            vec![vec![0], vec![1]],
            "no siblings file: one thread per core"
        );
        assert!(t.isolated.is_empty());
    }

    #[test]
    fn given_this_machine_when_read_then_every_online_cpu_is_in_one_core_and_one_node() {
        let t = read(Path::new("/sys"), Path::new("/proc/meminfo")).unwrap();
        let in_cores: usize = t.cores.iter().map(Vec::len).sum();
        assert_eq!(in_cores, t.online.len(), "{t:?}");
        assert!(t.memory_bytes > 0);
    }
}
