//! The Markdown report of a `bench/run` results directory: the machine's
//! limits, every figure beside its limit and beside NATS JetStream as a
//! ratio, each target of the load-generator issue marked met or missed
//! (and by how much), every run listed, the plots linked. It reads the
//! JSON files only (schema gonets-loadgen/1 and limits.json), so a report
//! can be made again from kept results.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The runs of a results directory, by file stem.
pub struct Results {
    /// limits.json, if present.
    pub limits: Option<Value>,
    /// Every run result, by file stem (`gonets-rt-1`).
    pub runs: BTreeMap<String, Value>,
}

impl Results {
    /// Reads every `*.json` of `dir`.
    pub fn read(dir: &Path) -> Result<Results, String> {
        let mut r = Results {
            limits: None,
            runs: BTreeMap::new(),
        };
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let stem = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let v: Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            if stem == "limits" {
                r.limits = Some(v);
            } else if v["schema"] == crate::result::SCHEMA {
                r.runs.insert(stem, v);
            }
        }
        Ok(r)
    }

    /// Runs whose stem starts with `prefix` followed by a run number.
    fn series(&self, prefix: &str) -> Vec<&Value> {
        self.runs
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .map(|(_, v)| v)
            .collect()
    }

    /// The run named `name` alone (`bench/run` makes one), else its series
    /// `name-1`, `name-2`, ... (`bench/rt-rows` repeats it).
    fn one_or_series(&self, name: &str) -> Vec<&Value> {
        match self.runs.get(name) {
            Some(v) => vec![v],
            None => self.series(name),
        }
    }
}

/// The median of the numbers `f` finds in `runs`.
fn median(runs: &[&Value], f: impl Fn(&Value) -> Option<f64>) -> Option<f64> {
    let mut xs: Vec<f64> = runs.iter().filter_map(|v| f(v)).collect();
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    let m = xs.len() / 2;
    Some(if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    })
}

fn phase<'a>(run: &'a Value, name: &str) -> Option<&'a Value> {
    run["phases"].as_array()?.iter().find(|p| p["name"] == name)
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    // A quantile of a phase where nothing succeeded is not a figure.
    if path.first() == Some(&"latency")
        && path.get(1) != Some(&"over_2s")
        && v["latency"]["count"].as_u64() == Some(0)
    {
        return None;
    }
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_f64()
}

fn ms(us: Option<f64>) -> String {
    us.map_or("—".into(), |u| format!("{:.2} ms", u / 1000.0))
}

fn count(x: Option<f64>) -> String {
    x.map_or("—".into(), |v| {
        let s = format!("{:.0}", v);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 && c != '-' {
                out.push(',');
            }
            out.push(c);
        }
        out
    })
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

/// A target line: met, or missed by how much.
fn verdict(met: Option<bool>, how: &str) -> String {
    match met {
        Some(true) => format!("**met** ({how})"),
        Some(false) => format!("**missed** ({how})"),
        None => "not measured".into(),
    }
}

/// The limit named by one of `keys` (the first present).
fn limit(limits: &Option<Value>, keys: &[&str]) -> Option<f64> {
    let l = limits.as_ref()?;
    keys.iter().find_map(|k| num(l, &[k]))
}

/// The whole report.
pub fn render(r: &Results, dir_name: &str) -> String {
    let mut s = String::new();
    write_header(&mut s, r, dir_name);
    write_limits(&mut s, &r.limits);
    write_targets(&mut s, r);
    write_every_run(&mut s, r);
    write_plots(&mut s, r);
    let _ = writeln!(
        s,
        "Commands: each run's JSON holds the exact command line (`command`)."
    );
    s
}

/// The title and the machine line (from any run: all ran on one machine).
fn write_header(s: &mut String, r: &Results, dir_name: &str) {
    let any = r.runs.values().next();
    let machine = any.map(|v| &v["machine"]);
    let _ = writeln!(s, "# gonets benchmark report: {dir_name}\n");
    if let Some(m) = machine {
        let _ = writeln!(
            s,
            "Machine: `{}`, {} cores ({}), kernel {}, {:.1} GiB. Every figure below was measured in this run; medians where a run was repeated. Raw JSON and plots beside this file.\n",
            m["host"].as_str().unwrap_or("?"),
            m["cores"],
            m["cpu"].as_str().unwrap_or("?"),
            m["kernel"].as_str().unwrap_or("?"),
            m["memory_bytes"].as_f64().unwrap_or(0.0) / (1u64 << 30) as f64,
        );
    }
}

/// Every figure of limits.json, as a table; or a line saying it is missing.
fn write_limits(s: &mut String, l: &Option<Value>) {
    let _ = writeln!(s, "## The machine's limits (same run)\n");
    match l {
        Some(lv) => {
            let _ = writeln!(s, "| limit | figure |\n|---|---|");
            if let Some(obj) = lv.as_object() {
                for (k, v) in obj {
                    if let Some(shown) = limit_figure(v) {
                        let _ = writeln!(s, "| `{k}` | {shown} |");
                    }
                }
            }
            s.push('\n');
        }
        None => s.push_str("limits.json is missing: no limit was measured.\n\n"),
    }
}

/// One limit as shown in the table; None for what is not a figure.
fn limit_figure(v: &Value) -> Option<String> {
    Some(match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(0.0);
            if x.abs() >= 100.0 {
                count(Some(x))
            } else {
                format!("{x:.2}")
            }
        }
        Value::Number(n) => count(n.as_f64()),
        Value::String(t) => t.clone(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    })
}

