//! Service-level counts (R9, docs/operations.md "SLA reports"): per data
//! kind and per traffic class (live or test), the requests accepted, the
//! answers in time and late, the refusals by code, the expiries, and a
//! histogram of the time from acceptance to answer.
//!
//! A shard bumps them where the rules decide (never during replay, so a
//! restart does not count a record twice): plain numbers in fixed arrays,
//! no allocation per message (a kind's entry is made once, at its first
//! request). They are running totals since the shard started; the operator
//! API turns them into time buckets and keeps those on disk.

use super::NameMap;
use crate::runtime::stats::{error_code_index, ERROR_CODE_COUNT};
use gonets_types::ids::{DataKindId, ParticipantId};
use gonets_types::{HubError, RefusalCode};

/// Sub-buckets per power of two: a time lands within 1/8 (12.5 %) of its
/// bucket's upper bound.
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two covered: up to 2^40 ms (about 35 years); longer times
/// land in the last bucket.
const POWERS_MAX: usize = 40;
/// Buckets of [`AnswerTimes`]: exact below 8 ms, then 8 per power of two.
pub const ANSWER_TIME_BUCKETS: usize = SUB + (POWERS_MAX - SUB_BITS as usize) * SUB;

/// The real-time rule's budget (963 §10): an answer within 2 s.
pub const REALTIME_BUDGET_MS: u64 = 2_000;

/// Refusal codes, by [`refusal_index`].
pub const REFUSAL_CODE_COUNT: usize = RefusalCode::ALL.len();

/// The counting index of a refusal code (its place in [`RefusalCode::ALL`]).
pub fn refusal_index(code: RefusalCode) -> usize {
    RefusalCode::ALL
        .iter()
        .position(|c| *c == code)
        .expect("every code is in ALL")
}

/// The bucket a time of `ms` counts in.
pub fn answer_time_bucket(ms: u64) -> usize {
    if ms < SUB as u64 {
        return ms as usize;
    }
    let msb = 63 - ms.leading_zeros();
    let sub = (ms >> (msb - SUB_BITS)) as usize & (SUB - 1);
    let index = SUB + (msb - SUB_BITS) as usize * SUB + sub;
    index.min(ANSWER_TIME_BUCKETS - 1)
}

/// The largest time, ms, that bucket `index` holds (what a percentile
/// read from the histogram reports: never less than the true value).
pub fn answer_time_bucket_upper_ms(index: usize) -> u64 {
    assert!(index < ANSWER_TIME_BUCKETS, "bucket {index} out of range");
    if index < SUB {
        return index as u64;
    }
    let k = index - SUB;
    let msb = (k / SUB) as u32 + SUB_BITS;
    let low = (1u64 << msb) | ((k % SUB) as u64) << (msb - SUB_BITS);
    low + (1u64 << (msb - SUB_BITS)) - 1
}

/// A histogram of times from acceptance to answer, ms, in fixed
/// log-linear buckets ([`answer_time_bucket`]): merging two is adding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerTimes {
    counts: [u64; ANSWER_TIME_BUCKETS],
    /// The times counted, added up, ms (a Prometheus histogram's `_sum`).
    sum_ms: u64,
}

impl Default for AnswerTimes {
    fn default() -> Self {
        AnswerTimes {
            counts: [0; ANSWER_TIME_BUCKETS],
            sum_ms: 0,
        }
    }
}

impl AnswerTimes {
    /// Counts one answer after `ms`.
    pub fn note(&mut self, ms: u64) {
        self.counts[answer_time_bucket(ms)] += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }

    /// The times counted, added up, ms.
    pub fn sum_ms(&self) -> u64 {
        self.sum_ms
    }

    /// Adds `ms` to the sum (reading a stored histogram).
    pub fn add_sum_ms(&mut self, ms: u64) {
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }

    /// Answers that took less than `ms_exclusive` ms, counting only the
    /// buckets that lie wholly below it (a Prometheus bucket's count when
    /// `ms_exclusive` is one past a bucket's upper bound, as with powers of
    /// two).
    pub fn count_below_ms(&self, ms_exclusive: u64) -> u64 {
        self.buckets()
            .take_while(|(i, _)| answer_time_bucket_upper_ms(*i) < ms_exclusive)
            .map(|(_, n)| n)
            .sum()
    }

