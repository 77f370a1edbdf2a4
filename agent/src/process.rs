//! Process control of local web servers: start the configured command,
//! stop it with a signal (then KILL after a grace period), restart, report
//! the PID and notice when a started process exits.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::ServerConfig;

/// How long a stopped process may take before it is killed.
const GRACE: Duration = Duration::from_secs(5);

/// Signal number of a name (`TERM`, `SIGTERM`, ...).
pub fn signal_number(name: &str) -> Option<i32> {
    match name.trim_start_matches("SIG") {
        "HUP" => Some(1),
        "INT" => Some(2),
        "QUIT" => Some(3),
        "KILL" => Some(9),
        "USR1" => Some(10),
        "USR2" => Some(12),
        "TERM" => Some(15),
        _ => None,
    }
}

/// The processes the agent started.
#[derive(Debug, Default)]
pub struct Processes {
    children: HashMap<String, Child>,
}

impl Processes {
    /// PID of a server the agent started and that still runs.
    pub fn pid(&mut self, name: &str) -> Option<u32> {
        let child = self.children.get_mut(name)?;
        match child.try_wait() {
            Ok(None) => Some(child.id()),
            _ => None,
        }
    }

    /// Starts a server; returns its PID (the running one if already up).
    pub fn start(&mut self, server: &ServerConfig) -> Result<u32, String> {
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
        let pid = child.id();
        self.children.insert(server.name.clone(), child);
        Ok(pid)
    }

    /// Stops a server with `signal` (default: its `stop_signal`), waits for
    /// it to exit (KILL after the grace period); returns the old PID.
    pub async fn stop(
        &mut self,
        server: &ServerConfig,
        signal: Option<&str>,
    ) -> Result<u32, String> {
        let Some(mut child) = self.children.remove(&server.name) else {
            return Err(format!("server {}: not started by this agent", server.name));
        };
        let pid = child.id();
        if let Ok(Some(_)) = child.try_wait() {
            return Ok(pid);
        }
        let sig = signal.unwrap_or(&server.stop_signal);
        let num = signal_number(sig).ok_or_else(|| format!("signal: unknown {sig}"))?;
        send_signal(pid, num)?;
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(pid),
                Ok(None) if started.elapsed() > GRACE => {
                    if let Err(e) = child.kill() {
                        tracing::warn!("server {}: kill failed: {e}", server.name);
                    }
                    if let Err(e) = child.wait() {
                        tracing::warn!("server {}: wait failed: {e}", server.name);
                    }
                    return Ok(pid);
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => return Err(format!("server {}: wait failed: {e}", server.name)),
            }
        }
    }

    /// Stops (if running) and starts again; returns the new PID.
    pub async fn restart(&mut self, server: &ServerConfig) -> Result<u32, String> {
        if self.children.contains_key(&server.name) {
            self.stop(server, None).await?;
        }
        self.start(server)
    }

    /// Servers whose process exited on its own since the last call.
    pub fn reap(&mut self) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        self.children.retain(|name, child| match child.try_wait() {
            Ok(Some(status)) => {
                gone.push((name.clone(), status.to_string()));
                false
            }
            _ => true,
        });
        gone
    }

    /// Stops everything (agent shutdown).
    pub async fn stop_all(&mut self, servers: &[ServerConfig]) {
        for s in servers {
            if self.children.contains_key(&s.name) {
                if let Err(e) = self.stop(s, None).await {
                    tracing::warn!("{e}");
                }
            }
        }
    }
}

/// Sends a signal with the system's `kill` (no unsafe code needed).
fn send_signal(pid: u32, num: i32) -> Result<(), String> {
    let status = Command::new("kill")
        .arg(format!("-{num}"))
        .arg(pid.to_string())
        .status()
        .map_err(|e| format!("kill {pid}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{num} {pid}: {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper() -> ServerConfig {
        let cfg = crate::config::AgentConfig::parse(
            "data_dir = \"/tmp\"\ncontrol_url = \"ws://x\"\ntoken = \"t\"\n[[servers]]\nname = \"s\"\nurl = \"http://127.0.0.1:1\"\nstart = [\"sleep\", \"30\"]\n",
        )
        .expect("cfg");
        cfg.servers[0].clone()
    }

    #[tokio::test]
    async fn start_stop_restart_and_reap() {
        let s = sleeper();
        let mut p = Processes::default();
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
}
