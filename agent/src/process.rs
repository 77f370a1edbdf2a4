//! Process control of local web servers: start the configured command,
//! stop it with a signal (then KILL after a grace period), restart, report
//! the PID and notice when a started process exits.
//!
//! Children are `tokio::process` children, so waiting for one to exit is a
//! future, not a polling loop. The table of children sits behind a plain
//! mutex that is only ever held for a map operation: [`Processes::stop`]
//! takes the child out of the table, then signals and waits for it without
//! the lock, so the report loop (which reaps exited children) and the hello
//! (which lists PIDs) never wait for a stopping server.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::config::ServerConfig;
use crate::lock;
use crate::signal;

pub use crate::signal::signal_number;

/// How long a stopped process may take before it is killed.
const GRACE: Duration = Duration::from_secs(5);

/// A child and the PID it was started with (tokio forgets the PID once the
/// child has been waited for).
#[derive(Debug)]
struct Started {
    child: Child,
    pid: u32,
}

/// The processes the agent started.
#[derive(Debug, Default)]
pub struct Processes {
    children: Mutex<HashMap<String, Started>>,
}

impl Processes {
    /// PID of a server the agent started and that still runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        let mut children = lock(&self.children);
        let s = children.get_mut(name)?;
        match s.child.try_wait() {
            Ok(None) => Some(s.pid),
            _ => None,
        }
    }

    /// PIDs of every server that runs, by name.
    pub fn pids(&self) -> HashMap<String, u32> {
        let mut children = lock(&self.children);
        children
            .iter_mut()
            .filter_map(|(name, s)| {
                matches!(s.child.try_wait(), Ok(None)).then(|| (name.clone(), s.pid))
            })
            .collect()
    }

    /// Starts a server; returns its PID (the running one if already up).
    /// Needs a tokio runtime (the child's exit is watched by it).
    pub fn start(&self, server: &ServerConfig) -> Result<u32, String> {
        if let Some(pid) = self.pid(&server.name) {
            return Ok(pid);
        }
        let (prog, args) = server
            .start
            .split_first()
            .ok_or_else(|| format!("server {}: no start command configured", server.name))?;
        let child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("server {}: cannot start {prog}: {e}", server.name))?;
        let pid = child
            .id()
            .ok_or_else(|| format!("server {}: exited at once", server.name))?;
        lock(&self.children).insert(server.name.clone(), Started { child, pid });
        Ok(pid)
    }

    /// Stops a server with `signal` (default: its `stop_signal`), waits for
    /// it to exit (KILL after the grace period); returns the old PID. The
    /// table is not locked while it waits.
    pub async fn stop(&self, server: &ServerConfig, signal: Option<&str>) -> Result<u32, String> {
        self.stop_within(server, signal, GRACE).await
    }

    async fn stop_within(
        &self,
        server: &ServerConfig,
        signal: Option<&str>,
        grace: Duration,
    ) -> Result<u32, String> {
        let sig_name = signal.unwrap_or(&server.stop_signal);
        let sig = signal::signal(sig_name).ok_or_else(|| format!("signal: unknown {sig_name}"))?;
        let Some(Started { mut child, pid }) = lock(&self.children).remove(&server.name) else {
            return Err(format!("server {}: not started by this agent", server.name));
        };
        if let Ok(Some(_)) = child.try_wait() {
            return Ok(pid);
        }
        signal::send(pid, sig)?;
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(Ok(_)) => Ok(pid),
            Ok(Err(e)) => Err(format!("server {}: wait failed: {e}", server.name)),
            Err(_) => {
                tracing::warn!(
                    "server {}: still running {grace:?} after {sig_name}; killing it",
                    server.name
                );
                if let Err(e) = child.kill().await {
                    tracing::warn!("server {}: kill failed: {e}", server.name);
                }
                Ok(pid)
            }
        }
    }

    /// Stops (if running) and starts again; returns the new PID.
    pub async fn restart(&self, server: &ServerConfig) -> Result<u32, String> {
        let started = lock(&self.children).contains_key(&server.name);
        if started {
            self.stop(server, None).await?;
        }
        self.start(server)
    }

    /// Servers whose process exited on its own since the last call.
    pub fn reap(&self) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        lock(&self.children).retain(|name, s| match s.child.try_wait() {
            Ok(Some(status)) => {
                gone.push((name.clone(), status.to_string()));
                false
            }
            _ => true,
        });
        gone
    }

    /// Stops everything (agent shutdown).
    pub async fn stop_all(&self, servers: &[ServerConfig]) {
        for s in servers {
            let started = lock(&self.children).contains_key(&s.name);
            if started {
                if let Err(e) = self.stop(s, None).await {
                    tracing::warn!("{e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper() -> ServerConfig {
        let cfg = crate::config::AgentConfig::parse(
            "data_dir = \"/tmp\"\ncontrol_url = \"ws://127.0.0.1:9\"\ntoken = \"test-token\"\n[[servers]]\nname = \"s\"\nurl = \"http://127.0.0.1:1\"\nstart = [\"sleep\", \"30\"]\n",
        )
        .expect("cfg");
        cfg.servers[0].clone()
    }

    #[tokio::test]
    async fn start_stop_restart_and_reap() {
        let s = sleeper();
        let p = Processes::default();
        let pid = p.start(&s).expect("start");
        assert_eq!(p.pid("s"), Some(pid));
        assert_eq!(p.start(&s).expect("again"), pid, "already running");
        let new = p.restart(&s).await.expect("restart");
        assert_ne!(new, pid);
        assert_eq!(p.stop(&s, Some("KILL")).await.expect("stop"), new);
        assert_eq!(p.pid("s"), None);
        assert!(p.stop(&s, None).await.is_err());
        let mut short = s.clone();
        short.start = vec!["true".into()];
        p.start(&short).expect("start");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(p.reap().len(), 1);
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("BOGUS"), None);
    }

    #[tokio::test]
    async fn a_slow_stop_does_not_hold_the_table() {
        let mut s = sleeper();
        // Ignores TERM: only the KILL after the grace period ends it.
        s.start = vec![
            "sh".into(),
            "-c".into(),
            "trap '' TERM; sleep 30 & wait; sleep 30".into(),
        ];
        let p = std::sync::Arc::new(Processes::default());
        let pid = p.start(&s).expect("start");
        // Give the shell time to set its trap.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stopping = {
            let (p, s) = (p.clone(), s.clone());
            tokio::spawn(async move {
                p.stop_within(&s, Some("TERM"), Duration::from_millis(800))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        // While the stop waits, the table answers at once.
        assert!(!stopping.is_finished());
        assert!(p.pids().is_empty());
        assert!(p.reap().is_empty());
        assert_eq!(stopping.await.expect("task"), Ok(pid));
        assert_eq!(p.pid("s"), None);
    }
}
