//! The stack the fault tests break things in (issue 10): demo apps, each
//! behind its own nginx with the usher module (server role, record ring,
//! command endpoint); one `usher agent` reading the rings and probing the
//! servers; `usher control` with the app in proxy mode, so its built-in
//! front door proxies; an nginx front door (interceptor, `proxy_pass
//! $usher_upstream`) and an Envoy front door (interceptor, the
//! `override_host` load balancer), both pushed to by the control plane.
//!
//! Every process is reachable (ports, PIDs, signals) so a test can stop,
//! kill or freeze any of them, and the agent can be started again on the
//! same data folder. Everything binds 127.0.0.1 and is stopped by PID when
//! the [`FaultStack`] drops.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::artifacts::Artifact;
use crate::control_plane::ControlPlane;
use crate::demo_app::{DemoApp, DemoAppSpec};
use crate::door_load::Door;
use crate::envoy::{self, Envoy, EnvoySpec, COMMAND_TOKEN};
use crate::nginx::{Nginx, TOKEN};
use crate::poll::eventually;
use crate::ports::{free_port, wait_for_port};
use crate::proc::Proc;
use crate::usher_door::UsherDoor;

/// How to build the stack; [`FaultSpec::default`] is the fault tests' one.
#[derive(Debug, Clone)]
pub struct FaultSpec {
    /// Server names (one demo app and one server-role nginx each).
    pub servers: Vec<String>,
    /// Size of each server nginx's ring per worker (`usher_ring PATH SIZE`).
    pub ring_size: String,
    /// Fields the server nginx record (`usher_record ...`).
    pub record: String,
    /// The demo apps' service time.
    pub service_ms: u64,
    /// Start the nginx and Envoy front doors (the built-in one always runs).
    pub doors: bool,
    /// Extra `usher.toml` text, appended after the app, servers and WSIs
    /// (e.g. `[front_door]` tables).
    pub usher_toml: String,
    /// The `[manager]` table's keys (empty: the defaults).
    pub manager: String,
    /// Extra top-level keys for `agent.toml`.
    pub agent_toml: String,
    /// Run the built-in front door as `usher door` (its own process, fed
    /// snapshots) instead of inside `usher control`.
    pub separate_door: bool,
    /// Extra keys of app `shop` (and its sub-tables, e.g. `[apps.policy]`),
    /// placed right after its `[[apps]]` entry.
    pub app_toml: String,
    /// The agent starts each demo app (its `start`, at boot) instead of
    /// the test, so the manager can stop and restart it through the agent;
    /// [`FaultStack::apps`] are then handles on those processes.
    pub agent_runs_apps: bool,
    /// Changes each demo app's spec (given its index in `servers`) after
    /// the defaults above (16 workers, `service_ms`): e.g. a pool size or
    /// a drawn latency per server (`usher-bench-lb`). `None`: no change.
    pub app_spec: Option<fn(usize, DemoAppSpec) -> DemoAppSpec>,
}

impl Default for FaultSpec {
    fn default() -> Self {
        FaultSpec {
            servers: ["web1", "web2", "web3"].map(String::from).to_vec(),
            ring_size: "1m".into(),
            record:
                "method request_line content_path status start_time processing_time client_endpoint"
                    .into(),
            service_ms: 2,
            doors: true,
            usher_toml: String::new(),
            manager: String::new(),
            agent_toml: String::new(),
            separate_door: false,
            app_toml: String::new(),
            agent_runs_apps: false,
            app_spec: None,
        }
    }
}

/// The running stack.
pub struct FaultStack {
    pub spec: FaultSpec,
    pub apps: Vec<DemoApp>,
    /// One server-role nginx per server, in `spec.servers` order.
    pub servers: Vec<Nginx>,
    pub nginx_door: Option<Nginx>,
    pub envoy_door: Option<Envoy>,
    pub cp: ControlPlane,
    /// The built-in front door (app `shop`, proxy mode).
    pub front_door_port: u16,
    /// The built-in front door's own process, with `spec.separate_door`.
    pub usher_door: Option<UsherDoor>,
    agent: Option<Proc>,
    agent_launches: u32,
    /// The agent's folder: `agent.toml`, `agent-N.log`, `data/`.
    pub agent_dir: tempfile::TempDir,
    envoy_dir: tempfile::TempDir,
    /// With `spec.agent_runs_apps`: each demo app's command line, in
    /// `spec.servers` order, and every PID the test saw.
    app_argv: Vec<Vec<String>>,
    app_pids: Vec<u32>,
}

