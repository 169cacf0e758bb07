//! The SLA counts kept on disk (docs/operations.md, "SLA reports"): one
//! small JSON file per hour under `DATA_DIR/sla/` (`2026-12-02T13.json`),
//! holding minute buckets, each with every data kind's counts (live and
//! test apart). The monitor adds what the shards counted since its last
//! look to the bucket of the moment it looked, and writes the hours it
//! changed every `sla_flush_ms` (write, `fsync`, rename): off the shards'
//! cores, never on their hot path. A crash loses at most the counts since
//! the last write.

use crate::timefmt::{format_time_ms, parse_time_ms};
use gonets_engine::runtime::stats::ERROR_CODES;
use gonets_engine::shard::sla::{SlaTally, ANSWER_TIME_BUCKETS, REFUSAL_CODE_COUNT};
use gonets_types::RefusalCode;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Width of a bucket, ms: the report's resolution.
pub const BUCKET_MS: u64 = 60_000;
/// Time one file covers, ms.
const FILE_MS: u64 = 3_600_000;
/// The version of the files' layout.
const FORMAT: u64 = 1;

/// One data kind's counts in a bucket (or summed over a period).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindCounts {
    /// Its provider.
    pub provider: String,
    /// A real-time kind (its report shows the share within 2 s).
    pub realtime: bool,
    /// Live traffic.
    pub live: SlaTally,
    /// Test traffic (the test flag).
    pub test: SlaTally,
}

impl KindCounts {
    fn add(&mut self, other: &KindCounts) {
        self.provider.clone_from(&other.provider);
        self.realtime = other.realtime;
        self.live.add(&other.live);
        self.test.add(&other.test);
    }
}

/// A bucket: counts by data kind.
pub type Bucket = BTreeMap<String, KindCounts>;

/// The directory of the files.
pub fn sla_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("sla")
}

/// The hours the monitor has changed since it started, as buckets by
/// their start, ms; an hour is read from its file before its first change.
#[derive(Debug)]
pub struct SlaStore {
    dir: PathBuf,
    hours: BTreeMap<u64, BTreeMap<u64, Bucket>>,
    dirty: BTreeSet<u64>,
}

impl SlaStore {
    /// The store under `data_dir` (nothing is read or made until used).
    pub fn new(data_dir: &Path) -> SlaStore {
        SlaStore {
            dir: sla_dir(data_dir),
            hours: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// Adds `counts` of `kind` to the bucket holding `at_ms`.
    pub fn add(&mut self, at_ms: u64, kind: &str, counts: &KindCounts) {
        let hour = at_ms - at_ms % FILE_MS;
        if !self.hours.contains_key(&hour) {
            let loaded = read_hour(&self.dir, hour).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "SLA store: an hour's file is unreadable; it starts again");
                BTreeMap::new()
            });
            self.hours.insert(hour, loaded);
        }
        let buckets = self.hours.get_mut(&hour).expect("inserted");
        let bucket = buckets.entry(at_ms - at_ms % BUCKET_MS).or_default();
        bucket.entry(kind.to_string()).or_default().add(counts);
        self.dirty.insert(hour);
    }

    /// The changed hours as (file, its text), to write off the runtime
    /// ([`write_files`]); keeps only the latest hour in memory afterwards.
    pub fn take_dirty(&mut self) -> Vec<(PathBuf, String)> {
        let files = std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|hour| (hour_path(&self.dir, hour), hour_json(&self.hours[&hour])))
            .collect();
        while self.hours.len() > 1 {
            self.hours.pop_first();
        }
        files
    }

    /// The counts of buckets starting in `[from_ms, to_ms)`, by kind: the
    /// files, with the hours in memory (newer than their files) instead.
    pub fn sum(&self, from_ms: u64, to_ms: u64) -> Result<Bucket, String> {
        let mut total = sum_files(&self.dir, from_ms, to_ms, |hour| {
            self.hours.contains_key(&hour)
        })?;
        for buckets in self.hours.values() {
            add_range(&mut total, buckets, from_ms, to_ms);
        }
        Ok(total)
    }
}

/// The counts of buckets starting in `[from_ms, to_ms)` in the files under
/// `data_dir` (what `gonets report sla` reads).
pub fn sum_data_dir(data_dir: &Path, from_ms: u64, to_ms: u64) -> Result<Bucket, String> {
    sum_files(&sla_dir(data_dir), from_ms, to_ms, |_| false)
}

