//! The named workloads of DESIGN.md §4 against gonets, each a sequence of
//! engine plans turned into phases of a [`RunResult`].

use crate::embedded::{dir_bytes, EmbeddedHub};
use crate::gonets::conn::{Conn, GonetsTarget};
use crate::gonets::engine::{self, BulkPlan, Outcome, Plan};
use crate::params::{BulkParams, Cores, RtParams};
use crate::record::Recorder;
use crate::registry;
use crate::result::{Phase, RunResult};
use gonets_types::{DataKindId, QueueId};
use serde_json::json;
use std::time::{Duration, Instant};

/// A run's result and the latency curves to plot.
pub struct Run {
    /// The figures.
    pub result: RunResult,
    /// Latency histograms by phase, for the plot.
    pub curves: Vec<(String, Recorder)>,
}

/// Prints progress lines to stderr.
pub fn stderr_progress(line: &str) {
    eprintln!("{line}");
}

pub(crate) fn new_run(workload: &str, target: &GonetsTarget, cores: &Cores) -> Run {
    let mut result = RunResult::new("gonets", workload);
    result
        .setup
        .insert("target".into(), json!(target.addr.to_string()));
    result
        .setup
        .insert("security".into(), json!(target.security));
    result
        .setup
        .insert("shard_aware".into(), json!(target.shard_aware));
    if target.gateway.is_some() {
        // Only gateway runs are labelled, as signed ones.
        result.setup.insert("via".into(), json!("http"));
    }
    if target.sign {
        // Only signed runs are labelled: earlier reports' rows stay as they were.
        result.setup.insert("sign".into(), json!(true));
    }
    result
        .setup
        .insert("generator_threads".into(), json!(cores.count()));
    result.setup.insert(
        "generator_cores".into(),
        json!(cores
            .pins
            .iter()
            .map(|p| p.map_or(-1, |c| c as i64))
            .collect::<Vec<_>>()),
    );
    if !cores.rt_pins.is_empty() {
        // Only runs with the rt half apart are labelled: earlier rows stay as they were.
        result
            .setup
            .insert("generator_rt_cores".into(), json!(cores.rt_pins));
    }
    result
        .setup
        .insert("durability".into(), json!(target.durability));
    Run {
        result,
        curves: Vec::new(),
    }
}

pub(crate) fn note_rt(run: &mut Run, rt: &RtParams) {
    let s = &mut run.result.setup;
    s.insert("request_bytes".into(), json!(rt.request_bytes));
    s.insert("answer_bytes".into(), json!(rt.answer_bytes));
    s.insert("consumers".into(), json!(rt.consumers));
    s.insert("providers".into(), json!(rt.providers));
}

fn note_bulk(run: &mut Run, b: &BulkParams) {
    let s = &mut run.result.setup;
    s.insert("message_bytes".into(), json!(b.message_bytes));
    s.insert("senders".into(), json!(b.senders));
    s.insert("window".into(), json!(b.window));
    s.insert("bulk_providers".into(), json!(b.providers));
    s.insert("batch".into(), json!(b.batch));
    s.insert("format".into(), json!(b.format.name()));
    if b.batch > 1 {
        s.insert("fetch_lanes".into(), json!(b.fetch_lanes()));
    }
}

/// The rt phase of an outcome.
pub(crate) fn rt_phase(name: &str, rt: &RtParams, o: &Outcome) -> (Phase, Recorder) {
    let r = o.rt.as_ref().expect("the plan had an rt part");
    let mut p = Phase::new(name, rt.duration, r.issued, &r.rec);
    p.rate_offered = Some(rt.rate_per_s);
    p.unanswered(r.unfinished);
    p.hub = o.hub.clone();
    p.judge_generator(r.lag_max, rt.lag_max);
    (p, r.rec.clone())
}