    /// Counts `count` answers in bucket `index` (reading a stored histogram).
    pub fn add_bucket(&mut self, index: usize, count: u64) {
        assert!(index < ANSWER_TIME_BUCKETS, "bucket {index} out of range");
        self.counts[index] += count;
    }

    /// Every bucket with a count: (index, count), lowest first.
    pub fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (i, *n))
    }

    /// Answers counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The time, ms, under which `share` (0..=1) of the answers came: the
    /// upper bound of the bucket that holds it; `None` when empty.
    pub fn percentile_ms(&self, share: f64) -> Option<u64> {
        assert!((0.0..=1.0).contains(&share), "a share, not {share}");
        let total = self.total();
        if total == 0 {
            return None;
        }
        // The rank of the answer at `share`, 1-based (at least the first).
        let rank = ((share * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets() {
            seen += n;
            if seen >= rank {
                return Some(answer_time_bucket_upper_ms(i));
            }
        }
        unreachable!("the rank is at most the total")
    }

    /// Adds `other`'s counts and sum to these (merging shards' histograms).
    pub fn add(&mut self, other: &AnswerTimes) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.sum_ms = self.sum_ms.saturating_add(other.sum_ms);
    }

    fn since(&self, earlier: &AnswerTimes) -> AnswerTimes {
        let mut d = AnswerTimes::default();
        for (i, n) in d.counts.iter_mut().enumerate() {
            *n = self.counts[i].saturating_sub(earlier.counts[i]);
        }
        d.sum_ms = self.sum_ms.saturating_sub(earlier.sum_ms);
        d
    }
}

/// What happened to one kind's requests of one traffic class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlaTally {
    /// Requests accepted (durable; calls included).
    pub requests: u64,
    /// Answers (data or the provider's refusal) by the request's deadline.
    pub answered_in_time: u64,
    /// Answers that came after the deadline (refused `DEADLINE_EXCEEDED`
    /// when the request had already expired).
    pub answered_late: u64,
    /// Requests the hub ended with `DEADLINE_EXCEEDED` (no answer in time).
    pub expired: u64,
    /// Refusals by code ([`refusal_index`]): the provider's, and the hub's
    /// `UNDELIVERABLE` (dead letters). Expiries count in `expired` only.
    pub refused: [u64; REFUSAL_CODE_COUNT],
    /// Answers within [`REALTIME_BUDGET_MS`] of acceptance.
    pub within_realtime_budget: u64,
    /// Times from acceptance to answer, of the answers in time.
    pub answer_times: AnswerTimes,
    /// Requests the hub refused on arrival (nothing stored), by hub error
    /// code (`runtime::stats::error_code_index`): quota, size, rights...
    pub refused_at_door: [u64; ERROR_CODE_COUNT],
}

impl SlaTally {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &SlaTally) {
        self.requests += other.requests;
        self.answered_in_time += other.answered_in_time;
        self.answered_late += other.answered_late;
        self.expired += other.expired;
        for (mine, theirs) in self.refused.iter_mut().zip(other.refused) {
            *mine += theirs;
        }
        self.within_realtime_budget += other.within_realtime_budget;
        self.answer_times.add(&other.answer_times);
        for (mine, theirs) in self.refused_at_door.iter_mut().zip(other.refused_at_door) {
            *mine += theirs;
        }
    }

    /// What was counted since `earlier`, a copy of these same running
    /// totals taken before.
    pub fn since(&self, earlier: &SlaTally) -> SlaTally {
        let mut refused = [0; REFUSAL_CODE_COUNT];
        for (i, n) in refused.iter_mut().enumerate() {
            *n = self.refused[i].saturating_sub(earlier.refused[i]);
        }
        SlaTally {
            requests: self.requests.saturating_sub(earlier.requests),
            answered_in_time: self
                .answered_in_time
                .saturating_sub(earlier.answered_in_time),
            answered_late: self.answered_late.saturating_sub(earlier.answered_late),
            expired: self.expired.saturating_sub(earlier.expired),
            refused,
            within_realtime_budget: self
                .within_realtime_budget
                .saturating_sub(earlier.within_realtime_budget),
            answer_times: self.answer_times.since(&earlier.answer_times),
            refused_at_door: std::array::from_fn(|i| {
                self.refused_at_door[i].saturating_sub(earlier.refused_at_door[i])
            }),
        }
    }

    /// Nothing counted.
    pub fn is_empty(&self) -> bool {
        *self == SlaTally::default()
    }
}

