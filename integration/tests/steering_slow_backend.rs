//! In-band steering at every proxy-mode front door (issue 12), on the
//! whole stack ([`FaultStack`]: demo apps behind server-role nginx, the
//! agent, the control plane; the built-in front door as its own `usher
//! door` process so its in-flight count can be read; the nginx and Envoy
//! interceptors):
//!
//! 1. Through each front door in turn, users keep coming while one backend
//!    becomes 20 times slower (5 ms → 100 ms): of the requests that start
//!    2 s after the change or later, under 2 % go to it and the two fast
//!    backends take the rest, every one answered 200. (Before the change
//!    it had its share, so the test can fail.)
//! 2. Then every kind of ending a proxied request can have, through all
//!    three doors at once: clients that give up before the answer, answers
//!    that fail (500), answers the door stops waiting for (its 3 s upstream
//!    timeout). When the load stops, each door's requests in flight (its
//!    command endpoint's `in_flight`, the same count steering uses) return
//!    to 0: no slot leaks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use usher_integration::acts::hello_from;
use usher_integration::door_load::Door;
use usher_integration::fault_stack::{FaultSpec, FaultStack};
use usher_integration::usher_door::DOOR_TOKEN;
use usher_integration::{eventually, http};

/// The backends' normal service time, and 20 times that.
const FAST_MS: u64 = 5;
const SLOW_MS: u64 = 20 * FAST_MS;
/// Users at one front door at a time (closed loop, keep-alive).
const USERS: usize = 6;
/// Load before the change, and after it.
const BEFORE: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(5);
/// The bound: from this long after the change on, the slow
/// backend gets under [`MAX_SLOW_SHARE`] of new requests.
const REACT_WITHIN: Duration = Duration::from_secs(2);
const MAX_SLOW_SHARE: f64 = 0.02;

fn spec() -> FaultSpec {
    FaultSpec {
        separate_door: true,
        service_ms: FAST_MS,
        // Slow start off, so the three backends share evenly from the
        // start; everything else as deployed.
        app_toml: "[apps.policy]\nslow_start_s = 0\n".into(),
        ..FaultSpec::default()
    }
}

/// One request as the user saw it: when it started (since the run's
/// start), and which backend answered (`status N` when not 200, `error`
/// when nothing came back).
type Seen = (Duration, String);

/// `USERS` users sending GET `/` through `door` for `run`, each on one
/// keep-alive connection; `during(t)` is called once, `at` after the start.
fn load(door: &Door, run: Duration, at: Duration, during: impl FnOnce()) -> Vec<Seen> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let url = format!("http://127.0.0.1:{}/", door.port);
    let users: Vec<_> = (0..USERS)
        .map(|_| {
            let (seen, url) = (seen.clone(), url.clone());
            std::thread::spawn(move || {
                let agent = http();
                let mut mine = Vec::new();
                while start.elapsed() < run {
                    let t = start.elapsed();
                    let who = match agent.get(&url).call() {
                        Ok(r) => hello_from(&r.into_string().unwrap_or_default())
                            .unwrap_or_else(|| "?".into()),
                        Err(ureq::Error::Status(s, _)) => format!("status {s}"),
                        Err(_) => "error".into(),
                    };
                    mine.push((t, who));
                }
                seen.lock().expect("seen").extend(mine);
            })
        })
        .collect();
    std::thread::sleep(at);
    during();
    for u in users {
        u.join().expect("user thread");
    }
    let mut all = std::mem::take(&mut *seen.lock().expect("seen"));
    all.sort();
    all
}

/// Answers per backend among requests started in `from..to`.
fn tally(seen: &[Seen], from: Duration, to: Duration) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (t, who) in seen {
        if *t >= from && *t < to {
            *out.entry(who.clone()).or_default() += 1;
        }
    }
    out
}

fn share(counts: &BTreeMap<String, usize>, who: &str) -> f64 {
    let total: usize = counts.values().sum();
    counts.get(who).copied().unwrap_or(0) as f64 / total.max(1) as f64
}

/// The door's requests in flight, from its command endpoint.
fn in_flight(stack: &FaultStack, door: &str) -> u64 {
    let v = match door {
        "built-in" => {
            let d = stack.usher_door.as_ref().expect("separate door");
            usher_integration::http::get_json(d.command_port, "/", DOOR_TOKEN)["apps"]["shop"]
                .clone()
        }
        "nginx" => stack.nginx_door.as_ref().expect("nginx door").counters(),
        _ => stack.envoy_door.as_ref().expect("envoy door").counters(),
    };
    v["in_flight"]
        .as_u64()
        .unwrap_or_else(|| panic!("{door}: no in_flight in {v}"))
}

