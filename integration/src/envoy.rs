//! The one way the tests run Envoy with the usher filter: a config with
//! the filter on a web listener and on a command listener (`--concurrency
//! 2`), written to a test folder, validated or started on free loopback
//! ports, and stopped by PID.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::artifacts::Artifact;
use crate::demo_app::DemoApp;
use crate::http::{call, http, Response};
use crate::ports::free_port;
use crate::proc::Proc;

/// The command endpoint's token in every test Envoy.
pub const COMMAND_TOKEN: &str = "cmd-token-for-tests";
/// The token the filter sends record batches with, where a test sets it.
pub const AGENT_TOKEN: &str = "agent-token-for-tests";

/// The built filter, or a failure that says how to build it.
pub fn filter_path() -> PathBuf {
    Artifact::WasmFilter.path()
}

/// A demo app for behind a test Envoy: 32 workers, no service time, its
/// log in `dir`.
pub fn demo_app(dir: &Path, name: &str) -> DemoApp {
    DemoApp::spec(name).workers(32).log_dir(dir).start()
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

    /// The version every worker applied, when the filter's roll of
    /// workers (`workers_applied` in the command GET) lists at least two
    /// (`--concurrency 2`) and they all agree; `None` otherwise. Envoy may
    /// route every test connection to one worker, so answers alone cannot
    /// show that each worker took a change.
    pub fn all_workers_applied(&self) -> Option<u64> {
        workers_agree(&self.counters())
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
    // As envoy/front-door-proxy.yaml: a GET or HEAD whose connection was
    // reset or closed before the answer is sent once more.
    let retry = if spec.override_host {
        r#", timeout: 3s, retry_policy: {retry_on: "reset,connect-failure", num_retries: 1, retriable_request_headers: [{name: ":method", string_match: {safe_regex: {regex: "GET|HEAD"}}}]}"#
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
                route: {{cluster: app{retry}}}
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

/// Writes `spec` on free ports to `dir/envoy.yaml`; returns the file and
/// the (web, command, admin) ports.
pub fn write_config(dir: &Path, spec: &EnvoySpec) -> (PathBuf, [u16; 3]) {
    let (web, command, admin) = (free_port(), free_port(), free_port());
    let yaml = envoy_yaml(spec, web, command, admin, &filter_path());
    let cfg = dir.join("envoy.yaml");
    std::fs::write(&cfg, yaml).expect("write envoy.yaml");
    (cfg, [web, command, admin])
}

/// Runs `envoy --mode validate` on `cfg`; returns (success, output).
pub fn validate(cfg: &Path, base_id: u16) -> (bool, String) {
    let out = Command::new(Artifact::Envoy.path())
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(cfg)
        .args(["--base-id", &base_id.to_string()])
        .output()
        .expect("run envoy --mode validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Starts Envoy on `cfg` (`--concurrency 2`, the admin port as base id,
/// wasm logs at info) with its output in `log`; does not wait.
pub fn spawn(cfg: &Path, base_id: u16, log: &Path) -> Proc {
    let mut cmd = Command::new(Artifact::Envoy.path());
    cmd.arg("-c").arg(cfg);
    cmd.args([
        "--concurrency",
        "2",
        "--base-id",
        &base_id.to_string(),
        "--component-log-level",
        "wasm:info",
    ]);
    Proc::spawn("envoy", cmd, log)
}

/// Writes the config and starts Envoy; waits until both listeners accept.
pub fn start_envoy(dir: &Path, spec: &EnvoySpec) -> Envoy {
    let (cfg, [web, command, admin]) = write_config(dir, spec);
    let log = dir.join("envoy.log");
    let mut proc = spawn(&cfg, admin, &log);
    for port in [web, command] {
        proc.wait_listening(port, Duration::from_secs(30), None);
    }
    Envoy {
        web,
        command,
        admin,
        proc,
        log,
    }
}

/// The version every worker applied according to a command `GET` answer
/// `c`, when its roll lists at least two workers and they all agree.
pub fn workers_agree(c: &serde_json::Value) -> Option<u64> {
    let versions: Vec<u64> = c["workers_applied"]
        .as_array()?
        .iter()
        .filter_map(|w| w["version"].as_u64())
        .collect();
    let first = *versions.first()?;
    (versions.len() >= 2 && versions.iter().all(|v| *v == first)).then_some(first)
}