/// The bulk phase of an outcome.
fn bulk_phase(name: &str, o: &Outcome, drain: bool) -> (Phase, Recorder) {
    let b = o.bulk.as_ref().expect("the plan had a bulk part");
    let issued = b.accepted + b.rec.error_count();
    let mut p = Phase::new(name, b.accept_window, issued, &b.rec);
    p.hub = o.hub.clone();
    p.extra.insert("accepted".into(), json!(b.accepted));
    if drain {
        let drain_s = b.drain_window.as_secs_f64();
        p.extra.insert("drained".into(), json!(b.drained));
        p.extra.insert("drain_s".into(), json!(round3(drain_s)));
        p.extra.insert(
            "drained_per_s".into(),
            json!(round3(b.drained as f64 / drain_s.max(1e-9))),
        );
        if !b.drain_complete {
            p.invalidate(format!(
                "the drain did not finish: {} of {} accepted requests acked",
                b.drained, b.accepted
            ));
        }
    }
    (p, b.rec.clone())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `rt`: realtime calls at a fixed rate.
pub fn rt(target: &GonetsTarget, rt: &RtParams, cores: &Cores) -> Result<Run, String> {
    let mut run = new_run("rt", target, cores);
    note_rt(&mut run, rt);
    // Issue 16: an idle hub parks its executors (< 2 % of its cores).
    if let Some(cores) = target.server_pid.and_then(idle_hub_cores) {
        run.result
            .findings
            .insert("idle_hub_cpu_cores".into(), json!(cores));
    }
    let plan = Plan {
        split: None,
        label: "rt".into(),
        rt: Some(rt.clone()),
        bulk: None,
    };
    let o = engine::run(target, &plan, cores, &mut stderr_progress)?;
    let (phase, rec) = rt_phase("rt", rt, &o);
    run.result.push(phase);
    run.curves.push(("rt".into(), rec));
    Ok(run)
}

/// How long the hub is watched with no client work before an rt run, s
/// (its CPU counts in clock ticks, 10 ms: 3 s resolve 0.33 % of a core).
const IDLE_WATCH_S: u64 = 3;

/// The cores hub `pid` used over [`IDLE_WATCH_S`] with nothing to do; None
/// when its CPU cannot be read (another machine's hub).
fn idle_hub_cores(pid: u32) -> Option<f64> {
    let start = crate::process::cpu_s(pid)?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(IDLE_WATCH_S));
    let end = crate::process::cpu_s(pid)?;
    Some((end - start) / t0.elapsed().as_secs_f64())
}

/// `bulk`: N requests pipelined by S senders, drained by P providers with ack.
pub fn bulk(
    target: &GonetsTarget,
    b: &BulkParams,
    consumers: usize,
    cores: &Cores,
) -> Result<Run, String> {
    // Payloads that could not be made (too small a record) fail here, not
    // in a sender thread.
    b.format.payloads(b.message_bytes)?;
    let mut run = new_run("bulk", target, cores);
    note_bulk(&mut run, b);
    let plan = Plan {
        split: None,
        label: "bulk".into(),
        rt: None,
        bulk: Some(BulkPlan {
            params: b.clone(),
            drain: true,
            until_rt_done: false,
            consumers,
        }),
    };
    let o = engine::run(target, &plan, cores, &mut stderr_progress)?;
    let (phase, rec) = bulk_phase("bulk", &o, true);
    run.result.push(phase);
    run.curves.push(("bulk acceptance".into(), rec));
    Ok(run)
}

/// The second run of [`rt_alone_then_beside`]: rt at the same rate beside
/// other load, and the names it is reported under.
pub(crate) struct Beside<'a> {
    /// The engine plan's label (`rt+bulk`).
    pub label: &'a str,
    /// The rt phase's name (`rt-with-bulk`).
    pub phase: &'a str,
    /// The latency curve's name (`rt with bulk`).
    pub curve: &'a str,
    /// Bulk load the engine runs beside rt, if any.
    pub bulk: Option<BulkPlan>,
}

/// What [`rt_alone_then_beside`] measured.
pub(crate) struct RtBeside<T> {
    /// rt alone (`rt-alone`).
    pub alone: Phase,
    /// rt beside the other load, with its `p999_ratio_to_alone`.
    pub with: Phase,
    /// The second run's outcome (its bulk part, if any).
    pub outcome: Outcome,
    /// What the work started beside rt gave.
    pub beside: T,
}

