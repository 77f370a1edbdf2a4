//! The manager alone, as a process: the `fixture-manager` test binary
//! (agent channel and log queries, no managed objects), for the agent
//! tests that stop and restart it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::artifacts::Artifact;
use crate::poll::eventually;
use crate::proc::Proc;

/// Starts `fixture-manager` on 127.0.0.1:`port` with data in `dir/manager`
/// (fast intervals: report 200 ms, ping after 1 s, silent after 3 s) and
/// waits until it listens. Each start logs to a new file in `dir`.
pub fn start_manager(dir: &Path, port: u16, admin_token: &str) -> Proc {
    let cfg = dir.join("manager.toml");
    std::fs::write(
        &cfg,
        "interval_ms = 200\nping_after_ms = 1000\nsilent_after_ms = 3000\nflush_ms = 20\n",
    )
    .expect("manager config");
    let mut cmd = Command::new(Artifact::FixtureManager.path());
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--admin-token",
        admin_token,
        "--config",
    ])
    .arg(&cfg)
    .arg("--data-dir")
    .arg(dir.join("manager"));
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let log = dir.join(format!("manager-{stamp}.log"));
    let mut p = Proc::spawn("fixture-manager", cmd, &log);
    p.wait_listening(port, Duration::from_secs(10), None);
    p
}

/// The agent token a manager made in `dir/manager` (waits up to 5 s).
pub fn manager_agent_token(dir: &Path) -> String {
    let p = dir.join("manager/agent.token");
    eventually(Duration::from_secs(5), || p.exists()).expect("agent.token appears");
    std::fs::read_to_string(p)
        .expect("token")
        .trim()
        .to_string()
}
