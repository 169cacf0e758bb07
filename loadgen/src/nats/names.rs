//! Stream, subject and consumer names of one run, and which generator
//! thread hosts which participant. Every name carries the run's id, so
//! repeated runs against one server never see each other's messages.

/// The names of one run's streams, subjects and durable consumers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    run: String,
}

impl Names {
    /// Names for the run `run` (letters and digits only).
    pub fn new(run: &str) -> Result<Names, String> {
        if run.is_empty() || run.len() > 32 || !run.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("run id {run:?}: 1 to 32 letters or digits"));
        }
        Ok(Names {
            run: run.to_ascii_lowercase(),
        })
    }

    /// Names for a fresh run: its id from the clock and this process.
    pub fn fresh() -> Names {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
        Names {
            run: format!("r{}", base36(id)),
        }
    }

    /// The run's id.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The stream `what` (`REQ`, `ANS`, `BULK`) of this run.
    pub fn stream(&self, what: &str) -> String {
        format!("GONETS_{}_{}", self.run.to_ascii_uppercase(), what)
    }

    /// The subjects of the request stream.
    pub fn req_subjects(&self) -> String {
        format!("gonets.{}.req.*", self.run)
    }

    /// Requests to provider `p`.
    pub fn req_subject(&self, p: usize) -> String {
        format!("gonets.{}.req.p{p}", self.run)
    }

    /// The subjects of the answer stream.
    pub fn ans_subjects(&self) -> String {
        format!("gonets.{}.ans.*", self.run)
    }

    /// Answers to consumer `c`.
    pub fn ans_subject(&self, c: usize) -> String {
        format!("gonets.{}.ans.c{c}", self.run)
    }

    /// The subjects of the bulk stream.
    pub fn bulk_subjects(&self) -> String {
        format!("gonets.{}.bulk.*", self.run)
    }

    /// Bulk messages for provider `p`.
    pub fn bulk_subject(&self, p: usize) -> String {
        format!("gonets.{}.bulk.p{p}", self.run)
    }

    /// Provider `p`'s durable consumer of requests.
    pub fn req_durable(p: usize) -> String {
        format!("req-p{p}")
    }

    /// Consumer `c`'s durable consumer of answers.
    pub fn ans_durable(c: usize) -> String {
        format!("ans-c{c}")
    }

    /// Provider `p`'s durable consumer of bulk messages.
    pub fn bulk_durable(p: usize) -> String {
        format!("bulk-p{p}")
    }
}

/// `n` in base 36, lower case.
fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The participants (0..`count`) that generator thread `thread` of
/// `threads` hosts: every `threads`-th from `thread`.
pub(crate) fn hosted(thread: usize, threads: usize, count: usize) -> Vec<usize> {
    (thread..count).step_by(threads.max(1)).collect()
}

/// How many of `total` messages, dealt round robin over `ways`, fall to `which`.
pub(crate) fn share(total: u64, ways: usize, which: usize) -> u64 {
    let ways = ways.max(1) as u64;
    total / ways + u64::from((which as u64) < total % ways)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JetStream stream name: no dots, spaces, wildcards or path separators.
    fn valid_stream_name(s: &str) -> bool {
        !s.is_empty()
            && !s
                .chars()
                .any(|c| matches!(c, '.' | ' ' | '*' | '>' | '/' | '\\'))
    }

    #[test]
    fn given_run_when_named_then_streams_are_valid_and_subjects_fall_under_their_stream() {
        let n = Names::new("Ab12").unwrap();
        for s in ["REQ", "ANS", "BULK"] {
            assert!(valid_stream_name(&n.stream(s)), "{}", n.stream(s));
            assert!(n.stream(s).contains("AB12"));
        }
        assert_eq!(n.req_subject(3), "gonets.ab12.req.p3");
        assert_eq!(n.req_subjects(), "gonets.ab12.req.*");
        assert_eq!(n.ans_subject(0), "gonets.ab12.ans.c0");
        assert_eq!(n.ans_subjects(), "gonets.ab12.ans.*");
        assert_eq!(n.bulk_subject(1), "gonets.ab12.bulk.p1");
        assert_eq!(n.bulk_subjects(), "gonets.ab12.bulk.*");
        assert_eq!(Names::req_durable(2), "req-p2");
        assert!(Names::new("a.b").is_err() && Names::new("").is_err());
    }

    #[test]
    fn given_two_fresh_runs_when_named_then_their_names_differ() {
        let a = Names::fresh();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = Names::fresh();
        assert_ne!(a.run(), b.run());
        assert!(Names::new(a.run()).is_ok(), "{}", a.run());
        assert_ne!(a.stream("REQ"), b.stream("REQ"));
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36 * 36 + 35), "10z");
    }

    #[test]
    fn given_participants_when_dealt_over_threads_then_each_is_hosted_once() {
        let mut all: Vec<usize> = (0..3).flat_map(|t| hosted(t, 3, 7)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
        assert_eq!(hosted(1, 3, 7), vec![1, 4]);
        assert!(hosted(2, 4, 2).is_empty());
        let total: u64 = (0..3).map(|w| share(20_000, 3, w)).sum();
        assert_eq!(total, 20_000);
        assert_eq!(share(10, 4, 1), 3);
        assert_eq!(share(10, 4, 2), 2);
    }
}
