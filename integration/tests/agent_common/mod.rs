//! Shared helpers of the agent tests: artifact paths, a demo app, the
//! standalone manager and agent processes, an agent config.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use usher_integration::{free_port, repo_root, wait_for_port, Proc};

/// A built binary of the workspace; fails clearly when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = repo_root().join("target/release").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --release` first",
        p.display()
    );
    p
}

/// Starts a demo app on a free port; returns it and its base URL.
pub fn demo_app(dir: &Path, name: &str, port: Option<u16>) -> (Proc, u16) {
    let port = port.unwrap_or_else(free_port);
    let mut cmd = Command::new(bin("usher-demo-app"));
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--name",
        name,
        "--workers",
        "4",
        "--service-ms",
        "1",
    ]);
    let p = Proc::spawn(name, cmd, &dir.join(format!("{name}-{port}.log")));
    wait_for_port(port, Duration::from_secs(10));
    (p, port)
}

/// Starts the manager alone (the `fixture-manager` test binary) on `port`.
pub fn manager(dir: &Path, port: u16, admin_token: &str) -> Proc {
    let cfg = dir.join("manager.toml");
    std::fs::write(
        &cfg,
        "interval_ms = 200\nping_after_ms = 1000\nsilent_after_ms = 3000\nflush_ms = 20\n",
    )
    .expect("manager config");
    let mut cmd = Command::new(bin("fixture-manager"));
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
    let log = dir.join(format!(
        "manager-{}.log",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    ));
    let p = Proc::spawn("fixture-manager", cmd, &log);
    wait_for_port(port, Duration::from_secs(10));
    p
}

/// The agent token the manager made in its data dir.
pub fn agent_token(dir: &Path) -> String {
    let p = dir.join("manager/agent.token");
    usher_integration::eventually(Duration::from_secs(5), || p.exists())
        .expect("agent.token appears");
    std::fs::read_to_string(p)
        .expect("token")
        .trim()
        .to_string()
}

/// An agent config: one server per (name, port), probed every 100 ms.
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

/// Starts the standalone agent (`usher-agent`) with `config`.
pub fn agent(dir: &Path, config: &str) -> Proc {
    let path = dir.join("agent.toml");
    std::fs::write(&path, config).expect("agent config");
    let mut cmd = Command::new(bin("usher-agent"));
    cmd.arg("--config").arg(&path);
    Proc::spawn("usher-agent", cmd, &dir.join("agent.log"))
}

/// GET an admin API path of the manager as JSON.
pub fn api(port: u16, path_and_query: &str, token: &str) -> serde_json::Value {
    let r = usher_integration::call(
        usher_integration::http()
            .get(&format!("http://127.0.0.1:{port}{path_and_query}"))
            .set("authorization", &format!("Bearer {token}")),
        None,
    );
    assert_eq!(r.status, 200, "{path_and_query}: {}", r.body);
    r.json()
}