fn sum_files(
    dir: &Path,
    from_ms: u64,
    to_ms: u64,
    skip: impl Fn(u64) -> bool,
) -> Result<Bucket, String> {
    let mut total = Bucket::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(total),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    for entry in entries {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        let Some(hour) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| parse_time_ms(&format!("{n}:00:00Z")))
        else {
            continue; // not an hour's file (a temporary one, say)
        };
        if hour + FILE_MS <= from_ms || hour >= to_ms || skip(hour) {
            continue;
        }
        add_range(&mut total, &read_hour(dir, hour)?, from_ms, to_ms);
    }
    Ok(total)
}

fn add_range(total: &mut Bucket, buckets: &BTreeMap<u64, Bucket>, from_ms: u64, to_ms: u64) {
    for (_, bucket) in buckets.range(from_ms..to_ms.max(from_ms)) {
        for (kind, counts) in bucket {
            total.entry(kind.clone()).or_default().add(counts);
        }
    }
}

/// Writes each file whole: a temporary file, `fsync`, rename, `fsync` of
/// the directory (a reader or a crash sees the old file or the new one).
pub fn write_files(files: &[(PathBuf, String)]) -> std::io::Result<()> {
    let Some(dir) = files.first().and_then(|(p, _)| p.parent()) else {
        return Ok(());
    };
    std::fs::create_dir_all(dir)?;
    for (path, text) in files {
        let temporary = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&temporary)?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
    }
    std::fs::File::open(dir)?.sync_all()
}

fn hour_path(dir: &Path, hour_ms: u64) -> PathBuf {
    // `2026-12-02T13:00:00Z` -> `2026-12-02T13.json`
    dir.join(format!("{}.json", &format_time_ms(hour_ms)[..13]))
}

fn read_hour(dir: &Path, hour_ms: u64) -> Result<BTreeMap<u64, Bucket>, String> {
    let path = hour_path(dir, hour_ms);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    hour_from_json(&value).map_err(|e| format!("{}: {e}", path.display()))
}

fn hour_json(buckets: &BTreeMap<u64, Bucket>) -> String {
    let list: Vec<Value> = buckets
        .iter()
        .map(|(start, bucket)| {
            let kinds: Vec<Value> = bucket
                .iter()
                .map(|(kind, c)| {
                    json!({
                        "kind": kind,
                        "provider": c.provider,
                        "realtime": c.realtime,
                        "live": tally_json(&c.live),
                        "test": tally_json(&c.test),
                    })
                })
                .collect();
            json!({ "start_ms": start, "kinds": kinds })
        })
        .collect();
    let file = json!({ "format": FORMAT, "bucket_ms": BUCKET_MS, "buckets": list });
    format!("{file}\n")
}

fn hour_from_json(v: &Value) -> Result<BTreeMap<u64, Bucket>, String> {
    if v["format"].as_u64() != Some(FORMAT) || v["bucket_ms"].as_u64() != Some(BUCKET_MS) {
        return Err(format!(
            "not a format {FORMAT} file of {BUCKET_MS} ms buckets"
        ));
    }
    let mut buckets = BTreeMap::new();
    for b in v["buckets"].as_array().ok_or("no buckets")? {
        let start = b["start_ms"].as_u64().ok_or("a bucket without start_ms")?;
        let mut bucket = Bucket::new();
        for k in b["kinds"].as_array().ok_or("a bucket without kinds")? {
            let kind = k["kind"].as_str().ok_or("a kind without a name")?;
            let counts = KindCounts {
                provider: k["provider"].as_str().unwrap_or_default().to_string(),
                realtime: k["realtime"].as_bool().unwrap_or(false),
                live: tally_from_json(&k["live"])?,
                test: tally_from_json(&k["test"])?,
            };
            bucket.insert(kind.to_string(), counts);
        }
        buckets.insert(start, bucket);
    }
    Ok(buckets)
}

/// The provider's refusals by refusal code, the non-zero ones.
pub(crate) fn refused_map(t: &SlaTally) -> Map<String, Value> {
    RefusalCode::ALL
        .iter()
        .zip(t.refused)
        .filter(|(_, n)| *n > 0)
        .map(|(code, n)| (code.as_str().to_string(), json!(n)))
        .collect()
}

/// Refusals on arrival by wire error code, the non-zero ones.
pub(crate) fn refused_at_door_map(t: &SlaTally) -> Map<String, Value> {
    ERROR_CODES
        .iter()
        .zip(t.refused_at_door)
        .filter(|(_, n)| *n > 0)
        .map(|(code, n)| (code.to_string(), json!(n)))
        .collect()
}