/// rt alone, then rt at the same rate beside other load: the bulk part of
/// `beside`, and the work `start` begins once rt alone is over (it returns
/// how to wait for that work, called after the second run). Both latency
/// curves go to `run`; the phases come back for the caller to complete and
/// push in its own order.
pub(crate) fn rt_alone_then_beside<T, W>(
    run: &mut Run,
    target: &GonetsTarget,
    rt: &RtParams,
    cores: &Cores,
    beside: Beside<'_>,
    start: impl FnOnce() -> W,
) -> Result<RtBeside<T>, String>
where
    W: FnOnce() -> Result<T, String>,
{
    let alone = Plan {
        split: None,
        label: "rt-alone".into(),
        rt: Some(rt.clone()),
        bulk: None,
    };
    let o = engine::run(target, &alone, cores, &mut stderr_progress)?;
    let (alone_phase, rec) = rt_phase("rt-alone", rt, &o);
    run.curves.push(("rt alone".into(), rec));
    let wait = start();
    let with = Plan {
        split: None,
        label: beside.label.into(),
        rt: Some(rt.clone()),
        bulk: beside.bulk,
    };
    let outcome = engine::run(target, &with, cores, &mut stderr_progress)?;
    let done = wait()?;
    let (mut with_phase, rec) = rt_phase(beside.phase, rt, &outcome);
    run.curves.push((beside.curve.into(), rec));
    if let (Some(a), Some(w)) = (&alone_phase.latency, &with_phase.latency) {
        with_phase.extra.insert(
            "p999_ratio_to_alone".into(),
            json!(ratio(w.p999_us, a.p999_us)),
        );
    }
    Ok(RtBeside {
        alone: alone_phase,
        with: with_phase,
        outcome,
        beside: done,
    })
}

/// `a / b` to three decimals (`b` at least 1).
pub(crate) fn ratio(a: u64, b: u64) -> f64 {
    round3(a as f64 / b.max(1) as f64)
}

/// `mixed`: rt alone, then rt at the same rate while bulk runs flat out.
pub fn mixed(
    target: &GonetsTarget,
    rt: &RtParams,
    b: &BulkParams,
    cores: &Cores,
) -> Result<Run, String> {
    let mut run = new_run("mixed", target, cores);
    note_rt(&mut run, rt);
    note_bulk(&mut run, b);
    let beside = Beside {
        label: "rt+bulk",
        phase: "rt-with-bulk",
        curve: "rt with bulk",
        bulk: Some(BulkPlan {
            params: b.clone(),
            drain: true,
            until_rt_done: true,
            consumers: rt.consumers,
        }),
    };
    let m = rt_alone_then_beside(&mut run, target, rt, cores, beside, || || Ok(()))?;
    let (bulk_phase, _) = bulk_phase("bulk-with-rt", &m.outcome, true);
    run.result.push(m.alone);
    run.result.push(m.with);
    run.result.push(bulk_phase);
    Ok(run)
}

/// Fills the bulk queues with `messages` requests nobody drains.
fn fill(
    target: &GonetsTarget,
    b: &BulkParams,
    consumers: usize,
    cores: &Cores,
    name: &str,
) -> Result<(Phase, Recorder), String> {
    let plan = Plan {
        split: None,
        label: name.into(),
        rt: None,
        bulk: Some(BulkPlan {
            params: b.clone(),
            drain: false,
            until_rt_done: false,
            consumers,
        }),
    };
    let o = engine::run(target, &plan, cores, &mut stderr_progress)?;
    let (mut p, rec) = bulk_phase(name, &o, false);
    let accepted = o.bulk.as_ref().map_or(0, |b| b.accepted);
    if accepted < b.messages {
        p.invalidate(format!(
            "only {accepted} of {} requests accepted",
            b.messages
        ));
    }
    Ok((p, rec))
}

