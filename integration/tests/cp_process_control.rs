//! Process control for operators, against the real `usher control`, a real
//! `usher agent` that starts a demo app at boot, and `usher ctl`:
//!
//! * the PID of the server the agent started is in `GET /servers` (from the
//!   agent's hello) and in the PID column of `usher ctl servers`;
//! * `usher ctl server restart` gives a new PID and the old process is gone;
//! * `server stop --signal KILL`: the app's port refuses connections, `pid`
//!   is null and the server fails its probes; a second stop is the agent's
//!   refusal as 502;
//! * `POST .../start`: it answers again with a new PID and is back in
//!   rotation;
//! * each order is an event naming who asked; an unknown server is 404
//!   JSON, a server no agent watches 409, a bad signal 400.

use std::time::Duration;

use serde_json::Value;
use usher_integration::ctl_output::{ok, table_row};
use usher_integration::{
    alive, answers, eventually, free_port, send_signal, start_agent, wait_for_port, AgentBinary,
    Artifact, ControlPlane,
};

/// Kills (by PID) every demo app the test saw that still runs, should an
/// assertion fail before the agent stopped it.
struct Seen(Vec<u32>);

impl Drop for Seen {
    fn drop(&mut self) {
        for pid in &self.0 {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if alive(*pid) && String::from_utf8_lossy(&cmdline).contains("usher-demo-app") {
                send_signal("KILL", &pid.to_string());
            }
        }
    }
}

fn server(cp: &ControlPlane, name: &str) -> Value {
    cp.api_ok("GET", &format!("/api/v1/servers/{name}"), None)
}

