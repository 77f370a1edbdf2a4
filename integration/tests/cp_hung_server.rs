//! Bounded waits (issue 10): a hung server must not hold users at the
//! built-in front door (proxy mode), against the real `usher control` and
//! three real demo apps.
//!
//! Under bounded load (4 client threads, one request every ~5 ms each, for
//! 5 s) one server is stopped with SIGSTOP (by its PID): it keeps accepting
//! connections but never answers. With `[front_door] upstream_timeout_ms =
//! 1000`:
//!
//! * no request waits longer than the bound plus [`SLACK`];
//! * only requests already on their way to the stopped server fail (504),
//!   at most one per client thread;
//! * the door ejects the server at its first time-out: from then on (and
//!   after SIGCONT, while the ejection lasts) nothing is sent to it, so
//!   every later request is answered by another server;
//! * the ejection is an event (`server_ejected`, 212) in `/api/v1/events`.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use usher_integration::{eventually, free_port, wait_for_port, Artifact, ControlPlane, Proc};

/// The front door's bound on a server's answer head in this test.
const BOUND_MS: u64 = 1000;
/// What a request may take beyond the bound: the front door's own work,
/// timer granularity and a busy 2-core machine.
const SLACK: Duration = Duration::from_millis(500);
const THREADS: usize = 4;
const NAMES: [&str; 3] = ["a", "b", "c"];

/// A demo app started here (not through `DemoApp`) so the test has its PID.
struct Server {
    name: &'static str,
    port: u16,
    proc: Proc,
}

fn start_server(name: &'static str, dir: &std::path::Path) -> Server {
    let port = free_port();
    let mut cmd = Command::new(Artifact::DemoApp.path());
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--name", name]);
    cmd.args(["--workers", "8", "--service-ms", "1"]);
    let mut proc = Proc::spawn(name, cmd, &dir.join(format!("{name}.log")));
    proc.wait_listening(port, Duration::from_secs(10), None);
    Server { name, port, proc }
}

/// Sends SIGCONT when dropped, so a failing test never leaves a stopped
/// process behind (the `Proc` then stops it by PID as usual).
struct Stopped<'a>(&'a Proc);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.signal("CONT");
    }
}

/// One request as the client saw it.
#[derive(Debug, Clone)]
struct Sample {
    /// Start, since the load began.
    at: Duration,
    took: Duration,
    /// The server that answered (from "hello from NAME"), or what went wrong.
    result: Result<String, String>,
}

fn one_request(agent: &ureq::Agent, url: &str) -> Result<String, String> {
    match agent.get(url).call() {
        Ok(r) => {
            let body = r.into_string().map_err(|e| format!("body: {e}"))?;
            NAMES
                .iter()
                .find(|n| body.contains(&format!("hello from {n}<")))
                .map(|n| n.to_string())
                .ok_or_else(|| format!("unknown answer {body:?}"))
        }
        Err(ureq::Error::Status(code, r)) => Err(format!(
            "{code} {}",
            r.into_string().unwrap_or_default().trim()
        )),
        Err(e) => Err(format!("transport: {e}")),
    }
}

