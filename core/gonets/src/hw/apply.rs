//! What `gonets serve --profile FILE` does with a profile: its values fill
//! the configuration keys the file left unset (the file's keys win), the
//! operator thread is pinned to its cores, and the registry's in-memory
//! bounds are checked against its memory budget.

use super::cpulist;
use super::profile::Profile;
use gonets_engine::Registry;
use gonets_server::config_file::ConfigFile;

/// One thing the profile set or left to the configuration, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The configuration key.
    pub(crate) key: &'static str,
    /// What happened, e.g. `200 (from the profile)`.
    pub(crate) what: String,
}

fn fill<T: Clone + std::fmt::Debug>(key: &'static str, slot: &mut Option<T>, value: &T) -> Applied {
    let what = match slot {
        Some(kept) => format!("{kept:?} (the configuration's; the profile says {value:?})"),
        None => {
            *slot = Some(value.clone());
            format!("{value:?} (from the profile)")
        }
    };
    Applied { key, what }
}

/// Fills the keys of `file` the profile has values for and the file
/// leaves unset. The placement goes as a whole: shards and cores come from
/// the profile only when the file sets no `cores` and no other shard count.
pub(crate) fn to_config(profile: &Profile, file: &mut ConfigFile) -> Vec<Applied> {
    let cores = &profile.placement.shard_cores;
    let shards = u16::try_from(cores.len()).expect("validated: at most SHARD_MAX + 1 shards");
    let placement = if file.cores.is_none() && !matches!(file.shards, Some(n) if n != shards) {
        file.shards = Some(shards);
        file.cores = Some(cores.clone());
        format!("{shards}, {cores:?} (from the profile)")
    } else {
        format!(
            "{:?}, {:?} (the configuration's; the profile's placement, {cores:?}, is not used)",
            file.shards, file.cores
        )
    };
    vec![
        Applied {
            key: "shards, cores",
            what: placement,
        },
        fill(
            "commit.window_us",
            &mut file.commit.window_us,
            &profile.commit.window_us,
        ),
        fill(
            "commit.segment_size_bytes",
            &mut file.commit.segment_size_bytes,
            &profile.commit.segment_size_bytes,
        ),
    ]
}

/// Pins the calling thread to `cpus` (threads it starts afterwards
/// inherit the mask: `serve` calls it before it starts the operator API).
pub(crate) fn pin_current_thread(cpus: &[usize]) -> Result<(), String> {
    assert!(!cpus.is_empty(), "a thread needs at least one CPU");
    gonets_engine::runtime::placement::pin_current_thread(cpus).map_err(|e| {
        format!(
            "operator thread on CPUs {}: {e}",
            cpulist::format(&cpulist::sorted(cpus))
        )
    })
}

/// The memory the registry's answer queues may hold at most (they keep
/// their payloads in memory, docs/operations.md "Queue bounds"), bytes.
pub(crate) fn answer_queue_bytes_max(registry: &Registry) -> u64 {
    registry
        .participants()
        .map(|p| p.answer_queue_bytes_max)
        .fold(0u64, u64::saturating_add)
}

/// Why the registry's in-memory bounds exceed the profile's memory budget, if they do.
pub(crate) fn over_budget(profile: &Profile, registry: &Registry) -> Option<String> {
    let held = answer_queue_bytes_max(registry);
    let budget = profile.memory.budget_bytes;
    (held > budget).then(|| {
        format!(
            "the registry's answer-queue byte bounds add up to {} MiB, above the profile's \
             memory budget of {} MiB: consumers that stop reading could make the hub use more \
             memory than planned; lower answer_queue_bytes_max in the registry",
            held >> 20,
            budget >> 20
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::render::tests_support::profile_for_cores;

    #[test]
    fn given_an_empty_config_when_applied_then_the_profile_fills_placement_and_commit() {
        let profile = profile_for_cores(&[0, 1]);
        let mut file = ConfigFile::default();
        let applied = to_config(&profile, &mut file);
        assert_eq!(file.shards, Some(2));
        assert_eq!(file.cores, Some(vec![0, 1]));
        assert_eq!(file.commit.window_us, Some(profile.commit.window_us));
        assert_eq!(
            file.commit.segment_size_bytes,
            Some(profile.commit.segment_size_bytes)
        );
        assert!(
            applied.iter().all(|a| a.what.contains("from the profile")),
            "{applied:?}"
        );
    }

    #[test]
    fn given_config_keys_when_applied_then_the_config_wins() {
        let profile = profile_for_cores(&[0, 1]);
        let mut file = ConfigFile::parse("shards = 3\n[commit]\nwindow_us = 7\n").unwrap();
        let applied = to_config(&profile, &mut file);
        assert_eq!(file.shards, Some(3));
        assert_eq!(
            file.cores, None,
            "a placement for 2 shards is not used for 3"
        );
        assert_eq!(file.commit.window_us, Some(7));
        assert!(applied[0].what.contains("not used"), "{applied:?}");
        assert!(applied[1].what.contains("configuration's"), "{applied:?}");
    }

    #[test]
    fn given_a_tiny_budget_when_checked_then_the_registry_bounds_are_reported() {
        let mut profile = profile_for_cores(&[0]);
        let registry = Registry::embedded_default();
        profile.memory.budget_bytes = 1;
        let why = over_budget(&profile, &registry).expect("over budget");
        assert!(why.contains("answer_queue_bytes_max"), "{why}");
        profile.memory.budget_bytes = answer_queue_bytes_max(&registry);
        assert_eq!(over_budget(&profile, &registry), None);
    }

    #[test]
    fn given_an_online_cpu_when_pinned_then_the_thread_runs_there() {
        // The last CPU this process may use (CPU 0 may be outside a container's cpuset).
        let cpu = *crate::hw::topology::allowed_cpus().unwrap().last().unwrap();
        std::thread::spawn(move || {
            pin_current_thread(&[cpu]).unwrap();
            // SAFETY: sched_getcpu has no preconditions.
            assert_eq!(unsafe { libc::sched_getcpu() }, cpu as i32);
        })
        .join()
        .unwrap();
    }
}