fn pid_of(cp: &ControlPlane, name: &str) -> Option<u32> {
    server(cp, name)["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
}

fn events(cp: &ControlPlane, kind: &str) -> Vec<Value> {
    cp.api_ok("GET", &format!("/api/v1/events?type={kind}"), None)
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The manager's event of one order (the agent logs its own, too).
fn ordered(cp: &ControlPlane, kind: &str) -> Vec<String> {
    events(cp, kind)
        .iter()
        .filter(|e| e["agent_id"] == "manager")
        .map(|e| {
            assert_eq!(e["origin_id"], "web1", "{e}");
            e["text"].as_str().unwrap_or_default().to_string()
        })
        .collect()
}

#[test]
fn operators_start_stop_and_restart_servers_through_their_agent() {
    let web = free_port();
    let front = free_port();
    let cp = ControlPlane::start(
        &format!(
            "[manager]\ninterval_ms = 100\nping_after_ms = 500\nsilent_after_ms = 1500\n\n\
             [[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\n\n\
             [[servers]]\nname = \"web1\"\napp = \"shop\"\nurl = \"http://127.0.0.1:{web}\"\ncapacity = 5\n\n\
             [[servers]]\nname = \"web2\"\napp = \"shop\"\nurl = \"http://127.0.0.1:{}\"\ncapacity = 5\n",
            free_port()
        ),
        &[],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let agent_toml = format!(
        "agent_id = \"proc-agent\"\ndata_dir = \"{data}\"\n\
         control_url = \"ws://127.0.0.1:{admin}/api/v1/agent/channel\"\ntoken = \"{token}\"\n\
         interval_ms = 200\nprobe_interval_ms = 100\nreconnect_max_ms = 500\n\
         [[servers]]\nname = \"web1\"\nurl = \"http://127.0.0.1:{web}\"\nprobe_body = \"ok web1\"\nprobe_timeout_ms = 300\n\
         start_at_boot = true\n\
         start = [\"{demo}\", \"--listen\", \"127.0.0.1:{web}\", \"--name\", \"web1\", \"--workers\", \"2\"]\n",
        data = dir.path().join("data").display(),
        admin = cp.admin_port,
        token = cp.agent_token(),
        demo = Artifact::DemoApp.path().display(),
    );
    let agent = start_agent(dir.path(), &agent_toml, AgentBinary::Usher);
    let mut seen = Seen(Vec::new());
    let log = || {
        format!(
            "--- agent:\n{}\n--- control:\n{}",
            agent.log_text(),
            cp.log()
        )
    };

    // The PID from the agent's hello: the demo app it started at boot.
    eventually(Duration::from_secs(15), || pid_of(&cp, "web1").is_some())
        .unwrap_or_else(|| panic!("no pid for web1 within 15 s\n{}", log()));
    let first = pid_of(&cp, "web1").expect("pid");
    seen.0.push(first);
    assert!(alive(first), "pid {first} runs");
    wait_for_port(web, Duration::from_secs(5));
    assert_eq!(server(&cp, "web2")["pid"], Value::Null);
    let table = ok(cp.ctl(&["servers"]));
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let pid_col = header.iter().position(|h| *h == "PID");
    let col = pid_col.unwrap_or_else(|| panic!("no PID column: {table}"));
    assert_eq!(table_row(&table, "web1")[col], first.to_string(), "{table}");
    assert_eq!(table_row(&table, "web2")[col], "-", "{table}");

    // Restart: a new process, the old one gone.
    let out = ok(cp.ctl(&["server", "restart", "web1"]));
    let second = pid_of(&cp, "web1").expect("pid after restart");
    seen.0.push(second);
    assert_ne!(second, first, "restart gives a new process");
    assert_eq!(
        out.trim(),
        format!("server web1 restarted: pid {first} -> {second}")
    );
    assert!(!alive(first), "old process {first} is gone after restart");
    assert!(alive(second), "new process {second} runs");
    wait_for_port(web, Duration::from_secs(5));

    // Stop (with KILL): the port refuses, no PID, the probes fail.
    let out = ok(cp.ctl(&["--json", "server", "stop", "web1", "--signal", "KILL"]));
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"server": "web1", "action": "stop", "pid": null, "previous_pid": second})
    );
    assert!(!alive(second), "stopped process {second} is gone");
    assert!(!answers(web), "nothing listens on :{web} after stop");
    assert_eq!(server(&cp, "web1")["pid"], Value::Null);
    eventually(Duration::from_secs(5), || {
        server(&cp, "web1")["state"] == "failed"
    })
    .unwrap_or_else(|| panic!("web1 not failed after stop: {}", server(&cp, "web1")));
    // Stopping what is not running: the agent says why, as 502.
    let r = cp.api("POST", "/api/v1/servers/web1/stop", None);
    assert_eq!(r.status, 502, "{}", r.body);
    let e = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(e.contains("not started by this agent"), "{e}");

    // Start: it answers again, with a new PID, and returns to rotation.
    let r = cp.api("POST", "/api/v1/servers/web1/start", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let third = v["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(|| panic!("no pid: {v}"));
    seen.0.push(third);
    assert_eq!(v["action"], "start");
    assert_eq!(v["previous_pid"], Value::Null, "{v}");
    assert_eq!(pid_of(&cp, "web1"), Some(third));
    wait_for_port(web, Duration::from_secs(5));
    eventually(Duration::from_secs(5), || {
        server(&cp, "web1")["state"] == "ok"
    })
    .unwrap_or_else(|| panic!("web1 not back: {}", server(&cp, "web1")));

    // Every order is an event naming who asked (the log is written in
    // batches: wait for the last one).
    eventually(Duration::from_secs(5), || {
        !ordered(&cp, "server_started").is_empty()
    })
    .unwrap_or_else(|| panic!("no server_started event from the manager\n{}", log()));
    assert_eq!(
        ordered(&cp, "server_restarted"),
        [format!(
            "server web1 restarted by admin API through agent proc-agent: pid {first} -> {second}"
        )]
    );
    assert_eq!(
        ordered(&cp, "server_stopped"),
        [format!(
            "server web1 stopped by admin API through agent proc-agent: pid {second}"
        )]
    );
    assert_eq!(
        ordered(&cp, "server_started"),
        [format!(
            "server web1 started by admin API through agent proc-agent: pid {third}"
        )]
    );

    // Unknown server: 404 JSON; no agent: 409 JSON; bad signal: 400.
    for action in ["start", "stop", "restart"] {
        let r = cp.api("POST", &format!("/api/v1/servers/nosuch/{action}"), None);
        assert_eq!(r.status, 404, "{action}: {}", r.body);
        assert_eq!(
            r.json()["error"],
            "no server named \"nosuch\"",
            "{action}: {}",
            r.body
        );
        let r = cp.api(
            "POST",
            &format!("/api/v1/servers/web2/{action}"),
            Some("{}"),
        );
        assert_eq!(r.status, 409, "{action}: {}", r.body);
        assert!(
            r.json()["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("no connected agent watches server web2")),
            "{action}: {}",
            r.body
        );
    }
    let o = cp.ctl(&["server", "restart", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no server named \"nosuch\" (HTTP 404)"),
        "{err}"
    );
    let r = cp.api(
        "POST",
        "/api/v1/servers/web1/stop",
        Some(r#"{"signal":"BOGUS"}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["field"], "signal", "{}", r.body);
    assert_eq!(
        pid_of(&cp, "web1"),
        Some(third),
        "refused orders change nothing"
    );
    assert!(alive(third));

    // The agent stops what it started when it stops.
    drop(agent);
    assert!(
        eventually(Duration::from_secs(5), || !alive(third)).is_some(),
        "the agent's server {third} outlived the agent"
    );
}
