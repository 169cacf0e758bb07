//! The result of a run as JSON (`--json`) and as the human summary.
//!
//! Schema `gonets-loadgen/1`: one object per run with the system measured
//! (`gonets` or `nats`), the workload, the command line, the machine and a
//! list of phases (rt has one; mixed, backlog and recovery have several).
//! Every figure is what this run measured; a figure not measured is absent
//! (null), never guessed.

use crate::record::Recorder;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The schema tag written into every result.
pub const SCHEMA: &str = "gonets-loadgen/1";

/// Latency quantiles of a phase, µs.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Latency {
    /// Latencies recorded.
    pub count: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// 99.99th percentile, µs.
    pub p9999_us: u64,
    /// Largest, µs.
    pub max_us: u64,
    /// Latencies over the 2 s realtime budget.
    pub over_2s: u64,
}

impl Latency {
    /// The quantiles of `rec`, or None if it holds no latency.
    pub fn of(rec: &Recorder) -> Option<Latency> {
        let h = rec.latency_us();
        if h.is_empty() {
            return None;
        }
        let q = |p: f64| h.value_at_quantile(p);
        Some(Latency {
            count: h.len(),
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            p9999_us: q(0.9999),
            max_us: h.max(),
            over_2s: rec.over_budget(),
        })
    }
}

/// The hub's own cost over a phase (same machine only).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct HubCost {
    /// CPU seconds (user + system) of the hub per 1,000 operations.
    pub cpu_s_per_1000: Option<f64>,
    /// The hub's peak resident memory during the phase, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Group commits of the hub's message logs per operation (from its
    /// operator API; None when it could not be read).
    pub commits_per_op: Option<f64>,
    /// `fdatasync`s of the hub's message and history logs per operation.
    pub fdatasyncs_per_op: Option<f64>,
    /// Hub signatures of receipts per operation (docs/adr/0023: one a
    /// tree of a step's receipts; an rt exchange's answer and a single
    /// send's acceptance each need a receipt).
    pub receipt_signatures_per_op: Option<f64>,
}

