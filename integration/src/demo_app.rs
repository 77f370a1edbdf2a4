//! The one way the tests start `usher-demo-app`: a named app server on a
//! loopback port with a bounded worker pool and a service time (and, for
//! `usher-bench-lb`, a latency drawn per page), which can be stopped,
//! killed and started again on the same port.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::artifacts::Artifact;
use crate::http::{call, http};
use crate::ports::free_port;
use crate::proc::Proc;

/// How to start a demo app (see [`DemoApp::spec`]).
#[derive(Debug, Clone)]
pub struct DemoAppSpec {
    name: String,
    workers: u32,
    service_ms: u64,
    latency_max_ms: Option<u64>,
    port: Option<u16>,
    log_dir: Option<PathBuf>,
}

impl DemoAppSpec {
    /// Worker threads (default 8); 0 lifts the limit (every request is
    /// served at once).
    pub fn workers(mut self, n: u32) -> Self {
        self.workers = n;
        self
    }

    /// Each page also waits a time drawn from uniform(0, `max_ms`) ms
    /// (`--latency uniform:MAX_MS`; `/health` does not draw).
    pub fn latency_uniform_ms(mut self, max_ms: u64) -> Self {
        self.latency_max_ms = Some(max_ms);
        self
    }

    /// Service time per request in ms (default 0).
    pub fn service_ms(mut self, ms: u64) -> Self {
        self.service_ms = ms;
        self
    }

    /// Listen on this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Write the app's log in `dir` (default: a temp folder of its own).
    pub fn log_dir(mut self, dir: &Path) -> Self {
        self.log_dir = Some(dir.to_path_buf());
        self
    }

    /// The command line that starts it (for a process someone else runs,
    /// e.g. an agent's `start`); fixes the port if none was set.
    pub fn argv(&mut self) -> Vec<String> {
        let port = *self.port.get_or_insert_with(free_port);
        let mut argv = vec![
            Artifact::DemoApp.path().display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--name".into(),
            self.name.clone(),
            "--workers".into(),
            self.workers.to_string(),
            "--service-ms".into(),
            self.service_ms.to_string(),
        ];
        if let Some(ms) = self.latency_max_ms {
            argv.extend(["--latency".into(), format!("uniform:{ms}")]);
        }
        argv
    }

    /// A handle on an app started elsewhere (see [`DemoAppSpec::argv`]):
    /// its knobs work, [`DemoApp::stop`] and drop leave the process alone.
    pub fn attach(mut self) -> DemoApp {
        let port = *self.port.get_or_insert_with(free_port);
        let tmp = tempfile::tempdir().expect("tempdir");
        DemoApp {
            name: self.name,
            port,
            workers: self.workers,
            service_ms: self.service_ms,
            latency_max_ms: self.latency_max_ms,
            log_dir: tmp.path().to_path_buf(),
            launches: 0,
            proc: None,
            _tmp: Some(tmp),
        }
    }

    /// Starts it and waits until it listens.
    pub fn start(self) -> DemoApp {
        let (log_dir, tmp) = match self.log_dir {
            Some(d) => (d, None),
            None => {
                let t = tempfile::tempdir().expect("tempdir");
                (t.path().to_path_buf(), Some(t))
            }
        };
        let mut app = DemoApp {
            name: self.name,
            port: self.port.unwrap_or_else(free_port),
            workers: self.workers,
            service_ms: self.service_ms,
            latency_max_ms: self.latency_max_ms,
            log_dir,
            launches: 0,
            proc: None,
            _tmp: tmp,
        };
        app.launch();
        app
    }
}

/// A demo app server, stopped by PID when dropped.
pub struct DemoApp {
    pub name: String,
    pub port: u16,
    workers: u32,
    service_ms: u64,
    latency_max_ms: Option<u64>,
    log_dir: PathBuf,
    launches: u32,
    proc: Option<Proc>,
    _tmp: Option<tempfile::TempDir>,
}

impl DemoApp {
    /// A spec for app `name`: 8 workers, no service time, a free port.
    pub fn spec(name: &str) -> DemoAppSpec {
        DemoAppSpec {
            name: name.to_string(),
            workers: 8,
            service_ms: 0,
            latency_max_ms: None,
            port: None,
            log_dir: None,
        }
    }

    /// Starts app `name` with 8 workers and `service_ms` on a free port.
    pub fn start(name: &str, service_ms: u64) -> DemoApp {
        DemoApp::spec(name).service_ms(service_ms).start()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the process on the same port; each launch logs to a new file.
    pub fn launch(&mut self) {
        self.launches += 1;
        let argv = DemoAppSpec {
            name: self.name.clone(),
            workers: self.workers,
            service_ms: self.service_ms,
            latency_max_ms: self.latency_max_ms,
            port: Some(self.port),
            log_dir: None,
        }
        .argv();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        let log = self
            .log_dir
            .join(format!("{}-{}-{}.log", self.name, self.port, self.launches));
        let mut proc = Proc::spawn(&self.name, cmd, &log);
        proc.wait_listening(self.port, Duration::from_secs(10), None);
        self.proc = Some(proc);
    }

    /// Stops the process (TERM, then KILL after 3 s).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    /// Kills the process by PID (SIGKILL: it dies at once).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("KILL");
            p.stop();
        }
    }

    /// Changes the service time at run time (`POST /control`).
    pub fn set_service_ms(&self, ms: u64) {
        self.control(&format!("service_ms={ms}"));
    }

    /// Makes `pct` % (0..=100) of `/` and `/static.html` answer 500 at once
    /// (`POST /control?error_pct=`); `/health` is never affected.
    pub fn set_error_pct(&self, pct: u32) {
        let stats = self.control(&format!("error_pct={pct}"));
        assert_eq!(stats["error_pct"], pct, "{stats}");
    }

    /// `POST /control?{query}`; asserts 200 and returns the stats it answers.
    pub fn control(&self, query: &str) -> serde_json::Value {
        let r = call(
            http().post(&format!("http://127.0.0.1:{}/control?{query}", self.port)),
            Some(""),
        );
        assert_eq!(r.status, 200, "POST /control?{query}: {}", r.body);
        r.json()
    }
}
