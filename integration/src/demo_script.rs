//! Runs `scripts/demo.sh` as a new user would, on free ports and in its own
//! folder, and stops it (its whole process group, then every PID its
//! supervisors recorded) when dropped, even when a test panics.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::artifacts::{repo_root, Artifact};
use crate::ports::{bindable, free_port};
use crate::proc::{alive, send_signal, tail};

/// The line the demo prints once every part answers.
pub const RUNNING: &str = "usher demo is running";

/// The demo's ports, placed as scripts/demo.sh places them.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub base: u16,
    pub admin: u16,
}

impl Ports {
    /// Picks a base port (20100..27100) where every port the demo derives
    /// from it is free, and a free admin port apart from them.
    pub fn pick() -> Ports {
        let seed = std::process::id().wrapping_mul(2_654_435_761);
        for n in 0..7_000u32 {
            let base = 20_100 + seed.wrapping_add(n.wrapping_mul(7919)) % 7_000;
            let base = u16::try_from(base).expect("below 27100");
            let ports = Ports { base, admin: 0 };
            if !ports.derived().iter().all(|p| bindable(*p)) {
                continue;
            }
            let derived = ports.derived();
            let admin = loop {
                let p = free_port();
                if !derived.contains(&p) {
                    break p;
                }
            };
            return Ports { base, admin };
        }
        panic!("no base port in 20100..27100 with every demo port free");
    }

    /// The ports derived from the base (see scripts/demo.sh).
    pub fn derived(&self) -> Vec<u16> {
        let b = self.base;
        vec![
            b - 80,
            b,
            b + 1,
            b + 2,
            b + 3,
            b + 10,
            b + 1001,
            b + 1002,
            b + 1003,
            b + 1110,
            b + 1120,
            b + 1822,
        ]
    }

    /// Every port the demo listens on.
    pub fn all(&self) -> Vec<u16> {
        let mut v = self.derived();
        v.push(self.admin);
        v
    }

    /// Web server (nginx a, b, c) port of server `name`.
    pub fn web(&self, name: &str) -> u16 {
        match name {
            "a" => self.base + 1,
            "b" => self.base + 2,
            _ => self.base + 3,
        }
    }
}

/// A running `scripts/demo.sh`.
pub struct Demo {
    pub ports: Ports,
    /// `USHER_DEMO_DIR`.
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
    child: Child,
    lines: Receiver<String>,
    /// Everything the script printed (stdout and stderr, as it came).
    pub output: Arc<Mutex<Vec<String>>>,
}

impl Demo {
    /// Checks the built artifacts, then starts the script in its own
    /// process group on free ports.
    pub fn start() -> Demo {
        for a in [
            Artifact::Usher,
            Artifact::DemoApp,
            Artifact::NginxModule,
            Artifact::WasmFilter,
            Artifact::Envoy,
        ] {
            a.path();
        }
        let ports = Ports::pick();
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("demo");
        // `env --default-signal=INT`: a process started in the background
        // of a non-interactive shell ignores SIGINT, and bash cannot trap a
        // signal ignored at its start; the script must see the test's SIGINT.
        let mut cmd = Command::new("env");
        cmd.arg("--default-signal=INT")
            .arg("bash")
            .arg(repo_root().join("scripts/demo.sh"))
            .current_dir(repo_root())
            .env("USHER_DEMO_BASE_PORT", ports.base.to_string())
            .env("USHER_DEMO_ADMIN_PORT", ports.admin.to_string())
            .env("USHER_DEMO_DIR", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().expect("start bash scripts/demo.sh");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        for (stream, tag, tx) in [
            (Box::new(out) as Box<dyn Read + Send>, "", Some(tx)),
            (Box::new(err), "stderr: ", None),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut o) = output.lock() {
                        o.push(format!("{tag}{line}"));
                    }
                    if let Some(tx) = &tx {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            });
        }
        Demo {
            ports,
            dir,
            _tmp: tmp,
            child,
            lines,
            output,
        }
    }

    /// Reads stdout until the running line, then returns the banner (that
    /// line and everything up to "Press Ctrl-C"), or panics after `limit`.
    pub fn wait_running(&mut self, limit: Duration) -> Vec<String> {
        let start = Instant::now();
        let mut banner = Vec::new();
        loop {
            let left = limit.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if line.contains(RUNNING) || !banner.is_empty() {
                        let end = line.starts_with("Press Ctrl-C");
                        banner.push(line);
                        if end {
                            return banner;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no {RUNNING:?} line after {limit:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail("the demo script ended before it was running")
                }
            }
        }
    }

    /// PIDs the supervisors recorded in `<dir>/run/*.pid`, by component.
    pub fn pids(&self) -> BTreeMap<String, u32> {
        let mut pids = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(self.dir.join("run")) else {
            return pids;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "pid") {
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if let Some(pid) = read_pid(&path) {
                    pids.insert(name, pid);
                }
            }
        }
        pids
    }

    /// The PID of one component (`app-a`, `control`, …).
    pub fn pid(&self, name: &str) -> Option<u32> {
        read_pid(&self.dir.join("run").join(format!("{name}.pid")))
    }

    /// The demo script's own PID (also its process group).
    pub fn script_pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the script has not exited.
    pub fn script_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `sig` to the script's whole process group.
    pub fn signal_group(&self, sig: &str) {
        send_signal(sig, &format!("-{}", self.script_pid()));
    }

    /// What the script printed and the tail of every log, for a failure.
    pub fn diagnostics(&self) -> String {
        let mut s = String::from("--- demo.sh output:\n");
        if let Ok(o) = self.output.lock() {
            for l in o.iter() {
                s.push_str(l);
                s.push('\n');
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.dir.join("logs")) {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths {
                s.push_str(&format!("--- {} (last 20 lines):\n", p.display()));
                s.push_str(&tail(&p, 20));
            }
        }
        s
    }

    /// Panics with `msg` and the diagnostics.
    pub fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n{}", self.diagnostics())
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.script_running() {
            // The script's TERM trap stops every supervised process.
            self.signal_group("TERM");
            let start = Instant::now();
            while self.script_running() && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            self.signal_group("KILL");
            self.child.wait().ok();
        }
        // Supervised processes run in their own sessions: whatever is left
        // of them goes by the PID their supervisor recorded.
        for pid in self.pids().values() {
            if alive(*pid) {
                send_signal("KILL", &pid.to_string());
            }
        }
        let rings = format!("usher-demo-{}-", self.ports.base);
        if let Ok(entries) = std::fs::read_dir("/dev/shm") {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&rings) {
                    std::fs::remove_file(e.path()).ok();
                }
            }
        }
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Every `http://…` URL in `lines`, without trailing punctuation, in order,
/// each once.
pub fn urls(lines: &[String]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for line in lines {
        let mut rest = line.as_str();
        while let Some(i) = rest.find("http://") {
            let url: String = rest[i..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !"()'\",;".contains(*c))
                .collect();
            rest = &rest[i + url.len()..];
            if !found.contains(&url) {
                found.push(url);
            }
        }
    }
    found
}