impl FaultStack {
    /// Starts everything and waits until the agent reports every server
    /// and every front door has a snapshot.
    pub fn start(spec: FaultSpec) -> FaultStack {
        let envoy_dir = tempfile::tempdir().expect("tempdir");
        let mut app_argv = Vec::new();
        let apps: Vec<DemoApp> = spec
            .servers
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut app = DemoApp::spec(n).workers(16).service_ms(spec.service_ms);
                if let Some(change) = spec.app_spec {
                    app = change(i, app);
                }
                if spec.agent_runs_apps {
                    app_argv.push(app.argv());
                    app.attach()
                } else {
                    app.start()
                }
            })
            .collect();
        let servers: Vec<Nginx> = apps
            .iter()
            .map(|a| {
                Nginx::start(
                    &format!("usher_ring {{RING}} {};", spec.ring_size),
                    &format!(
                        "usher_role server; usher_app shop;\n usher_record {};\n\
                         location / {{ proxy_pass http://127.0.0.1:{}; }}",
                        spec.record, a.port
                    ),
                )
            })
            .collect();
        let urls: Vec<String> = servers.iter().map(|n| n.url("")).collect();
        let nginx_door = spec.doors.then(|| nginx_door(&spec.servers, &urls));
        let envoy_door = spec
            .doors
            .then(|| envoy_door(envoy_dir.path(), &spec.servers, &servers));

        let front_door_port = free_port();
        let usher_door = spec
            .separate_door
            .then(|| UsherDoor::start(&[("shop", front_door_port)], ""));
        let mut body = usher_toml(
            &spec,
            front_door_port,
            &servers,
            nginx_door.as_ref(),
            envoy_door.as_ref(),
        );
        let cp = match &usher_door {
            Some(door) => {
                body.push_str(&door.wsi_config());
                ControlPlane::start_with(
                    "serve_front_doors = false",
                    &body,
                    &[UsherDoor::token_file()],
                )
            }
            None => ControlPlane::start(&body, &[]),
        };
        wait_for_port(front_door_port, Duration::from_secs(10));
        let mut stack = FaultStack {
            spec,
            apps,
            servers,
            nginx_door,
            envoy_door,
            cp,
            front_door_port,
            usher_door,
            agent: None,
            agent_launches: 0,
            agent_dir: tempfile::tempdir().expect("tempdir"),
            envoy_dir,
            app_argv,
            app_pids: Vec::new(),
        };
        stack.start_agent();
        for app in &stack.apps {
            wait_for_port(app.port, Duration::from_secs(10));
        }
        stack.wait_ready();
        stack
    }

    /// The PID of the demo app the agent runs for `server` (from the
    /// server row); remembered so that drop can stop it should the agent
    /// be gone.
    pub fn app_pid(&mut self, server: &str) -> Option<u32> {
        let pid = self
            .server_rows()
            .into_iter()
            .find(|s| s["name"] == server)
            .and_then(|s| s["pid"].as_u64())
            .and_then(|p| u32::try_from(p).ok());
        if let Some(p) = pid {
            if !self.app_pids.contains(&p) {
                self.app_pids.push(p);
            }
        }
        pid
    }

    fn wait_ready(&self) {
        let ready = eventually(Duration::from_secs(20), || {
            let servers = self.server_rows();
            let measured = self.spec.servers.iter().all(|n| {
                servers
                    .iter()
                    .any(|s| s["name"] == n.as_str() && s["dynamic_load"].as_u64().is_some())
            });
            let pushed = self
                .nginx_door
                .as_ref()
                .is_none_or(|n| n.counters()["version"].as_u64().unwrap_or(0) > 0)
                && self
                    .envoy_door
                    .as_ref()
                    .is_none_or(|e| e.counters()["version"].as_u64().unwrap_or(0) > 0)
                && self
                    .usher_door
                    .as_ref()
                    .is_none_or(|d| d.version("shop") > 0);
            measured && pushed
        });
        assert!(
            ready.is_some(),
            "the fault stack was not ready within 20 s: {:?}\n--- agent log:\n{}\n--- control log:\n{}",
            self.server_rows(),
            self.agent_log(),
            self.cp.log()
        );
    }

    /// The agent's config file text.
    pub fn agent_config(&self) -> String {
        let mut text = format!(
            "agent_id = \"fault-agent\"\ndata_dir = \"{data}\"\n\
             control_url = \"ws://127.0.0.1:{admin}/api/v1/agent/channel\"\ntoken = \"{token}\"\n\
             reconnect_max_ms = 500\n{extra}\n[records]\nbatch_ms = 200\n",
            data = self.agent_data().display(),
            admin = self.cp.admin_port,
            token = self.cp.agent_token(),
            extra = self.spec.agent_toml,
        );
        for (i, (name, n)) in self.spec.servers.iter().zip(&self.servers).enumerate() {
            text.push_str(&format!(
                "[[servers]]\nname = \"{name}\"\nurl = \"{url}\"\nring = \"{ring}\"\nprobe_body = \"ok {name}\"\n\
                 command_url = \"{url}/usher/command\"\ncommand_token = \"{TOKEN}\"\n",
                url = n.url(""),
                ring = n.ring.display()
            ));
            if let Some(argv) = self.app_argv.get(i) {
                let quoted: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
                text.push_str(&format!(
                    "start_at_boot = true\nstart = [{}]\n",
                    quoted.join(", ")
                ));
            }
        }
        text
    }

    /// The agent's data folder (spool, state files).
    pub fn agent_data(&self) -> PathBuf {
        self.agent_dir.path().join("data")
    }

    /// Starts the agent (again) on the same config and data folder; each
    /// launch logs to a new `agent-N.log`. Does not wait.
    pub fn start_agent(&mut self) {
        assert!(self.agent.is_none(), "the agent runs already");
        let path = self.agent_dir.path().join("agent.toml");
        std::fs::write(&path, self.agent_config()).expect("agent config");
        self.agent_launches += 1;
        let mut cmd = Command::new(Artifact::Usher.path());
        cmd.arg("agent")
            .arg("--config")
            .arg(&path)
            .env("USHER_LOG", "info");
        let log = self
            .agent_dir
            .path()
            .join(format!("agent-{}.log", self.agent_launches));
        self.agent = Some(Proc::spawn("usher agent", cmd, &log));
    }

    /// The agent's PID while it runs.
    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(Proc::pid)
    }

    /// Sends `sig` to the agent (by PID).
    pub fn signal_agent(&self, sig: &str) {
        self.agent.as_ref().expect("agent running").signal(sig);
    }

    /// Stops the agent gracefully (TERM; KILL after 3 s).
    pub fn stop_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            a.stop();
        }
    }

    /// Kills the agent (`kill -9`) and waits until it is gone.
    pub fn kill_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            a.signal("KILL");
            a.stop();
        }
    }

    /// Every agent log so far, oldest launch first.
    pub fn agent_log(&self) -> String {
        (1..=self.agent_launches)
            .map(|n| {
                let p = self.agent_dir.path().join(format!("agent-{n}.log"));
                format!(
                    "--- launch {n}\n{}",
                    std::fs::read_to_string(p).unwrap_or_default()
                )
            })
            .collect()
    }

    /// The three front doors, for [`crate::door_load`].
    pub fn doors(&self) -> Vec<Door> {
        let mut d = vec![Door {
            name: "built-in".into(),
            port: self.front_door_port,
        }];
        if let Some(n) = &self.nginx_door {
            d.push(Door {
                name: "nginx".into(),
                port: n.port,
            });
        }
        if let Some(e) = &self.envoy_door {
            d.push(Door {
                name: "envoy".into(),
                port: e.web,
            });
        }
        d
    }

    /// `GET /api/v1/servers`.
    pub fn server_rows(&self) -> Vec<Value> {
        let r = self.cp.api("GET", "/api/v1/servers", None);
        if r.status != 200 {
            return Vec::new();
        }
        r.json().as_array().cloned().unwrap_or_default()
    }

    /// Events of one type from the logging database.
    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.cp
            .api_ok("GET", &format!("/api/v1/events?type={kind}"), None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The Envoy front door's folder (config and log).
    pub fn envoy_dir(&self) -> &Path {
        self.envoy_dir.path()
    }
}

