//! Harness shared by the control-plane tests (`cp_*.rs`): starts the real
//! `target/release/usher control` on free loopback ports in its own temp
//! folder, talks to its admin API and runs `usher ctl`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use usher_integration::{call, free_port, http, usher_bin, wait_for_port, Proc, Response};

/// Panics with a clear message when a needed artifact was not built.
pub fn need(path: &Path, how: &str) {
    assert!(
        path.exists(),
        "{} is missing: build it first ({how})",
        path.display()
    );
}

pub fn demo_app_bin() -> PathBuf {
    usher_integration::repo_root().join("target/release/usher-demo-app")
}

/// A running control plane.
pub struct ControlPlane {
    pub dir: tempfile::TempDir,
    pub admin_port: u16,
    pub token: String,
    proc: Option<Proc>,
}

impl ControlPlane {
    /// Writes `usher.toml` (with `[control]` filled in) plus any extra files
    /// and starts the control plane. `body` is the rest of the config.
    pub fn start(body: &str, files: &[(&str, &str)]) -> ControlPlane {
        need(&usher_bin(), "cargo build --release -p usher-cli");
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write file");
        }
        let admin_port = free_port();
        let config = format!("[control]\nlisten = \"127.0.0.1:{admin_port}\"\ndata_dir = \"var\"\npush_interval_secs = 2\n\n{body}");
        std::fs::write(dir.path().join("usher.toml"), config).expect("write config");
        let mut cp = ControlPlane {
            dir,
            admin_port,
            token: String::new(),
            proc: None,
        };
        cp.launch();
        cp
    }

    fn launch(&mut self) {
        let mut cmd = Command::new(usher_bin());
        cmd.arg("control")
            .arg("--config")
            .arg(self.dir.path().join("usher.toml"));
        cmd.env("USHER_LOG", "info");
        let log = self.dir.path().join("control.log");
        let mut p = Proc::spawn("usher control", cmd, &log);
        let addr = format!("127.0.0.1:{}", self.admin_port);
        let start = std::time::Instant::now();
        while TcpStream::connect(&addr).is_err() {
            if !p.is_running() || start.elapsed() > Duration::from_secs(10) {
                panic!(
                    "usher control did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.token = std::fs::read_to_string(self.dir.path().join("var/admin.token"))
            .expect("admin token")
            .trim()
            .to_string();
        self.proc = Some(p);
    }

    /// Stops the control plane (SIGTERM) and starts it again, same config.
    pub fn restart(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
        self.launch();
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("control.log")).unwrap_or_default()
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// Calls the admin API with the token.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        let req = http()
            .request(method, &format!("{}{path}", self.admin_url()))
            .set("Authorization", &format!("Bearer {}", self.token))
            .set("Content-Type", "application/json");
        call(req, body)
    }

    /// Calls the admin API and asserts the status.
    pub fn api_ok(&self, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
        let r = self.api(method, path, body);
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.body
        );
        r.json()
    }

    /// Runs `usher ctl --url … --token-file … ARGS`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(usher_bin())
            .arg("ctl")
            .arg("--url")
            .arg(self.admin_url())
            .arg("--token-file")
            .arg(self.dir.path().join("var/admin.token"))
            .args(args)
            .env_remove("USHER_TOKEN")
            .output()
            .expect("run usher ctl")
    }
}

/// Starts a demo app server on a free port; returns it and its URL.
pub fn demo_app(dir: &Path, name: &str, workers: u32, service_ms: u32) -> (Proc, String) {
    need(&demo_app_bin(), "cargo build --release -p usher-demo-app");
    let port = free_port();
    let mut cmd = Command::new(demo_app_bin());
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--name",
        name,
        "--workers",
        &workers.to_string(),
        "--service-ms",
        &service_ms.to_string(),
    ]);
    let p = Proc::spawn(name, cmd, &dir.join(format!("{name}.log")));
    wait_for_port(port, Duration::from_secs(10));
    (p, format!("http://127.0.0.1:{port}"))
}

/// Sends raw bytes as one HTTP/1.1 request and returns (status, Location, body).
pub fn raw_request(port: u16, request: &str) -> (u16, Option<String>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("send");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location")
            .then(|| v.trim().to_string())
    });
    (status, location, body.to_string())
}
