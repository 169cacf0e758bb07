//! A hardware profile file: what it holds (the machine's facts, the
//! placement and settings for it), reading it, and checking it against
//! the machine `serve` runs on. Every way a profile can be wrong is a
//! [`ProfileError`] with what to fix; none panics.

use super::cpulist;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The largest group-commit window the log accepts, µs (storage's LogConfig).
const WINDOW_US_MAX: u64 = 1_000_000;
/// Segment sizes: a multiple of this, bytes.
const SEGMENT_ALIGN_BYTES: u64 = 4096;
/// The smallest segment a profile may ask for, bytes (one full default batch and more).
const SEGMENT_BYTES_MIN: u64 = 4 << 20;
/// The largest segment, bytes (the log's offsets within a segment are u32).
const SEGMENT_BYTES_MAX: u64 = u32::MAX as u64;

/// Why a profile cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProfileError {
    /// The file cannot be read.
    #[error("hardware profile {path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML, an unknown key, a missing key or a value of the wrong type.
    #[error("hardware profile {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value out of its range (a CPU list that does not parse, a segment size, ...).
    #[error("hardware profile {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
    /// The placement names a CPU this process cannot run on here (not
    /// online, or outside its affinity mask).
    #[error(
        "hardware profile {path}: {key} names CPU {cpu}, but this process may run on CPUs \
         {usable} only (online and in its affinity mask); the profile was made for another \
         machine: run `gonets hw detect` here, or edit {key}"
    )]
    CpuOffline {
        path: PathBuf,
        key: &'static str,
        cpu: usize,
        usable: String,
    },
}

/// A profile file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    /// What the profile is.
    pub(crate) profile: About,
    /// The machine it describes.
    pub(crate) machine: Machine,
    /// Which cores run what.
    pub(crate) placement: Placement,
    /// Group commit and segments.
    pub(crate) commit: Commit,
    /// Memory.
    pub(crate) memory: Memory,
}

/// `[profile]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct About {
    pub(crate) name: String,
    /// `detected` (written by `gonets hw detect`) or `hand-written`.
    pub(crate) source: String,
    pub(crate) description: String,
}

/// `[machine]`: facts, as detected or assumed; `serve` reads none of them.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Machine {
    pub(crate) kernel: String,
    pub(crate) cpus_online: String,
    pub(crate) numa_nodes: Vec<String>,
    pub(crate) physical_cores: Vec<String>,
    pub(crate) isolated_cpus: String,
    pub(crate) memory_bytes: u64,
    /// `unlimited`, or the limit in bytes as text.
    pub(crate) memlock: String,
    pub(crate) disk: MachineDisk,
    pub(crate) io_uring: MachineIoUring,
}

/// `[machine.disk]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct MachineDisk {
    pub(crate) data_dir: String,
    pub(crate) device: String,
    pub(crate) model: String,
    pub(crate) rotational: bool,
    pub(crate) nvme: bool,
    pub(crate) free_bytes: u64,
    pub(crate) fdatasync_samples: u32,
    pub(crate) fdatasync_p50_us: u64,
    pub(crate) fdatasync_p99_us: u64,
}

/// `[machine.io_uring]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct MachineIoUring {
    pub(crate) available: bool,
    pub(crate) features: Vec<String>,
}

/// `[placement]`: CPU numbers.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Placement {
    /// Shard i is pinned to `shard_cores[i]`; as many shards as entries.
    pub(crate) shard_cores: Vec<usize>,
    pub(crate) operator_cores: Vec<usize>,
    pub(crate) os_cores: Vec<usize>,
}

/// `[commit]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Commit {
    pub(crate) window_us: u64,
    pub(crate) segment_size_bytes: u64,
}

/// `[memory]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Memory {
    pub(crate) budget_bytes: u64,
}

