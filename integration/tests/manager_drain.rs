//! Drain under a steady load (issue 11), on the whole stack ([`FaultStack`]
//! with the agent running the demo apps, so it can restart them): new users
//! keep arriving at the three front doors while some users hold a session
//! cookie on web2 and others use its stateful pages (`/cart`, listed in
//! the app's rules, and `/account`, which marks itself `Usher-Stateful`).
//!
//! `POST /api/v1/servers/web2/drain {"quiet_s": 2, "then": "restart"}`:
//! from 1 s after the drain no front door sends web2 a new user; the
//! cookie holders and the stateful page keep being served by web2 (none is
//! redirected); no client sees an error (a user who gets the server's
//! redirect to the front door follows it, as a browser does). When those
//! users leave, web2 is `drained` after the quiet period, the agent
//! restarts it (a new PID), and slow start brings it back: its share of new
//! users rises over the ramp, checked at three points.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use usher_integration::acts::{new_users, row, state, wait_events, wait_state, Load, Seen};
use usher_integration::door_load::Door;
use usher_integration::fault_stack::{FaultSpec, FaultStack};
use usher_integration::{call, eventually, http};

/// The slow-start ramp of this test (s).
const RAMP_S: f64 = 9.0;
const QUIET_S: f64 = 2.0;

fn spec() -> FaultSpec {
    FaultSpec {
        agent_runs_apps: true,
        app_toml: format!(
            "stateful = [\"/cart\"]\nsession_cookie = \"usher_session\"\n\
             [apps.policy]\nheavy_cpu_pct = 100\nheavy_mem_pct = 100\nslow_start_s = {RAMP_S}\n"
        ),
        ..FaultSpec::default()
    }
}

/// A user of web2 who must stay there: `path`, optionally with a cookie;
/// who served it, or what moved it.
fn staying_user(url: &str, cookie: Option<&str>) -> Result<String, String> {
    let mut req = http().get(url);
    if let Some(c) = cookie {
        req = req.set("cookie", c);
    }
    // Straight at web2's nginx: 200 is web2 serving it, anything else
    // moved or failed it.
    let r = call(req, None);
    match r.status {
        200 => Ok("web2".to_string()),
        s => Err(format!("status {s} (location {:?})", r.location)),
    }
}

/// This test's monotonic clock against the system clock, to place the
/// control plane's event times (unix µs) among the load threads' instants.
struct Clock {
    base: Instant,
    base_unix_us: u64,
}

impl Clock {
    fn now() -> Clock {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            base: Instant::now(),
            base_unix_us: unix.as_micros() as u64,
        }
    }

    /// The instant of unix time `us` (never before the base).
    fn at(&self, us: u64) -> Instant {
        self.base + Duration::from_micros(us.saturating_sub(self.base_unix_us))
    }
}

/// web2's share of the answers in `seen` between `from` and `to` after `t0`.
fn share(seen: &[Seen], t0: Instant, from: f64, to: f64) -> (f64, usize) {
    let window: Vec<&String> = seen
        .iter()
        .filter(|(at, _)| {
            let t = at.duration_since(t0).as_secs_f64();
            at > &t0 && t >= from && t < to
        })
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    let web2 = window.iter().filter(|s| s.as_str() == "web2").count();
    (web2 as f64 / window.len().max(1) as f64, window.len())
}