/// `backlog`: rt on an empty hub, then with `b.messages` requests waiting, compared.
pub fn backlog(
    target: &GonetsTarget,
    rt: &RtParams,
    b: &BulkParams,
    cores: &Cores,
) -> Result<Run, String> {
    let mut run = new_run("backlog", target, cores);
    note_rt(&mut run, rt);
    note_bulk(&mut run, b);
    run.result
        .setup
        .insert("backlog_messages".into(), json!(b.messages));
    let plan = |label: &str| Plan {
        split: None,
        label: label.into(),
        rt: Some(rt.clone()),
        bulk: None,
    };
    let o = engine::run(target, &plan("rt-empty"), cores, &mut stderr_progress)?;
    let (mut empty, rec) = rt_phase("rt-empty", rt, &o);
    empty
        .extra
        .insert("hub_rss_bytes".into(), json!(rss(target)));
    run.curves.push(("rt, empty hub".into(), rec));
    let (mut filled, _) = fill(target, b, rt.consumers, cores, "fill")?;
    filled
        .extra
        .insert("hub_rss_bytes".into(), json!(rss(target)));
    let o = engine::run(target, &plan("rt-backlog"), cores, &mut stderr_progress)?;
    let (mut loaded, rec) = rt_phase("rt-backlog", rt, &o);
    loaded
        .extra
        .insert("hub_rss_bytes".into(), json!(rss(target)));
    run.curves
        .push((format!("rt, {} waiting", b.messages), rec));
    loaded.compare_to_empty(&empty);
    run.result.push(empty);
    run.result.push(filled);
    run.result.push(loaded);
    Ok(run)
}

fn rss(target: &GonetsTarget) -> Option<u64> {
    target.server_pid.and_then(crate::process::rss_bytes)
}

/// Requests waiting in the bulk queues of `providers`, read by the operator.
fn waiting(target: &GonetsTarget, providers: usize) -> Result<u64, String> {
    let target = target.clone();
    run_local(async move {
        let op = Conn::connect(&target, "LGOP").await?;
        let mut total = 0;
        for p in 0..providers {
            let q = QueueId::Requests(DataKindId::new(&registry::bulk_kind(p)));
            let s = op
                .for_queue(&q)
                .queue_stats(&q)
                .await
                .map_err(|e| format!("queue stats of {q}: {e}"))?;
            total += s.depth + s.in_flight;
        }
        op.disconnect();
        Ok(total)
    })
}

/// Runs `f` on a one-off executor.
fn run_local<T: Send + 'static>(
    f: impl std::future::Future<Output = Result<T, String>> + 'static,
) -> Result<T, String> {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .make()
        .map_err(|e| format!("cannot start a glommio executor: {e}"))?
        .run(f)
}

/// `recovery`: fill the log with about `log_bytes`, SIGKILL the hub,
/// restart it, time it until it serves and until a first call is
/// answered, and check every accepted request is still waiting.
pub fn recovery(
    hub: &mut EmbeddedHub,
    target: &GonetsTarget,
    b: &BulkParams,
    rt: &RtParams,
    log_bytes: u64,
    cores: &Cores,
) -> Result<Run, String> {
    let mut run = new_run("recovery", target, cores);
    note_bulk(&mut run, b);
    let mut fill_params = b.clone();
    fill_params.messages = (log_bytes / b.message_bytes as u64).max(1);
    run.result
        .setup
        .insert("log_bytes_asked".into(), json!(log_bytes));
    let (filled, _) = fill(target, &fill_params, rt.consumers, cores, "fill")?;
    let accepted = filled
        .extra
        .get("accepted")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    run.result.push(filled);
    let on_disk = dir_bytes(&hub.data_dir());
    hub.kill9();
    let restarted = Instant::now();
    let to_listening = hub.restart()?;
    let mut target = target.clone();
    target.server_pid = hub.pid();
    let first_answer = first_call(&target, rt)?;
    let to_first_answer = restarted.elapsed();
    let still_waiting = waiting(&target, fill_params.providers)?;
    let mut p = Phase::restart(
        to_listening,
        to_first_answer,
        first_answer,
        accepted,
        still_waiting,
    );
    p.extra.insert("log_bytes".into(), json!(on_disk));
    run.result.push(p);
    Ok(run)
}

/// Calls answered by a short rt run right after the restart: the hub
/// serves again once one is.
fn first_call(target: &GonetsTarget, rt: &RtParams) -> Result<u64, String> {
    let first = engine::run(
        target,
        &Plan {
            split: None,
            label: "first-call".into(),
            rt: Some(RtParams {
                rate_per_s: 1.0,
                warmup: Duration::ZERO,
                duration: Duration::from_millis(500),
                ..rt.clone()
            }),
            bulk: None,
        },
        &Cores::unpinned(1),
        &mut stderr_progress,
    )?;
    Ok(first.rt.as_ref().map_or(0, |r| r.rec.ok_count()))
}

