//! The component as a child process: start it, wait for it, stop it.
//!
//! The child inherits the watcher's stdin, stdout, stderr and environment,
//! so it logs where it would have without the watcher. It is a
//! `tokio::process` child with `kill_on_drop`: if the watcher ever unwinds
//! past it, the child is killed rather than orphaned.

use std::ffi::OsString;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::signals::{forward, StopSignal, StopSignals};

/// A started component.
#[derive(Debug)]
pub struct Running {
    child: Child,
    /// Its PID (kept: tokio forgets it once the child is reaped).
    pub pid: u32,
    started: Instant,
}

/// How a stop went.
#[derive(Debug)]
pub enum Stopped {
    /// It exited after the forwarded signal(s).
    Exited(ExitStatus),
    /// It outlived the stop timeout and was killed.
    Killed(Option<ExitStatus>),
    /// Waiting for it failed (it was killed as well).
    WaitFailed(std::io::Error),
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::Exited(status) => write!(f, "it stopped ({status})"),
            Stopped::Killed(Some(status)) => {
                write!(f, "it outlived the stop timeout and was killed ({status})")
            }
            Stopped::Killed(None) => write!(f, "it outlived the stop timeout; SIGKILL sent"),
            Stopped::WaitFailed(e) => write!(f, "waiting for it failed ({e}); SIGKILL sent"),
        }
    }
}

/// Starts `program args`.
pub fn spawn(program: &OsString, args: &[OsString]) -> std::io::Result<Running> {
    let child = Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .spawn()?;
    // `id()` is `None` only once the child has been reaped, which nothing
    // has done yet; 0 (never a child's PID) keeps this free of a panic.
    let pid = child.id().unwrap_or(0);
    Ok(Running {
        child,
        pid,
        started: Instant::now(),
    })
}

impl Running {
    /// Waits until the child exits.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// How long it has run.
    pub fn ran(&self) -> Duration {
        self.started.elapsed()
    }

    /// Kills it (after a failed wait: it may still run).
    pub fn kill(&mut self) {
        if let Err(e) = self.child.start_kill() {
            tracing::warn!("kill -KILL {}: {e}", self.pid);
        }
    }

    /// Forwards `first` to the child and waits for it to exit; every further
    /// stop signal the watcher receives meanwhile is forwarded too. After
    /// `timeout` the child is sent SIGKILL (and reaped).
    pub async fn stop(
        mut self,
        first: StopSignal,
        signals: &mut StopSignals,
        timeout: Duration,
    ) -> Stopped {
        self.forward(first);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                status = self.child.wait() => {
                    return match status {
                        Ok(s) => Stopped::Exited(s),
                        Err(e) => {
                            self.kill();
                            Stopped::WaitFailed(e)
                        }
                    };
                }
                sig = signals.recv() => self.forward(sig),
                () = &mut deadline => {
                    tracing::warn!(
                        "pid {}: still running {timeout:?} after {}; killing it",
                        self.pid,
                        first.name()
                    );
                    if let Err(e) = self.child.kill().await {
                        tracing::warn!("kill -KILL {}: {e}", self.pid);
                    }
                    return Stopped::Killed(self.child.try_wait().ok().flatten());
                }
            }
        }
    }

    fn forward(&self, sig: StopSignal) {
        if let Err(e) = forward(self.pid, sig) {
            tracing::warn!("cannot forward {}: {e}", sig.name());
        }
    }
}