impl Profile {
    /// Reads `path` and checks the values that need no machine.
    pub(crate) fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Profile::parse(&text, path)
    }

    /// Parses `text` (from `path`, for the messages) and checks it.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Profile, ProfileError> {
        let profile: Profile = toml::from_str(text).map_err(|e| ProfileError::Parse {
            path: path.to_path_buf(),
            message: match e.span() {
                // One line: the line number and the parser's message.
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: {}", e.message())
                }
                None => e.message().to_string(),
            },
        })?;
        profile.validate(path)?;
        Ok(profile)
    }

    fn validate(&self, path: &Path) -> Result<(), ProfileError> {
        let invalid = |key, message: String| ProfileError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        if !matches!(self.profile.source.as_str(), "detected" | "hand-written") {
            let m = format!(
                "{:?}: expected \"detected\" or \"hand-written\"",
                self.profile.source
            );
            return Err(invalid("profile.source", m));
        }
        let shards_max = usize::from(gonets_types::ids::MessageId::SHARD_MAX) + 1;
        let n = self.placement.shard_cores.len();
        if n == 0 || n > shards_max {
            let m = format!("names {n} cores; one per shard, between 1 and {shards_max}");
            return Err(invalid("placement.shard_cores", m));
        }
        if cpulist::sorted(&self.placement.shard_cores).len() != n {
            let m = "names a core twice; a shard needs a core of its own".to_string();
            return Err(invalid("placement.shard_cores", m));
        }
        if self.placement.operator_cores.is_empty() {
            return Err(invalid("placement.operator_cores", "is empty".into()));
        }
        if self.commit.window_us > WINDOW_US_MAX {
            let m = format!(
                "{} exceeds {WINDOW_US_MAX} (one second)",
                self.commit.window_us
            );
            return Err(invalid("commit.window_us", m));
        }
        let seg = self.commit.segment_size_bytes;
        if !seg.is_multiple_of(SEGMENT_ALIGN_BYTES)
            || !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&seg)
        {
            let m = format!(
                "{seg}: a multiple of {SEGMENT_ALIGN_BYTES} between {SEGMENT_BYTES_MIN} and \
                 {SEGMENT_BYTES_MAX}"
            );
            return Err(invalid("commit.segment_size_bytes", m));
        }
        for (key, list) in self.machine_lists() {
            cpulist::parse(list).map_err(|m| invalid(key, m))?;
        }
        Ok(())
    }

    fn machine_lists(&self) -> Vec<(&'static str, &str)> {
        let m = &self.machine;
        let mut lists = vec![
            ("machine.cpus_online", m.cpus_online.as_str()),
            ("machine.isolated_cpus", m.isolated_cpus.as_str()),
        ];
        lists.extend(
            m.numa_nodes
                .iter()
                .map(|s| ("machine.numa_nodes", s.as_str())),
        );
        lists.extend(
            m.physical_cores
                .iter()
                .map(|s| ("machine.physical_cores", s.as_str())),
        );
        lists
    }

    /// Checks that the cores the process runs on (shards, operator) are in
    /// `usable`: online here and in the process's affinity mask. The OS
    /// cores are not checked: under the systemd unit's `CPUAffinity=` they
    /// are, as meant, outside the mask.
    pub(crate) fn check_cpus(&self, path: &Path, usable: &[usize]) -> Result<(), ProfileError> {
        let p = &self.placement;
        let keyed = [
            ("placement.shard_cores", &p.shard_cores),
            ("placement.operator_cores", &p.operator_cores),
        ];
        for (key, cpus) in keyed {
            if let Some(&cpu) = cpus.iter().find(|c| !usable.contains(c)) {
                return Err(ProfileError::CpuOffline {
                    path: path.to_path_buf(),
                    key,
                    cpu,
                    usable: cpulist::format(usable),
                });
            }
        }
        Ok(())
    }

    /// The CPUs the process needs (shards and operator), for systemd's `CPUAffinity=`.
    pub(crate) fn process_cpus(&self) -> Vec<usize> {
        let p = &self.placement;
        cpulist::sorted(&[p.shard_cores.clone(), p.operator_cores.clone()].concat())
    }
}
