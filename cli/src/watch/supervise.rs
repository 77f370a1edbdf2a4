//! The watcher's loop: start the component, wait for it to exit or for a
//! stop signal, and after a failure wait the back-off delay
//! (`usher_core::backoff`) before starting it again.
//!
//! Status 0 ends the loop (the component chose to stop: restarting it would
//! fight that, and it is how `systemd`'s `Restart=on-failure` reads it too).
//! A non-zero status, a death by signal and a failed start are failures.

use std::time::Duration;

use super::args::WatchConfig;
use super::child::{self, Running};
use super::events::{
    EventLog, COMPONENT_DONE, COMPONENT_EXITED, COMPONENT_STARTED, COMPONENT_START_FAILED,
    WATCH_SIGNALLED,
};
use super::pid_file;
use super::signals::{StopSignal, StopSignals};

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The component exited with status 0.
    ComponentDone,
    /// The watcher got this signal (and the component, if running, stopped).
    Signalled(StopSignal),
}

/// What one run of the component came to.
enum Run {
    /// It failed after running this long.
    Failed(Duration),
    /// The loop is over.
    Ended(Ended),
}

/// Runs the component until it exits with status 0 or the watcher gets
/// SIGTERM/SIGINT; never gives up on a failing component.
pub async fn supervise(cfg: &WatchConfig, log: &mut EventLog, signals: &mut StopSignals) -> Ended {
    let mut failures = 0u32;
    let mut attempt = 0u64;
    loop {
        attempt = attempt.saturating_add(1);
        let ran = match run_once(cfg, log, signals, attempt, failures).await {
            Run::Ended(ended) => return ended,
            Run::Failed(ran) => ran,
        };
        failures = cfg.backoff.failures_after(failures, ran);
        let wait = cfg.backoff.delay(failures);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            sig = signals.recv() => {
                log.record(
                    WATCH_SIGNALLED,
                    Some(log.watcher_pid()),
                    &format!("{} while waiting to restart; no component running", sig.name()),
                );
                return Ended::Signalled(sig);
            }
        }
    }
}

/// Starts the component once and follows it to its end. `failures` (in a
/// row so far) is only for the messages: each says the next wait.
async fn run_once(
    cfg: &WatchConfig,
    log: &mut EventLog,
    signals: &mut StopSignals,
    attempt: u64,
    failures: u32,
) -> Run {
    let program = cfg.program.to_string_lossy();
    let mut running = match child::spawn(&cfg.program, &cfg.args) {
        Ok(r) => r,
        Err(e) => {
            let next = next_wait(cfg, failures, Duration::ZERO);
            log.record(
                COMPONENT_START_FAILED,
                None,
                &format!("cannot start {program} (attempt {attempt}): {e}; next attempt in {next}"),
            );
            return Run::Failed(Duration::ZERO);
        }
    };
    log.record(
        COMPONENT_STARTED,
        Some(running.pid),
        &format!("started {program} (attempt {attempt}), pid {}", running.pid),
    );
    if let Some(p) = &cfg.pid_file {
        pid_file::write(p, running.pid);
    }
    let run = tokio::select! {
        status = running.wait() => exited(cfg, log, &mut running, status, failures),
        sig = signals.recv() => {
            let pid = running.pid;
            let stopped = running.stop(sig, signals, cfg.stop_timeout).await;
            log.record(
                WATCH_SIGNALLED,
                Some(log.watcher_pid()),
                &format!("{}: forwarded to pid {pid}; {stopped}", sig.name()),
            );
            Run::Ended(Ended::Signalled(sig))
        }
    };
    if let Some(p) = &cfg.pid_file {
        pid_file::remove(p);
    }
    run
}

/// Records how the component exited on its own.
fn exited(
    cfg: &WatchConfig,
    log: &mut EventLog,
    running: &mut Running,
    status: std::io::Result<std::process::ExitStatus>,
    failures: u32,
) -> Run {
    let ran = running.ran();
    let pid = running.pid;
    let how = match status {
        Ok(s) if s.success() => {
            log.record(
                COMPONENT_DONE,
                Some(pid),
                &format!(
                    "exited with status 0 after {:.3} s; the watcher exits too",
                    ran.as_secs_f64()
                ),
            );
            return Run::Ended(Ended::ComponentDone);
        }
        Ok(s) => s.to_string(),
        Err(e) => {
            running.kill();
            format!("cannot wait for it ({e}); killed")
        }
    };
    let next = next_wait(cfg, failures, ran);
    log.record(
        COMPONENT_EXITED,
        Some(pid),
        &format!(
            "exited prematurely ({how}) after {:.3} s; restart in {next}",
            ran.as_secs_f64()
        ),
    );
    Run::Failed(ran)
}

/// The wait that will follow a failure after a run of `ran`, for messages.
fn next_wait(cfg: &WatchConfig, failures: u32, ran: Duration) -> String {
    let after = cfg.backoff.failures_after(failures, ran);
    format!(
        "{:.3} s (failure {after} in a row)",
        cfg.backoff.delay(after).as_secs_f64()
    )
}
