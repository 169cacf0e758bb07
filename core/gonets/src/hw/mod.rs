//! Hardware profiles (docs/operations.md, "Hardware profiles";
//! hw-profiles/): `gonets hw detect` looks at the machine and writes a
//! profile with the placement and settings it recommends, `gonets hw
//! check` reads one against this machine, and `gonets serve --profile`
//! applies one.
//!
//! Modules, one job each: `cpulist` (the kernel's CPU-list notation),
//! `topology` (CPUs, NUMA nodes, siblings, memory), `disk` (the data
//! disk and its `fdatasync` latency), `uring` (io_uring features),
//! `recommend` (the rules), `render` (the profile text), `profile` (the
//! file, its checks and errors), `apply` (what `serve` does with it).

mod apply;
mod cpulist;
mod disk;
mod profile;
mod recommend;
mod render;
mod topology;
mod uring;

use apply::{over_budget, pin_current_thread, to_config, Applied};
pub(crate) use profile::{Profile, ProfileError};

use gonets_operator::ProfileInfo;
use gonets_server::config_file::{ConfigFile, DATA_DIR_DEFAULT};
use std::path::{Path, PathBuf};

/// Where the kernel describes the machine.
const SYS_ROOT: &str = "/sys";
const MEMINFO: &str = "/proc/meminfo";
/// Bounds of the `fdatasync` measurement an operator may ask for.
pub(crate) const SAMPLES_MAX: u32 = 10_000;
pub(crate) const TIME_BUDGET_MS_MAX: u64 = 10_000;

/// What `gonets hw detect` is asked.
pub(crate) struct DetectArgs {
    /// The directory whose disk is measured (made if missing).
    pub(crate) data_dir: Option<PathBuf>,
    /// Where to write the profile (default: standard output).
    pub(crate) out: Option<PathBuf>,
    /// The profile's name (default: the host name).
    pub(crate) name: Option<String>,
    /// Most `fdatasync` samples.
    pub(crate) samples: u32,
    /// Most time the samples may take, ms.
    pub(crate) time_budget_ms: u64,
}