/// One data kind's counts: its provider, live traffic and test traffic apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindSla {
    /// The provider its requests went to.
    pub provider: ParticipantId,
    /// Requests without the test flag.
    pub live: SlaTally,
    /// Requests with the test flag.
    pub test: SlaTally,
}

impl KindSla {
    /// The tally of one traffic class.
    pub fn class_mut(&mut self, test: bool) -> &mut SlaTally {
        if test {
            &mut self.test
        } else {
            &mut self.live
        }
    }
}

/// A shard's counts, by data kind.
#[derive(Debug, Default)]
pub struct SlaBook {
    kinds: NameMap<DataKindId, Box<KindSla>>,
}

/// What one answer was, for [`SlaBook::answered`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerFacts {
    /// Hub time of the request's acceptance, ms.
    pub accepted_ms: u64,
    /// The request's deadline, ms.
    pub deadline_ms: u64,
    /// Hub time of the answer, ms.
    pub answered_ms: u64,
    /// The provider's refusal code, for a refusal.
    pub refusal: Option<RefusalCode>,
}

impl SlaBook {
    /// Counts a request of `kind` refused on arrival with `e`.
    pub fn refused_at_door(
        &mut self,
        kind: &DataKindId,
        provider: &ParticipantId,
        test: bool,
        e: &HubError,
    ) {
        self.tally(kind, provider, test).refused_at_door[error_code_index(e)] += 1;
    }

    /// The tally of `kind`'s `test` class (made at the kind's first count).
    pub fn tally(
        &mut self,
        kind: &DataKindId,
        provider: &ParticipantId,
        test: bool,
    ) -> &mut SlaTally {
        let entry = self.kinds.entry(kind.clone()).or_insert_with(|| {
            Box::new(KindSla {
                provider: provider.clone(),
                live: SlaTally::default(),
                test: SlaTally::default(),
            })
        });
        entry.class_mut(test)
    }

    /// Counts an answer to a request of `kind`: in time or late, its
    /// refusal code, and (in time) its time to answer.
    pub fn answered(
        &mut self,
        kind: &DataKindId,
        provider: &ParticipantId,
        test: bool,
        facts: AnswerFacts,
    ) {
        let tally = self.tally(kind, provider, test);
        if let Some(code) = facts.refusal {
            tally.refused[refusal_index(code)] += 1;
        }
        if facts.answered_ms > facts.deadline_ms {
            tally.answered_late += 1;
            return;
        }
        tally.answered_in_time += 1;
        let took_ms = facts.answered_ms.saturating_sub(facts.accepted_ms);
        if took_ms <= REALTIME_BUDGET_MS {
            tally.within_realtime_budget += 1;
        }
        tally.answer_times.note(took_ms);
    }