/// The next rate of the search after a step: double while every step met
/// the bound, halve while none did, then bisect; None once the interval is
/// within 5% (or nothing down to 1/s met it).
pub fn next_rate(good: Option<f64>, bad: Option<f64>) -> Option<f64> {
    match (good, bad) {
        (Some(g), None) => Some(g * 2.0),
        (None, Some(b)) if b <= 1.0 => None,
        (None, Some(b)) => Some(b / 2.0),
        (Some(g), Some(b)) if (b - g) / g < 0.05 => None,
        (Some(g), Some(b)) => Some(((g + b) / 2.0).round()),
        (None, None) => None,
    }
}

/// `--find-max`: the highest rt rate whose p99.9 stays at or under
/// `p999_max` with no call over 2 s, no error and a valid generator;
/// doubling from `from`, then bisecting `steps` times.
pub fn find_max(
    target: &GonetsTarget,
    rt: &RtParams,
    cores: &Cores,
    from: f64,
    p999_max: Duration,
    steps: usize,
) -> Result<Run, String> {
    let mut run = new_run("rt-find-max", target, cores);
    note_rt(&mut run, rt);
    let mut good: Option<f64> = None;
    let mut bad: Option<f64> = None;
    let mut rate = from;
    let mut best_curve = None;
    // Bounded: at most 16 doublings plus `steps` bisections.
    for _ in 0..16 + steps {
        let params = RtParams {
            rate_per_s: rate,
            ..rt.clone()
        };
        let label = format!("rt@{rate:.0}");
        let plan = Plan {
            split: None,
            label: label.clone(),
            rt: Some(params.clone()),
            bulk: None,
        };
        let o = engine::run(target, &plan, cores, &mut stderr_progress)?;
        let (mut phase, rec) = rt_phase(&label, &params, &o);
        let meets = phase.valid
            && phase.errors.is_empty()
            && phase
                .latency
                .as_ref()
                .is_some_and(|l| l.over_2s == 0 && l.p999_us <= p999_max.as_micros() as u64);
        phase.extra.insert("meets_bound".into(), json!(meets));
        eprintln!(
            "find-max: {} -> {}",
            phase.summary(),
            if meets {
                "meets the bound"
            } else {
                "misses the bound"
            }
        );
        // A step that misses is a finding, not an invalid run.
        phase.valid = true;
        run.result.phases.push(phase);
        if meets {
            good = Some(rate);
            best_curve = Some((label, rec));
        } else {
            bad = Some(rate);
        }
        match next_rate(good, bad) {
            Some(r) => rate = r,
            None => break,
        }
    }
    if let Some(c) = best_curve {
        run.curves.push(c);
    }
    run.result
        .findings
        .insert("max_rate_per_s".into(), json!(good));
    run.result
        .findings
        .insert("p999_bound_ms".into(), json!(p999_max.as_secs_f64() * 1e3));
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a fake hub that meets the bound up to `max`.
    fn search(max: f64, from: f64, steps: usize) -> (Option<f64>, usize) {
        let (mut good, mut bad, mut rate, mut tried) = (None, None, from, 0);
        for _ in 0..16 + steps {
            tried += 1;
            if rate <= max {
                good = Some(rate);
            } else {
                bad = Some(rate);
            }
            match next_rate(good, bad) {
                Some(r) => rate = r,
                None => break,
            }
        }
        (good, tried)
    }

    #[test]
    fn given_hub_meeting_bound_up_to_a_rate_when_searched_then_found_within_five_percent() {
        for max in [700.0, 1000.0, 12_345.0, 40_000.0] {
            let (found, tried) = search(max, 1000.0, 30);
            let found = found.expect("something met the bound");
            assert!(
                found <= max && found >= max * 0.95,
                "max {max}: found {found}"
            );
            assert!(tried < 30, "max {max}: {tried} steps");
        }
    }

    #[test]
    fn given_hub_meeting_nothing_when_searched_then_none_and_bounded() {
        let (found, tried) = search(0.5, 1000.0, 5);
        assert_eq!(found, None);
        assert!(tried <= 21);
    }
}
