//! `attachment` (issue 19 item 4): rt calls alone, then rt calls at the
//! same rate while one consumer uploads a large attachment (1 GiB by
//! default) with its connection dropped halfway, sends a request that
//! carries it, and the kind's provider reads it back whole with its
//! BLAKE3 digest checked. The rt tail beside the transfer is the figure;
//! the transfer's own rates and the resume point are reported with it.
//!
//! With `--attachment-interleave-s W` the run is one phase instead: rt
//! calls throughout, the transfer moving only in every other window of W
//! seconds (a chunk, the finish or the read started in an "on" window;
//! none in an "off" one), and each call recorded by whether the transfer
//! was moving when it was issued. On a virtual machine whose disk and CPU
//! are shared with others, the two halves of one run see the same
//! neighbours, where an rt-alone phase run minutes before the transfer may
//! not: its p99 moved 1.5–16 ms from run to run (bench/RESULTS.md).
//!
//! The uploading agency system is another machine in the world; on the
//! generator's own core its client (a 4 MiB copy, CRC and loopback send
//! per chunk) would take the core from the rt generator for milliseconds
//! at a time and the figure would measure the generator, not the hub. So
//! by default the transfer's thread runs at `SCHED_IDLE`: it gets the core
//! whenever the rt generator does not want it ([`UploaderPriority`]).

use super::engine::{self, Plan};
use super::workloads::Run;
use super::workloads::{new_run, note_rt, ratio, rt_alone_then_beside, stderr_progress, Beside};
use crate::gonets::conn::GonetsTarget;
use crate::params::{Cores, RtParams};
use crate::record::Recorder;
use crate::registry;
use crate::result::Phase;
use gonets_client::glommio::Client;
use gonets_types::{AttachmentRef, DataKindId, Digest, NewRequest, QueueId, CHUNK_BYTES_MAX};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the workload transfers, and how.
#[derive(Clone, Copy, Debug)]
pub struct AttachmentParams {
    /// Size of the attachment.
    pub bytes: u64,
    /// CPU priority of the uploading (and reading) thread.
    pub uploader: UploaderPriority,
    /// 0: rt alone, then rt beside the transfer. Else the length of the
    /// on and off windows of the interleaved run, seconds.
    pub interleave_s: u64,
}

/// The CPU priority of the thread that uploads and reads the attachment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploaderPriority {
    /// `SCHED_IDLE`: the rt generator's threads always run first.
    Idle,
    /// As the generator's threads: both compete for the core.
    Normal,
}

impl UploaderPriority {
    /// Every priority, as the command line and the report name them.
    pub const NAMES: [(&'static str, UploaderPriority); 2] = [
        ("idle", UploaderPriority::Idle),
        ("normal", UploaderPriority::Normal),
    ];

    /// The name the command line and the report give it.
    pub fn name(self) -> &'static str {
        let named = Self::NAMES.iter().find(|(_, p)| *p == self);
        named.expect("every priority is named").0
    }

    /// The priority called `name`, if any.
    pub fn from_name(name: &str) -> Option<UploaderPriority> {
        let named = Self::NAMES.iter().find(|(n, _)| *n == name);
        named.map(|(_, p)| *p)
    }

