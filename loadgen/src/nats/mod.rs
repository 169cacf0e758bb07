//! The NATS JetStream driver: the same `rt`, `bulk`, `backlog` and
//! `recovery` workloads as the gonets driver, against a NATS server with
//! JetStream on the same machine, for comparison. How each workload maps onto streams, subjects and pull
//! consumers is in `docs/nats-mapping.md`; `bench/nats.sh` installs and
//! starts the server.
//!
//! Thread per core, as for gonets: one OS thread per entry of
//! [`Cores::pins`](crate::params::Cores), each with its own tokio
//! current-thread runtime, its own connections (one per participant it
//! hosts), its own pacer and recorder; the recorders are merged at the end.
//! The streams are made (and, at the end, deleted) by the calling thread
//! over a connection of its own, with names unique to the run.

mod backlog;
mod bulk;
mod fleet;
pub mod names;
mod recovery;
mod rt;

use crate::record::Recorder;
pub use names::Names;

use crate::params::{BulkParams, Cores, RtParams};
use crate::result::RunResult;
use std::future::Future;
use std::time::Duration;

/// The NATS server a run talks to.
#[derive(Clone, Debug, PartialEq)]
pub struct NatsTarget {
    /// The server's URL, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// The server's JetStream sync setting, `always` or `default` (recorded only:
    /// it is the server's `jetstream { sync_interval }`, see bench/nats.sh).
    pub sync: String,
    /// The server's process id, to measure its CPU and memory (same machine only).
    pub server_pid: Option<u32>,
}

/// Runs the `rt` workload against `target` (docs/nats-mapping.md).
/// Also returns the merged latency recorder (for the plot).
pub fn run_rt(
    target: &NatsTarget,
    p: &RtParams,
    cores: &Cores,
) -> Result<(RunResult, Recorder), String> {
    rt::run(target, p, cores)
}

/// Runs the `bulk` workload against `target` (docs/nats-mapping.md).
/// Also returns the merged publish→PubAck recorder (for the plot).
pub fn run_bulk(
    target: &NatsTarget,
    p: &BulkParams,
    cores: &Cores,
) -> Result<(RunResult, Recorder), String> {
    bulk::run(target, p, cores)
}

/// Runs the `backlog` workload against `target` (docs/nats-mapping.md):
/// rt, `b.messages` left waiting, rt again. Also returns both rt phases'
/// recorders, labelled (for the plot).
pub fn run_backlog(
    target: &NatsTarget,
    rt_p: &RtParams,
    b: &BulkParams,
    cores: &Cores,
) -> Result<(RunResult, Vec<(String, Recorder)>), String> {
    backlog::run(target, rt_p, b, cores)
}

/// Runs the `recovery` workload against `target` (docs/nats-mapping.md):
/// `log_bytes` of messages left waiting, SIGKILL, `restart_cmd`, the time
/// to the first answered call.
pub fn run_recovery(
    target: &NatsTarget,
    b: &BulkParams,
    rt_p: &RtParams,
    log_bytes: u64,
    restart_cmd: &str,
    cores: &Cores,
) -> Result<RunResult, String> {
    recovery::run(target, b, rt_p, log_bytes, restart_cmd, cores)
}

/// The bound on every await that talks to the server.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks the target's fields before anything connects.
fn check_target(target: &NatsTarget) -> Result<(), String> {
    if target.url.trim().is_empty() {
        return Err("the NATS URL is empty".into());
    }
    match target.sync.as_str() {
        "always" | "default" => Ok(()),
        other => Err(format!(
            "NATS sync {other:?}: expected \"always\" or \"default\" (the server's jetstream sync_interval)"
        )),
    }
}

/// `fut`, or an error naming `what` if it fails or takes longer than [`IO_TIMEOUT`].
pub(crate) async fn within<T, E: std::fmt::Display>(
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(IO_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer within {} s",
            IO_TIMEOUT.as_secs()
        )),
    }
}

/// A connection of its own for participant `who`.
pub(crate) async fn connect(url: &str, who: &str) -> Result<async_nats::Client, String> {
    let options = async_nats::ConnectOptions::new()
        .name(format!("gonets-loadgen {who}"))
        .connection_timeout(IO_TIMEOUT)
        .request_timeout(Some(IO_TIMEOUT));
    within(
        &format!("{who} cannot connect to NATS at {url}"),
        options.connect(url),
    )
    .await
}

/// A JetStream context over `client` whose requests and PubAcks time out after [`IO_TIMEOUT`].
pub(crate) fn jetstream(client: async_nats::Client) -> async_nats::jetstream::Context {
    let mut js = async_nats::jetstream::new(client);
    js.set_timeout(IO_TIMEOUT);
    js
}

/// A current-thread tokio runtime for the calling thread's setup and teardown.
fn admin_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))
}

/// A durable pull consumer a run makes before its threads start.
pub(crate) struct ConsumerSpec {
    /// Index of its stream in the run's streams.
    pub stream: usize,
    /// Durable name.
    pub durable: String,
    /// Filter subject.
    pub subject: String,
    /// Server-side bound on unacknowledged messages.
    pub max_ack_pending: i64,
}

