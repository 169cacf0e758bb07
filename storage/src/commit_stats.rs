//! Histograms of the log's group commits: how long each batch's write and
//! `fdatasync` took and how many bytes each batch wrote. Plain counts in
//! power-of-two buckets, bumped once per batch by the flusher (no
//! allocation, no lock), copied out with [`crate::LogStats`].

/// Buckets of a [`Log2Histogram`]: bucket `i` counts values below `2^i`
/// and at least `2^(i-1)` (bucket 0: the value 0); the last also takes
/// everything larger.
pub const LOG2_BUCKETS: usize = 40;

/// A histogram of whole numbers in power-of-two buckets, with their sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Log2Histogram {
    counts: [u64; LOG2_BUCKETS],
    sum: u64,
}

impl Default for Log2Histogram {
    fn default() -> Self {
        Log2Histogram {
            counts: [0; LOG2_BUCKETS],
            sum: 0,
        }
    }
}

impl Log2Histogram {
    /// Counts one value.
    pub fn note(&mut self, value: u64) {
        let bucket = (u64::BITS - value.leading_zeros()) as usize;
        self.counts[bucket.min(LOG2_BUCKETS - 1)] += 1;
        self.sum = self.sum.saturating_add(value);
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The values counted, added up.
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// Each bucket's own count with its exclusive upper bound (`2^i`),
    /// lowest first; the last bucket's bound is `None` (no bound).
    pub fn buckets(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        self.counts.iter().enumerate().map(|(i, n)| {
            let bound = (i < LOG2_BUCKETS - 1).then(|| 1u64 << i);
            (bound, *n)
        })
    }
}

/// What the group commits of a log took since open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Time from a batch's write submission to its `fdatasync`'s return
    /// (or the write's, without syncs), µs.
    pub latency_us: Log2Histogram,
    /// Bytes of each batch write (padded to a block).
    pub batch_bytes: Log2Histogram,
    /// Each roll to a new segment, µs: the batches in flight settled, then
    /// the next segment created, preallocated, headed and synced with its
    /// directory. No batch is written meanwhile, so every commit waiting
    /// then waits this long.
    pub roll_us: Log2Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_values_when_noted_then_each_lands_below_its_power_of_two() {
        let mut h = Log2Histogram::default();
        for v in [0, 1, 2, 3, 4, 1_000, u64::MAX] {
            h.note(v);
        }
        let b: Vec<(Option<u64>, u64)> = h.buckets().collect();
        assert_eq!(b[0], (Some(1), 1), "0 is below 1");
        assert_eq!(b[1], (Some(2), 1), "1");
        assert_eq!(b[2], (Some(4), 2), "2 and 3");
        assert_eq!(b[3], (Some(8), 1), "4");
        assert_eq!(b[10], (Some(1024), 1), "1,000");
        assert_eq!(b[LOG2_BUCKETS - 1], (None, 1), "the largest, unbounded");
        assert_eq!(h.count(), 7);
        assert_eq!(h.sum(), u64::MAX, "saturates");
    }
}
