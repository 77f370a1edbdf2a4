//! What the tests of the manager's own actions (issue 11) look at on a
//! [`FaultStack`]: a server's row and state word, waiting for a state,
//! who served each of n new users at a front door, the app row, events,
//! a request straight at one server's nginx, and load threads that
//! record who served each answer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::door_load::Door;
use crate::fault_stack::FaultStack;
use crate::http::{call, http};
use crate::poll::eventually;

/// `GET /api/v1/servers` row of `name` (null when missing).
pub fn row(stack: &FaultStack, name: &str) -> Value {
    stack
        .server_rows()
        .into_iter()
        .find(|s| s["name"] == name)
        .unwrap_or(Value::Null)
}

/// The server's state word (`ok`, `heavy`, `draining`, ...).
pub fn state(stack: &FaultStack, name: &str) -> String {
    row(stack, name)["state"].as_str().unwrap_or("").to_string()
}

/// Polls until `name`'s state is `want`; the time it took. Panics with the
/// states seen and the control plane's log.
pub fn wait_state(stack: &FaultStack, name: &str, want: &str, limit: Duration) -> Duration {
    let t = Instant::now();
    let mut seen = Vec::new();
    let got = eventually(limit, || {
        let s = state(stack, name);
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        s == want
    });
    got.unwrap_or_else(|| {
        panic!(
            "{name} never became {want} within {limit:?} (states seen {seen:?}); row {}\n--- control:\n{}",
            row(stack, name),
            stack.cp.log()
        )
    });
    t.elapsed()
}

/// The server a demo app's page names (`hello from NAME<`).
pub fn hello_from(body: &str) -> Option<String> {
    body.split("hello from ")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .map(str::to_string)
}

/// `n` GETs of `/` through one front door: answers per server name
/// (`status N` for anything but 200).
pub fn served_by(agent: &ureq::Agent, door: &Door, n: usize) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let r = call(agent.get(&format!("http://127.0.0.1:{}/", door.port)), None);
        let who = if r.status == 200 {
            hello_from(&r.body).unwrap_or_else(|| "?".into())
        } else {
            format!("status {}", r.status)
        };
        *out.entry(who).or_default() += 1;
    }
    out
}

/// `GET /api/v1/apps/shop`.
pub fn app(stack: &FaultStack) -> Value {
    stack.cp.api_ok("GET", "/api/v1/apps/shop", None)
}

/// Events of type `kind` whose origin is `origin` (any origin when empty).
pub fn events_of(stack: &FaultStack, kind: &str, origin: &str) -> Vec<Value> {
    stack
        .events(kind)
        .into_iter()
        .filter(|e| e["origin_name"] == origin || e["origin"] == origin || origin.is_empty())
        .collect()
}

/// Waits until at least `n` events of `kind` from `origin` are logged
/// (the log is written in batches); panics naming them after `limit`.
pub fn wait_events(
    stack: &FaultStack,
    kind: &str,
    origin: &str,
    n: usize,
    limit: Duration,
) -> Vec<Value> {
    eventually(limit, || events_of(stack, kind, origin).len() >= n).unwrap_or_else(|| {
        panic!(
            "fewer than {n} {kind} events from {origin} within {limit:?}: {:?}\n--- control:\n{}",
            events_of(stack, kind, origin),
            stack.cp.log()
        )
    });
    events_of(stack, kind, origin)
}

/// GET `url` straight at a server's nginx (optionally with a cookie):
/// (status, Location).
pub fn direct(url: &str, cookie: Option<&str>) -> (u16, Option<String>) {
    let mut req = http().get(url);
    if let Some(c) = cookie {
        req = req.set("cookie", c);
    }
    let r = call(req, None);
    (r.status, r.location)
}

/// One answer a load thread saw: when its request was sent, and who
/// served it (`Err` = what went wrong).
pub type Seen = (Instant, Result<String, String>);

/// A load thread and what it saw; stops when `stop` is set.
pub struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    /// Runs `one` in a loop (a short pause between calls) until stopped.
    pub fn run(one: impl Fn() -> Result<String, String> + Send + 'static) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                // Stamped when the request leaves: a user who arrived
                // before a change is not counted after it.
                let sent = Instant::now();
                let r = one();
                v.lock().expect("lock").push((sent, r));
                std::thread::sleep(Duration::from_millis(3));
            }
        });
        Load {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("load thread");
        }
    }

    /// Every answer so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A new user at a front door: follows one redirect (to a front door),
/// as a browser would; who served the page.
pub fn new_user(agent: &ureq::Agent, door: u16, doors: &[u16]) -> Result<String, String> {
    let r = call(agent.get(&format!("http://127.0.0.1:{door}/")), None);
    let r = if r.status == 302 {
        let to = r.location.clone().unwrap_or_default();
        if !doors
            .iter()
            .any(|d| to.starts_with(&format!("http://127.0.0.1:{d}/")))
        {
            return Err(format!("redirected off the front doors: {to}"));
        }
        call(agent.get(&to), None)
    } else {
        r
    };
    match r.status {
        200 => hello_from(&r.body).ok_or_else(|| format!("no server named: {}", r.body)),
        s => Err(format!("status {s}")),
    }
}

/// One [`Load`] of new users per front door of `stack` (each follows a
/// redirect to a front door), in [`FaultStack::doors`] order.
pub fn new_users(stack: &FaultStack) -> Vec<Load> {
    let ports: Vec<u16> = stack.doors().iter().map(|d| d.port).collect();
    ports
        .iter()
        .map(|&p| {
            let all = ports.clone();
            let agent = http();
            Load::run(move || new_user(&agent, p, &all))
        })
        .collect()
}