/// Makes `streams` (name, subjects) and `consumers` over a setup
/// connection once `check` accepts the server's max payload, runs
/// `measure`, and deletes the streams whatever happened. Returns what
/// `measure` returned, the server's version and the setup seconds.
pub(crate) fn with_streams<T>(
    target: &NatsTarget,
    streams: &[(String, String)],
    consumers: &[ConsumerSpec],
    check: impl FnOnce(usize) -> Result<(), String>,
    measure: impl FnOnce() -> Result<T, String>,
) -> Result<(T, String, f64), String> {
    let stream_names: Vec<String> = streams.iter().map(|s| s.0.clone()).collect();
    let admin = admin_runtime()?;
    let setup_started = std::time::Instant::now();
    let version = admin.block_on(async {
        let client = connect(&target.url, "setup").await?;
        check(client.server_info().max_payload)?;
        let version = server_version(&client);
        let js = jetstream(client);
        create_streams(&js, streams).await?;
        for c in consumers {
            create_pull_consumer(
                &js,
                &stream_names[c.stream],
                &c.durable,
                &c.subject,
                c.max_ack_pending,
            )
            .await?;
        }
        Ok::<_, String>(version)
    });
    let setup_s = setup_started.elapsed().as_secs_f64();
    let measured = match version {
        Ok(v) => measure().map(|t| (t, v, setup_s)),
        Err(e) => Err(e),
    };
    teardown(&admin, target, &stream_names);
    measured
}

/// Makes the run's streams over `js` (a file-storage stream each, limits
/// retention, one replica), deleting any of the same name first.
async fn create_streams(
    js: &async_nats::jetstream::Context,
    streams: &[(String, String)],
) -> Result<(), String> {
    use async_nats::jetstream::stream;
    for (name, subjects) in streams {
        // A stream of this name can only be left from a run with the same
        // id (never, in practice); deleting it keeps the run clean anyway.
        let _ = tokio::time::timeout(IO_TIMEOUT, js.delete_stream(name)).await;
        within(
            &format!("cannot create stream {name}"),
            js.create_stream(stream::Config {
                name: name.clone(),
                subjects: vec![subjects.clone()],
                storage: stream::StorageType::File,
                retention: stream::RetentionPolicy::Limits,
                num_replicas: 1,
                ..Default::default()
            }),
        )
        .await?;
    }
    Ok(())
}

/// Makes a durable pull consumer `durable` on `stream`, filtered to
/// `subject`, with explicit ack and at most `max_ack_pending` unacknowledged.
async fn create_pull_consumer(
    js: &async_nats::jetstream::Context,
    stream: &str,
    durable: &str,
    subject: &str,
    max_ack_pending: i64,
) -> Result<(), String> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
    within(
        &format!("cannot create consumer {durable} on {stream}"),
        js.create_consumer_on_stream(
            pull::Config {
                durable_name: Some(durable.to_string()),
                filter_subject: subject.to_string(),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                ack_wait: Duration::from_secs(60),
                max_ack_pending,
                ..Default::default()
            },
            stream,
        ),
    )
    .await
    .map(|_| ())
}

/// Binds to the durable pull consumer `durable` of `stream` over `js`.
pub(crate) async fn pull_consumer(
    js: &async_nats::jetstream::Context,
    stream: &str,
    durable: &str,
) -> Result<async_nats::jetstream::consumer::PullConsumer, String> {
    within(
        &format!("cannot bind to consumer {durable} on {stream}"),
        js.get_consumer_from_stream(durable, stream),
    )
    .await
}

/// The continuous pull of `consumer`: pull requests of `batch` messages,
/// renewed as they are used up, each expiring after 10 s with heartbeats.
pub(crate) async fn pull_messages(
    consumer: &async_nats::jetstream::consumer::PullConsumer,
    batch: usize,
) -> Result<async_nats::jetstream::consumer::pull::Stream, String> {
    within(
        "cannot start pulling",
        consumer
            .stream()
            .max_messages_per_batch(batch)
            .expires(Duration::from_secs(10))
            .heartbeat(Duration::from_secs(4))
            .messages(),
    )
    .await
}

/// Deletes the run's streams (best effort: a failure is reported on stderr).
/// Deletes the run's streams over a fresh connection.
pub(crate) fn teardown(admin: &tokio::runtime::Runtime, target: &NatsTarget, streams: &[String]) {
    admin.block_on(async {
        match connect(&target.url, "teardown").await {
            Ok(client) => delete_streams(&jetstream(client), streams).await,
            Err(e) => {
                eprintln!("gonets-loadgen: warning: streams {streams:?} left on the server: {e}")
            }
        }
    });
}

async fn delete_streams(js: &async_nats::jetstream::Context, names: &[String]) {
    for name in names {
        if let Err(e) = within(
            &format!("cannot delete stream {name}"),
            js.delete_stream(name),
        )
        .await
        {
            eprintln!("gonets-loadgen: warning: {e}");
        }
    }
}

/// The server's version, as it announced itself to `client`.
fn server_version(client: &async_nats::Client) -> String {
    client.server_info().version
}

/// The common `setup` entries of a NATS run.
fn common_setup(
    run: &mut RunResult,
    target: &NatsTarget,
    version: &str,
    names: &Names,
    cores: &Cores,
) {
    let setup = &mut run.setup;
    setup.insert("url".into(), target.url.clone().into());
    setup.insert("sync".into(), target.sync.clone().into());
    setup.insert(
        "sync_interval".into(),
        (if target.sync == "always" {
            "always (fsync before every PubAck)"
        } else {
            "server default (fsync every 2 min)"
        })
        .into(),
    );
    setup.insert("server_version".into(), version.into());
    setup.insert("storage".into(), "file".into());
    setup.insert("retention".into(), "limits".into());
    setup.insert("replicas".into(), 1.into());
    setup.insert("ack_policy".into(), "explicit".into());
    setup.insert("run_id".into(), names.run().into());
    setup.insert("generator_threads".into(), cores.count().into());
    setup.insert(
        "generator_cores".into(),
        serde_json::to_value(&cores.pins).unwrap_or(serde_json::Value::Null),
    );
}
