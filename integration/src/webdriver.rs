//! Headless Chromium driven over WebDriver (W3C protocol, JSON over HTTP)
//! for the console tests: Debian's `chromedriver` on a free loopback port,
//! one session with Debian's `chromium`, a fresh profile folder, and the
//! flags that keep it off the network. The few commands the tests use are
//! plain HTTP calls, so no client library is needed; the driver (and its
//! browser) is stopped by PID when [`Browser`] drops.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::http::{call, http};
use crate::poll::eventually;
use crate::ports::free_port;
use crate::proc::Proc;

/// Debian's Chromium and its driver (`scripts/install-deps.sh`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The W3C key of element references in answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running headless Chromium with one WebDriver session.
pub struct Browser {
    base: String,
    session: String,
    driver: Proc,
    _profile: tempfile::TempDir,
}

/// Where a test's screenshots go: `target/screenshots/` (made if absent).
pub fn screenshot_dir() -> PathBuf {
    let dir = crate::artifacts::repo_root().join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("mkdir target/screenshots");
    dir
}

impl Browser {
    /// Starts chromedriver and a headless browser session (1280x900).
    pub fn start(log_dir: &Path) -> Browser {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run `bash scripts/install-deps.sh` (Debian packages chromium, chromium-driver)"
            );
        }
        let port = free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1");
        let mut driver = Proc::spawn("chromedriver", cmd, &log_dir.join("chromedriver.log"));
        driver.wait_listening(port, Duration::from_secs(20), None);
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let r = call(
            http()
                .post(&format!("{base}/session"))
                .timeout(Duration::from_secs(60)),
            Some(&caps.to_string()),
        );
        assert_eq!(r.status, 200, "new WebDriver session: {}", r.body);
        let session = r.json()["value"]["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        Browser {
            base,
            session,
            driver,
            _profile: profile,
        }
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/session/{}{tail}", self.base, self.session)
    }

    /// Sends one command; returns `value`, or the WebDriver error as Err.
    pub fn cmd(&self, method: &str, tail: &str, body: Option<Value>) -> Result<Value, String> {
        let req = http().request(method, &self.url(tail));
        let body = body.map(|b| b.to_string());
        let r = call(
            req.set("content-type", "application/json"),
            body.as_deref()
                .or(if method == "POST" { Some("{}") } else { None }),
        );
        let v = r.json();
        if r.status == 200 {
            Ok(v["value"].clone())
        } else {
            Err(format!("{method} {tail}: {} {}", r.status, v["value"]))
        }
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .expect("navigate");
    }

    /// The first element matching `css`, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .ok()?;
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// Waits (up to `limit`) for an element matching `css`.
    pub fn wait_for(&self, css: &str, limit: Duration) -> String {
        let mut found = None;
        eventually(limit, || {
            found = self.find(css);
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no element {css} within {limit:?}"))
    }

    pub fn click(&self, element: &str) {
        self.cmd("POST", &format!("/element/{element}/click"), None)
            .expect("click");
    }

    pub fn type_text(&self, element: &str, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .expect("type");
    }

    /// Accepts the open `confirm()` dialog, waiting for it to open.
    pub fn accept_dialog(&self) {
        let ok = eventually(Duration::from_secs(3), || {
            self.cmd("POST", "/alert/accept", None).is_ok()
        });
        assert!(ok.is_some(), "no dialog to accept");
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub fn run(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// The value of cookie `name` in the browser.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let v = self.cmd("GET", &format!("/cookie/{name}"), None).ok()?;
        v["value"].as_str().map(str::to_string)
    }

    /// Saves a PNG screenshot of the page as `target/screenshots/<name>.png`
    /// and returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.cmd("GET", "/screenshot", None).expect("screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("base64 PNG");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (the driver closes its browser), then the driver.
        let ended = http()
            .delete(&format!("{}/session/{}", self.base, self.session))
            .timeout(Duration::from_secs(10))
            .call();
        if let Err(e) = ended {
            eprintln!("ending the WebDriver session: {e}");
        }
        self.driver.stop();
    }
}
