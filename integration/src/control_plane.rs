//! The one way the tests run the control plane: the real `usher control`
//! from `target/release`, on free loopback ports in its own temp folder,
//! with its admin API and `usher ctl` at hand.

use std::process::{Command, Output};
use std::time::Duration;

use crate::artifacts::Artifact;
use crate::http::{call, http, Response};
use crate::ports::free_port;
use crate::proc::Proc;

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
        ControlPlane::start_with("", body, files)
    }

    /// As [`ControlPlane::start`], with `control` (more `[control]` keys,
    /// one per line) added to the `[control]` table.
    pub fn start_with(control: &str, body: &str, files: &[(&str, &str)]) -> ControlPlane {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write file");
        }
        let admin_port = free_port();
        let config = format!("[control]\nlisten = \"127.0.0.1:{admin_port}\"\ndata_dir = \"var\"\npush_interval_secs = 2\n{control}\n\n{body}");
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
        let mut cmd = Command::new(Artifact::Usher.path());
        cmd.arg("control")
            .arg("--config")
            .arg(self.dir.path().join("usher.toml"));
        cmd.env("USHER_LOG", "info");
        let log = self.dir.path().join("control.log");
        let mut p = Proc::spawn("usher control", cmd, &log);
        p.wait_listening(self.admin_port, Duration::from_secs(10), None);
        self.token = self.read_token("admin.token");
        self.proc = Some(p);
    }

    fn read_token(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("var").join(name))
            .unwrap_or_else(|e| panic!("usher control made var/{name}: {e}"))
            .trim()
            .to_string()
    }

    /// The token agents dial the agent channel with (`var/agent.token`).
    pub fn agent_token(&self) -> String {
        self.read_token("agent.token")
    }

    /// Stops the control plane (SIGTERM) and starts it again, same config.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// The process id while it runs (for fault tests that signal it).
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
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
        Command::new(Artifact::Usher.path())
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