/// One phase of a run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Phase {
    /// The phase's name (`rt`, `bulk`, `rt-alone`, `rt-with-bulk`, `fill`, `restart`, ...).
    pub name: String,
    /// Seconds measured.
    pub seconds: f64,
    /// Rate offered, operations/s (open loop), or None when flat out.
    pub rate_offered: Option<f64>,
    /// Operations scheduled or sent in the measured window.
    pub issued: u64,
    /// Operations that succeeded.
    pub ok: u64,
    /// Successes per second.
    pub ok_per_s: f64,
    /// Payload megabytes (10^6) per second moved by the successes.
    pub mb_per_s: f64,
    /// Failures by type.
    pub errors: BTreeMap<String, u64>,
    /// Operations the generator could not start.
    pub not_sent: u64,
    /// Operations still in flight when the phase gave up waiting.
    pub unfinished: u64,
    /// Latency quantiles, if the phase measures latency.
    pub latency: Option<Latency>,
    /// The most the generator started a measured operation behind schedule, ms.
    pub generator_lag_max_ms: Option<f64>,
    /// The hub's CPU and memory.
    pub hub: HubCost,
    /// Whether the phase's figures can be trusted (see `invalid_reason`).
    pub valid: bool,
    /// Why not, if not.
    pub invalid_reason: Option<String>,
    /// Figures only this workload has (drain time, backlog size, restart time, ...).
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Phase {
    /// A phase from merged counts over `measured`.
    pub fn new(name: &str, measured: Duration, issued: u64, rec: &Recorder) -> Phase {
        let s = measured.as_secs_f64().max(1e-9);
        Phase {
            name: name.into(),
            seconds: measured.as_secs_f64(),
            rate_offered: None,
            issued,
            ok: rec.ok_count(),
            ok_per_s: rec.ok_count() as f64 / s,
            mb_per_s: rec.bytes() as f64 / 1e6 / s,
            errors: rec.errors().clone(),
            not_sent: rec.not_sent_count(),
            unfinished: 0,
            latency: Latency::of(rec),
            generator_lag_max_ms: None,
            hub: HubCost::default(),
            valid: true,
            invalid_reason: None,
            extra: BTreeMap::new(),
        }
    }

    /// Records `n` calls still unanswered when the drain wait (longer than
    /// 2 s) ended: they count over the 2 s budget, and are in no quantile.
    pub fn unanswered(&mut self, n: u64) {
        self.unfinished = n;
        if n > 0 {
            let l = self.latency.get_or_insert(Latency {
                count: 0,
                p50_us: 0,
                p90_us: 0,
                p99_us: 0,
                p999_us: 0,
                p9999_us: 0,
                max_us: 0,
                over_2s: 0,
            });
            l.over_2s += n;
        }
    }

    /// Marks the phase invalid, keeping the first reason.
    pub fn invalidate(&mut self, reason: impl Into<String>) {
        self.valid = false;
        if self.invalid_reason.is_none() {
            self.invalid_reason = Some(reason.into());
        }
    }

    /// Marks the phase invalid if the generator lagged past `lag_max`
    /// or could not start every operation.
    pub fn judge_generator(&mut self, lag: Duration, lag_max: Duration) {
        self.generator_lag_max_ms = Some(lag.as_secs_f64() * 1e3);
        if lag > lag_max {
            self.invalidate(format!(
                "the generator fell {:.1} ms behind its schedule (bound {} ms): the hub's figures are not trustworthy",
                lag.as_secs_f64() * 1e3,
                lag_max.as_millis()
            ));
        }
        if self.not_sent > 0 {
            self.invalidate(format!(
                "{} operations could not be started (too many in flight)",
                self.not_sent
            ));
        }
    }

    /// The `restart` phase of `recovery`: its times, and invalid if a
    /// request accepted before the kill no longer waits or no call was
    /// answered after the restart.
    pub fn restart(
        to_listening: Duration,
        to_first_answer: Duration,
        first_answer: u64,
        accepted: u64,
        still_waiting: u64,
    ) -> Phase {
        let mut p = Phase::new("restart", to_listening, 1, &Recorder::new());
        p.ok = u64::from(first_answer > 0);
        let ms = |d: Duration| serde_json::json!(d.as_millis() as u64);
        p.extra
            .insert("restart_to_listening_ms".into(), ms(to_listening));
        p.extra
            .insert("restart_to_first_answer_ms".into(), ms(to_first_answer));
        p.extra
            .insert("accepted_before_kill".into(), accepted.into());
        p.extra
            .insert("waiting_after_restart".into(), still_waiting.into());
        if still_waiting < accepted {
            p.invalidate(format!(
                "LOST: {accepted} requests were accepted before the kill, {still_waiting} wait after the restart"
            ));
        }
        if first_answer == 0 {
            p.invalidate("no call was answered after the restart");
        }
        p
    }

    /// `backlog`: puts this rt phase's (run with the backlog waiting) p99
    /// and peak RSS beside `empty`'s (the same rt run before the fill), as
    /// `p99_ratio_to_empty` and `peak_rss_ratio_to_empty`.
    pub fn compare_to_empty(&mut self, empty: &Phase) {
        let round3 = |x: f64| serde_json::json!((x * 1000.0).round() / 1000.0);
        if let (Some(e), Some(l)) = (&empty.latency, &self.latency) {
            self.extra.insert(
                "p99_ratio_to_empty".into(),
                round3(l.p99_us as f64 / e.p99_us.max(1) as f64),
            );
        }
        if let (Some(e), Some(l)) = (empty.hub.peak_rss_bytes, self.hub.peak_rss_bytes) {
            self.extra.insert(
                "peak_rss_ratio_to_empty".into(),
                round3(l as f64 / e.max(1) as f64),
            );
        }
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{:<14} {:>9} ok of {:>9} in {:.1} s = {:>9.0}/s {:>7.1} MB/s",
            self.name, self.ok, self.issued, self.seconds, self.ok_per_s, self.mb_per_s
        );
        if let Some(l) = self.latency.as_ref().filter(|l| l.count == 0) {
            s += &format!(" | nothing answered; over 2 s: {}", l.over_2s);
        }
        if let Some(l) = self.latency.as_ref().filter(|l| l.count > 0) {
            let ms = |us: u64| us as f64 / 1000.0;
            s += &format!(
                " | p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} p99.99 {:.2} max {:.2} ms | over 2 s: {}",
                ms(l.p50_us),
                ms(l.p90_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.p9999_us),
                ms(l.max_us),
                l.over_2s
            );
        }
        if !self.errors.is_empty() {
            s += &format!(" | errors {:?}", self.errors);
        }
        if self.not_sent > 0 || self.unfinished > 0 {
            s += &format!(
                " | not sent {} unfinished {}",
                self.not_sent, self.unfinished
            );
        }
        if let Some(c) = self.hub.cpu_s_per_1000 {
            s += &format!(" | hub CPU {c:.3} s/1000");
        }
        if let Some(r) = self.hub.peak_rss_bytes {
            s += &format!(" peak RSS {:.0} MiB", r as f64 / (1 << 20) as f64);
        }
        if let (Some(c), Some(f)) = (self.hub.commits_per_op, self.hub.fdatasyncs_per_op) {
            s += &format!(" | hub commits/op {c:.3} fdatasyncs/op {f:.3}");
        }
        if let Some(r) = self.hub.receipt_signatures_per_op {
            s += &format!(" receipt signatures/op {r:.3}");
        }
        for (k, v) in &self.extra {
            s += &format!(" | {k} {v}");
        }
        if let Some(why) = &self.invalid_reason {
            s += &format!("\n  INVALID: {why}");
        }
        s
    }
}