/// The targets table: one row per target of the load-generator issue.
fn write_targets(s: &mut String, r: &Results) {
    let _ = writeln!(s, "## Targets\n");
    let _ = writeln!(s, "| target | gonets | beside the limit | beside NATS JetStream | verdict |\n|---|---|---|---|---|");
    write_rt_targets(s, r);
    write_bulk_target(s, r);
    write_format_cost(s, r);
    write_rt_signature_cost(s, r);
    write_rt_tls_cost(s, r);
    write_rt_gateway_cost(s, r);
    if let Some(a) = r.runs.get("gonets-attachment") {
        write_attachment_target(s, a);
    }
    write_mixed_target(s, r);
    if let Some(b) = r.runs.get("gonets-backlog") {
        write_backlog_target(s, b, r.runs.get("nats-default-backlog"));
    }
    if let Some(rec) = r.runs.get("gonets-recovery") {
        write_recovery_target(s, rec, r.runs.get("nats-default-recovery"));
    }
    s.push('\n');
}

/// The median of latency quantile `q` of phase `name` over `runs`.
fn phase_latency(runs: &[&Value], name: &str, q: &str) -> Option<f64> {
    median(runs, |v| {
        phase(v, name).and_then(|p| num(p, &["latency", q]))
    })
}

/// The NATS rt series, by `nats-{sync}-rt-{rate}` key, each with its runs.
fn nats_rt_series(r: &Results) -> Vec<(String, Vec<&Value>)> {
    ["always", "default"]
        .iter()
        .flat_map(|sync| {
            let mut rates: Vec<String> = r
                .runs
                .keys()
                .filter_map(|k| k.strip_prefix(&format!("nats-{sync}-rt-")))
                .filter_map(|rest| rest.split('-').next().map(String::from))
                .collect();
            rates.sort();
            rates.dedup();
            rates
                .into_iter()
                .map(|rate| {
                    let key = format!("nats-{sync}-rt-{rate}");
                    (key.clone(), r.series(&key))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Quantile `q` of every NATS rt series, on one cell.
fn nats_rt_cell(nats_rt: &[(String, Vec<&Value>)], q: &str) -> String {
    if nats_rt.is_empty() {
        return "not run".to_string();
    }
    nats_rt
        .iter()
        .map(|(k, runs)| format!("{k}: {}", ms(phase_latency(runs, "rt", q))))
        .collect::<Vec<_>>()
        .join("; ")
}

/// rt p50 vs 3 × 4 KiB write+fdatasync; p99.9 ≤ 10 ms at ≥ 10,000/s; find-max.
fn write_rt_targets(s: &mut String, r: &Results) {
    let w4k_p50 = limit(&r.limits, &["write4k_fdatasync_p50_us"]);
    let g_rt = r.series("gonets-rt");
    let rt_rate = g_rt
        .first()
        .and_then(|v| phase(v, "rt"))
        .and_then(|p| num(p, &["rate_offered"]));
    let rt_p50 = phase_latency(&g_rt, "rt", "p50_us");
    let rt_p999 = phase_latency(&g_rt, "rt", "p999_us");
    let rt_over = median(&g_rt, |v| {
        phase(v, "rt").and_then(|p| num(p, &["latency", "over_2s"]))
    });
    let rt_ok_s = median(&g_rt, |v| {
        phase(v, "rt").and_then(|p| num(p, &["ok_per_s"]))
    });
    let nats_rt = nats_rt_series(r);
    let _ = writeln!(
        s,
        "| rt at {} /s: p50 within 3 × one 4 KiB write+fdatasync | {} | {} (4 KiB write+fdatasync p50 {}) | {} | {} |",
        count(rt_rate),
        ms(rt_p50),
        ratio(rt_p50, w4k_p50),
        ms(w4k_p50),
        nats_rt_cell(&nats_rt, "p50_us"),
        verdict(rt_p50.zip(w4k_p50).map(|(a, b)| a <= 3.0 * b), &ratio(rt_p50, w4k_p50)),
    );
    let _ = writeln!(
        s,
        "| rt at {} /s: p99.9 ≤ 10 ms, none over 2 s, ≥ 10,000/s | p99.9 {}, over 2 s {}, answered {}/s | — | {} | {} |",
        count(rt_rate),
        ms(rt_p999),
        count(rt_over),
        count(rt_ok_s),
        nats_rt_cell(&nats_rt, "p999_us"),
        verdict(
            rt_p999.zip(rt_over).zip(rt_ok_s).map(|((p, o), ok)| p <= 10_000.0 && o == 0.0 && ok >= 10_000.0),
            &format!("p99.9 {} vs 10 ms", ratio(rt_p999, Some(10_000.0)))
        ),
    );
    write_idle_target(s, r);
    let fm = r.one_or_series("gonets-rt-find-max");
    if !fm.is_empty() {
        let max = median(&fm, |v| v["findings"]["max_rate_per_s"].as_f64());
        let _ = writeln!(
            s,
            "| rt find-max: highest rate with p99.9 ≤ 10 ms and none over 2 s ≥ 10,000/s | {} /s{} | — | NATS: see the rt rows (p99.9 at each rate) | {} |",
            count(max),
            of_runs(fm.len()),
            verdict(max.map(|m| m >= 10_000.0), &format!("{} of 10,000", ratio(max, Some(10_000.0)))),
        );
    }
}

/// ", median of N runs" when a figure is the median of more than one run.
fn of_runs(n: usize) -> String {
    if n > 1 {
        format!(", median of {n} runs")
    } else {
        String::new()
    }
}

/// bulk 4 KiB, durable, drained with ack (issue 15): ≥ 55,000 msg/s (Iggy
/// strict) as the first step; the aim ≥ 110,000 msg/s or ≥ 80 % of the
/// disk's fdatasync'd sequential bandwidth, whichever is lower. One row per
/// series: one message per frame (`gonets-bulk`) and batched
/// (`gonets-bulk-batch`, `--batch`).
fn write_bulk_target(s: &mut String, r: &Results) {
    let disk_mb = limit(&r.limits, &["disk_seq_fdatasync_mb_per_s"]);
    let nats_bulk = |sync: &str| {
        median(&r.series(&format!("nats-{sync}-bulk")), |v| {
            phase(v, "bulk").and_then(|p| num(p, &["ok_per_s"]))
        })
    };
    let (nb_always, nb_default) = (nats_bulk("always"), nats_bulk("default"));
    for (series, what) in [
        ("gonets-bulk", "one message a frame"),
        ("gonets-bulk-batch", "batched"),
    ] {
        let runs = r.series(series);
        if runs.is_empty() {
            continue;
        }
        let of = |path: &'static [&'static str]| {
            median(&runs, |v| phase(v, "bulk").and_then(|p| num(p, path)))
        };
        let rate = of(&["ok_per_s"]);
        let mb = of(&["mb_per_s"]);
        let drained = of(&["extra", "drained_per_s"]);
        let cpu = of(&["hub", "cpu_s_per_1000"]);
        let batch = runs[0]["setup"]["batch"].as_u64().unwrap_or(1);
        // The aim: 110,000 msg/s or 80 % of the disk, whichever is lower.
        let aim = disk_mb
            .map(|d| (0.8 * d * 1e6 / 4096.0).min(110_000.0))
            .unwrap_or(110_000.0);
        let _ = writeln!(
            s,
            "| bulk 4 KiB, {what} (batch {batch}), acked drain ≥ 55,000 msg/s (aim ≥ {} msg/s) | {} msg/s accepted ({} MB/s), {} msg/s drained; hub CPU {} µs a message | {} of the disk's fdatasync'd sequential {} MB/s | {} of NATS default ({} msg/s); {} of NATS always ({} msg/s) | {} |",
            count(Some(aim)),
            count(rate),
            mb.map_or("—".into(), |m| format!("{m:.1}")),
            count(drained),
            cpu.map_or("—".into(), |c| format!("{:.1}", c * 1000.0)),
            ratio(mb, disk_mb),
            disk_mb.map_or("—".into(), |m| format!("{m:.0}")),
            ratio(rate, nb_default),
            count(nb_default),
            ratio(rate, nb_always),
            count(nb_always),
            verdict(
                drained.map(|d| d >= 55_000.0),
                &format!(
                    "{} of 55,000; {} of the aim",
                    ratio(drained, Some(55_000.0)),
                    ratio(drained, Some(aim))
                )
            ),
        );
    }
}

/// An idle hub uses < 2 % of its cores (issue 16): the median of the rt
/// runs' idle watch before their load (`findings.idle_hub_cpu_cores`).
fn write_idle_target(s: &mut String, r: &Results) {
    let runs = r.series("gonets-rt");
    let idle = median(&runs, |v| v["findings"]["idle_hub_cpu_cores"].as_f64());
    let Some(idle) = idle else {
        return;
    };
    let cores = runs
        .first()
        .and_then(|v| v["setup"]["hub_cores"].as_array().map(|a| a.len().max(1)))
        .unwrap_or(1) as f64;
    let share = idle / cores;
    let _ = writeln!(
        s,
        "| idle hub: < 2 % of its cores | {:.2} % of its {} core(s), 3 s with no client work before each rt run (median) | — | — | {} |",
        share * 100.0,
        cores,
        verdict(Some(share < 0.02), &format!("{:.2}× of 2 %", share / 0.02)),
    );
}

/// What trust costs the batched bulk run (issue 18), each against the
/// batched runs without (`gonets-bulk-batch`): every payload checked
/// against a JSON Schema (`gonets-bulk-schema`), every batch signed once
/// (`gonets-bulk-signed`), both (`gonets-bulk-signed-schema`). No target:
/// the rows report the cost.
fn write_format_cost(s: &mut String, r: &Results) {
    let variants = [
        (
            "gonets-bulk-schema",
            "every payload checked against a JSON Schema (agency record; issue 18)",
        ),
        (
            "gonets-bulk-signed",
            "every batch signed by its sender (Ed25519, once a batch) and checked; issue 18",
        ),
        (
            "gonets-bulk-signed-schema",
            "signed batches and every payload checked against a JSON Schema; issue 18",
        ),
        (
            "gonets-bulk-http",
            "through the HTTP gateway (JSON batches, payloads in base64; issue 19)",
        ),
        (
            "gonets-bulk-http-tls",
            "through the HTTP gateway over mutual TLS (issue 19)",
        ),
    ];
    for (series, what) in variants {
        write_bulk_cost(s, r, series, what);
    }
}

/// One row of [`write_format_cost`]: `series` beside the batched runs.
fn write_bulk_cost(s: &mut String, r: &Results, series: &str, what: &str) {
    let (with, without) = (r.series(series), r.series("gonets-bulk-batch"));
    if with.is_empty() {
        return;
    }
    let of = |runs: &[&Value], path: &'static [&'static str]| {
        median(runs, |v| phase(v, "bulk").and_then(|p| num(p, path)))
    };
    let cpu_us = |runs: &[&Value]| of(runs, &["hub", "cpu_s_per_1000"]).map(|c| c * 1000.0);
    let (cpu_with, cpu_without) = (cpu_us(&with), cpu_us(&without));
    let extra = cpu_with.zip(cpu_without).map(|(w, o)| w - o);
    let _ = writeln!(
        s,
        "| bulk 4 KiB batched, {what} (cost reported) | {} msg/s drained; hub CPU {} µs a message | {} µs a message more than without ({} msg/s drained) | — | cost: {} of the rate without |",
        count(of(&with, &["extra", "drained_per_s"])),
        cpu_with.map_or("—".into(), |c| format!("{c:.1}")),
        extra.map_or("—".into(), |e| format!("{e:.1}")),
        count(of(&without, &["extra", "drained_per_s"])),
        ratio(
            of(&with, &["extra", "drained_per_s"]),
            of(&without, &["extra", "drained_per_s"])
        ),
    );
}

/// What sender signatures cost a real-time exchange (issue 18): rt at a
/// rate one core carries signed (`gonets-rt-signed`: request and answer
/// signed by their senders and verified by the hub) beside the same rate
/// unsigned (`gonets-rt-unsigned`); both get the hub's receipts.
fn write_rt_signature_cost(s: &mut String, r: &Results) {
    let row = RtCostRow {
        series: "gonets-rt-signed",
        base_series: "gonets-rt-unsigned",
        what: "request and answer signed and verified (issue 18, cost reported)",
        cpu_note: "",
        base: "unsigned",
    };
    write_rt_cost(s, r, &row);
}

/// What mutual TLS costs a real-time call (issue 16: within 20 % of plain):
/// `gonets-rt-tls` beside `gonets-rt` at the same rate (`bench/rt-rows`).
fn write_rt_tls_cost(s: &mut String, r: &Results) {
    let row = RtCostRow {
        series: "gonets-rt-tls",
        base_series: "gonets-rt",
        what: "over mutual TLS (issue 16: within 20 % of plain)",
        cpu_note: "",
        base: "plain",
    };
    write_rt_cost(s, r, &row);
}

/// What the HTTP gateway costs a real-time call (issue 19): the same rate
/// through it (`gonets-rt-http`, consumers over HTTP/JSON, providers
/// native) beside the native protocol (`gonets-rt-unsigned`).
fn write_rt_gateway_cost(s: &mut String, r: &Results) {
    let row = RtCostRow {
        series: "gonets-rt-http",
        base_series: "gonets-rt-unsigned",
        what: "through the HTTP gateway (issue 19, cost reported)",
        cpu_note: " (gateway thread included)",
        base: "native",
    };
    write_rt_cost(s, r, &row);
    let tls = RtCostRow {
        series: "gonets-rt-http-tls",
        base_series: "gonets-rt-tls-native",
        what: "through the HTTP gateway over mutual TLS (issue 19, cost reported)",
        cpu_note: " (gateway thread included)",
        base: "native over mutual TLS",
    };
    write_rt_cost(s, r, &tls);
}

/// An rt run beside its base at the same rate: what differs, and its words.
struct RtCostRow {
    series: &'static str,
    base_series: &'static str,
    what: &'static str,
    cpu_note: &'static str,
    base: &'static str,
}

/// The row of `row`: its latency and hub CPU a call beside the base's, and
/// the difference; nothing when either series is missing.
fn write_rt_cost(s: &mut String, r: &Results, row: &RtCostRow) {
    let (with, base) = (r.series(row.series), r.series(row.base_series));
    if with.is_empty() || base.is_empty() {
        return;
    }
    let of = |runs: &[&Value], path: &'static [&'static str]| {
        median(runs, |v| phase(v, "rt").and_then(|p| num(p, path)))
    };
    let cpu_us = |runs: &[&Value]| of(runs, &["hub", "cpu_s_per_1000"]).map(|c| c * 1000.0);
    let (cpu_with, cpu_base) = (cpu_us(&with), cpu_us(&base));
    let one = |c: Option<f64>| c.map_or("—".into(), |c| format!("{c:.1}"));
    let _ = writeln!(
        s,
        "| rt {}/s, {} | p50 {}, p99.9 {}; hub CPU {} µs a call{} | {}: p50 {}, p99.9 {}; {} µs a call | — | cost: {} µs a call |",
        count(of(&with, &["ok_per_s"])),
        row.what,
        ms(of(&with, &["latency", "p50_us"])),
        ms(of(&with, &["latency", "p999_us"])),
        one(cpu_with),
        row.cpu_note,
        row.base,
        ms(of(&base, &["latency", "p50_us"])),
        ms(of(&base, &["latency", "p999_us"])),
        one(cpu_base),
        one(cpu_with.zip(cpu_base).map(|(w, b)| w - b)),
    );
}

/// Issue 19 item 4: rt p99 beside an attachment's transfer (its upload
/// cut once and resumed, its provider's read checked) against rt alone,
/// with the transfer's own figures. Kept: within 20 % of alone.
fn write_attachment_target(s: &mut String, a: &Value) {
    let p99 = |name: &str| phase(a, name).and_then(|p| num(p, &["latency", "p99_us"]));
    // An interleaved run (`--attachment-interleave-s`) compares the calls
    // issued while the transfer moved with those issued while it stood
    // still; a sequential one, rt beside it with rt alone before.
    let interleaved = phase(a, "rt-transfer-moving").is_some();
    let (alone, with, alone_name, with_name) = if interleaved {
        let (still, moving) = (p99("rt-transfer-still"), p99("rt-transfer-moving"));
        (still, moving, "still", "moving")
    } else {
        let (alone, with) = (p99("rt-alone"), p99("rt-with-attachment"));
        (alone, with, "alone", "beside")
    };
    let t = phase(a, "attachment-transfer");
    let x = |k: &str| t.and_then(|p| num(p, &["extra", k]));
    let mib = num(a, &["setup", "attachment_bytes"]).map(|b| b / 1048576.0);
    let verified = t.is_some_and(|p| p["extra"]["digest_verified"] == true);
    let _ = writeln!(
        s,
        "| rt p99 beside a {:.0} MiB attachment (dropped connection, resumed) ≤ 1.2 × alone (issue 19) | {} {with_name} vs {} {alone_name} | upload {} MiB/s (resumed at {} MiB), read {} MiB/s, digest {} | — | {} |",
        mib.unwrap_or(0.0),
        ms(with),
        ms(alone),
        x("upload_mib_per_s").map_or("—".into(), |v| format!("{v:.0}")),
        x("resumed_at_bytes").map_or("—".into(), |v| format!("{:.0}", v / 1048576.0)),
        x("read_mib_per_s").map_or("—".into(), |v| format!("{v:.0}")),
        if verified { "verified" } else { "NOT verified" },
        verdict(
            alone.zip(with).map(|(a, w)| verified && w <= 1.2 * a),
            &ratio(with, alone)
        ),
    );
}

/// mixed (issue 16): rt p99.9 with bulk flat out ≤ 2 × alone; and, when
/// bulk alone ran with mixed's senders (`gonets-bulk-alone`), bulk keeps
/// ≥ 80 % of that rate beside rt. Medians where the runs were repeated.
fn write_mixed_target(s: &mut String, r: &Results) {
    let runs = r.one_or_series("gonets-mixed");
    if runs.is_empty() {
        return;
    }
    let alone = phase_latency(&runs, "rt-alone", "p999_us");
    let with = phase_latency(&runs, "rt-with-bulk", "p999_us");
    let of = |v: &Value, name: &str| phase(v, name).and_then(|p| num(p, &["ok_per_s"]));
    let bulk = median(&runs, |v| of(v, "bulk-with-rt"));
    let _ = writeln!(
        s,
        "| mixed: rt p99.9 with bulk flat out ≤ 2 × without | {} with bulk ({} msg/s) vs {} alone{} | {} | — | {} |",
        ms(with),
        count(bulk),
        ms(alone),
        of_runs(runs.len()),
        beside_stream(&r.limits),
        verdict(alone.zip(with).map(|(a, w)| w <= 2.0 * a), &ratio(with, alone)),
    );
    let bulk_alone = r.series("gonets-bulk-alone");
    if bulk_alone.is_empty() {
        return;
    }
    let base = median(&bulk_alone, |v| of(v, "bulk"));
    let _ = writeln!(
        s,
        "| mixed: bulk beside rt keeps ≥ 80 % of its rate alone | {} msg/s beside rt vs {} alone (the same senders) | — | — | {} |",
        count(bulk),
        count(base),
        verdict(bulk.zip(base).map(|(b, a)| b >= 0.8 * a), &ratio(bulk, base)),
    );
}

/// The disk's floor under a durable rt commit beside bulk: one 4 KiB
/// write + `fdatasync` while a stream of large writes + `fdatasync` runs
/// (limits.json), or a dash where it was not measured.
fn beside_stream(limits: &Option<Value>) -> String {
    let p999 = limit(limits, &["write4k_beside_stream_fdatasync_p999_us"]);
    let mb = limit(limits, &["stream_beside_4k_mb_per_s"]);
    match (p999, mb) {
        (Some(p), Some(mb)) => format!(
            "disk: 4 KiB write + fdatasync beside a {mb:.0} MB/s stream of syncs, p99.9 {}",
            ms(Some(p))
        ),
        _ => "—".into(),
    }
}

/// A backlog run's figures: (empty p99, backlog p99, empty peak RSS,
/// backlog peak RSS, messages waiting), in µs, bytes and messages.
type BacklogFigures = (
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

fn backlog_figures(b: &Value) -> BacklogFigures {
    let of = |name: &str, path: &[&str]| phase(b, name).and_then(|p| num(p, path));
    (
        of("rt-empty", &["latency", "p99_us"]),
        of("rt-backlog", &["latency", "p99_us"]),
        of("rt-empty", &["hub", "peak_rss_bytes"]),
        of("rt-backlog", &["hub", "peak_rss_bytes"]),
        num(b, &["setup", "backlog_messages"]),
    )
}

/// The NATS backlog run on one cell: its two p99s and its RSS growth.
fn nats_backlog_cell(nats: Option<&Value>) -> String {
    let Some(v) = nats else {
        return "not run".into();
    };
    let (e99, l99, erss, lrss, n) = backlog_figures(v);
    let above = erss.zip(lrss).map(|(e, l)| l - e);
    format!(
        "NATS (default) with {} waiting: p99 {} vs {} empty ({}); RSS {:.0} MiB vs {:.0} MiB ({:.0} MiB above){}",
        count(n),
        ms(l99),
        ms(e99),
        ratio(l99, e99),
        lrss.unwrap_or(0.0) / 1048576.0,
        erss.unwrap_or(0.0) / 1048576.0,
        above.unwrap_or(0.0) / 1048576.0,
        if v["valid"] == false { "; INVALID (see the run)" } else { "" },
    )
}

/// backlog (issue 15): with 10 M waiting, hub RSS ≤ 1 GiB above the empty
/// hub's and rt p99 within 20 % of the empty hub's.
fn write_backlog_target(s: &mut String, b: &Value, nats: Option<&Value>) {
    let (e99, l99, erss, lrss, n) = backlog_figures(b);
    let bytes = num(b, &["setup", "message_bytes"]);
    let above = erss.zip(lrss).map(|(e, l)| l - e);
    let p99_ok = e99.zip(l99).map(|(e, l)| l <= 1.2 * e);
    let _ = writeln!(
        s,
        "| backlog: {} × {} B waiting: hub RSS ≤ 1 GiB above empty, rt p99 within 20 % of empty | p99 {} vs {}; RSS {:.0} MiB vs {:.0} MiB ({:.0} MiB above, {:.0} bytes a waiting request) | — | {} | {} |",
        count(n),
        count(bytes),
        ms(l99),
        ms(e99),
        lrss.unwrap_or(0.0) / 1048576.0,
        erss.unwrap_or(0.0) / 1048576.0,
        above.unwrap_or(0.0) / 1048576.0,
        above.zip(n).map_or(0.0, |(a, n)| a / n.max(1.0)),
        nats_backlog_cell(nats),
        verdict(
            above.zip(p99_ok).map(|(a, p)| a <= (1u64 << 30) as f64 && p),
            &format!(
                "p99 {}, RSS {} of 1 GiB above empty{}",
                ratio(l99, e99),
                ratio(above, Some((1u64 << 30) as f64)),
                if n.unwrap_or(0.0) < 10e6 {
                    " — with this backlog, not the target's 10 M"
                } else {
                    ""
                }
            )
        ),
    );
}

/// A recovery run's figures: (ms to listening, ms to the first answer,
/// log bytes, whether a request accepted before the kill was lost or no
/// call was answered).
fn recovery_figures(rec: &Value) -> (Option<f64>, Option<f64>, Option<f64>, Option<bool>) {
    let p = phase(rec, "restart");
    (
        p.and_then(|p| num(p, &["extra", "restart_to_listening_ms"])),
        p.and_then(|p| num(p, &["extra", "restart_to_first_answer_ms"])),
        p.and_then(|p| num(p, &["extra", "log_bytes"])),
        p.map(|p| p["valid"] == false),
    )
}

/// The NATS recovery run on one cell.
fn nats_recovery_cell(nats: Option<&Value>) -> String {
    let Some(v) = nats else {
        return "not run".into();
    };
    let (t, first, bytes, bad) = recovery_figures(v);
    format!(
        "NATS (default): {} ms to healthy, {} ms to the first answer, with {:.2} GiB in the stream{}",
        count(t),
        count(first),
        bytes.unwrap_or(0.0) / (1u64 << 30) as f64,
        if bad == Some(true) { "; INVALID (see the run)" } else { "" },
    )
}

/// recovery (issue 15): SIGKILL with 4 GiB of log and 1 M waiting, first
/// answer ≤ 2 s after the restart.
fn write_recovery_target(s: &mut String, rec: &Value, nats: Option<&Value>) {
    let (t, first, bytes, lost) = recovery_figures(rec);
    let _ = writeln!(
        s,
        "| recovery: SIGKILL with 4 GiB of log and 1 M waiting, first answer ≤ 2 s after restart | {} ms to listening, {} ms to the first answer, with {:.2} GiB of log; {} | — | {} | {} |",
        count(t),
        count(first),
        bytes.unwrap_or(0.0) / (1u64 << 30) as f64,
        if lost == Some(true) { "INVALID (see the run)" } else { "every accepted request still waiting" },
        nats_recovery_cell(nats),
        verdict(
            first.map(|t| t <= 2000.0),
            &format!(
                "first answer {} of 2 s{}",
                ratio(first, Some(2000.0)),
                if bytes.unwrap_or(0.0) < 0.95 * (4u64 << 30) as f64 {
                    " — at this log size, not the target's 4 GiB"
                } else {
                    ""
                }
            )
        ),
    );
}

/// Every phase of every run, one table row each.
fn write_every_run(s: &mut String, r: &Results) {
    let _ = writeln!(s, "## Every run\n");
    let _ = writeln!(s, "| run | phase | ok/s | MB/s | p50 | p99 | p99.9 | max | over 2 s | errors | hub CPU s/1000 | hub peak RSS | hub fdatasyncs/op | valid |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, v) in &r.runs {
        for p in v["phases"].as_array().into_iter().flatten() {
            write_phase_row(s, name, p);
        }
    }
    s.push('\n');
}

/// One phase's row of the every-run table.
fn write_phase_row(s: &mut String, name: &str, p: &Value) {
    let errors: u64 = p["errors"]
        .as_object()
        .map_or(0, |o| o.values().filter_map(Value::as_u64).sum());
    let _ = writeln!(
        s,
        "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {errors} | {} | {} | {} | {} |",
        p["name"].as_str().unwrap_or("?"),
        count(num(p, &["ok_per_s"])),
        num(p, &["mb_per_s"]).map_or("—".into(), |m| format!("{m:.1}")),
        ms(num(p, &["latency", "p50_us"])),
        ms(num(p, &["latency", "p99_us"])),
        ms(num(p, &["latency", "p999_us"])),
        ms(num(p, &["latency", "max_us"])),
        count(num(p, &["latency", "over_2s"])),
        num(p, &["hub", "cpu_s_per_1000"]).map_or("—".into(), |c| format!("{c:.3}")),
        num(p, &["hub", "peak_rss_bytes"])
            .map_or("—".into(), |b| format!("{:.0} MiB", b / 1048576.0)),
        num(p, &["hub", "fdatasyncs_per_op"]).map_or("—".into(), |f| format!("{f:.3}")),
        if p["valid"] == true {
            "yes".to_string()
        } else {
            format!("**no**: {}", p["invalid_reason"].as_str().unwrap_or("?"))
        },
    );
}

/// Links to the plots the runs wrote, if any.
fn write_plots(s: &mut String, r: &Results) {
    let plots: Vec<(&String, &str)> = r
        .runs
        .iter()
        .filter_map(|(k, v)| v["plot"].as_str().map(|p| (k, p)))
        .collect();
    if !plots.is_empty() {
        let _ = writeln!(s, "## Latency plots\n");
        for (k, p) in plots {
            let file = Path::new(p)
                .file_name()
                .map_or(p.into(), |f| f.to_string_lossy().to_string());
            let _ = writeln!(s, "- {k}: [{file}]({file})");
        }
        s.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_values_when_median_then_middle_or_mean_of_middles() {
        let a = serde_json::json!({"x": 3.0});
        let b = serde_json::json!({"x": 1.0});
        let c = serde_json::json!({"x": 2.0});
        let d = serde_json::json!({"x": 10.0});
        assert_eq!(median(&[&a, &b, &c], |v| v["x"].as_f64()), Some(2.0));
        assert_eq!(median(&[&a, &b, &c, &d], |v| v["x"].as_f64()), Some(2.5));
        assert_eq!(median(&[], |v| v["x"].as_f64()), None);
        assert_eq!(count(Some(1234567.0)), "1,234,567");
    }

    #[test]
    fn given_rt_runs_with_idle_watches_when_rendered_then_the_idle_share_of_the_cores() {
        let rt = |idle: f64| {
            serde_json::json!({"setup": {"hub_cores": [1]},
                "findings": {"idle_hub_cpu_cores": idle}})
        };
        let mut r = Results {
            limits: None,
            runs: BTreeMap::new(),
        };
        let mut s = String::new();
        write_idle_target(&mut s, &r);
        assert!(s.is_empty(), "no rt run, no row: {s}");
        r.runs.insert("gonets-rt-1".into(), rt(0.001));
        r.runs.insert("gonets-rt-2".into(), rt(0.003));
        r.runs.insert("gonets-rt-3".into(), rt(0.5));
        write_idle_target(&mut s, &r);
        assert!(s.contains("0.30 % of its 1 core(s)"), "{s}");
        assert!(s.contains("**met** (0.15× of 2 %)"), "{s}");
        let mut busy = String::new();
        r.runs.insert("gonets-rt-4".into(), rt(0.5));
        write_idle_target(&mut busy, &r);
        assert!(busy.contains("missed"), "{busy}");
    }

    #[test]
    fn given_bulk_runs_with_and_without_a_schema_when_rendered_then_the_cost_a_message() {
        let bulk = |drained: f64, cpu_s: f64| {
            serde_json::json!({"phases": [{"name": "bulk", "latency": {"count": 10},
                "extra": {"drained_per_s": drained}, "hub": {"cpu_s_per_1000": cpu_s}}]})
        };
        let mut r = Results {
            limits: None,
            runs: BTreeMap::new(),
        };
        let mut s = String::new();
        write_format_cost(&mut s, &r);
        assert!(s.is_empty(), "no schema run, no row: {s}");
        r.runs
            .insert("gonets-bulk-batch-1".into(), bulk(60_000.0, 0.016));
        r.runs
            .insert("gonets-bulk-batch-2".into(), bulk(50_000.0, 0.018));
        r.runs
            .insert("gonets-bulk-schema-1".into(), bulk(15_000.0, 0.062));
        write_format_cost(&mut s, &r);
        assert!(
            s.contains("15,000 msg/s drained; hub CPU 62.0 µs a message"),
            "{s}"
        );
        assert!(
            s.contains("45.0 µs a message more than without (55,000 msg/s drained)"),
            "{s}"
        );
        assert!(!s.contains("signed"), "no signed run, no row: {s}");
        r.runs
            .insert("gonets-bulk-signed-1".into(), bulk(40_000.0, 0.020));
        let mut s = String::new();
        write_format_cost(&mut s, &r);
        assert!(
            s.contains("every batch signed by its sender") && s.contains("hub CPU 20.0 µs"),
            "{s}"
        );
    }

    #[test]
    fn given_rt_runs_signed_and_unsigned_when_rendered_then_the_cost_a_call() {
        let rt = |p50: f64, cpu_s: f64| {
            serde_json::json!({"phases": [{"name": "rt", "ok_per_s": 2000.0,
                "latency": {"count": 10, "p50_us": p50, "p999_us": 4.0 * p50},
                "hub": {"cpu_s_per_1000": cpu_s}}]})
        };
        let mut r = Results {
            limits: None,
            runs: BTreeMap::new(),
        };
        r.runs
            .insert("gonets-rt-signed-1".into(), rt(1_500.0, 0.40));
        let mut s = String::new();
        write_rt_signature_cost(&mut s, &r);
        assert!(s.is_empty(), "no unsigned run, no row: {s}");
        r.runs
            .insert("gonets-rt-unsigned-1".into(), rt(1_000.0, 0.25));
        write_rt_signature_cost(&mut s, &r);
        assert!(s.contains("hub CPU 400.0 µs a call"), "{s}");
        assert!(s.contains("cost: 150.0 µs a call"), "{s}");
    }

    #[test]
    fn given_rt_runs_through_the_gateway_and_native_when_rendered_then_the_cost_a_call() {
        let rt = |p50: f64, cpu_s: f64| {
            serde_json::json!({"phases": [{"name": "rt", "ok_per_s": 2000.0,
                "latency": {"count": 10, "p50_us": p50, "p999_us": 4.0 * p50},
                "hub": {"cpu_s_per_1000": cpu_s}}]})
        };
        let mut r = Results {
            limits: None,
            runs: BTreeMap::new(),
        };
        r.runs.insert("gonets-rt-http-1".into(), rt(2_000.0, 0.50));
        let mut s = String::new();
        write_rt_gateway_cost(&mut s, &r);
        assert!(s.is_empty(), "no native run, no row: {s}");
        r.runs
            .insert("gonets-rt-unsigned-1".into(), rt(1_000.0, 0.25));
        write_rt_gateway_cost(&mut s, &r);
        assert!(
            s.contains("HTTP gateway") && s.contains("hub CPU 500.0 µs"),
            "{s}"
        );
        assert!(s.contains("cost: 250.0 µs a call"), "{s}");
        // Over mutual TLS: its own row, beside native TLS at the same rate.
        r.runs
            .insert("gonets-rt-http-tls-1".into(), rt(3_000.0, 0.60));
        r.runs
            .insert("gonets-rt-tls-native-1".into(), rt(1_500.0, 0.35));
        let mut s = String::new();
        write_rt_gateway_cost(&mut s, &r);
        assert_eq!(s.lines().count(), 2, "{s}");
        let tls = s.lines().nth(1).unwrap();
        assert!(
            tls.contains("over mutual TLS") && tls.contains("cost: 250.0 µs a call"),
            "{tls}"
        );
        assert!(tls.contains("native over mutual TLS: p50 1.50 ms"), "{tls}");
    }

    #[test]
    fn given_an_attachment_run_when_rendered_then_the_rt_tail_beside_it_and_the_transfer() {
        let rt = |name: &str, p99: f64| serde_json::json!({"name": name, "latency": {"count": 10, "p99_us": p99}});
        let run = |p99_with: f64, verified: bool| {
            serde_json::json!({"setup": {"attachment_bytes": 1073741824u64},
                "phases": [rt("rt-alone", 4000.0), rt("rt-with-attachment", p99_with),
                    {"name": "attachment-transfer", "extra": {"upload_mib_per_s": 140.7,
                        "read_mib_per_s": 838.8, "resumed_at_bytes": 536870912u64,
                        "digest_verified": verified}}]})
        };
        let mut s = String::new();
        write_attachment_target(&mut s, &run(10_000.0, true));
        assert!(s.contains("1024 MiB attachment"), "{s}");
        assert!(s.contains("10.00 ms beside vs 4.00 ms alone"), "{s}");
        assert!(
            s.contains("upload 141 MiB/s (resumed at 512 MiB), read 839 MiB/s, digest verified"),
            "{s}"
        );
        assert!(s.contains("missed"), "{s}");
        let mut s = String::new();
        write_attachment_target(&mut s, &run(4_400.0, true));
        assert!(s.contains("met"), "{s}");
        let mut s = String::new();
        write_attachment_target(&mut s, &run(4_000.0, false));
        assert!(s.contains("NOT verified") && s.contains("missed"), "{s}");
    }

    #[test]
    fn given_an_interleaved_attachment_run_when_rendered_then_moving_against_still() {
        let rt = |name: &str, p99: f64| serde_json::json!({"name": name, "latency": {"count": 10, "p99_us": p99}});
        let run = |p99_moving: f64| {
            serde_json::json!({"setup": {"attachment_bytes": 1073741824u64},
                "phases": [rt("rt-transfer-still", 2000.0), rt("rt-transfer-moving", p99_moving),
                    {"name": "attachment-transfer", "extra": {"upload_mib_per_s": 4.2,
                        "read_mib_per_s": 700.0, "resumed_at_bytes": 536870912u64,
                        "digest_verified": true}}]})
        };
        let mut s = String::new();
        write_attachment_target(&mut s, &run(2_200.0));
        assert!(s.contains("2.20 ms moving vs 2.00 ms still"), "{s}");
        assert!(s.contains("met"), "{s}");
        let mut s = String::new();
        write_attachment_target(&mut s, &run(2_600.0));
        assert!(s.contains("missed"), "{s}");
    }

    #[test]
    fn given_nats_backlog_and_recovery_runs_when_cells_rendered_then_their_figures() {
        let rt = |name: &str, p99: f64, rss_mib: f64| {
            serde_json::json!({"name": name, "latency": {"count": 10, "p99_us": p99},
                "hub": {"peak_rss_bytes": rss_mib * 1048576.0}})
        };
        let b = serde_json::json!({"valid": true,
            "setup": {"backlog_messages": 1000, "message_bytes": 4096},
            "phases": [rt("rt-empty", 2000.0, 100.0), rt("rt-backlog", 3000.0, 300.0)]});
        let cell = nats_backlog_cell(Some(&b));
        assert!(
            cell.contains("1,000 waiting: p99 3.00 ms vs 2.00 ms empty (1.50×)"),
            "{cell}"
        );
        assert!(
            cell.contains("RSS 300 MiB vs 100 MiB (200 MiB above)"),
            "{cell}"
        );
        assert!(!cell.contains("INVALID"), "{cell}");
        assert_eq!(nats_backlog_cell(None), "not run");
        let rec = serde_json::json!({"phases": [{"name": "restart", "valid": false,
            "extra": {"restart_to_listening_ms": 300, "restart_to_first_answer_ms": 650,
                "log_bytes": 2147483648u64}}]});
        let cell = nats_recovery_cell(Some(&rec));
        assert!(
            cell.contains("300 ms to healthy, 650 ms to the first answer, with 2.00 GiB"),
            "{cell}"
        );
        assert!(cell.contains("INVALID"), "{cell}");
    }

    #[test]
    fn given_repeated_find_max_and_mixed_runs_when_rendered_then_their_medians_and_bulks_share() {
        let fm = |max: f64| serde_json::json!({"findings": {"max_rate_per_s": max}});
        let lat = |p999_ms: f64| serde_json::json!({"count": 10, "p999_us": p999_ms * 1000.0});
        let mixed = |alone_ms: f64, with_ms: f64, bulk: f64| {
            serde_json::json!({"phases": [
                {"name": "rt-alone", "latency": lat(alone_ms)},
                {"name": "rt-with-bulk", "latency": lat(with_ms)},
                {"name": "bulk-with-rt", "ok_per_s": bulk}]})
        };
        let alone = |bulk: f64| serde_json::json!({"phases": [{"name": "bulk", "ok_per_s": bulk}]});
        let mut r = Results {
            limits: None,
            runs: BTreeMap::new(),
        };
        for (i, (m, w, b, a, f)) in [
            (4.0, 30.0, 20_000.0, 30_000.0, 8_000.0),
            (4.0, 6.0, 28_000.0, 32_000.0, 5_500.0),
            (3.0, 7.0, 28_000.0, 35_000.0, 10_500.0),
        ]
        .into_iter()
        .enumerate()
        {
            let n = i + 1;
            r.runs.insert(format!("gonets-mixed-{n}"), mixed(m, w, b));
            r.runs.insert(format!("gonets-bulk-alone-{n}"), alone(a));
            r.runs.insert(format!("gonets-rt-find-max-{n}"), fm(f));
        }
        let mut s = String::new();
        write_mixed_target(&mut s, &r);
        assert!(
            s.contains("7.00 ms with bulk (28,000 msg/s) vs 4.00 ms alone, median of 3 runs"),
            "{s}"
        );
        assert!(s.contains("**met** (1.75×)"), "{s}");
        assert!(s.contains("28,000 msg/s beside rt vs 32,000 alone"), "{s}");
        assert!(s.contains("**met** (0.88×)"), "{s}");
        assert!(s.contains("| — | — |"), "no limits, no floor: {s}");
        r.limits = Some(serde_json::json!({
            "write4k_beside_stream_fdatasync_p999_us": 350.0,
            "stream_beside_4k_mb_per_s": 2100.0,
        }));
        let mut floor = String::new();
        write_mixed_target(&mut floor, &r);
        assert!(
            floor.contains("beside a 2100 MB/s stream of syncs, p99.9 0.35 ms |"),
            "{floor}"
        );
        r.limits = None;
        let mut f = String::new();
        write_rt_targets(&mut f, &r);
        assert!(f.contains("| 8,000 /s, median of 3 runs |"), "{f}");
        // A single run (bench/run's) is read as before.
        r.runs.insert("gonets-rt-find-max".into(), fm(12_000.0));
        let mut one = String::new();
        write_rt_targets(&mut one, &r);
        assert!(
            one.contains("| 12,000 /s |") && one.contains("**met**"),
            "{one}"
        );
    }
}
