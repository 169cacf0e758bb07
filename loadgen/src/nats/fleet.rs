//! The generator threads of a NATS run: one OS thread per entry of
//! `Cores::pins`, pinned when asked, each with its own tokio current-thread
//! runtime (and a `LocalSet`, so its tasks share `Rc` state). Every thread
//! sets up (connects, binds its consumers), then says it is ready and waits
//! at the gate; once all are ready the calling thread hands every one the
//! same start instant, and ticks (progress, CPU windows) until all end.

use crate::params::Cores;
use std::future::Future;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long the threads may take to connect and bind before the run is called off.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the calling thread ticks while the threads run.
const TICK: Duration = Duration::from_millis(100);
/// The start is this far after the last thread said it was ready.
const START_MARGIN: Duration = Duration::from_millis(20);

/// What a thread says when the run was called off at the gate.
const CALLED_OFF: &str = "the run was called off";

/// A generator thread's way to the common start.
pub(crate) struct Gate {
    thread: usize,
    ready: mpsc::Sender<usize>,
    go: Option<oneshot::Receiver<Instant>>,
}

impl Gate {
    /// Says this thread is set up; waits for the start every thread shares.
    pub(crate) async fn ready(&mut self) -> Result<Instant, String> {
        let go = self.go.take().ok_or("the start gate was passed twice")?;
        // The calling thread only stops listening when it gives up.
        let _ = self.ready.send(self.thread);
        match tokio::time::timeout(SETUP_TIMEOUT + Duration::from_secs(5), go).await {
            Ok(Ok(start)) => Ok(start),
            _ => Err(format!(
                "{CALLED_OFF} before the start (another generator thread failed to set up)"
            )),
        }
    }
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) -> Result<(), String> {
    gonets_engine::runtime::placement::pin_current_thread(&[cpu])
        .map_err(|e| format!("a generator thread on CPU {cpu}: {e}"))
}

/// One generator thread: pinned, its own runtime, `body` to the end.
fn thread_main<T, F, Fut>(t: usize, pin: Option<usize>, body: &F, gate: Gate) -> Result<T, String>
where
    F: Fn(usize, Gate) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    if let Some(cpu) = pin {
        pin_to(cpu)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("generator thread {t}: cannot start a tokio runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, body(t, gate))
}

/// Runs `body(thread, gate)` on one thread per entry of `cores.pins`;
/// `tick(start, now)` on the calling thread every 100 ms from the start
/// until every thread has ended. The threads' results in thread order, or
/// the first failure.
pub(crate) fn run_fleet<T, F, Fut>(
    cores: &Cores,
    body: F,
    mut tick: impl FnMut(Instant, Instant),
) -> Result<Vec<T>, String>
where
    F: Fn(usize, Gate) -> Fut + Sync,
    Fut: Future<Output = Result<T, String>>,
    T: Send,
{
    let n = cores.count();
    if n == 0 {
        return Err("no generator threads (Cores::pins is empty)".into());
    }
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let body = &body;
        let mut handles = Vec::with_capacity(n);
        let mut go = Vec::with_capacity(n);
        for (t, &pin) in cores.pins.iter().enumerate() {
            let (go_tx, go_rx) = oneshot::channel();
            go.push(go_tx);
            let gate = Gate {
                thread: t,
                ready: ready_tx.clone(),
                go: Some(go_rx),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("loadgen-nats-{t}"))
                .spawn_scoped(scope, move || thread_main(t, pin, body, gate));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // Dropping `go` calls off the threads already started.
                    drop(go);
                    let _ = join_all(handles);
                    return Err(format!("cannot start generator thread {t}: {e}"));
                }
            }
        }
        drop(ready_tx);
        if let Some(why) = setup_called_off(&ready_rx, &handles) {
            drop(go);
            return Err(called_off_error(handles, why));
        }
        let start = Instant::now() + START_MARGIN;
        for g in go {
            let _ = g.send(start);
        }
        run_to_the_end(handles, start, &mut tick)
    })
}

/// A thread's handle, inside the scope of [`run_fleet`].
type Handle<'scope, T> = std::thread::ScopedJoinHandle<'scope, Result<T, String>>;

/// Waits until every thread is ready; or, if one ended (failed) or time
/// ran out first, says why the run is called off.
fn setup_called_off<T>(
    ready_rx: &mpsc::Receiver<usize>,
    handles: &[Handle<'_, T>],
) -> Option<String> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let mut ready = 0;
    while ready < handles.len() {
        match ready_rx.recv_timeout(TICK) {
            Ok(_) => ready += 1,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Some("every generator thread ended before the start".to_string());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if handles.iter().any(|h| h.is_finished()) {
            return Some("a generator thread failed to set up".into());
        }
        if Instant::now() > deadline {
            return Some(format!(
                "the generator threads were not set up within {} s",
                SETUP_TIMEOUT.as_secs()
            ));
        }
    }
    None
}

/// Joins the threads of a called-off run (their gate already dropped);
/// the error to report.
fn called_off_error<T>(handles: Vec<Handle<'_, T>>, why: String) -> String {
    let results = join_all(handles);
    // The failing thread's own error says more than ours or the
    // "called off" of the threads that waited at the gate.
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    errors
        .iter()
        .find(|e| !e.contains(CALLED_OFF))
        .or(errors.first())
        .cloned()
        .unwrap_or(why)
}

/// Ticks from `start` until every thread has ended, then joins them.
fn run_to_the_end<T>(
    handles: Vec<Handle<'_, T>>,
    start: Instant,
    tick: &mut impl FnMut(Instant, Instant),
) -> Result<Vec<T>, String> {
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(TICK);
        let now = Instant::now();
        if now >= start {
            tick(start, now);
        }
    }
    tick(start, Instant::now());
    join_all(handles).into_iter().collect()
}

/// Joins every thread; a panic becomes an error.
fn join_all<T>(handles: Vec<Handle<'_, T>>) -> Vec<Result<T, String>> {
    handles
        .into_iter()
        .enumerate()
        .map(|(t, h)| {
            h.join()
                .unwrap_or_else(|_| Err(format!("generator thread {t} panicked")))
                .map_err(|e| format!("generator thread {t}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_threads_when_run_then_all_share_one_start_and_results_keep_order() {
        let cores = Cores::unpinned(3);
        let mut ticks = 0;
        let out = run_fleet(
            &cores,
            |t, mut gate| async move {
                let start = gate.ready().await?;
                tokio::time::sleep(Duration::from_millis(150)).await;
                Ok((t, start))
            },
            |_, _| ticks += 1,
        )
        .unwrap();
        assert_eq!(out.iter().map(|o| o.0).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(out.iter().all(|o| o.1 == out[0].1), "one start for all");
        assert!(ticks >= 1);
    }

    #[test]
    fn given_one_thread_failing_setup_when_run_then_the_run_is_called_off_with_its_error() {
        let cores = Cores::unpinned(2);
        let r: Result<Vec<()>, String> = run_fleet(
            &cores,
            |t, mut gate| async move {
                if t == 1 {
                    return Err("no server".into());
                }
                gate.ready().await?;
                Ok(())
            },
            |_, _| {},
        );
        let e = r.unwrap_err();
        assert!(e.contains("no server"), "{e}");
    }
}
