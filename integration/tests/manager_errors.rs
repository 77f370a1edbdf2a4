//! Fast errors and the automatic restart (issue 11), on the whole stack
//! ([`FaultStack`] with the agent running the demo apps):
//!
//! * web2 answers every page with an immediate 500 (the demo app's
//!   `error_pct`): from 2 s on it gets at most 5 % of the new users at each
//!   of the three front doors (a fast error counts as load, and probes that
//!   still pass do not make it look healthy again);
//! * with `restart_after_s` lowered through the policy API, the manager
//!   drains it briefly and restarts it through the agent (a new PID),
//!   three times as it keeps failing; the fourth time within the hour is
//!   refused with a `restart_refused` event and web2 stays out of rotation
//!   (`held-out`, no new users).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use usher_integration::acts::{
    events_of, new_user, new_users, row, state, wait_events, wait_state, Load,
};
use usher_integration::door_load::Door;
use usher_integration::fault_stack::{FaultSpec, FaultStack};
use usher_integration::{call, eventually, http, wait_for_port};

/// The app's policy, with `restart_after_s` (the rest fixed).
fn policy(restart_after_s: f64) -> Value {
    json!({
        "heavy_cpu_pct": 100, "heavy_mem_pct": 100,
        "restart_error_pct": 50, "restart_after_s": restart_after_s,
        "restart_quiet_s": 0.3, "restart_max_per_hour": 3, "slow_start_s": 2
    })
}

/// An answer web2 gave: its page, or the 500 only web2 answers.
fn from_web2(r: &Result<String, String>) -> bool {
    match r {
        Ok(s) => s == "web2",
        Err(e) => e == "status 500",
    }
}

fn spec() -> FaultSpec {
    let keys: String = policy(30.0)
        .as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    FaultSpec {
        agent_runs_apps: true,
        app_toml: format!("[apps.policy]\n{keys}"),
        ..FaultSpec::default()
    }
}

/// web2's demo app answers 500 to every page (retrying while a restart
/// brings its process back).
fn fail_web2(stack: &FaultStack) {
    let web2 = &stack.apps[1];
    wait_for_port(web2.port, Duration::from_secs(10));
    web2.set_error_pct(100);
}

#[test]
fn fast_errors_lose_users_then_restart_until_refused() {
    let mut stack = FaultStack::start(spec());
    let doors: Vec<Door> = stack.doors();
    let ports: Vec<u16> = doors.iter().map(|d| d.port).collect();
    let mut users: Vec<Load> = new_users(&stack);
    std::thread::sleep(Duration::from_secs(1));

    // Fast 500s: web2's share of new users falls to ≤ 5 % within 2 s.
    fail_web2(&stack);
    let failing_from = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        state(&stack, "web2"),
        "ok",
        "not restarted yet (restart_after_s 30)"
    );
    for (door, u) in doors.iter().zip(&users) {
        let window: Vec<_> = u
            .seen()
            .into_iter()
            .filter(|(at, _)| *at > failing_from + Duration::from_secs(2))
            .collect();
        // Only web2 answers 500; every other answer names its server.
        let to_web2 = window.iter().filter(|(_, r)| from_web2(r)).count();
        let share = to_web2 as f64 / window.len().max(1) as f64;
        eprintln!(
            "{}: web2 got {to_web2} of {} new users from 2 s after failing",
            door.name,
            window.len()
        );
        assert!(window.len() >= 100, "{}: too few users", door.name);
        assert!(
            share <= 0.05,
            "{}: web2 still got {:.1} % of new users 2 s after answering fast 500s",
            door.name,
            share * 100.0
        );
    }
    for u in &mut users {
        u.stop();
    }

    // Users who come straight to web2 keep it measured while it fails.
    let web2_url = stack.servers[1].url("/");
    let _bookmarks = Load::run(move || {
        let r = call(http().get(&web2_url), None);
        Ok(r.status.to_string())
    });

    // Restart after 1 s of errors: three times, each a new process.
    let r = stack.cp.api(
        "PUT",
        "/api/v1/apps/shop/policy",
        Some(&policy(1.0).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut pid = stack.app_pid("web2").expect("the agent runs web2");
    for n in 1..=3 {
        let t = Instant::now();
        let ev = wait_events(
            &stack,
            "server_restarting",
            "web2",
            n,
            Duration::from_secs(15),
        );
        let text = ev[0]["text"].as_str().unwrap_or_default().to_string();
        assert!(text.contains("5xx"), "{text}");
        let old = pid;
        eventually(Duration::from_secs(15), || {
            stack.app_pid("web2").is_some_and(|p| p != old)
        })
        .unwrap_or_else(|| {
            panic!(
                "restart {n}: web2 kept pid {old}: {}\n--- agent:\n{}",
                row(&stack, "web2"),
                stack.agent_log()
            )
        });
        pid = stack.app_pid("web2").expect("pid");
        eprintln!("restart {n}: pid {old} -> {pid} after {:?}", t.elapsed());
        assert!(!usher_integration::alive(old), "old process {old} runs");
        eventually(Duration::from_secs(10), || {
            let s = state(&stack, "web2");
            s == "slow-start" || s == "ok"
        })
        .unwrap_or_else(|| panic!("restart {n}: not back: {}", row(&stack, "web2")));
        // The new process works until it is broken again.
        fail_web2(&stack);
    }

    // The fourth within the hour is refused: web2 stays out.
    let refused = wait_events(
        &stack,
        "restart_refused",
        "web2",
        1,
        Duration::from_secs(15),
    );
    eprintln!("refused: {}", refused[0]["text"]);
    wait_state(&stack, "web2", "held-out", Duration::from_secs(3));
    assert_eq!(
        events_of(&stack, "server_restarting", "web2").len(),
        3,
        "more than three automatic restarts"
    );
    assert_eq!(stack.app_pid("web2"), Some(pid), "restarted after refusal");
    let agent = http();
    for door in &doors {
        for _ in 0..30 {
            let r = new_user(&agent, door.port, &ports);
            assert!(
                !from_web2(&r),
                "{}: held-out web2 got a new user ({r:?})",
                door.name
            );
        }
    }
}