#[test]
fn a_slowed_backend_loses_its_share_and_no_slot_leaks() {
    let stack = FaultStack::start(spec());
    let doors = stack.doors();
    assert_eq!(doors.len(), 3, "built-in, nginx and Envoy doors");

    // 1. Each door in turn; each slows a backend of its own, so the one it
    // slows was fast and in full share just before.
    for (i, door) in doors.iter().enumerate() {
        let slow = &stack.apps[i];
        let seen = load(door, BEFORE + AFTER, BEFORE, || {
            slow.set_service_ms(SLOW_MS)
        });
        slow.set_service_ms(FAST_MS);
        let before = tally(&seen, Duration::from_secs(1), BEFORE);
        let after = tally(&seen, BEFORE + REACT_WITHIN, BEFORE + AFTER);
        let late: usize = after.values().sum();
        let slow_at: Vec<u128> = seen
            .iter()
            .filter(|(t, who)| *t >= BEFORE && *who == slow.name)
            .map(|(t, _)| (*t - BEFORE).as_millis())
            .take(80)
            .collect();
        eprintln!(
            "{}: picks of the slow backend after the change, ms: {slow_at:?}",
            door.name
        );
        eprintln!(
            "{}: before {before:?}; from {REACT_WITHIN:?} after the change {after:?}",
            door.name
        );
        assert!(
            share(&before, &slow.name) > 0.15,
            "{}: {} had no fair share before the change: {before:?}",
            door.name,
            slow.name
        );
        assert!(
            late >= 200,
            "{}: too few requests to judge: {after:?}",
            door.name
        );
        let fast: usize = stack
            .apps
            .iter()
            .filter(|a| a.name != slow.name)
            .map(|a| after.get(&a.name).copied().unwrap_or(0))
            .sum();
        let slow_share = share(&after, &slow.name);
        assert!(
            slow_share < MAX_SLOW_SHARE,
            "{}: {} (20x slower) still got {:.1} % of new requests 2 s after: {after:?}",
            door.name,
            slow.name,
            slow_share * 100.0
        );
        assert_eq!(
            fast + after.get(&slow.name).copied().unwrap_or(0),
            late,
            "{}: every request answered 200 by a backend: {after:?}",
            door.name
        );
    }

    // 2. Every way a request can end, through all three doors at once.
    let all = |f: &dyn Fn(&usher_integration::demo_app::DemoApp)| stack.apps.iter().for_each(f);
    let mut statuses: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut record = |agent: &ureq::Agent, per_door: usize| {
        for (door, who) in each_door(&doors, per_door, |door| {
            let r = agent
                .get(&format!("http://127.0.0.1:{}/", door.port))
                .call();
            (door.name.clone(), outcome(r))
        }) {
            *statuses.entry(door).or_default().entry(who).or_default() += 1;
        }
    };
    // Clients that give up: answers take 2 s, users wait 300 ms.
    all(&|a| a.set_service_ms(2000));
    let impatient = ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(300))
        .build();
    record(&impatient, 3);
    // Failed answers: every page answers 500 at once.
    all(&|a| a.set_service_ms(FAST_MS));
    all(&|a| a.set_error_pct(100));
    let patient = http();
    record(&patient, 5);
    all(&|a| a.set_error_pct(0));
    // Timeouts: answers take 4 s, the doors wait 3 s.
    all(&|a| a.set_service_ms(4000));
    record(&patient, 2);
    all(&|a| a.set_service_ms(FAST_MS));
    eprintln!("endings per door: {statuses:?}");
    for door in &doors {
        let s = &statuses[&door.name];
        assert!(
            s.get("error").copied().unwrap_or(0) >= 1,
            "{}: no client gave up: {s:?}",
            door.name
        );
        assert!(
            s.get("status 500").copied().unwrap_or(0) >= 1,
            "{}: no failed answer passed: {s:?}",
            door.name
        );
        assert!(
            s.keys().any(|k| k == "status 504" || k == "status 502"),
            "{}: no upstream timeout: {s:?}",
            door.name
        );
    }
    for door in &doors {
        let settled = eventually(Duration::from_secs(10), || {
            in_flight(&stack, &door.name) == 0
        });
        assert!(
            settled.is_some(),
            "{}: {} requests still counted in flight after the load stopped",
            door.name,
            in_flight(&stack, &door.name)
        );
    }
}

/// What a user saw: the backend's name, `status N`, or `error` (no answer).
fn outcome(r: Result<ureq::Response, ureq::Error>) -> String {
    match r {
        Ok(r) => hello_from(&r.into_string().unwrap_or_default()).unwrap_or_else(|| "?".into()),
        Err(ureq::Error::Status(s, _)) => format!("status {s}"),
        Err(_) => "error".into(),
    }
}

/// `per_door` requests through every door at once (one thread each);
/// their outcomes.
fn each_door(
    doors: &[Door],
    per_door: usize,
    send: impl Fn(&Door) -> (String, String) + Sync,
) -> Vec<(String, String)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = doors
            .iter()
            .flat_map(|d| std::iter::repeat_n(d, per_door))
            .map(|d| s.spawn(|| send(d)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    })
}
