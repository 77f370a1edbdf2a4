//! Shared by the `nginx_*` tests: start the demo app and Debian's nginx with
//! the usher module on loopback, each in its own temporary prefix, and talk
//! to the command endpoint.
#![allow(dead_code)] // each test file uses a different part

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use usher_integration::{
    call, free_port, http, nginx_module, repo_root, wait_for_port, Proc, Response,
};

pub const NGINX: &str = "/usr/sbin/nginx";
pub const TOKEN: &str = "test-token-0123456789";

/// The demo app binary; a missing build fails the test with a clear message.
pub fn demo_app_bin() -> PathBuf {
    let bin = std::env::var_os("USHER_DEMO_APP")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/release/usher-demo-app"));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --release` (make build)",
        bin.display()
    );
    bin
}

/// The usher nginx module; a missing build fails with a clear message.
pub fn module() -> PathBuf {
    let m = nginx_module();
    assert!(
        m.exists(),
        "{} is missing: run scripts/build-nginx-module.sh (make build)",
        m.display()
    );
    m
}

/// A running demo app server.
pub struct DemoApp {
    pub port: u16,
    pub name: String,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl DemoApp {
    pub fn start(name: &str, service_ms: u64) -> DemoApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut cmd = Command::new(demo_app_bin());
        cmd.args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--name",
            name,
            "--workers",
            "8",
        ]);
        cmd.args(["--service-ms", &service_ms.to_string()]);
        let proc = Proc::spawn(name, cmd, &dir.path().join("demo.log"));
        wait_for_port(port, Duration::from_secs(10));
        DemoApp {
            port,
            name: name.to_string(),
            _proc: proc,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A running nginx (master + 2 workers) with the usher module.
pub struct Nginx {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub ring: PathBuf,
    proc: Proc,
}

/// Writes nginx.conf into a fresh prefix: `http_extra` goes into the `http`
/// block, `server_body` into a server listening on the returned port.
/// `{RING}` in either is replaced by the ring file path.
pub fn write_conf(http_extra: &str, server_body: &str) -> (tempfile::TempDir, u16, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    for d in ["logs", "conf", "tmp"] {
        std::fs::create_dir_all(p.join(d)).expect("mkdir");
    }
    let port = free_port();
    let ring = p.join("usher.ring");
    let conf = format!(
        r#"load_module {module};
daemon off;
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
    {http_extra}
    server {{
        listen 127.0.0.1:{port};
        {server_body}
        location = /usher/command {{
            usher_command;
            usher_command_token {TOKEN};
        }}
    }}
}}
"#,
        module = module().display(),
    )
    .replace("{RING}", &ring.display().to_string());
    std::fs::write(p.join("conf/nginx.conf"), conf).expect("write nginx.conf");
    (dir, port, ring)
}

impl Nginx {
    /// Starts nginx with the config from [`write_conf`].
    pub fn start(http_extra: &str, server_body: &str) -> Nginx {
        let (dir, port, ring) = write_conf(http_extra, server_body);
        let mut cmd = Command::new(NGINX);
        cmd.arg("-p")
            .arg(format!("{}/", dir.path().display()))
            .args(["-c", "conf/nginx.conf"]);
        let mut proc = Proc::spawn("nginx", cmd, &dir.path().join("logs/stdout.log"));
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if !proc.is_running() || start.elapsed() > Duration::from_secs(10) {
                let log =
                    std::fs::read_to_string(dir.path().join("logs/error.log")).unwrap_or_default();
                panic!("nginx did not start:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // nginx opens its listening sockets before every module's start-up
        // has run: where a ring is configured, wait for its file too.
        let wants_ring = http_extra.contains("{RING}") || server_body.contains("{RING}");
        while wants_ring && !ring.exists() {
            if !proc.is_running() || start.elapsed() > Duration::from_secs(10) {
                let log =
                    std::fs::read_to_string(dir.path().join("logs/error.log")).unwrap_or_default();
                panic!(
                    "nginx did not create its ring file {}:\n{log}",
                    ring.display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Nginx {
            dir,
            port,
            ring,
            proc,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn get(&self, path: &str) -> Response {
        call(http().get(&self.url(path)), None)
    }

    /// GET with a Cookie header.
    pub fn get_with_cookie(&self, path: &str, cookie: &str) -> Response {
        call(http().get(&self.url(path)).set("Cookie", cookie), None)
    }

    /// POSTs a command (JSON text) with the token.
    pub fn command(&self, body: &str) -> Response {
        let req = http()
            .post(&self.url("/usher/command"))
            .set("Authorization", &format!("Bearer {TOKEN}"))
            .set("Content-Type", "application/json");
        call(req, Some(body))
    }

    /// Pushes a snapshot (the `snapshot` object as JSON).
    pub fn push(&self, snapshot: &Value) -> Response {
        self.command(&serde_json::json!({"type": "snapshot", "snapshot": snapshot}).to_string())
    }

    /// The counters of `GET /usher/command`.
    pub fn counters(&self) -> Value {
        let req = http()
            .get(&self.url("/usher/command"))
            .set("Authorization", &format!("Bearer {TOKEN}"));
        let r = call(req, None);
        assert_eq!(r.status, 200, "counters: {}", r.body);
        r.json()
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }

    /// True while the master runs.
    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }
}

/// Runs `nginx -t` on a config; returns (success, output).
pub fn nginx_t(http_extra: &str, server_body: &str) -> (bool, String) {
    let (dir, _, _) = write_conf(http_extra, server_body);
    let out = Command::new(NGINX)
        .arg("-t")
        .arg("-p")
        .arg(format!("{}/", dir.path().display()))
        .args(["-c", "conf/nginx.conf"])
        .output()
        .expect("run nginx -t");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
