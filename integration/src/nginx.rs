//! The one way the tests run Debian's nginx with the usher module: a fresh
//! prefix (conf, logs, temp folders, a free port, a ring path) per nginx,
//! started in the foreground and stopped by PID, or checked with `nginx -t`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::artifacts::Artifact;
use crate::http::{call, http, Response};
use crate::ports::free_port;
use crate::proc::Proc;

/// The command-endpoint token of [`test_conf`].
pub const TOKEN: &str = "test-token-0123456789";

/// A fresh nginx prefix with `logs/`, `conf/`, `tmp/` and `modules/`, a
/// free port and a ring file path inside it.
pub struct NginxPrefix {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub ring: PathBuf,
}

impl Default for NginxPrefix {
    fn default() -> Self {
        Self::new()
    }
}

impl NginxPrefix {
    pub fn new() -> NginxPrefix {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["logs", "conf", "tmp", "modules"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        let ring = dir.path().join("usher.ring");
        NginxPrefix {
            port: free_port(),
            ring,
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Copies the module to `modules/ngx_http_usher_module.so` (where the
    /// shipped configs load it from).
    pub fn install_module(&self) {
        std::fs::copy(
            Artifact::NginxModule.path(),
            self.path().join("modules/ngx_http_usher_module.so"),
        )
        .expect("copy module");
    }

    /// Writes `conf/nginx.conf`.
    pub fn write_conf(&self, text: &str) {
        std::fs::write(self.path().join("conf/nginx.conf"), text).expect("write nginx.conf");
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(Artifact::Nginx.path());
        cmd.arg("-p")
            .arg(format!("{}/", self.path().display()))
            .args(["-c", "conf/nginx.conf"]);
        cmd
    }

    /// Runs `nginx -t` on the written config; returns (success, output).
    pub fn test(&self) -> (bool, String) {
        let out = self.command().arg("-t").output().expect("run nginx -t");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Starts nginx on the written config (`globals`: `-g` directives,
    /// e.g. `daemon off;` for a config without it) and waits until it
    /// listens on the port and, when the config names the ring, until the
    /// module has created it.
    pub fn start(self, globals: Option<&str>) -> Nginx {
        let conf = std::fs::read_to_string(self.path().join("conf/nginx.conf")).unwrap_or_default();
        let wants_ring = conf.contains(&self.ring.display().to_string());
        let mut cmd = self.command();
        if let Some(g) = globals {
            cmd.args(["-g", g]);
        }
        let error_log = self.path().join("logs/error.log");
        let mut proc = Proc::spawn("nginx", cmd, &self.path().join("logs/stdout.log"));
        let start = Instant::now();
        let limit = Duration::from_secs(10);
        proc.wait_listening(self.port, limit, Some(&error_log));
        // nginx opens its listening sockets before every module's start-up
        // has run: where a ring is configured, wait for its file too.
        while wants_ring && !self.ring.exists() {
            if !proc.is_running() || start.elapsed() > limit {
                let log = std::fs::read_to_string(&error_log).unwrap_or_default();
                panic!(
                    "nginx did not create its ring file {}:\n{log}",
                    self.ring.display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Nginx {
            dir: self.dir,
            port: self.port,
            ring: self.ring,
            proc,
        }
    }
}

/// The tests' nginx.conf: `http_extra` goes into the `http` block,
/// `server_body` into a server on `prefix.port` that also has the command
/// endpoint (token [`TOKEN`]). `{RING}` in either is the ring file path.
pub fn test_conf(prefix: &NginxPrefix, http_extra: &str, server_body: &str) -> String {
    format!(
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
        module = Artifact::NginxModule.path().display(),
        port = prefix.port,
    )
    .replace("{RING}", &prefix.ring.display().to_string())
}

/// Runs `nginx -t` on a [`test_conf`]; returns (success, output).
pub fn nginx_t(http_extra: &str, server_body: &str) -> (bool, String) {
    let prefix = NginxPrefix::new();
    prefix.write_conf(&test_conf(&prefix, http_extra, server_body));
    prefix.test()
}

/// A running nginx (master + 2 workers) with the usher module.
pub struct Nginx {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub ring: PathBuf,
    proc: Proc,
}

impl Nginx {
    /// Starts nginx on a [`test_conf`] in a fresh prefix.
    pub fn start(http_extra: &str, server_body: &str) -> Nginx {
        let prefix = NginxPrefix::new();
        prefix.write_conf(&test_conf(&prefix, http_extra, server_body));
        prefix.start(None)
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
