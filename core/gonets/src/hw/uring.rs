//! io_uring as this kernel offers it: whether a ring can be made (the
//! sysctl `kernel.io_uring_disabled`, seccomp), and the feature flags the
//! kernel reports in `io_uring_params.features`, found with one
//! `io_uring_setup` of a one-entry ring that is closed at once.

/// Offset of `features` in `struct io_uring_params` (after `sq_entries`,
/// `cq_entries`, `flags`, `sq_thread_cpu`, `sq_thread_idle`: five u32).
const FEATURES_OFFSET: usize = 20;
/// Size of `struct io_uring_params`.
const PARAMS_BYTES: usize = 120;

/// The `IORING_FEAT_*` bits, by name (include/uapi/linux/io_uring.h).
const FEATURES: [(u32, &str); 18] = [
    (1 << 0, "single_mmap"),
    (1 << 1, "nodrop"),
    (1 << 2, "submit_stable"),
    (1 << 3, "rw_cur_pos"),
    (1 << 4, "cur_personality"),
    (1 << 5, "fast_poll"),
    (1 << 6, "poll_32bits"),
    (1 << 7, "sqpoll_nonfixed"),
    (1 << 8, "ext_arg"),
    (1 << 9, "native_workers"),
    (1 << 10, "rsrc_tags"),
    (1 << 11, "cqe_skip"),
    (1 << 12, "linked_file"),
    (1 << 13, "reg_reg_ring"),
    (1 << 14, "recvsend_bundle"),
    (1 << 15, "min_timeout"),
    (1 << 16, "rw_attr"),
    (1 << 17, "no_iowait"),
];

/// What the kernel offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IoUring {
    /// A ring could be made.
    pub(crate) available: bool,
    /// Why not, when it could not (the error of `io_uring_setup`).
    pub(crate) error: Option<String>,
    /// The feature flags, by name.
    pub(crate) features: Vec<String>,
    /// `kernel.io_uring_disabled` (0 allowed, 1 privileged only, 2 off), when the kernel has it.
    pub(crate) disabled_sysctl: Option<u8>,
}

/// Probes io_uring.
pub(crate) fn probe() -> IoUring {
    let disabled_sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let mut params = [0u8; PARAMS_BYTES];
    // SAFETY: io_uring_setup with 1 entry and a zeroed params struct of
    // the kernel's size; the returned fd is closed at once.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return IoUring {
            available: false,
            error: Some(std::io::Error::last_os_error().to_string()),
            features: Vec::new(),
            disabled_sysctl,
        };
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd as i32) };
    let bits = u32::from_ne_bytes(
        params[FEATURES_OFFSET..FEATURES_OFFSET + 4]
            .try_into()
            .expect("four bytes"),
    );
    IoUring {
        available: true,
        error: None,
        features: feature_names(bits),
        disabled_sysctl,
    }
}

/// The names of the set bits of `bits` (unknown bits as `bit_N`).
fn feature_names(bits: u32) -> Vec<String> {
    (0..32)
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| {
            FEATURES
                .iter()
                .find(|(b, _)| *b == 1 << i)
                .map_or_else(|| format!("bit_{i}"), |(_, n)| (*n).to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_feature_bits_when_named_then_known_by_name_and_unknown_by_bit() {
        assert_eq!(
            feature_names(0b11 | 1 << 30),
            vec!["single_mmap", "nodrop", "bit_30"]
        );
    }

    #[test]
    fn given_this_kernel_when_probed_then_available_with_features_or_an_error() {
        let u = probe();
        assert_eq!(u.available, u.error.is_none(), "{u:?}");
        if u.available {
            assert!(u.features.iter().any(|f| f == "single_mmap"), "{u:?}");
        }
    }
}