    /// Every kind counted, with its counts.
    pub fn kinds(&self) -> impl Iterator<Item = (&DataKindId, &KindSla)> {
        self.kinds.iter().map(|(k, v)| (k, &**v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_every_bucket_when_its_bounds_are_mapped_back_then_they_land_in_it() {
        let mut lower = 0;
        for i in 0..ANSWER_TIME_BUCKETS {
            let upper = answer_time_bucket_upper_ms(i);
            assert!(upper >= lower, "bucket {i}: {lower}..={upper}");
            assert_eq!(answer_time_bucket(lower), i, "lower bound of {i}");
            assert_eq!(answer_time_bucket(upper), i, "upper bound of {i}");
            lower = upper + 1;
        }
        assert_eq!(answer_time_bucket(u64::MAX), ANSWER_TIME_BUCKETS - 1);
    }

    #[test]
    fn given_times_when_bucketed_then_the_upper_bound_is_within_an_eighth() {
        for ms in [9_u64, 100, 1_999, 2_000, 172_800_000] {
            let upper = answer_time_bucket_upper_ms(answer_time_bucket(ms));
            assert!(upper >= ms && upper - ms <= ms / 8, "{ms} -> {upper}");
        }
    }

    #[test]
    fn given_answers_when_counted_below_a_power_of_two_then_only_wholly_lower_buckets_count() {
        let mut t = AnswerTimes::default();
        for ms in [0, 3, 7, 8, 15, 16, 31, 32, 1_000] {
            t.note(ms);
        }
        assert_eq!(t.count_below_ms(8), 3, "0, 3 and 7 ms");
        assert_eq!(t.count_below_ms(16), 5, "and 8, 15 ms");
        assert_eq!(t.count_below_ms(32), 7, "and 16, 31 ms");
        assert_eq!(t.count_below_ms(1 << 20), 9);
        assert_eq!(t.sum_ms(), 1_112);
        let earlier = t.clone();
        t.note(5);
        assert_eq!(t.since(&earlier).sum_ms(), 5);
    }

    #[test]
    fn given_a_hundred_answers_when_percentiles_are_read_then_p50_and_p99_are_their_buckets() {
        let mut times = AnswerTimes::default();
        for ms in 1..=100 {
            times.note(ms);
        }
        assert_eq!(
            times.percentile_ms(0.5),
            Some(answer_time_bucket_upper_ms(answer_time_bucket(50)))
        );
        assert_eq!(
            times.percentile_ms(0.99),
            Some(answer_time_bucket_upper_ms(answer_time_bucket(99)))
        );
        assert_eq!(AnswerTimes::default().percentile_ms(0.5), None);
    }

    fn kind() -> (DataKindId, ParticipantId) {
        (DataKindId::new("urn:k"), ParticipantId::new("FNS"))
    }

    #[test]
    fn given_answers_in_time_late_and_refused_when_counted_then_each_lands_in_its_column() {
        let (k, p) = kind();
        let mut book = SlaBook::default();
        book.tally(&k, &p, false).requests += 3;
        let facts = |answered_ms, refusal| AnswerFacts {
            accepted_ms: 1_000,
            deadline_ms: 10_000,
            answered_ms,
            refusal,
        };
        book.answered(&k, &p, false, facts(1_500, None));
        book.answered(&k, &p, false, facts(9_000, Some(RefusalCode::NoData)));
        book.answered(&k, &p, true, facts(11_000, None));
        let (_, sla) = book.kinds().next().unwrap();
        assert_eq!(sla.live.requests, 3);
        assert_eq!(sla.live.answered_in_time, 2);
        assert_eq!(sla.live.within_realtime_budget, 1);
        assert_eq!(sla.live.refused[refusal_index(RefusalCode::NoData)], 1);
        assert_eq!(sla.live.answer_times.total(), 2);
        assert_eq!(sla.test.answered_late, 1);
        assert_eq!(sla.test.answered_in_time, 0);
    }

    #[test]
    fn given_two_copies_when_subtracted_then_the_difference_adds_back_to_the_later() {
        let (k, p) = kind();
        let mut book = SlaBook::default();
        book.tally(&k, &p, false).requests += 1;
        let earlier = book.kinds().next().unwrap().1.live.clone();
        book.tally(&k, &p, false).expired += 2;
        book.answered(
            &k,
            &p,
            false,
            AnswerFacts {
                accepted_ms: 0,
                deadline_ms: 5,
                answered_ms: 3,
                refusal: None,
            },
        );
        let later = book.kinds().next().unwrap().1.live.clone();
        let delta = later.since(&earlier);
        assert_eq!(
            (delta.requests, delta.expired, delta.answered_in_time),
            (0, 2, 1)
        );
        let mut sum = earlier.clone();
        sum.add(&delta);
        assert_eq!(sum, later);
        assert!(later.since(&later).is_empty());
    }
}
