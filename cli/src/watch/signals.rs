//! The signals the watcher stops on (SIGTERM, SIGINT), and forwarding one to
//! the component.
//!
//! Both are caught from before the first start to the end, so a signal never
//! kills the watcher by default action and leaves the component behind.

use rustix::process::{kill_process, Pid, Signal};
use tokio::signal::unix::{signal, SignalKind};

/// A stop signal the watcher received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Int,
}

impl StopSignal {
    /// `SIGTERM` or `SIGINT`, for events.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Int => "SIGINT",
        }
    }

    fn signal(self) -> Signal {
        match self {
            StopSignal::Term => Signal::TERM,
            StopSignal::Int => Signal::INT,
        }
    }
}

/// The watcher's SIGTERM and SIGINT handlers.
#[derive(Debug)]
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs both handlers (needs a tokio runtime with I/O enabled).
    pub fn install() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next stop signal. Never returns when both streams have ended
    /// (they do not while the runtime lives).
    pub async fn recv(&mut self) -> StopSignal {
        tokio::select! {
            Some(()) = self.term.recv() => StopSignal::Term,
            Some(()) = self.int.recv() => StopSignal::Int,
            else => std::future::pending().await,
        }
    }
}

/// Sends `sig` to the process `pid` (the component, not yet reaped, so the
/// PID cannot have been reused).
pub fn forward(pid: u32, sig: StopSignal) -> Result<(), String> {
    let target = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| format!("{pid} is not a process id"))?;
    kill_process(target, sig.signal()).map_err(|e| format!("kill -{} {pid}: {e}", sig.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_to_no_process_is_an_error() {
        assert!(forward(0, StopSignal::Term).is_err(), "pid 0 is refused");
        assert!(forward(u32::MAX, StopSignal::Int).is_err());
    }
}