fn tally_json(t: &SlaTally) -> Value {
    let refused = refused_map(t);
    let refused_at_door = refused_at_door_map(t);
    let times: Vec<Value> = t
        .answer_times
        .buckets()
        .map(|(i, n)| json!([i, n]))
        .collect();
    json!({
        "requests": t.requests,
        "answered_in_time": t.answered_in_time,
        "answered_late": t.answered_late,
        "expired": t.expired,
        "refused": refused,
        "within_2s": t.within_realtime_budget,
        "answer_times": times,
        "answer_time_sum_ms": t.answer_times.sum_ms(),
        "refused_at_door": refused_at_door,
    })
}

fn tally_from_json(v: &Value) -> Result<SlaTally, String> {
    let n = |key: &str| v[key].as_u64().unwrap_or(0);
    let mut t = SlaTally {
        requests: n("requests"),
        answered_in_time: n("answered_in_time"),
        answered_late: n("answered_late"),
        expired: n("expired"),
        within_realtime_budget: n("within_2s"),
        ..SlaTally::default()
    };
    let refused = v["refused"].as_object().cloned().unwrap_or_default();
    for (i, code) in RefusalCode::ALL.iter().enumerate().take(REFUSAL_CODE_COUNT) {
        t.refused[i] = refused
            .get(code.as_str())
            .and_then(Value::as_u64)
            .unwrap_or(0);
    }
    for pair in v["answer_times"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let (Some(i), Some(count)) = (pair[0].as_u64(), pair[1].as_u64()) else {
            return Err(format!("a bad answer-time bucket {pair}"));
        };
        let i = usize::try_from(i).ok().filter(|i| *i < ANSWER_TIME_BUCKETS);
        t.answer_times.add_bucket(
            i.ok_or_else(|| format!("answer-time bucket {pair} out of range"))?,
            count,
        );
    }
    // Absent from files written before the sum was kept: 0.
    t.answer_times.add_sum_ms(n("answer_time_sum_ms"));
    // Absent from older files too: none.
    let at_door = v["refused_at_door"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (i, code) in ERROR_CODES.iter().enumerate() {
        t.refused_at_door[i] = at_door.get(*code).and_then(Value::as_u64).unwrap_or(0);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: u64) -> KindCounts {
        let mut live = SlaTally {
            requests,
            answered_in_time: 1,
            ..SlaTally::default()
        };
        live.refused[1] = 2;
        live.answer_times.note(150);
        KindCounts {
            provider: "FNS".into(),
            realtime: true,
            live,
            test: SlaTally {
                expired: 1,
                ..SlaTally::default()
            },
        }
    }

    const T0: u64 = 1_796_216_400_000; // 2026-12-02T13:00:00Z

    #[test]
    fn given_counts_when_written_and_read_by_a_new_store_then_they_sum_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SlaStore::new(dir.path());
        store.add(T0 + 5_000, "urn:k", &counts(2));
        store.add(T0 + 65_000, "urn:k", &counts(3));
        store.add(T0 + FILE_MS + 1, "urn:k", &counts(4));
        write_files(&store.take_dirty()).unwrap();
        let read = sum_data_dir(dir.path(), T0, T0 + 2 * FILE_MS).unwrap();
        assert_eq!(read["urn:k"].live.requests, 9);
        assert_eq!(read["urn:k"].live.refused[1], 6);
        assert_eq!(read["urn:k"].live.answer_times.total(), 3);
        assert_eq!(read["urn:k"].test.expired, 3);
        // A restarted store adds to the hour's file, not over it.
        let mut again = SlaStore::new(dir.path());
        again.add(T0 + FILE_MS + 2, "urn:k", &counts(1));
        assert_eq!(
            again.sum(T0 + FILE_MS, T0 + 2 * FILE_MS).unwrap()["urn:k"]
                .live
                .requests,
            5
        );
    }

    #[test]
    fn given_a_period_when_summed_then_only_its_buckets_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SlaStore::new(dir.path());
        store.add(T0, "urn:k", &counts(1));
        store.add(T0 + BUCKET_MS, "urn:k", &counts(10));
        let first = store.sum(T0, T0 + BUCKET_MS).unwrap();
        assert_eq!(first["urn:k"].live.requests, 1);
        assert!(store
            .sum(T0 + 2 * BUCKET_MS, T0 + FILE_MS)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn given_a_file_of_another_format_when_read_then_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sla_dir(dir.path())).unwrap();
        std::fs::write(hour_path(&sla_dir(dir.path()), T0), "{\"format\": 9}").unwrap();
        let e = sum_data_dir(dir.path(), 0, u64::MAX).unwrap_err();
        assert!(e.contains("2026-12-02T13.json"), "{e}");
    }
}
