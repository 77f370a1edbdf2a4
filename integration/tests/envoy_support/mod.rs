//! Shared by the `envoy_*` tests: writes an Envoy config with the usher
//! filter, starts real Envoy (`--concurrency 2`) and demo apps on loopback,
//! receives record batches like an agent, and talks to the command endpoint.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use usher_integration::{
    call, envoy_bin, free_port, http, wait_for_port, wasm_filter, Proc, Response,
};

pub const COMMAND_TOKEN: &str = "cmd-token-for-tests";
pub const AGENT_TOKEN: &str = "agent-token-for-tests";

/// The built filter, or a failure that says how to build it.
pub fn filter_path() -> PathBuf {
    let p = wasm_filter();
    assert!(
        p.is_file(),
        "{} is missing: run `bash scripts/build-wasm.sh` (or `make build`)",
        p.display()
    );
    p
}

fn envoy_path() -> PathBuf {
    let p = envoy_bin();
    assert!(
        p.exists(),
        "{} is missing: run `bash scripts/install-deps.sh`",
        p.display()
    );
    p
}

/// The demo app binary, or a failure that says how to build it.
pub fn demo_app_bin() -> PathBuf {
    let p = usher_integration::repo_root().join("target/release/usher-demo-app");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --release`",
        p.display()
    );
    p
}

/// A running demo app.
pub struct App {
    pub name: String,
    pub port: u16,
    _proc: Proc,
}

impl App {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Starts `usher-demo-app --name NAME` with no service time.
pub fn demo_app(dir: &Path, name: &str) -> App {
    let port = free_port();
    let mut cmd = Command::new(demo_app_bin());
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--name",
        name,
        "--workers",
        "32",
        "--service-ms",
        "0",
    ]);
    let proc = Proc::spawn(
        &format!("app-{name}"),
        cmd,
        &dir.join(format!("app-{name}.log")),
    );
    wait_for_port(port, Duration::from_secs(10));
    App {
        name: name.to_string(),
        port,
        _proc: proc,
    }
}

/// What the test Envoy looks like.
pub struct EnvoySpec {
    /// Plugin configuration JSON of the filter on the web listener.
    pub plugin: String,
    /// Endpoints (ports on 127.0.0.1) of the `app` cluster.
    pub app_ports: Vec<u16>,
    /// Give the `app` cluster the override_host policy (interceptor proxy mode).
    pub override_host: bool,
    /// Port of the `usher_agent` cluster.
    pub agent_port: u16,
}

/// A running Envoy and its ports.
pub struct Envoy {
    pub web: u16,
    pub command: u16,
    pub admin: u16,
    pub proc: Proc,
    pub log: PathBuf,
}

impl Envoy {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.web)
    }

    pub fn command_url(&self) -> String {
        format!("http://127.0.0.1:{}/usher/command", self.command)
    }

    /// POSTs a command body with the token.
    pub fn command(&self, body: &str) -> Response {
        let req = http()
            .post(&self.command_url())
            .set("authorization", &format!("Bearer {COMMAND_TOKEN}"));
        call(req, Some(body))
    }

    /// Pushes a snapshot; panics unless it is applied.
    pub fn push(&self, snapshot: serde_json::Value) {
        let body = serde_json::json!({"type": "snapshot", "snapshot": snapshot}).to_string();
        let r = self.command(&body);
        assert_eq!(r.status, 200, "snapshot refused: {}", r.body);
    }

    /// The counters of the command endpoint.
    pub fn counters(&self) -> serde_json::Value {
        let req = http()
            .get(&self.command_url())
            .set("authorization", &format!("Bearer {COMMAND_TOKEN}"));
        let r = call(req, None);
        assert_eq!(r.status, 200, "counters: {}", r.body);
        r.json()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn wasm_filter_yaml(name: &str, plugin: &str, wasm: &Path) -> String {
    let value = serde_json::to_string(plugin).expect("json string");
    format!(
        r#"
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {name}
                root_id: usher
                failure_policy: FAIL_OPEN
                vm_config:
                  vm_id: usher
                  runtime: envoy.wasm.runtime.v8
                  code: {{local: {{filename: "{wasm}"}}}}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {value}"#,
        wasm = wasm.display()
    )
}

/// The YAML for `spec` on the given ports.
pub fn envoy_yaml(spec: &EnvoySpec, web: u16, command: u16, admin: u16, wasm: &Path) -> String {
    let endpoints: String = spec
        .app_ports
        .iter()
        .map(|p| format!("\n        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {p}}}}}}}"))
        .collect();
    let lb = if spec.override_host {
        r#"
    load_balancing_policy:
      policies:
      - typed_extension_config:
          name: envoy.load_balancing_policies.override_host
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.override_host.v3.OverrideHost
            override_host_sources: [{header: x-usher-host}]
            fallback_policy:
              policies:
              - typed_extension_config:
                  name: envoy.load_balancing_policies.round_robin
                  typed_config:
                    "@type": type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin"#
    } else {
        ""
    };
    let command_plugin = format!(r#"{{"role": "command", "command_token": "{COMMAND_TOKEN}"}}"#);
    format!(
        r#"admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - name: web
    address: {{socket_address: {{address: 127.0.0.1, port_value: {web}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config:
            virtual_hosts:
            - name: app
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: app}}
          http_filters:{web_filter}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  - name: usher_command
    address: {{socket_address: {{address: 127.0.0.1, port_value: {command}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: usher_command
          route_config:
            virtual_hosts:
            - name: command
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                direct_response: {{status: 404}}
          http_filters:{command_filter}
          - name: envoy.filters.http.buffer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 300000
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 1s{lb}
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:{endpoints}
  - name: usher_agent
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: usher_agent
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {agent}}}}}}}
"#,
        web_filter = wasm_filter_yaml("usher_web", &spec.plugin, wasm),
        command_filter = wasm_filter_yaml("usher_command", &command_plugin, wasm),
        agent = spec.agent_port,
    )
}

/// Writes the config and starts Envoy; waits until both listeners accept.
pub fn start_envoy(dir: &Path, spec: &EnvoySpec) -> Envoy {
    let (web, command, admin) = (free_port(), free_port(), free_port());
    let yaml = envoy_yaml(spec, web, command, admin, &filter_path());
    let cfg = dir.join("envoy.yaml");
    std::fs::write(&cfg, yaml).expect("write envoy.yaml");
    let log = dir.join("envoy.log");
    let mut cmd = Command::new(envoy_path());
    cmd.arg("-c").arg(&cfg);
    cmd.args([
        "--concurrency",
        "2",
        "--base-id",
        &admin.to_string(),
        "--component-log-level",
        "wasm:info",
    ]);
    let mut proc = Proc::spawn("envoy", cmd, &log);
    let start = std::time::Instant::now();
    for port in [web, command] {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if !proc.is_running() {
                panic!(
                    "envoy exited at start:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "envoy did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Envoy {
        web,
        command,
        admin,
        proc,
        log,
    }
}

/// A loopback HTTP endpoint that takes record batches like the agent does.
#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    pub batches: Arc<Mutex<Vec<Batch>>>,
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Batch {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let port = listener.local_addr().expect("addr").port();
        let batches = Arc::new(Mutex::new(Vec::new()));
        let sink = batches.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || serve(stream, &sink));
            }
        });
        Receiver { port, batches }
    }

    /// Every record received so far, decoded (panics on a bad batch).
    pub fn records(&self) -> Vec<usher_core::RequestRecord> {
        let batches = self.batches.lock().expect("lock").clone();
        batches
            .iter()
            .flat_map(|b| {
                let d = usher_core::decode_batch(&b.body).expect("batch decodes");
                assert_eq!(d.bad, 0, "undecodable records in a batch");
                d.records
            })
            .collect()
    }
}

fn serve(stream: TcpStream, sink: &Mutex<Vec<Batch>>) {
    let mut out = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let (mut len, mut auth) = (0usize, None);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    "authorization" => auth = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        sink.lock().expect("lock").push(Batch {
            path,
            authorization: auth,
            body,
        });
        if out
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// A GET through a fresh connection (so Envoy may give it to any worker).
pub fn fresh_get(url: &str) -> Response {
    let agent = http();
    call(agent.get(url).set("connection", "close"), None)
}

/// A GET through a fresh connection: (status, location, x-usher-worker).
pub fn fresh_get_worker(url: &str) -> (u16, Option<String>, Option<String>) {
    let res = http().get(url).set("connection", "close").call();
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = resp.status();
    let location = resp.header("location").map(str::to_string);
    let worker = resp.header("x-usher-worker").map(str::to_string);
    (status, location, worker)
}
