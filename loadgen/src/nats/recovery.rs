//! `recovery` against JetStream (docs/nats-mapping.md): fill a BULK stream
//! whose consumers never pull with `log_bytes` of messages, SIGKILL the
//! server, start it again with the operator's command (`--restart-cmd`,
//! e.g. `bash bench/nats.sh start ...`, which prints the new PID once the
//! server answers its health check), and time the first rt call answered
//! after the restart — as the gonets driver does with its embedded hub.
//! Every message accepted before the kill must still wait afterwards.

use super::backlog::{rt_phase, waiting, with_waiting_stream};
use super::{bulk, check_target, common_setup, NatsTarget};
use crate::params::{BulkParams, Cores, RtParams};
use crate::result::{Phase, RunResult};
use std::time::{Duration, Instant};

/// How long the server may take to go after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(30);
/// How long after the restart the first call may keep failing (streams
/// still recovering) before the run gives up.
const FIRST_CALL_DEADLINE: Duration = Duration::from_secs(120);

/// SIGKILL to `pid`, then waits until it is gone (or a zombie).
fn kill9(pid: u32) -> Result<(), String> {
    let pid_i = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    // SAFETY: kill(2) has no memory preconditions.
    if unsafe { libc::kill(pid_i, libc::SIGKILL) } != 0 {
        return Err(format!(
            "cannot SIGKILL the server (pid {pid}): {}",
            std::io::Error::last_os_error()
        ));
    }
    let deadline = Instant::now() + KILL_WAIT;
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return Ok(()),
            // The state follows the ")" closing the command name.
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z')) =>
            {
                return Ok(())
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    Err(format!(
        "the server (pid {pid}) still runs {KILL_WAIT:?} after SIGKILL"
    ))
}

/// Runs `cmd` with `sh -c`; the PID on the last line of its output.
fn restart(cmd: &str) -> Result<u32, String> {
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run the restart command {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the restart command {cmd:?} failed: {}",
            out.status
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    last.and_then(|l| l.trim().parse().ok()).ok_or_else(|| {
        format!("the restart command {cmd:?} printed no PID on its last line (got {stdout:?})")
    })
}

/// The first rt call after the restart: short rt runs at 1/s until one
/// is answered (a run that fails — streams still recovering — is retried
/// until FIRST_CALL_DEADLINE). Calls answered by the run that succeeded.
fn first_call(target: &NatsTarget, p: &RtParams) -> Result<u64, String> {
    let p = RtParams {
        rate_per_s: 1.0,
        warmup: Duration::ZERO,
        duration: Duration::from_millis(500),
        ..p.clone()
    };
    let deadline = Instant::now() + FIRST_CALL_DEADLINE;
    loop {
        match rt_phase(target, &p, &Cores::unpinned(1), "first-call") {
            Ok((phase, _)) if phase.ok > 0 || Instant::now() >= deadline => return Ok(phase.ok),
            Ok(_) => eprintln!("nats recovery: no call answered yet; again"),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(e) => eprintln!("nats recovery: first call failed ({e}); again"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `recovery` workload (see the module docs).
pub(crate) fn run(
    target: &NatsTarget,
    b: &BulkParams,
    rt_p: &RtParams,
    log_bytes: u64,
    restart_cmd: &str,
    cores: &Cores,
) -> Result<RunResult, String> {
    check_target(target)?;
    let pid = target
        .server_pid
        .ok_or("recovery kills the server: give --server-pid")?;
    if restart_cmd.trim().is_empty() {
        return Err("recovery restarts the server: give --restart-cmd".into());
    }
    let mut fill_p = b.clone();
    fill_p.messages = (log_bytes / b.message_bytes.max(1) as u64).max(1);
    let ((phases, new_pid), names, version) = with_waiting_stream(target, b.providers, |names| {
        let (filled, _) = bulk::fill(target, &fill_p, cores, names, "fill")?;
        let accepted = filled.ok;
        let (_, bytes) = waiting(target, names, b.providers)?;
        kill9(pid)?;
        let restarted = Instant::now();
        let new_pid = restart(restart_cmd)?;
        let to_listening = restarted.elapsed();
        eprintln!("nats recovery: server restarted as pid {new_pid} in {to_listening:?}");
        let after = NatsTarget {
            server_pid: Some(new_pid),
            ..target.clone()
        };
        let answered = first_call(&after, rt_p)?;
        let to_first_answer = restarted.elapsed();
        let (still_waiting, _) = waiting(&after, names, b.providers)?;
        let mut p = Phase::restart(
            to_listening,
            to_first_answer,
            answered,
            accepted,
            still_waiting,
        );
        p.extra.insert("log_bytes".into(), bytes.into());
        Ok((vec![filled, p], new_pid))
    })?;
    let mut run = RunResult::new("nats", "recovery");
    common_setup(&mut run, target, &version, &names, cores);
    let setup = &mut run.setup;
    setup.insert("log_bytes_asked".into(), log_bytes.into());
    setup.insert("message_bytes".into(), b.message_bytes.into());
    setup.insert("restart_cmd".into(), restart_cmd.into());
    setup.insert("server_pid_after_restart".into(), new_pid.into());
    setup.insert(
        "log_bytes_is".into(),
        "the BULK stream's bytes (JetStream stream info) before the kill".into(),
    );
    for p in phases {
        run.push(p);
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_restart_command_when_it_prints_a_pid_last_then_that_pid() {
        assert_eq!(restart("echo starting; echo 4242").unwrap(), 4242);
        assert!(restart("echo no pid here").unwrap_err().contains("no PID"));
        assert!(restart("exit 3").unwrap_err().contains("failed"));
    }

    #[test]
    fn given_a_child_when_kill9_then_it_is_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        kill9(child.id()).expect("killed");
        let status = child.wait().expect("reaped");
        assert!(!status.success());
    }

    #[test]
    fn given_no_pid_or_command_when_run_then_refused_before_anything() {
        let mut t = NatsTarget {
            url: "nats://127.0.0.1:1".into(),
            sync: "default".into(),
            server_pid: None,
        };
        let b = BulkParams {
            messages: 10,
            message_bytes: 4096,
            senders: 1,
            window: 8,
            providers: 1,
            drain_timeout: Duration::from_secs(1),
            batch: 1,
            format: crate::agency_record::PayloadFormat::Bytes,
        };
        let rt = RtParams {
            rate_per_s: 1.0,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            request_bytes: 1024,
            answer_bytes: 2048,
            consumers: 1,
            providers: 1,
            lag_max: Duration::from_millis(50),
            outstanding_max: 10,
        };
        let cores = Cores::unpinned(1);
        let e = run(&t, &b, &rt, 1 << 20, "true", &cores).unwrap_err();
        assert!(e.contains("--server-pid"), "{e}");
        t.server_pid = Some(1);
        let e = run(&t, &b, &rt, 1 << 20, " ", &cores).unwrap_err();
        assert!(e.contains("--restart-cmd"), "{e}");
    }
}