/// The machine a run was measured on.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Machine {
    /// Host name.
    pub host: String,
    /// Online CPUs.
    pub cores: usize,
    /// The CPU model, from /proc/cpuinfo.
    pub cpu: String,
    /// The kernel release.
    pub kernel: String,
    /// Memory, bytes.
    pub memory_bytes: u64,
}

impl Machine {
    /// This machine.
    pub fn this() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or("unknown")
            .trim()
            .to_string();
        let memory_bytes = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        Machine {
            host: read("/proc/sys/kernel/hostname").trim().to_string(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            memory_bytes,
        }
    }
}

/// A whole run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RunResult {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// `gonets` or `nats`.
    pub system: String,
    /// The workload.
    pub workload: String,
    /// The system's settings that matter (security, sync, shards, ...).
    pub setup: BTreeMap<String, serde_json::Value>,
    /// The command line that produced this result.
    pub command: String,
    /// Seconds since the Unix epoch at the start.
    pub started_unix_s: u64,
    /// Where it ran.
    pub machine: Machine,
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// Whether every phase is valid.
    pub valid: bool,
    /// The latency plot written for this run, if any.
    pub plot: Option<String>,
    /// What a search found (`--find-max`: the highest rate meeting the bound).
    pub findings: BTreeMap<String, serde_json::Value>,
}

impl RunResult {
    /// A result of `system` running `workload`, started now.
    pub fn new(system: &str, workload: &str) -> RunResult {
        RunResult {
            schema: SCHEMA,
            system: system.into(),
            workload: workload.into(),
            setup: BTreeMap::new(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            started_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            machine: Machine::this(),
            phases: Vec::new(),
            valid: true,
            plot: None,
            findings: BTreeMap::new(),
        }
    }

    /// Adds a phase; an invalid one makes the run invalid.
    pub fn push(&mut self, phase: Phase) {
        self.valid &= phase.valid;
        self.phases.push(phase);
    }

    /// The phase named `name`.
    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// The human summary, a line a phase.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} {} ({})\n",
            self.system,
            self.workload,
            self.setup
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        for p in &self.phases {
            s += "  ";
            s += &p.summary();
            s += "\n";
        }
        if !self.valid {
            s += "  RESULT INVALID: see the phases above\n";
        }
        s
    }

    /// Writes the JSON to `path`.
    pub fn write_json(&self, path: &std::path::Path) -> Result<(), String> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_run_when_serialized_then_schema_fields_are_present() {
        let mut rec = Recorder::new();
        rec.ok(Duration::from_millis(2), 1024);
        rec.error("Timeout");
        let mut phase = Phase::new("rt", Duration::from_secs(1), 2, &rec);
        phase.rate_offered = Some(2.0);
        phase.judge_generator(Duration::from_millis(1), Duration::from_millis(50));
        let mut run = RunResult::new("gonets", "rt");
        run.push(phase);
        let v: serde_json::Value = serde_json::to_value(&run).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        for key in [
            "system",
            "workload",
            "setup",
            "command",
            "started_unix_s",
            "machine",
            "phases",
            "valid",
            "plot",
            "findings",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        let p = &v["phases"][0];
        for key in [
            "name",
            "seconds",
            "rate_offered",
            "issued",
            "ok",
            "ok_per_s",
            "mb_per_s",
            "errors",
            "not_sent",
            "unfinished",
            "latency",
            "generator_lag_max_ms",
            "hub",
            "valid",
            "invalid_reason",
            "extra",
        ] {
            assert!(p.get(key).is_some(), "missing phases[0].{key}");
        }
        for key in [
            "count", "p50_us", "p90_us", "p99_us", "p999_us", "p9999_us", "max_us", "over_2s",
        ] {
            assert!(p["latency"].get(key).is_some(), "missing latency.{key}");
        }
        assert!(p["hub"].get("cpu_s_per_1000").is_some());
        assert!(p["hub"].get("peak_rss_bytes").is_some());
        assert_eq!(p["errors"]["Timeout"], 1);
        assert_eq!(p["mb_per_s"], 0.001024);
        assert_eq!(v["valid"], true);
    }

    #[test]
    fn given_lagging_generator_when_judged_then_phase_and_run_invalid() {
        let rec = Recorder::new();
        let mut phase = Phase::new("rt", Duration::from_secs(1), 0, &rec);
        phase.judge_generator(Duration::from_millis(80), Duration::from_millis(50));
        assert!(!phase.valid);
        assert!(phase
            .invalid_reason
            .as_deref()
            .unwrap()
            .contains("behind its schedule"));
        let mut run = RunResult::new("gonets", "rt");
        run.push(phase);
        assert!(!run.valid);
        assert!(run.summary().contains("INVALID"));
    }
}
