//! Closed loop, done-when (b): killing a server (its demo app, by PID, with
//! SIGKILL) takes it out of rotation within 1 s — the front door stops
//! referring users to it — with a `server_failed` event in the logging
//! database (read through the admin API); restarting it brings it back,
//! with a `server_recovered` event. nginx stays up: the agent's probe
//! through it gets 502 from the dead app, which is the failure it must see.

use std::time::{Duration, Instant};

use usher_integration::closed_loop::Stack;
use usher_integration::{eventually, http, secs};

/// Front-door requests per check while waiting for a change.
const PROBE_BATCH: usize = 60;

#[test]
fn a_killed_server_leaves_rotation_within_1_s_and_returns_after_restart() {
    let mut stack = Stack::start("");
    let agent = http();
    let victim = stack.apps[2].name.clone();

    let base = stack.referrals(&agent, 600);
    assert!(
        base[victim.as_str()] > 100,
        "{victim} gets its share first: {base:?}"
    );

    // Kill the demo app behind web3's nginx.
    stack.apps[2].kill();
    let t = Instant::now();
    let mut gone = None;
    let mut trace = Vec::new();
    while t.elapsed() < Duration::from_secs(3) {
        let c = stack.referrals(&agent, PROBE_BATCH);
        trace.push((secs(t), c[victim.as_str()]));
        if c[victim.as_str()] == 0 {
            gone = Some(secs(t));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let gone = gone.unwrap_or_else(|| {
        panic!(
            "{victim} still gets referrals 3 s after its app died: {trace:?}; servers {:?}\n{}",
            stack.servers(),
            stack.agent_log()
        )
    });
    eprintln!("{victim} out of rotation after {gone} s: {trace:?}");
    assert!(
        gone <= 1.0,
        "{victim} left rotation only after {gone} s: {trace:?}"
    );
    let after = stack.referrals(&agent, 1000);
    assert_eq!(
        after[victim.as_str()],
        0,
        "referrals after the failure: {after:?}"
    );
    assert_eq!(after.values().sum::<usize>(), 1000);
    let s = &stack.servers()[victim.as_str()];
    assert!(s["failed"].is_string(), "{victim} is marked failed: {s}");
    assert_eq!(s["load_metric"].as_f64(), Some(0.0), "{s}");

    // The event is in the logging database.
    let failed = eventually(Duration::from_secs(2), || {
        let v = stack.get(&format!(
            "/api/v1/events?component={victim}&type=server_failed"
        ));
        v.as_array().is_some_and(|a| a.len() == 1)
    });
    assert!(
        failed.is_some(),
        "one server_failed event for {victim}: {}",
        stack.get("/api/v1/events")
    );
    let ev = stack.get(&format!("/api/v1/events?component={victim}&type=210"));
    assert_eq!(ev[0]["type_name"], "server_failed", "{ev}");
    assert!(ev[0]["time_logged_us"].as_i64().is_some(), "{ev}");

    // Restart it on the same port: back in rotation, with an event.
    stack.apps[2].launch();
    let t = Instant::now();
    let back = eventually(Duration::from_secs(5), || {
        stack.referrals(&agent, PROBE_BATCH)[victim.as_str()] > 0
    });
    assert!(
        back.is_some(),
        "{victim} never came back: servers {:?}",
        stack.servers()
    );
    eprintln!("{victim} back in rotation after {} s", secs(t));
    let again = stack.referrals(&agent, 1500);
    let share = again[victim.as_str()] as f64 / 1500.0;
    assert!(
        (0.2..=0.47).contains(&share),
        "{victim} has its share again (about 1/3): {again:?}"
    );
    let recovered = eventually(Duration::from_secs(2), || {
        stack
            .get(&format!(
                "/api/v1/events?component={victim}&type=server_recovered"
            ))
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    assert!(
        recovered.is_some(),
        "one server_recovered event for {victim}: {}",
        stack.get("/api/v1/events")
    );
    assert!(stack.servers()[victim.as_str()]["failed"].is_null());

    // `usher ctl events` shows both.
    let out = stack
        .cp
        .ctl(&["events", "--component", &victim, "--since", "5m"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("210 server_failed") && text.contains("211 server_recovered"),
        "usher ctl events:\n{text}"
    );
}
