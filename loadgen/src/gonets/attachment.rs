//! `attachment` (issue 19 item 4): rt calls alone, then rt calls at the
//! same rate while one consumer uploads a large attachment (1 GiB by
//! default) with its connection dropped halfway, sends a request that
//! carries it, and the kind's provider reads it back whole with its
//! BLAKE3 digest checked. The rt tail beside the transfer is the figure;
//! the transfer's own rates and the resume point are reported with it.
//!
//! The uploading agency system is another machine in the world; on the
//! generator's own core its client (a 4 MiB copy, CRC and loopback send
//! per chunk) would take the core from the rt generator for milliseconds
//! at a time and the figure would measure the generator, not the hub. So
//! by default the transfer's thread runs at `SCHED_IDLE`: it gets the core
//! whenever the rt generator does not want it ([`UploaderPriority`]).

use super::workloads::Run;
use super::workloads::{new_run, note_rt, ratio, rt_alone_then_beside, stderr_progress, Beside};
use crate::gonets::conn::GonetsTarget;
use crate::params::{Cores, RtParams};
use crate::record::Recorder;
use crate::registry;
use crate::result::Phase;
use gonets_client::glommio::Client;
use gonets_types::{AttachmentRef, DataKindId, NewRequest, QueueId, CHUNK_BYTES_MAX};
use serde_json::json;
use std::time::{Duration, Instant};

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
    bytes: u64,
    uploader: UploaderPriority,
    cores: &Cores,
) -> Result<Run, String> {
    let mut run = new_run("attachment", target, cores);
    note_rt(&mut run, rt);
    run.result
        .setup
        .insert("attachment_bytes".into(), json!(bytes));
    run.result.setup.insert(
        "attachment_uploader_priority".into(),
        json!(uploader.name()),
    );
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
            run_local(move || transfer(t, data))
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

/// Upload with a drop halfway, a request carrying it, the provider's read.
async fn transfer(target: GonetsTarget, data: Vec<u8>) -> Result<Transfer, String> {
    let kind = DataKindId::new(&registry::bulk_kind(0));
    let consumer = registry::consumer(0);
    let c = Client::connect(target.client_config(&consumer)?)
        .await
        .map_err(|e| format!("{consumer}: {e}"))?;
    let started = Instant::now();
    let reference = upload_with_drop(&c, &kind, &data).await?;
    let upload = started.elapsed();
    let mut request = NewRequest::new(kind.as_str(), "an attached case file");
    request.attachments = vec![reference.0];
    c.send_request(request)
        .await
        .map_err(|e| format!("send with the attachment: {e}"))?;
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
/// bytes it resumed at.
async fn upload_with_drop(
    c: &Client,
    kind: &DataKindId,
    data: &[u8],
) -> Result<(AttachmentRef, u64), String> {
    let fail = |what: &str, e: gonets_client::ClientError| format!("upload {what}: {e}");
    let mut state = c
        .upload_begin(kind, data.len() as u64)
        .await
        .map_err(|e| fail("begin", e))?;
    let half = data.len() as u64 / 2;
    let chunk = CHUNK_BYTES_MAX as u64;
    // Bounded: each round moves durable_bytes on by a chunk.
    while state.durable_bytes < half {
        let at = state.durable_bytes as usize;
        let end = (state.durable_bytes + chunk).min(data.len() as u64) as usize;
        let bytes = bytes::Bytes::copy_from_slice(&data[at..end]);
        state = c
            .upload_chunk(state.upload, state.durable_bytes, bytes)
            .await
            .map_err(|e| fail("chunk", e))?;
    }
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
    let reference = c
        .upload_rest(state, data, CHUNK_BYTES_MAX)
        .await
        .map_err(|e| fail("rest", e))?;
    Ok((reference, resumed_at))
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
    use super::UploaderPriority;

    #[test]
    fn given_each_priority_when_named_then_its_name_gives_it_back() {
        for (name, priority) in UploaderPriority::NAMES {
            assert_eq!(priority.name(), name);
            assert_eq!(UploaderPriority::from_name(name), Some(priority));
        }
        assert_eq!(UploaderPriority::from_name("realtime"), None);
    }
}