fn unix_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[test]
fn a_stopped_server_costs_at_most_the_bound_and_leaves_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let servers: Vec<Server> = NAMES.iter().map(|n| start_server(n, dir.path())).collect();
    let front = free_port();
    let mut cfg = format!(
        "[front_door]\nupstream_timeout_ms = {BOUND_MS}\nconnect_timeout_ms = 500\neject_ms = 30000\n\n\
         [[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\nmode = \"proxy\"\n\n"
    );
    for s in &servers {
        cfg.push_str(&format!(
            "[[servers]]\nname = \"{}\"\napp = \"shop\"\nurl = \"http://127.0.0.1:{}\"\ncapacity = 5\n",
            s.name, s.port
        ));
    }
    let cp = ControlPlane::start(&cfg, &[]);
    wait_for_port(front, Duration::from_secs(5));
    let url = format!("http://127.0.0.1:{front}/");

    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let begin = Instant::now();
    let run_for = Duration::from_secs(5);
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (samples, url) = (samples.clone(), url.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .redirects(0)
                    .timeout(Duration::from_secs(15))
                    .build();
                while begin.elapsed() < run_for {
                    let at = begin.elapsed();
                    let result = one_request(&agent, &url);
                    let took = begin.elapsed() - at;
                    samples
                        .lock()
                        .expect("samples")
                        .push(Sample { at, took, result });
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();

    // b hangs at 1 s, and is continued at 3.5 s: an ejected server stays
    // out of rotation for eject_ms even when it answers again.
    let b = &servers[1];
    std::thread::sleep(Duration::from_secs(1));
    let stopped_at = begin.elapsed();
    let stopped_unix_us = unix_us();
    b.proc.signal("STOP");
    let guard = Stopped(&b.proc);
    std::thread::sleep(Duration::from_millis(2500));
    let continued_at = begin.elapsed();
    drop(guard);
    for t in threads {
        t.join().expect("client thread");
    }
    let samples = samples.lock().expect("samples").clone();

    let max = samples.iter().map(|s| s.took).max().unwrap_or_default();
    let errors: Vec<&Sample> = samples.iter().filter(|s| s.result.is_err()).collect();
    let by_server = |from: Duration, to: Duration| {
        let mut c: BTreeMap<String, usize> = BTreeMap::new();
        for s in samples.iter().filter(|s| s.at >= from && s.at < to) {
            if let Ok(n) = &s.result {
                *c.entry(n.clone()).or_default() += 1;
            }
        }
        c
    };
    let before = by_server(Duration::ZERO, stopped_at);
    let after = by_server(stopped_at + Duration::from_millis(BOUND_MS), run_for * 2);
    let last_error = errors
        .iter()
        .map(|s| s.at.saturating_sub(stopped_at))
        .max()
        .unwrap_or_default();
    eprintln!(
        "{} requests; longest {:?}; {} errors, the last sent {:?} after SIGSTOP; \
         answered before SIGSTOP {before:?}, from SIGSTOP + {BOUND_MS} ms {after:?} \
         (SIGCONT at {continued_at:?})",
        samples.len(),
        max,
        errors.len(),
        last_error
    );
    assert!(
        samples.len() <= 10_000,
        "load is bounded: {}",
        samples.len()
    );
    assert!(
        before.len() == 3,
        "all three servers answered before the stop: {before:?}"
    );

    // No request waited longer than the bound plus slack.
    assert!(
        max <= Duration::from_millis(BOUND_MS) + SLACK,
        "a request took {max:?} (bound {BOUND_MS} ms + {SLACK:?})"
    );
    // Only the requests already on their way to b failed: each client
    // thread waits on at most one of them before b is ejected.
    assert!(
        !errors.is_empty() && errors.len() <= THREADS,
        "{} errors (tolerance 1..={THREADS}): {errors:?}",
        errors.len()
    );
    for e in &errors {
        let why = e.result.as_ref().err().map(String::as_str).unwrap_or("");
        assert!(
            why.starts_with("504 ") && why.contains("server b"),
            "error other than b's time-out: {e:?}"
        );
        // (A request sent up to 100 ms before the signal may still have
        // been in b's hands.)
        assert!(
            e.at + Duration::from_millis(100) >= stopped_at
                && e.at < stopped_at + Duration::from_millis(BOUND_MS) + SLACK,
            "error outside the first bound after SIGSTOP: {e:?}"
        );
    }
    // From one bound after the stop on, b gets nothing, even once continued.
    assert_eq!(after.get("b"), None, "b still in rotation: {after:?}");
    assert!(
        after.get("a").is_some_and(|n| *n > 50) && after.get("c").is_some_and(|n| *n > 50),
        "a and c carry the load: {after:?}"
    );

    // The ejection is an event, once, naming b.
    let e = &the_one_event(&cp, "server_ejected");
    assert_eq!(e["origin_name"], "b", "{e}");
    assert_eq!(e["type_code"], 212, "{e}");
    let text = e["text"].as_str().unwrap_or_default();
    assert!(text.contains("no answer within 1000 ms"), "{text}");
    let ejected_after_ms =
        (e["time_occurred_us"].as_i64().unwrap_or(0) - stopped_unix_us) as f64 / 1000.0;
    eprintln!("ejected {ejected_after_ms:.0} ms after SIGSTOP: {text}");
    assert!(
        ejected_after_ms <= (BOUND_MS as f64) + SLACK.as_millis() as f64,
        "ejected {ejected_after_ms} ms after SIGSTOP"
    );
    drop(servers);
}

/// A server that refuses connections (nothing listens on its port) costs
/// no user a failed GET: nothing was sent, so the door tries another
/// server once, and ejects the dead one at once (event naming it).
#[test]
fn a_refused_get_goes_to_another_server_and_ejects_the_dead_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = start_server("a", dir.path());
    let (front, dead) = (free_port(), free_port());
    let cfg = format!(
        "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\nmode = \"proxy\"\n\n\
         [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"http://127.0.0.1:{}\"\ncapacity = 5\n\
         [[servers]]\nname = \"dead\"\napp = \"shop\"\nurl = \"http://127.0.0.1:{dead}\"\ncapacity = 5\n",
        a.port
    );
    let cp = ControlPlane::start(&cfg, &[]);
    wait_for_port(front, Duration::from_secs(5));
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let url = format!("http://127.0.0.1:{front}/");
    for i in 0..200 {
        assert_eq!(one_request(&agent, &url).as_deref(), Ok("a"), "request {i}");
    }
    let ejected = [the_one_event(&cp, "212")];
    assert_eq!(ejected[0]["origin_name"], "dead");
    let text = ejected[0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("connection failed"), "{text}");
}

/// Waits (3 s at most) for events of `kind` (a name or a code) and asserts
/// there is exactly one: a door ejects a server once per episode.
fn the_one_event(cp: &ControlPlane, kind: &str) -> serde_json::Value {
    let mut found = Vec::new();
    let logged = eventually(Duration::from_secs(3), || {
        found = cp
            .api_ok("GET", &format!("/api/v1/events?type={kind}"), None)
            .as_array()
            .cloned()
            .unwrap_or_default();
        !found.is_empty()
    });
    assert!(logged.is_some(), "no {kind} event:\n{}", cp.log());
    assert_eq!(found.len(), 1, "{found:?}");
    found.swap_remove(0)
}
