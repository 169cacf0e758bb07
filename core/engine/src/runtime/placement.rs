//! Where a thread that is not a shard runs: the operator API's and the
//! HTTP gateway's threads are pinned to the cores an operator names
//! (`gateway_cores`, a hardware profile's `operator_cores`), so they stay
//! off the shards' cores. Shards are placed by glommio (`cores`).

/// Why a thread could not be pinned.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// No CPUs named.
    #[error("no CPUs named")]
    Empty,
    /// A CPU number past what a CPU set holds.
    #[error("CPU {cpu} is beyond the {capacity} a CPU set holds")]
    OutOfRange {
        /// The CPU named.
        cpu: usize,
        /// CPUs a set holds.
        capacity: usize,
    },
    /// The kernel refused (e.g. none of the CPUs exists or is allowed).
    #[error("cannot pin the thread to CPUs {cpus:?}: {source}")]
    Refused {
        /// The CPUs named.
        cpus: Vec<usize>,
        /// What `sched_setaffinity` said.
        source: std::io::Error,
    },
}

/// Pins the calling thread to `cpus` (threads it starts afterwards
/// inherit the mask).
pub fn pin_current_thread(cpus: &[usize]) -> Result<(), PinError> {
    if cpus.is_empty() {
        return Err(PinError::Empty);
    }
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes within it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let capacity = std::mem::size_of::<libc::cpu_set_t>() * 8;
    for &cpu in cpus {
        if cpu >= capacity {
            return Err(PinError::OutOfRange { cpu, capacity });
        }
        // SAFETY: cpu < the set's capacity.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: sched_setaffinity on this thread (0) with a set we own.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc != 0 {
        return Err(PinError::Refused {
            cpus: cpus.to_vec(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_bad_cpu_lists_when_pinned_then_typed_errors() {
        std::thread::spawn(|| {
            assert!(matches!(pin_current_thread(&[]), Err(PinError::Empty)));
            assert!(matches!(
                pin_current_thread(&[1 << 20]),
                Err(PinError::OutOfRange { .. })
            ));
            // CPU 1000 exists on no machine this runs on.
            assert!(matches!(
                pin_current_thread(&[1000]),
                Err(PinError::Refused { .. })
            ));
            assert!(pin_current_thread(&[0]).is_ok(), "CPU 0 always exists");
        })
        .join()
        .unwrap();
    }
}