impl Drop for FaultStack {
    fn drop(&mut self) {
        if self.spec.agent_runs_apps {
            for name in self.spec.servers.clone() {
                self.app_pid(&name);
            }
        }
        self.stop_agent();
        self.cp.stop();
        // The agent stops the apps it started; should it have been killed,
        // stop what is left of them (by PID, only demo apps).
        for pid in &self.app_pids {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if crate::alive(*pid) && String::from_utf8_lossy(&cmdline).contains("usher-demo-app") {
                crate::send_signal("KILL", &pid.to_string());
            }
        }
    }
}

/// The nginx front door: interceptor, proxy mode, bounded waits as in
/// `nginx/front-door.conf`.
fn nginx_door(names: &[String], urls: &[String]) -> Nginx {
    let servers: String = names
        .iter()
        .zip(urls)
        .map(|(n, u)| format!("usher_server {n} {u} 5; "))
        .collect();
    Nginx::start(
        "keepalive_requests 1000000;",
        &format!(
            "usher_role interceptor; usher_app shop; usher_mode proxy; {servers}\n\
             location / {{ proxy_pass $usher_upstream; proxy_connect_timeout 1s; \
             proxy_send_timeout 3s; proxy_read_timeout 3s; }}"
        ),
    )
}

/// The Envoy front door: interceptor, proxy mode through `override_host`.
fn envoy_door(dir: &Path, names: &[String], servers: &[Nginx]) -> Envoy {
    let list: Vec<Value> = names
        .iter()
        .zip(servers)
        .map(|(n, s)| json!({"name": n, "url": s.url(""), "capacity": 5}))
        .collect();
    let plugin = json!({"role": "interceptor", "app": "shop", "mode": "proxy", "servers": list});
    envoy::start_envoy(
        dir,
        &EnvoySpec {
            plugin: plugin.to_string(),
            app_ports: servers.iter().map(|s| s.port).collect(),
            override_host: true,
            agent_port: free_port(),
        },
    )
}

