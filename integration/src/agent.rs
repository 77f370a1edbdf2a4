//! The one way the tests run the agent as a process: `usher agent` or the
//! standalone `usher-agent`, with a config file written to a test folder
//! and its log next to it; plus the config the agent tests share.

use std::path::Path;
use std::process::Command;

use crate::artifacts::Artifact;
use crate::proc::Proc;

/// Which agent binary to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentBinary {
    /// `usher agent` (the one binary users install).
    Usher,
    /// `usher-agent` (the agent crate's own binary).
    Standalone,
}

/// Writes `config` to `dir/agent.toml` and starts the agent on it
/// (`USHER_LOG=info`, output in `dir/agent.log`). It does not wait: an
/// agent listens on nothing until told to.
pub fn start_agent(dir: &Path, config: &str, binary: AgentBinary) -> Proc {
    let path = dir.join("agent.toml");
    std::fs::write(&path, config).expect("agent config");
    let mut cmd = match binary {
        AgentBinary::Usher => {
            let mut c = Command::new(Artifact::Usher.path());
            c.arg("agent");
            c
        }
        AgentBinary::Standalone => Command::new(Artifact::Agent.path()),
    };
    cmd.arg("--config").arg(&path).env("USHER_LOG", "info");
    let name = match binary {
        AgentBinary::Usher => "usher agent",
        AgentBinary::Standalone => "usher-agent",
    };
    Proc::spawn(name, cmd, &dir.join("agent.log"))
}

/// An agent config for the agent tests: id `agent-1`, data in `dir/agent`,
/// the manager on `manager_port`, reports every 200 ms, one server per
/// (name, port) probed every 100 ms, and optionally a batch receiver on
/// (port, token).
pub fn agent_config(
    dir: &Path,
    manager_port: u16,
    token: &str,
    servers: &[(&str, u16)],
    receiver: Option<(u16, &str)>,
) -> String {
    let mut s = format!(
        "agent_id = \"agent-1\"\ndata_dir = \"{}\"\ncontrol_url = \"ws://127.0.0.1:{manager_port}/api/v1/agent/channel\"\ntoken = \"{token}\"\ninterval_ms = 200\nprobe_interval_ms = 100\nreconnect_max_ms = 500\n",
        dir.join("agent").display()
    );
    if let Some((port, tok)) = receiver {
        s.push_str(&format!("[receiver]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"{tok}\"\nmax_body_bytes = 65536\n"));
    }
    s.push_str("[records]\nbatch_ms = 200\n");
    for (name, port) in servers {
        s.push_str(&format!(
            "[[servers]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{port}\"\nprobe_body = \"ok {name}\"\nprobe_timeout_ms = 300\n"
        ));
    }
    s
}
