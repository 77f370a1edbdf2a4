//! Child processes the tests start, and how they are stopped: by their own
//! PID (TERM, then KILL), when the guard drops, even when a test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::ports::answers;

/// A child process killed by PID when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout/stderr written to `log` (created afresh).
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let out = std::fs::File::create(log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How it exited, once it has.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits until something accepts on 127.0.0.1:`port`; panics with
    /// `log` (the process's own output when `None`) when the process exits
    /// first or `limit` passes.
    pub fn wait_listening(&mut self, port: u16, limit: Duration, log: Option<&Path>) {
        let start = Instant::now();
        while !answers(port) {
            let exited = !self.is_running();
            if exited || start.elapsed() > limit {
                let why = if exited {
                    "exited at start"
                } else {
                    "does not listen"
                };
                let log = log.unwrap_or(&self.log);
                panic!(
                    "{} {why} (127.0.0.1:{port}, {limit:?}); {}:\n{}",
                    self.name,
                    log.display(),
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal to this process (by PID).
    pub fn signal(&self, sig: &str) {
        send_signal(sig, &self.pid().to_string());
    }

    /// Stops the process: TERM, then KILL after 3 s.
    pub fn stop(&mut self) {
        if !self.is_running() {
            return;
        }
        self.signal("TERM");
        let start = Instant::now();
        while self.is_running() && start.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.is_running() {
            if let Err(e) = self.child.kill() {
                eprintln!("kill {}: {e}", self.name);
            }
        }
        self.child.wait().ok();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `sig` to `target` (a PID, or `-PGID` for a process group).
pub fn send_signal(sig: &str, target: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), "--", target])
        .stderr(Stdio::null())
        .status();
    if let Err(e) = status {
        eprintln!("kill -{sig} {target}: {e}");
    }
}

/// True while a process with this PID exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}

/// The last `n` lines of a log file (empty when it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut s = lines[lines.len().saturating_sub(n)..].join("\n");
    s.push('\n');
    s
}
