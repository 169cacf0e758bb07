//! The provider-unreachable rule (R9, R13; docs/operations.md "Provider
//! monitoring"): a provider is unreachable when requests wait in its
//! kind's queue and nobody has read the queue (a fetch, a subscription or
//! credits) for `unreachable_after_ms`. Pure: the shard applies it to a
//! queue for `status` notices and for the operator's stats.

/// What the rule looks at, for one request queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// When the oldest request waiting for a reader (ready or parked: not
    /// leased, not delayed) came, hub time ms; `None`: none waits.
    pub oldest_waiting_ms: Option<u64>,
    /// The latest fetch, subscribe or credit on the queue, hub time ms
    /// (`None`: none since the shard started).
    pub last_read_ms: Option<u64>,
}

/// One request queue as the operator and `status` notices see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadWatch {
    /// Readers connected now: subscriptions and fetches waiting on it.
    pub readers: u32,
    /// The latest fetch, subscribe or credit, hub time ms.
    pub last_read_ms: Option<u64>,
    /// Since when its provider is unreachable ([`unreachable_since`]).
    pub unreachable_since_ms: Option<u64>,
}

/// Since when, hub time ms, the provider of a queue in `state` at `now_ms`
/// is unreachable; `None` while it is not (or when the rule is off:
/// `unreachable_after_ms` 0).
///
/// The silence runs from the later of the last read and the arrival of the
/// oldest request still waiting for a reader: a provider that read nothing
/// because nothing came is not silent; requests it holds (leased) do not
/// wait, so a busy provider with its credits in use is not silent either;
/// after a restart (no read known) the requests' own wait counts.
pub fn unreachable_since(now_ms: u64, state: ReadState, unreachable_after_ms: u64) -> Option<u64> {
    if unreachable_after_ms == 0 {
        return None;
    }
    let silent_from_ms = state
        .last_read_ms
        .unwrap_or(0)
        .max(state.oldest_waiting_ms?);
    let since_ms = silent_from_ms.saturating_add(unreachable_after_ms);
    (now_ms >= since_ms).then_some(since_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER_MS: u64 = 1_000;

    fn state(oldest_waiting_ms: Option<u64>, last_read_ms: Option<u64>) -> ReadState {
        ReadState {
            oldest_waiting_ms,
            last_read_ms,
        }
    }

    #[test]
    fn given_nothing_waiting_when_nobody_reads_for_long_then_the_provider_is_reachable() {
        assert_eq!(
            unreachable_since(100_000, state(None, None), AFTER_MS),
            None
        );
    }

    #[test]
    fn given_waiting_requests_when_nobody_read_for_the_bound_then_unreachable_since_its_end() {
        // Last read at 10 s, the oldest waiting request came at 12 s: silent from 12 s.
        let s = state(Some(12_000), Some(10_000));
        assert_eq!(unreachable_since(20_000, s, AFTER_MS), Some(13_000));
    }

    #[test]
    fn given_waiting_requests_when_read_within_the_bound_then_reachable() {
        let s = state(Some(1_000), Some(19_500));
        assert_eq!(unreachable_since(20_000, s, AFTER_MS), None);
    }

    #[test]
    fn given_a_request_that_just_came_when_the_last_read_was_long_ago_then_reachable() {
        let s = state(Some(19_800), Some(1_000));
        assert_eq!(unreachable_since(20_000, s, AFTER_MS), None);
    }

    #[test]
    fn given_no_read_since_start_when_a_request_waited_the_bound_then_unreachable() {
        let s = state(Some(4_000), None);
        assert_eq!(unreachable_since(5_000, s, AFTER_MS), Some(5_000));
    }

    #[test]
    fn given_the_rule_off_when_nobody_reads_then_never_unreachable() {
        assert_eq!(unreachable_since(99_000, state(Some(0), None), 0), None);
    }
}