/// `usher.toml` after `[control]`: the manager, app `shop` in proxy mode,
/// the servers, one WSI per nginx and front door, then the spec's extra.
fn usher_toml(
    spec: &FaultSpec,
    front: u16,
    servers: &[Nginx],
    nginx_door: Option<&Nginx>,
    envoy_door: Option<&Envoy>,
) -> String {
    let mut body = format!(
        "[manager]\n{}\n\n[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\nmode = \"proxy\"\n{}\n",
        spec.manager, spec.app_toml
    );
    for (name, n) in spec.servers.iter().zip(servers) {
        body.push_str(&format!(
            "\n[[servers]]\nname = \"{name}\"\napp = \"shop\"\nurl = \"{url}\"\ncapacity = 5\n\
             \n[[wsis]]\nname = \"ngx-{name}\"\nurl = \"{url}/usher/command\"\ntoken = \"{TOKEN}\"\nrole = \"server\"\napp = \"shop\"\nserver = \"{name}\"\n",
            url = n.url("")
        ));
    }
    if let Some(n) = nginx_door {
        body.push_str(&format!(
            "\n[[wsis]]\nname = \"nginx-door\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\nrole = \"interceptor\"\napp = \"shop\"\n",
            n.url("/usher/command")
        ));
    }
    if let Some(e) = envoy_door {
        body.push_str(&format!(
            "\n[[wsis]]\nname = \"envoy-door\"\nurl = \"{}\"\ntoken = \"{COMMAND_TOKEN}\"\nrole = \"interceptor\"\napp = \"shop\"\n",
            e.command_url()
        ));
    }
    body.push('\n');
    body.push_str(&spec.usher_toml);
    body
}