/// `uname`'s node name and kernel release.
fn uname() -> (String, String) {
    // SAFETY: uname fills a struct we own; its fields are NUL-terminated.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("unknown".into(), "unknown".into());
    }
    let text = |field: &[libc::c_char]| {
        // SAFETY: the kernel NUL-terminates each field within its array.
        unsafe { std::ffi::CStr::from_ptr(field.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    (text(&u.nodename), text(&u.release))
}

/// This machine's topology as this process sees it: the CPUs of its
/// affinity mask only (a container's cpuset, a unit's `CPUAffinity=`).
fn machine_topology() -> Result<topology::Topology, String> {
    let mut t = topology::read(Path::new(SYS_ROOT), Path::new(MEMINFO))?;
    t.restrict_to(&topology::allowed_cpus()?);
    if t.online.is_empty() {
        return Err("no online CPU is in this process's affinity mask".into());
    }
    Ok(t)
}

/// `gonets hw detect`.
pub(crate) fn detect(args: DetectArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.samples == 0 || args.samples > SAMPLES_MAX {
        return Err(format!("--samples {}: between 1 and {SAMPLES_MAX}", args.samples).into());
    }
    if args.time_budget_ms == 0 || args.time_budget_ms > TIME_BUDGET_MS_MAX {
        let m = format!(
            "--time-budget-ms {}: between 1 and {TIME_BUDGET_MS_MAX}",
            args.time_budget_ms
        );
        return Err(m.into());
    }
    let dir = args
        .data_dir
        .unwrap_or_else(|| PathBuf::from(DATA_DIR_DEFAULT));
    let dir = std::path::absolute(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("data directory {}: {e}", dir.display()))?;
    let (host, kernel) = uname();
    eprintln!(
        "gonets hw detect: measuring fdatasync in {} (at most {} writes or {} ms)",
        dir.display(),
        args.samples,
        args.time_budget_ms
    );
    let detected = render::Detected {
        topology: machine_topology()?,
        memlock_bytes: topology::memlock_bytes(),
        disk: disk::describe(&dir, Path::new(SYS_ROOT))?,
        sync: disk::measure_fdatasync(&dir, args.samples, args.time_budget_ms)?,
        io_uring: uring::probe(),
        data_dir: dir.display().to_string(),
        host,
        kernel,
    };
    let name = args.name.unwrap_or_else(|| detected.host.clone());
    let recommended = render::Recommended::for_machine(&detected);
    let text = render::profile_text(&detected, &recommended, &name, &now_utc());
    // What was written must be what serve reads.
    let profile = Profile::parse(&text, Path::new("<detected>"))?;
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("gonets hw detect: wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    eprint!("{}", unit_lines(&profile));
    Ok(())
}

/// The lines of the systemd unit (deploy/gonets.service) this profile asks for.
pub(crate) fn unit_lines(profile: &Profile) -> String {
    format!(
        "for deploy/gonets.service [Service]:\nCPUAffinity={}\nLimitMEMLOCK=infinity\n",
        cpulist::format(&profile.process_cpus())
    )
}

/// The time now, UTC, as `YYYY-MM-DD HH:MM:SS UTC`.
fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The CPUs this process may use: online, and in its affinity mask.
fn usable_cpus() -> Result<Vec<usize>, ProfileError> {
    let path = Path::new(SYS_ROOT).join("devices/system/cpu/online");
    let text = std::fs::read_to_string(&path).map_err(|source| ProfileError::Read {
        path: path.clone(),
        source,
    })?;
    let online = cpulist::parse(&text).map_err(|message| ProfileError::Parse {
        path: path.clone(),
        message,
    })?;
    let allowed = topology::allowed_cpus().map_err(|message| ProfileError::Parse {
        path: PathBuf::from("sched_getaffinity"),
        message,
    })?;
    Ok(online.into_iter().filter(|c| allowed.contains(c)).collect())
}

/// A profile for `serve` on this machine: read, checked, and its cores online here.
pub(crate) fn load_for_this_machine(path: &Path) -> Result<Profile, ProfileError> {
    let profile = Profile::load(path)?;
    profile.check_cpus(path, &usable_cpus()?)?;
    Ok(profile)
}

/// A profile `serve` runs with, and what `/info` says of it.
pub(crate) struct ServeProfile {
    pub(crate) profile: Profile,
    pub(crate) info: ProfileInfo,
}

/// `serve --profile FILE`: reads the profile, checks it against this
/// machine and fills the keys `file` leaves unset; logs what it did.
pub(crate) fn apply_for_serve(
    path: &Path,
    file: &mut ConfigFile,
) -> Result<ServeProfile, ProfileError> {
    let profile = load_for_this_machine(path)?;
    tracing::info!(
        profile = %path.display(),
        name = %profile.profile.name,
        source = %profile.profile.source,
        "hardware profile: its keys fill what the configuration leaves unset"
    );
    for Applied { key, what } in to_config(&profile, file) {
        tracing::info!("hardware profile: {key}: {what}");
    }
    let info = ProfileInfo {
        name: profile.profile.name.clone(),
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    };
    Ok(ServeProfile { profile, info })
}

/// `serve --profile FILE`, once the shards run: pins the calling thread
/// (and so the operator API's, which it starts next) to the profile's
/// operator cores, and warns when the registry's in-memory bounds exceed
/// the profile's memory budget. Neither stops the start: an unpinned
/// operator thread still serves.
pub(crate) fn before_operator(profile: &Profile, registry: &gonets_engine::Registry) {
    let cores = &profile.placement.operator_cores;
    match pin_current_thread(cores) {
        Ok(()) => tracing::info!(
            cpus = %cpulist::format(&cpulist::sorted(cores)),
            "hardware profile: the operator API's thread is pinned"
        ),
        Err(e) => tracing::warn!("hardware profile: {e}; the operator thread floats"),
    }
    if let Some(why) = over_budget(profile, registry) {
        tracing::warn!(
            budget_bytes = profile.memory.budget_bytes,
            "hardware profile: {why}"
        );
    }
}

/// `gonets hw check FILE [--config FILE]`: what `serve` would apply.
pub(crate) fn check(path: &Path, config: Option<&Path>) -> Result<(), Box<dyn std::error::Error>> {
    let profile = load_for_this_machine(path)?;
    let mut file = match config {
        Some(c) => ConfigFile::load(c)?,
        None => ConfigFile::default(),
    };
    println!(
        "profile {:?} ({}): usable on this machine",
        profile.profile.name, profile.profile.source
    );
    for Applied { key, what } in to_config(&profile, &mut file) {
        println!("  {key}: {what}");
    }
    let p = &profile.placement;
    println!(
        "  operator thread on CPUs {}",
        cpulist::format(&cpulist::sorted(&p.operator_cores))
    );
    println!("  memory budget {} MiB", profile.memory.budget_bytes >> 20);
    print!("{}", unit_lines(&profile));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in profiles (hw-profiles/), by file name.
    const CHECKED_IN: [(&str, &str); 3] = [
        (
            "vm-2core.toml",
            include_str!("../../../../hw-profiles/vm-2core.toml"),
        ),
        (
            "node-16core-nvme.toml",
            include_str!("../../../../hw-profiles/node-16core-nvme.toml"),
        ),
        (
            "node-2socket-numa.toml",
            include_str!("../../../../hw-profiles/node-2socket-numa.toml"),
        ),
    ];

    /// The topology a profile's `[machine]` describes.
    fn topology_of(p: &Profile) -> topology::Topology {
        let list = |s: &str| cpulist::parse(s).unwrap();
        let m = &p.machine;
        topology::Topology {
            online: list(&m.cpus_online),
            nodes: m.numa_nodes.iter().map(|s| list(s)).collect(),
            cores: m.physical_cores.iter().map(|s| list(s)).collect(),
            isolated: list(&m.isolated_cpus),
            memory_bytes: m.memory_bytes,
        }
    }

    #[test]
    fn given_each_checked_in_profile_when_read_then_it_parses_and_follows_the_detect_rules() {
        for (name, text) in CHECKED_IN {
            let p = Profile::parse(text, Path::new(name)).unwrap_or_else(|e| panic!("{e}"));
            let t = topology_of(&p);
            p.check_cpus(Path::new(name), &t.online)
                .unwrap_or_else(|e| panic!("{e}"));
            let placed = recommend::placement(&t).value;
            assert_eq!(p.placement.shard_cores, placed.shard_cores, "{name}");
            assert_eq!(p.placement.operator_cores, placed.operator_cores, "{name}");
            assert_eq!(p.placement.os_cores, placed.os_cores, "{name}");
            let budget = recommend::memory_budget_bytes(p.machine.memory_bytes).value;
            assert_eq!(p.memory.budget_bytes, budget, "{name}");
            let d = &p.machine.disk;
            let sync = disk::SyncLatency {
                samples: d.fdatasync_samples,
                p50_us: d.fdatasync_p50_us,
                p99_us: d.fdatasync_p99_us,
            };
            assert_eq!(
                p.commit.window_us,
                recommend::commit_window_us(&sync).value,
                "{name}"
            );
            let seg = recommend::segment_size_bytes(d.free_bytes, placed.shard_cores.len());
            assert_eq!(p.commit.segment_size_bytes, seg.value, "{name}");
        }
    }

    #[test]
    fn given_the_hand_written_profiles_when_read_then_they_say_so() {
        for (name, text) in &CHECKED_IN[1..] {
            let p = Profile::parse(text, Path::new(name)).unwrap();
            assert_eq!(p.profile.source, "hand-written", "{name}");
            assert!(
                text.starts_with("# gonets hardware profile, WRITTEN BY HAND"),
                "{name}"
            );
        }
    }

    #[test]
    fn given_day_counts_when_converted_then_calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_789), (2026, 12, 2));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
