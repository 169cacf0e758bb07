//! `backlog` against JetStream (docs/nats-mapping.md): the `rt` workload on
//! the server as it is, then N messages published to a BULK stream whose
//! durable pull consumers never pull (they wait, as gonets's backlog
//! waits in its bulk queues), then the same `rt` workload again. The two
//! rt phases are compared as in the gonets driver: p99 and the server's
//! peak RSS.

use super::names::Names;
use super::{
    bulk, check_target, common_setup, jetstream, rt, with_streams, within, ConsumerSpec, NatsTarget,
};
use crate::params::{BulkParams, Cores, RtParams};
use crate::record::Recorder;
use crate::result::{Phase, RunResult};

/// Unacknowledged messages a waiting consumer may hold (it never pulls).
const WAITING_MAX_ACK_PENDING: i64 = 20_000;

/// The BULK stream of `names` and a durable consumer per provider, which
/// nobody pulls: what is published waits.
pub(super) fn waiting_streams(
    names: &Names,
    providers: usize,
) -> (Vec<(String, String)>, Vec<ConsumerSpec>) {
    let streams = vec![(names.stream("BULK"), names.bulk_subjects())];
    let consumers = (0..providers)
        .map(|prov| ConsumerSpec {
            stream: 0,
            durable: Names::bulk_durable(prov),
            subject: names.bulk_subject(prov),
            max_ack_pending: WAITING_MAX_ACK_PENDING,
        })
        .collect();
    (streams, consumers)
}

/// Makes a fresh run's BULK stream with never-pulled consumers (see
/// [`waiting_streams`]), runs `measure` with its names, and deletes the
/// stream whatever happened. What `measure` returned, the run's names and
/// the server's version.
pub(super) fn with_waiting_stream<T>(
    target: &NatsTarget,
    providers: usize,
    measure: impl FnOnce(&Names) -> Result<T, String>,
) -> Result<(T, Names, String), String> {
    check_target(target)?;
    let names = Names::fresh();
    let (streams, consumers) = waiting_streams(&names, providers);
    let (t, version, _) =
        with_streams(target, &streams, &consumers, |_| Ok(()), || measure(&names))?;
    Ok((t, names, version))
}

/// What the BULK stream of `names` holds: (messages waiting for the
/// providers' consumers — pending plus delivered unacked —, stream bytes).
pub(super) fn waiting(
    target: &NatsTarget,
    names: &Names,
    providers: usize,
) -> Result<(u64, u64), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    rt.block_on(async {
        let js = jetstream(super::connect(&target.url, "stats").await?);
        let name = names.stream("BULK");
        let mut stream = within(&format!("stream {name}"), js.get_stream(&name)).await?;
        let bytes = within(&format!("stream info of {name}"), stream.info())
            .await?
            .state
            .bytes;
        let mut total = 0;
        for prov in 0..providers {
            let durable = Names::bulk_durable(prov);
            let info = within(
                &format!("consumer info of {durable}"),
                stream.consumer_info(&durable),
            )
            .await?;
            total += info.num_pending + info.num_ack_pending as u64;
        }
        Ok((total, bytes))
    })
}

/// Runs the `rt` workload (its own streams, made and deleted) and returns
/// its one phase, renamed `name`.
pub(super) fn rt_phase(
    target: &NatsTarget,
    p: &RtParams,
    cores: &Cores,
    name: &str,
) -> Result<(Phase, Recorder), String> {
    let (run, rec) = rt::run(target, p, cores)?;
    let mut phase = run
        .phases
        .into_iter()
        .next()
        .ok_or("the rt run returned no phase")?;
    phase.name = name.into();
    Ok((phase, rec))
}

fn rss(target: &NatsTarget) -> serde_json::Value {
    serde_json::json!(target.server_pid.and_then(crate::process::rss_bytes))
}

/// The `backlog` workload (see the module docs). Returns the run and the
/// two rt phases' recorders, labelled for the plot.
pub(crate) fn run(
    target: &NatsTarget,
    rt_p: &RtParams,
    b: &BulkParams,
    cores: &Cores,
) -> Result<(RunResult, Vec<(String, Recorder)>), String> {
    let ((phases, curves), names, version) = with_waiting_stream(target, b.providers, |names| {
        let (mut empty, rec_empty) = rt_phase(target, rt_p, cores, "rt-empty")?;
        empty.extra.insert("hub_rss_bytes".into(), rss(target));
        let (mut filled, _) = bulk::fill(target, b, cores, names, "fill")?;
        let (waiting_n, bytes) = waiting(target, names, b.providers)?;
        filled.extra.insert("waiting".into(), waiting_n.into());
        filled.extra.insert("stream_bytes".into(), bytes.into());
        filled.extra.insert("hub_rss_bytes".into(), rss(target));
        let (mut loaded, rec_loaded) = rt_phase(target, rt_p, cores, "rt-backlog")?;
        loaded.extra.insert("hub_rss_bytes".into(), rss(target));
        loaded.compare_to_empty(&empty);
        let curves = vec![
            ("NATS rt, empty stream".to_string(), rec_empty),
            (format!("NATS rt, {waiting_n} waiting"), rec_loaded),
        ];
        Ok((vec![empty, filled, loaded], curves))
    })?;
    let mut run = RunResult::new("nats", "backlog");
    common_setup(&mut run, target, &version, &names, cores);
    let setup = &mut run.setup;
    setup.insert("backlog_messages".into(), b.messages.into());
    setup.insert("message_bytes".into(), b.message_bytes.into());
    setup.insert("rate".into(), rt_p.rate_per_s.into());
    setup.insert("request_bytes".into(), rt_p.request_bytes.into());
    setup.insert("answer_bytes".into(), rt_p.answer_bytes.into());
    setup.insert(
        "waiting_as".into(),
        "BULK stream, one durable pull consumer per provider that never pulls".into(),
    );
    for p in phases {
        run.push(p);
    }
    Ok((run, curves))
}
