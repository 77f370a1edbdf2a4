//! Harness for usher's integration tests: finds the built artifacts, picks
//! free loopback ports, starts real processes and stops them by PID.
//!
//! Every process started here binds 127.0.0.1 and is killed (by its own PID)
//! when its guard drops, even when the test panics.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The release `usher` binary (`make build` makes it; `USHER_BIN` overrides).
pub fn usher_bin() -> PathBuf {
    std::env::var_os("USHER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/release/usher"))
}

/// The nginx module (`USHER_NGINX_MODULE` overrides).
pub fn nginx_module() -> PathBuf {
    std::env::var_os("USHER_NGINX_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/nginx/ngx_http_usher_module.so"))
}

/// The Envoy filter (`USHER_WASM` overrides).
pub fn wasm_filter() -> PathBuf {
    std::env::var_os("USHER_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/wasm32-wasip1/wasm/usher_filter.wasm"))
}

/// Envoy from the project venv (`ENVOY_BIN` overrides).
pub fn envoy_bin() -> PathBuf {
    std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/envoy"))
}

/// A free TCP port on 127.0.0.1 (bound then released; small race accepted).
///
/// Ports come from 20000..32000, below Linux's ephemeral range (32768..):
/// a port from that range can be handed to an outgoing connection meanwhile,
/// and polling `connect` to such a port before its server listens can
/// connect the socket to itself (TCP simultaneous open) and "succeed".
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    // Different test processes start at different places; 7919 is prime
    // and does not divide SPAN, so the walk visits every port once.
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + seed.wrapping_add(n.wrapping_mul(7919)) % SPAN;
        let port = u16::try_from(port).expect("below 32000");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {LOW}..{}", LOW + SPAN);
}

/// Waits until something accepts on `127.0.0.1:port`, or panics after `limit`.
pub fn wait_for_port(port: u16, limit: Duration) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            start.elapsed() < limit,
            "nothing listens on 127.0.0.1:{port} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Polls `check` until it returns true or `limit` passes; returns the time taken.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A child process killed by PID when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    /// Starts `cmd` with stdout/stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let out = std::fs::File::create(log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal to this process (by PID).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status();
        if let Err(e) = status {
            eprintln!("kill -{sig} {}: {e}", self.pid());
        }
    }

    /// Stops the process: TERM, then KILL after 3 s.
    pub fn stop(&mut self) {
        if !self.is_running() {
            return;
        }
        self.signal("TERM");
        let start = Instant::now();
        while self.is_running() && start.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.is_running() {
            if let Err(e) = self.child.kill() {
                eprintln!("kill {}: {e}", self.name);
            }
        }
        self.child.wait().ok();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP client that never follows redirects, so tests see every 302.
pub fn http() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(10))
        .build()
}

/// Sends a request and returns (status, headers-lookup, body) whatever the
/// status (ureq treats 4xx/5xx as errors; tests want to see them).
pub fn call(req: ureq::Request, body: Option<&str>) -> Response {
    let res = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = resp.status();
    let location = resp.header("location").map(str::to_string);
    let content_type = resp.header("content-type").map(str::to_string);
    let body = resp.into_string().unwrap_or_default();
    Response {
        status,
        location,
        content_type,
        body,
    }
}

/// What a test looks at in an answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

impl Response {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}
