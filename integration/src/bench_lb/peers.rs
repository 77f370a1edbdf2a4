//! The two policies operators already have, as the benchmark's peers: a
//! plain nginx with `least_conn` and an Envoy with `LEAST_REQUEST` (power
//! of two choices), each proxying to the same server-role nginx URLs the
//! usher front doors reach, with the same bounds as those doors (connect
//! 1 s, answer 3 s; Envoy's retry of a reset GET as in
//! `envoy/front-door-proxy.yaml`) and the same worker counts (nginx 2
//! workers, Envoy `--concurrency 2`). Both bind 127.0.0.1 and stop by PID
//! when dropped.

use std::path::Path;
use std::time::Duration;

use crate::envoy;
use crate::nginx::{Nginx, NginxPrefix};
use crate::ports::free_port;
use crate::proc::Proc;

/// nginx `least_conn` over `backends` (127.0.0.1 ports). Like the usher
/// nginx front door (`proxy_pass $usher_upstream`), it opens a connection
/// per request to the backend: no upstream `keepalive`.
pub fn nginx_least_conn(backends: &[u16]) -> Nginx {
    let prefix = NginxPrefix::new();
    let servers: String = backends
        .iter()
        .map(|p| format!("        server 127.0.0.1:{p};\n"))
        .collect();
    prefix.write_conf(&format!(
        r#"daemon off;
master_process on;
worker_processes 2;
pid logs/nginx.pid;
error_log logs/error.log notice;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    keepalive_requests 1000000;
    upstream backends {{
        least_conn;
{servers}    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backends;
            proxy_connect_timeout 1s;
            proxy_send_timeout 3s;
            proxy_read_timeout 3s;
        }}
    }}
}}
"#,
        port = prefix.port
    ));
    prefix.start(None)
}

/// The PID of a running nginx's master (its `logs/nginx.pid`).
pub fn nginx_master_pid(n: &Nginx) -> Option<u32> {
    std::fs::read_to_string(n.dir.path().join("logs/nginx.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A plain Envoy (no usher filter) and its web port.
pub struct EnvoyPeer {
    pub web: u16,
    pub proc: Proc,
}

/// Envoy `LEAST_REQUEST` over `backends`, its config and log in `dir`.
pub fn envoy_least_request(dir: &Path, backends: &[u16]) -> EnvoyPeer {
    let (web, admin) = (free_port(), free_port());
    let endpoints: String = backends
        .iter()
        .map(|p| {
            format!(
                "\n        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {p}}}}}}}"
            )
        })
        .collect();
    let yaml = format!(
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
                route: {{cluster: app, timeout: 3s, retry_policy: {{retry_on: "reset,connect-failure", num_retries: 1, retriable_request_headers: [{{name: ":method", string_match: {{safe_regex: {{regex: "GET|HEAD"}}}}}}]}}}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 1s
    lb_policy: LEAST_REQUEST
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:{endpoints}
"#
    );
    let cfg = dir.join("envoy-least-request.yaml");
    std::fs::write(&cfg, yaml).expect("write envoy-least-request.yaml");
    let mut proc = envoy::spawn(&cfg, admin, &dir.join("envoy-least-request.log"));
    proc.wait_listening(web, Duration::from_secs(30), None);
    EnvoyPeer { web, proc }
}