#[test]
fn drain_keeps_sessions_then_restarts_and_slow_starts() {
    let clock = Clock::now();
    let mut stack = FaultStack::start(spec());
    let doors: Vec<Door> = stack.doors();
    let web2_nginx = stack.servers[1].url("");
    let first_pid = stack.app_pid("web2").expect("the agent runs web2");

    let mut users: Vec<Load> = new_users(&stack);
    let mut holders: Vec<Load> = (0..2)
        .map(|i| {
            let url = format!("{web2_nginx}/");
            Load::run(move || staying_user(&url, Some(&format!("usher_session=user{i}"))))
        })
        .collect();
    // A listed stateful page, and one that marks itself stateful.
    for page in ["/cart", "/account"] {
        let url = format!("{web2_nginx}{page}");
        holders.push(Load::run(move || staying_user(&url, None)));
    }

    // web2 takes new users before the drain.
    std::thread::sleep(Duration::from_secs(2));
    let before: usize = users
        .iter()
        .map(|u| {
            u.seen()
                .iter()
                .filter(|(_, r)| r.as_deref() == Ok("web2"))
                .count()
        })
        .sum();
    assert!(before > 0, "web2 got no new user before the drain");

    let r = stack.cp.api(
        "POST",
        "/api/v1/servers/web2/drain",
        Some(&json!({"quiet_s": QUIET_S, "then": "restart"}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let drained_at = Instant::now();
    assert_eq!(state(&stack, "web2"), "draining", "{}", row(&stack, "web2"));
    wait_events(&stack, "server_draining", "web2", 1, Duration::from_secs(3));

    // Sessions go on for a while; then those users leave.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        state(&stack, "web2"),
        "draining",
        "not drained while its users keep coming"
    );
    for h in &mut holders {
        h.stop();
    }
    for (i, h) in holders.iter().enumerate() {
        let seen = h.seen();
        let bad: Vec<&Seen> = seen.iter().filter(|(_, r)| r.is_err()).collect();
        let moved: Vec<&Seen> = seen
            .iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|s| s != "web2"))
            .collect();
        let after = seen.iter().filter(|(at, _)| *at > drained_at).count();
        eprintln!(
            "staying user {i}: {} answers, {after} after the drain",
            seen.len()
        );
        assert!(after > 50, "user {i} barely ran after the drain: {after}");
        assert!(
            bad.is_empty() && moved.is_empty(),
            "staying user {i} was moved or failed: {:?}",
            bad.iter().chain(&moved).take(5).collect::<Vec<_>>()
        );
    }

    // Quiet: drained, then restarted through the agent.
    let drained = wait_events(&stack, "server_drained", "web2", 1, Duration::from_secs(10));
    eprintln!("drained: {}", drained[0]["text"]);
    eventually(Duration::from_secs(15), || {
        stack.app_pid("web2").is_some_and(|p| p != first_pid)
    })
    .unwrap_or_else(|| {
        panic!(
            "web2 was not restarted (pid {first_pid}): {}\n--- agent:\n{}",
            row(&stack, "web2"),
            stack.agent_log()
        )
    });
    assert!(
        !usher_integration::alive(first_pid),
        "the old process {first_pid} still runs"
    );
    wait_state(&stack, "web2", "slow-start", Duration::from_secs(10));
    let ramp_from = Instant::now();
    let begun = wait_events(
        &stack,
        "slow_start_begun",
        "web2",
        1,
        Duration::from_secs(3),
    );
    // When the manager put it back (its clock, on this host), less a
    // margin for a user sent just before and placed just after.
    let back =
        clock.at(begun[0]["time_occurred_us"].as_u64().unwrap_or(0)) - Duration::from_millis(500);

    // New users: none to web2 from 1 s after the drain until it is back.
    for (door, u) in doors.iter().zip(&users) {
        let seen = u.seen();
        let to_web2: Vec<&Seen> = seen
            .iter()
            .filter(|(at, r)| {
                *at > drained_at + Duration::from_secs(1)
                    && *at < back
                    && r.as_deref() == Ok("web2")
            })
            .collect();
        assert!(
            to_web2.is_empty(),
            "{}: {} new users went to web2 while it drained",
            door.name,
            to_web2.len()
        );
    }

    // Slow start: web2's share of new users rises over the ramp.
    std::thread::sleep(Duration::from_secs_f64(RAMP_S + 1.5));
    for u in &mut users {
        u.stop();
    }
    let seen: Vec<Seen> = users.iter().flat_map(Load::seen).collect();
    let errors: Vec<&Seen> = seen.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        errors.is_empty(),
        "{} of {} new users saw an error: {:?}",
        errors.len(),
        seen.len(),
        errors.iter().take(5).collect::<Vec<_>>()
    );
    let points = [(0.5, 2.5), (3.5, 5.5), (6.5, 8.5)];
    let shares: Vec<(f64, usize)> = points
        .iter()
        .map(|(a, b)| share(&seen, ramp_from, *a, *b))
        .collect();
    let (after, n_after) = share(&seen, ramp_from, RAMP_S + 0.5, RAMP_S + 1.5);
    eprintln!("web2's share over the ramp {shares:?}, after it {after:.3} of {n_after}");
    // Equal servers: web2 gets r/(r+2) with r rising 0.1 -> 1 over the
    // ramp (at the windows' middles 0.25, 0.55, 0.85 → 0.11, 0.22, 0.30;
    // 1/3 after it).
    assert!(shares.iter().all(|(_, n)| *n >= 100), "{shares:?}");
    assert!(
        shares[0].0 < 0.18,
        "share early in the ramp {:.3}",
        shares[0].0
    );
    assert!(
        shares[0].0 < shares[1].0 && shares[1].0 < shares[2].0,
        "share did not rise over the ramp: {shares:?}"
    );
    assert!(
        shares[2].0 > 0.2,
        "share late in the ramp {:.3}",
        shares[2].0
    );
    wait_events(&stack, "slow_start_done", "web2", 1, Duration::from_secs(3));
    assert_eq!(state(&stack, "web2"), "ok");
}
