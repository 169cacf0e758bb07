//! The SLA report over a period (R9; 963 §11): per data kind and its
//! provider, live and test traffic apart — requests, answered in time,
//! answered late, refused by code, expired, p50/p99 time to answer, the
//! share answered in time, and for real-time kinds the share within 2 s.
//! As JSON (`/sla`) and as a text table (`gonets report sla`).

use crate::sla_store::{refused_at_door_map, refused_map, Bucket, KindCounts};
use crate::timefmt::format_time_ms;
use gonets_engine::shard::sla::SlaTally;
use gonets_types::RefusalCode;
use serde_json::{json, Value};
use std::fmt::Write;

/// One day, ms: the default period, ending now.
pub const PERIOD_MS_DEFAULT: u64 = 86_400_000;

/// A share `part / whole` rounded to 4 places; `None` for an empty whole.
fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
}

fn answered(t: &SlaTally) -> u64 {
    t.answered_in_time + t.answered_late
}

fn class_json(t: &SlaTally, realtime: bool) -> Value {
    let refused = refused_map(t);
    let ended = answered(t) + t.expired;
    let mut v = json!({
        "requests": t.requests,
        "answered_in_time": t.answered_in_time,
        "answered_late": t.answered_late,
        "refused": refused,
        "refused_at_door": refused_at_door_map(t),
        "expired": t.expired,
        "answer_time_p50_ms": t.answer_times.percentile_ms(0.5),
        "answer_time_p99_ms": t.answer_times.percentile_ms(0.99),
        "in_time_share": share(t.answered_in_time, ended),
    });
    if realtime {
        v["within_2s_share"] = json!(share(t.within_realtime_budget, ended));
    }
    v
}

/// `/sla`: every kind counted in `[from_ms, to_ms)`, sorted by kind.
pub fn report_json(kinds: &Bucket, from_ms: u64, to_ms: u64) -> Value {
    let rows: Vec<Value> = kinds
        .iter()
        .map(|(kind, c)| {
            json!({
                "kind": kind,
                "provider": c.provider,
                "mode": if c.realtime { "realtime" } else { "async" },
                "live": class_json(&c.live, c.realtime),
                "test": class_json(&c.test, c.realtime),
            })
        })
        .collect();
    json!({
        "from_ms": from_ms,
        "to_ms": to_ms,
        "from": format_time_ms(from_ms),
        "to": format_time_ms(to_ms),
        "bucket_ms": crate::sla_store::BUCKET_MS,
        "kinds": rows,
    })
}

fn cell(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |n| n.to_string())
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |s| format!("{:.2}%", s * 100.0))
}

fn refused_text(t: &SlaTally) -> String {
    let parts: Vec<String> = RefusalCode::ALL
        .iter()
        .zip(t.refused)
        .filter(|(_, n)| *n > 0)
        .map(|(code, n)| format!("{}={n}", code.as_str()))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

fn at_door_text(t: &SlaTally) -> String {
    let parts: Vec<String> = refused_at_door_map(t)
        .iter()
        .map(|(code, n)| format!("{code}={n}"))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

fn row(out: &mut String, kind: &str, c: &KindCounts, class: &str, t: &SlaTally) {
    let ended = answered(t) + t.expired;
    let within_2s = if c.realtime {
        percent(share(t.within_realtime_budget, ended))
    } else {
        "n/a".into()
    };
    let _ = writeln!(
        out,
        "{kind}\t{}\t{class}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{within_2s}",
        c.provider,
        t.requests,
        t.answered_in_time,
        t.answered_late,
        t.expired,
        refused_text(t),
        at_door_text(t),
        cell(t.answer_times.percentile_ms(0.5)),
        cell(t.answer_times.percentile_ms(0.99)),
        percent(share(t.answered_in_time, ended)),
    );
}

/// The report as a tab-separated table with a header line; a kind's test
/// traffic gets its own line when there was any.
pub fn report_table(kinds: &Bucket, from_ms: u64, to_ms: u64) -> String {
    let mut out = format!(
        "SLA report {} .. {} (UTC, {} s buckets)\n",
        format_time_ms(from_ms),
        format_time_ms(to_ms),
        crate::sla_store::BUCKET_MS / 1000
    );
    out.push_str("kind\tprovider\ttraffic\trequests\tin_time\tlate\texpired\trefused\trefused_at_door\tp50_ms\tp99_ms\tin_time_share\twithin_2s\n");
    for (kind, c) in kinds {
        row(&mut out, kind, c, "live", &c.live);
        if !c.test.is_empty() {
            row(&mut out, kind, c, "test", &c.test);
        }
    }
    if kinds.is_empty() {
        out.push_str("(nothing counted in this period)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds() -> Bucket {
        let mut live = SlaTally {
            requests: 4,
            answered_in_time: 2,
            answered_late: 1,
            expired: 1,
            within_realtime_budget: 2,
            ..SlaTally::default()
        };
        live.answer_times.note(100);
        live.answer_times.note(300);
        live.refused[1] = 1;
        live.refused_at_door[6] = 2; // QUOTA_EXCEEDED
        let mut b = Bucket::new();
        b.insert(
            "urn:rt".into(),
            KindCounts {
                provider: "FNS".into(),
                realtime: true,
                live,
                test: SlaTally::default(),
            },
        );
        b
    }

    #[test]
    fn given_counts_when_reported_as_json_then_shares_and_percentiles_are_there() {
        let v = report_json(&kinds(), 0, 60_000);
        let live = &v["kinds"][0]["live"];
        assert_eq!(live["requests"], 4);
        assert_eq!(live["refused"]["NO_DATA"], 1);
        assert_eq!(live["refused_at_door"]["QUOTA_EXCEEDED"], 2);
        assert_eq!(live["in_time_share"], 0.5);
        assert_eq!(live["within_2s_share"], 0.5);
        assert_eq!(live["answer_time_p50_ms"], 103);
        assert_eq!(v["kinds"][0]["test"]["in_time_share"], Value::Null);
    }

    #[test]
    fn given_counts_when_reported_as_a_table_then_one_line_per_kind_and_class() {
        let text = report_table(&kinds(), 0, 60_000);
        let line = text.lines().nth(2).unwrap();
        assert!(
            line.starts_with("urn:rt\tFNS\tlive\t4\t2\t1\t1\tNO_DATA=1\tQUOTA_EXCEEDED=2\t"),
            "{line}"
        );
        assert!(line.ends_with("50.00%\t50.00%"), "{line}");
        assert_eq!(text.lines().count(), 3, "no test line without test traffic");
    }
}