    /// Applies it to the calling thread.
    fn apply(self) -> Result<(), String> {
        if self == UploaderPriority::Normal {
            return Ok(());
        }
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler on this thread (0) with a param we own.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            return Err(format!(
                "cannot give the uploader SCHED_IDLE: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }
}

/// What the transfer did, timed.
#[derive(Debug)]
struct Transfer {
    /// Upload, from the first chunk to the finish (the drop included).
    upload: Duration,
    /// Bytes the hub held durable when the upload went on after the drop.
    resumed_at_bytes: u64,
    /// The provider's read of the whole attachment, digest checked.
    read: Duration,
    /// From the upload's start to the read's end.
    total: Duration,
}

/// Runs the workload.
pub fn attachment(
    target: &GonetsTarget,
    rt: &RtParams,
    params: AttachmentParams,
    cores: &Cores,
) -> Result<Run, String> {
    let AttachmentParams {
        bytes,
        uploader,
        interleave_s,
    } = params;
    let mut run = new_run("attachment", target, cores);
    note_rt(&mut run, rt);
    run.result
        .setup
        .insert("attachment_bytes".into(), json!(bytes));
    run.result.setup.insert(
        "attachment_uploader_priority".into(),
        json!(uploader.name()),
    );
    run.result
        .setup
        .insert("attachment_interleave_s".into(), json!(interleave_s));
    if interleave_s > 0 {
        return interleaved(run, target, rt, params, cores);
    }
    let beside = Beside {
        label: "rt+attachment",
        phase: "rt-with-attachment",
        curve: "rt beside the attachment",
        bulk: None,
    };
    let m = rt_alone_then_beside(&mut run, target, rt, cores, beside, || {
        stderr_progress(&format!("attachment: making {} MiB", bytes >> 20));
        let data = pattern(bytes);
        let t = target.clone();
        let transfer = std::thread::spawn(move || {
            uploader.apply()?;
            run_local(move || transfer(t, data, None))
        });
        move || {
            transfer
                .join()
                .map_err(|_| "the attachment transfer panicked".to_string())?
        }
    })?;
    let mut with_phase = m.with;
    compare(&mut with_phase, &m.alone, &m.beside, rt);
    let transfer_phase = transfer_phase(bytes, &m.beside);
    run.result.push(m.alone);
    run.result.push(with_phase);
    run.result.push(transfer_phase);
    Ok(run)
}

/// The interleaved run: rt calls throughout, the transfer moving in every
/// other window; the calls issued while it moved against the others.
fn interleaved(
    mut run: Run,
    target: &GonetsTarget,
    rt: &RtParams,
    params: AttachmentParams,
    cores: &Cores,
) -> Result<Run, String> {
    let moving = Arc::new(AtomicBool::new(false));
    let plan = Plan {
        label: "rt+attachment on/off".into(),
        rt: Some(rt.clone()),
        bulk: None,
        split: Some(moving.clone()),
    };
    stderr_progress(&format!(
        "attachment: making {} MiB; it moves in every other {} s window",
        params.bytes >> 20,
        params.interleave_s
    ));
    let data = pattern(params.bytes);
    let t = target.clone();
    let windows = Windows {
        started: Instant::now(),
        window: Duration::from_secs(params.interleave_s),
        moving,
    };
    let uploader = params.uploader;
    let transfer = std::thread::spawn(move || {
        uploader.apply()?;
        run_local(move || transfer(t, data, Some(windows)))
    });
    let outcome = engine::run(target, &plan, cores, &mut stderr_progress)?;
    let done = transfer
        .join()
        .map_err(|_| "the attachment transfer panicked".to_string())??;
    let r = outcome.rt.as_ref().expect("the plan had an rt part");
    let measured_calls = (r.issued + r.issued_apart).max(1) as f64;
    let share = |n: u64| rt.duration.mul_f64(n as f64 / measured_calls);
    let mut on = Phase::new("rt-transfer-moving", share(r.issued), r.issued, &r.rec);
    let mut off = Phase::new(
        "rt-transfer-still",
        share(r.issued_apart),
        r.issued_apart,
        &r.apart,
    );
    for p in [&mut on, &mut off] {
        p.rate_offered = Some(rt.rate_per_s);
        p.hub = outcome.hub.clone();
        p.judge_generator(r.lag_max, rt.lag_max);
    }
    on.unanswered(r.unfinished);
    if let (Some(a), Some(w)) = (&off.latency, &on.latency) {
        on.extra.insert(
            "p99_ratio_to_still".into(),
            json!(ratio(w.p99_us, a.p99_us)),
        );
        on.extra.insert(
            "p999_ratio_to_still".into(),
            json!(ratio(w.p999_us, a.p999_us)),
        );
    }
    let window = rt.warmup + rt.duration;
    let within = done.total <= window;
    on.extra
        .insert("transfer_within_rt_window".into(), json!(within));
    if !within {
        // The part of the transfer after the rt phase was not measured:
        // the ratio would speak for a part of it only.
        on.invalidate(format!(
            "the transfer took {:.0} s, past the rt phase's {:.0} s: give --duration more room",
            done.total.as_secs_f64(),
            window.as_secs_f64()
        ));
    }
    run.curves
        .push(("rt while the transfer moved".into(), r.rec.clone()));
    run.curves
        .push(("rt while it stood still".into(), r.apart.clone()));
    let transfer_phase = transfer_phase(params.bytes, &done);
    run.result.push(off);
    run.result.push(on);
    run.result.push(transfer_phase);
    Ok(run)
}

/// The transfer's on and off windows: it moves only in even windows
/// counted from `started`, and `moving` says whether it is moving now.
struct Windows {
    started: Instant,
    window: Duration,
    moving: Arc<AtomicBool>,
}

impl Windows {
    /// Before a step of the transfer: if this is an off window, says so and
    /// sleeps until the next on window; then says the transfer moves.
    async fn step(&self) {
        let window_ns = self.window.as_nanos().max(1);
        let since = self.started.elapsed();
        let index = since.as_nanos() / window_ns;
        if index % 2 == 1 {
            self.moving.store(false, Relaxed);
            let next_on = self.window.mul_f64((index + 1) as f64);
            glommio::timer::sleep(next_on.saturating_sub(since)).await;
        }
        self.moving.store(true, Relaxed);
    }

    /// The transfer is over: it stands still from now on.
    fn end(&self) {
        self.moving.store(false, Relaxed);
    }
}

/// The rt tail beside the transfer against rt alone (p99; p99.9 comes
/// with the phase), and whether the transfer ran within the measured rt
/// window.
fn compare(with: &mut Phase, alone: &Phase, t: &Transfer, rt: &RtParams) {
    if let (Some(a), Some(w)) = (&alone.latency, &with.latency) {
        with.extra.insert(
            "p99_ratio_to_alone".into(),
            json!(ratio(w.p99_us, a.p99_us)),
        );
    }
    let window = rt.warmup + rt.duration;
    with.extra
        .insert("transfer_within_rt_window".into(), json!(t.total <= window));
}

/// The transfer as a phase of its own: one upload and one read.
fn transfer_phase(bytes: u64, t: &Transfer) -> Phase {
    let mut p = Phase::new("attachment-transfer", t.total, 1, &Recorder::new());
    let mib = bytes as f64 / f64::from(1u32 << 20);
    let rate = |d: Duration| (mib / d.as_secs_f64().max(1e-9) * 10.0).round() / 10.0;
    p.ok = 1;
    p.extra
        .insert("upload_s".into(), json!(t.upload.as_secs_f64()));
    p.extra
        .insert("upload_mib_per_s".into(), json!(rate(t.upload)));
    p.extra.insert("read_s".into(), json!(t.read.as_secs_f64()));
    p.extra.insert("read_mib_per_s".into(), json!(rate(t.read)));
    p.extra.insert("dropped_connections".into(), json!(1));
    p.extra
        .insert("resumed_at_bytes".into(), json!(t.resumed_at_bytes));
    p.extra.insert("digest_verified".into(), json!(true));
    p
}

/// `len` bytes of a cheap pseudo-random pattern (xorshift), so no two
/// chunks are alike.
fn pattern(len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(usize::try_from(len).expect("fits memory"));
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    // Bounded by `len`.
    while (out.len() as u64) < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let take = (len - out.len() as u64).min(8) as usize;
        out.extend_from_slice(&x.to_le_bytes()[..take]);
    }
    out
}

/// Upload with a drop halfway, a request carrying it, the provider's read;
/// with `windows`, each step only in an on window.
async fn transfer(
    target: GonetsTarget,
    data: Vec<u8>,
    windows: Option<Windows>,
) -> Result<Transfer, String> {
    let result = transfer_steps(target, data, windows.as_ref()).await;
    if let Some(w) = &windows {
        w.end();
    }
    result
}

/// [`transfer`]'s steps.
async fn transfer_steps(
    target: GonetsTarget,
    data: Vec<u8>,
    windows: Option<&Windows>,
) -> Result<Transfer, String> {
    let kind = DataKindId::new(&registry::bulk_kind(0));
    let consumer = registry::consumer(0);
    let c = Client::connect(target.client_config(&consumer)?)
        .await
        .map_err(|e| format!("{consumer}: {e}"))?;
    let started = Instant::now();
    let reference = upload_with_drop(&c, &kind, &data, windows).await?;
    let upload = started.elapsed();
    let mut request = NewRequest::new(kind.as_str(), "an attached case file");
    request.attachments = vec![reference.0];
    c.send_request(request)
        .await
        .map_err(|e| format!("send with the attachment: {e}"))?;
    if let Some(w) = windows {
        w.step().await;
    }
    let read_started = Instant::now();
    read_back(&target, &kind, &reference.0, &data).await?;
    Ok(Transfer {
        upload,
        resumed_at_bytes: reference.1,
        read: read_started.elapsed(),
        total: started.elapsed(),
    })
}

/// Uploads `data` in the largest chunks, drops the connection once half is
/// durable, and goes on from where the hub says; the reference and the
/// bytes it resumed at. With `windows`, every chunk and the finish wait
/// for an on window, and the client's own resuming upload is not used.
async fn upload_with_drop(
    c: &Client,
    kind: &DataKindId,
    data: &[u8],
    windows: Option<&Windows>,
) -> Result<(AttachmentRef, u64), String> {
    let fail = |what: &str, e: gonets_client::ClientError| format!("upload {what}: {e}");
    let state = c
        .upload_begin(kind, data.len() as u64)
        .await
        .map_err(|e| fail("begin", e))?;
    let half = data.len() as u64 / 2;
    let state = chunks_up_to(c, state, data, half, windows).await?;
    stderr_progress(&format!(
        "attachment: {} MiB durable; dropping the connection",
        state.durable_bytes >> 20
    ));
    c.disconnect();
    let state = c
        .upload_status(state.upload)
        .await
        .map_err(|e| fail("status after the drop", e))?;
    let resumed_at = state.durable_bytes;
    let Some(w) = windows else {
        let reference = c
            .upload_rest(state, data, CHUNK_BYTES_MAX)
            .await
            .map_err(|e| fail("rest", e))?;
        return Ok((reference, resumed_at));
    };
    let state = chunks_up_to(c, state, data, data.len() as u64, windows).await?;
    w.step().await;
    let digest = Digest(*blake3::hash(data).as_bytes());
    let reference = c
        .upload_finish(state.upload, digest)
        .await
        .map_err(|e| fail("finish", e))?;
    Ok((reference, resumed_at))
}

/// Sends chunks of `data` from where `state` stands until `until_bytes`
/// are durable, each in an on window when there are `windows`.
async fn chunks_up_to(
    c: &Client,
    mut state: gonets_types::UploadState,
    data: &[u8],
    until_bytes: u64,
    windows: Option<&Windows>,
) -> Result<gonets_types::UploadState, String> {
    assert!(until_bytes <= data.len() as u64);
    let chunk = CHUNK_BYTES_MAX as u64;
    // Bounded: each round moves durable_bytes on by a chunk.
    while state.durable_bytes < until_bytes {
        if let Some(w) = windows {
            w.step().await;
        }
        let at = state.durable_bytes as usize;
        let end = (state.durable_bytes + chunk).min(data.len() as u64) as usize;
        let bytes = bytes::Bytes::copy_from_slice(&data[at..end]);
        let next = c
            .upload_chunk(state.upload, state.durable_bytes, bytes)
            .await
            .map_err(|e| format!("upload chunk: {e}"))?;
        assert!(next.durable_bytes > state.durable_bytes, "a chunk moves on");
        state = next;
    }
    Ok(state)
}

/// The provider fetches the request, reads the attachment whole (digest
/// checked by the client) and compares it with what was sent.
async fn read_back(
    target: &GonetsTarget,
    kind: &DataKindId,
    reference: &AttachmentRef,
    data: &[u8],
) -> Result<(), String> {
    let provider = registry::provider(0);
    let p = Client::connect(target.client_config(&provider)?)
        .await
        .map_err(|e| format!("{provider}: {e}"))?;
    let queue = QueueId::Requests(kind.clone());
    let got = p
        .fetch(&queue, 16, Duration::from_secs(10))
        .await
        .map_err(|e| format!("fetch: {e}"))?;
    let m = got
        .iter()
        .find(|m| m.attachments.first() == Some(reference))
        .ok_or("the request with the attachment was not delivered within 10 s")?;
    let mut at = 0usize;
    let mut same = true;
    p.read_attachment_to(reference, |piece| {
        same &= data.get(at..at + piece.len()) == Some(piece);
        at += piece.len();
        Ok(())
    })
    .await
    .map_err(|e| format!("read back: {e}"))?;
    if !same || at != data.len() {
        return Err(format!("read back {at} bytes that differ from those sent"));
    }
    p.ack(m).await.map_err(|e| format!("ack: {e}"))?;
    Ok(())
}

/// Runs `f` on a one-off glommio executor on this thread.
fn run_local<T: Send + 'static, F: std::future::Future<Output = Result<T, String>> + 'static>(
    f: impl FnOnce() -> F,
) -> Result<T, String> {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .make()
        .map_err(|e| format!("cannot start a glommio executor: {e}"))?
        .run(f())
}

#[cfg(test)]
mod tests {
    use super::{UploaderPriority, Windows};
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn given_an_off_window_when_the_transfer_steps_then_it_stands_still_until_the_next_on_window() {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .unwrap();
        ex.run(async {
            let window = Duration::from_millis(40);
            let w = Windows {
                started: Instant::now(),
                window,
                moving: Arc::new(AtomicBool::new(false)),
            };
            w.step().await;
            assert!(w.moving.load(Relaxed), "an on window: it moves at once");
            assert!(w.started.elapsed() < window, "no wait in an on window");
            glommio::timer::sleep(window + window / 4).await;
            let moving = w.moving.clone();
            let seen_still = glommio::spawn_local(async move {
                glommio::timer::sleep(Duration::from_millis(5)).await;
                !moving.load(Relaxed)
            });
            w.step().await;
            assert!(seen_still.await, "it stood still in the off window");
            assert!(
                w.started.elapsed() >= 2 * window,
                "it waited for the next on window"
            );
            assert!(w.moving.load(Relaxed));
            w.end();
            assert!(!w.moving.load(Relaxed), "over: it stands still");
        });
    }

    #[test]
    fn given_each_priority_when_named_then_its_name_gives_it_back() {
        for (name, priority) in UploaderPriority::NAMES {
            assert_eq!(priority.name(), name);
            assert_eq!(UploaderPriority::from_name(name), Some(priority));
        }
        assert_eq!(UploaderPriority::from_name("realtime"), None);
    }
}
