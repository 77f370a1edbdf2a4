//! The agent's faults cost users nothing (issue 10): under bounded load
//! through the built-in, an nginx and an Envoy front door (all in proxy
//! mode, [`FaultStack`]), the agent is frozen for 10 s (SIGSTOP, SIGCONT),
//! killed (`kill -9`, started again 3 s later) and restarted gracefully
//! (SIGTERM, start). Every request through every door must get its 200.
//!
//! And every lost record is counted: records nginx drops from a full ring
//! while the agent is dead reach the logging database (`dropped` samples of
//! the server) when it is back, with one `ring_overflow` event.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use usher_integration::door_load::{summary, under_load, Tally};
use usher_integration::fault_stack::{FaultSpec, FaultStack};
use usher_integration::{eventually, http};

/// The tests in this file each run a whole stack; one at a time on 2 cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// 3 doors × 2 threads × 60 requests/s: about 360 requests/s in all.
const THREADS_PER_DOOR: usize = 2;
const RPS_PER_THREAD: u32 = 60;
const SETTLE: Duration = Duration::from_secs(3);

fn assert_no_errors(fault: &str, tallies: &BTreeMap<String, Tally>, stack: &FaultStack) {
    eprintln!("{fault}:\n{}", summary(tallies));
    for (door, t) in tallies {
        assert!(t.sent() > 500, "{fault}: {door} sent only {}", t.sent());
        assert_eq!(
            t.errors(200),
            0,
            "{fault}: client errors at the {door} front door:\n{}\n--- agent:\n{}\n--- control:\n{}",
            summary(tallies),
            stack.agent_log(),
            stack.cp.log()
        );
    }
}

/// Waits until the (new) agent is connected and reporting again.
fn wait_reporting(stack: &FaultStack, since: Instant) {
    let back = eventually(Duration::from_secs(10), || {
        let agents = stack.cp.api_ok("GET", "/api/v1/agents", None);
        agents.as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["agent_id"] == "fault-agent" && x["connected"] == true)
        })
    });
    assert!(
        back.is_some(),
        "the agent did not reconnect within 10 s of {:?}:\n{}",
        since.elapsed(),
        stack.agent_log()
    );
}

#[test]
fn agent_stop_kill_and_restart_cost_no_user_a_request() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut stack = FaultStack::start(FaultSpec::default());
    let doors = stack.doors();
    assert_eq!(doors.len(), 3);

    // Frozen for 10 s: connection open, nothing said.
    let t = under_load(&doors, THREADS_PER_DOOR, RPS_PER_THREAD, SETTLE, || {
        stack.signal_agent("STOP");
        std::thread::sleep(Duration::from_secs(10));
        stack.signal_agent("CONT");
    });
    assert_no_errors("agent SIGSTOP 10 s", &t, &stack);
    let silent = stack.events("agent_silent");
    assert!(!silent.is_empty(), "a frozen agent is noticed: {silent:?}");

    // kill -9, back 3 s later.
    let t = under_load(&doors, THREADS_PER_DOOR, RPS_PER_THREAD, SETTLE, || {
        stack.kill_agent();
        std::thread::sleep(Duration::from_secs(3));
        stack.start_agent();
        wait_reporting(&stack, Instant::now());
    });
    assert_no_errors("agent kill -9, restart after 3 s", &t, &stack);

    // Graceful restart.
    let t = under_load(&doors, THREADS_PER_DOOR, RPS_PER_THREAD, SETTLE, || {
        stack.stop_agent();
        stack.start_agent();
        wait_reporting(&stack, Instant::now());
    });
    assert_no_errors("agent graceful restart", &t, &stack);
    let failed = stack.events("server_failed");
    assert!(failed.is_empty(), "no server failed: {failed:?}");
}

/// Sum of the `dropped` samples of `server` in the logging database.
fn dropped_logged(stack: &FaultStack, server: &str) -> u64 {
    let rows = stack.cp.api_ok(
        "GET",
        &format!("/api/v1/metrics?component=server:{server}&metric=dropped&limit=10000"),
        None,
    );
    rows.as_array()
        .map(|a| a.iter().filter_map(|r| r["value"].as_f64()).sum::<f64>())
        .unwrap_or(0.0) as u64
}

#[test]
fn records_dropped_while_the_agent_is_dead_reach_the_logging_database() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // 4 KiB rings hold a few dozen records per worker.
    let mut stack = FaultStack::start(FaultSpec {
        servers: vec!["tiny".into()],
        ring_size: "4k".into(),
        doors: false,
        ..FaultSpec::default()
    });
    let nginx = &stack.servers[0];
    assert_eq!(nginx.counters()["records_dropped"], 0);
    assert_eq!(dropped_logged(&stack, "tiny"), 0);

    stack.kill_agent();
    let client = http();
    let n = 400;
    for i in 0..n {
        let r =
            usher_integration::call(client.get(&stack.servers[0].url(&format!("/?d={i}"))), None);
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    let nginx_dropped = stack.servers[0].counters()["records_dropped"]
        .as_u64()
        .expect("records_dropped");
    assert!(
        nginx_dropped > 0,
        "a 4k ring overflows: {}",
        stack.servers[0].counters()
    );

    stack.start_agent();
    let logged = eventually(Duration::from_secs(10), || {
        dropped_logged(&stack, "tiny") >= nginx_dropped
    });
    let got = dropped_logged(&stack, "tiny");
    eprintln!("nginx dropped {nginx_dropped} records while the agent was dead; the logging database counts {got}");
    assert!(
        logged.is_some(),
        "dropped records logged: {got} of {nginx_dropped}\n{}",
        stack.agent_log()
    );
    let overflow = eventually(Duration::from_secs(5), || {
        !stack.events("ring_overflow").is_empty()
    });
    assert!(overflow.is_some(), "a ring_overflow event");
    let events = stack.events("ring_overflow");
    assert_eq!(events.len(), 1, "one event: {events:?}");
    assert_eq!(events[0]["origin_name"], "tiny", "{}", events[0]);
    assert_eq!(events[0]["type_code"], 133, "{}", events[0]);

    // More drops within the minute: counted, not told again.
    stack.kill_agent();
    for i in 0..200 {
        let r =
            usher_integration::call(client.get(&stack.servers[0].url(&format!("/?e={i}"))), None);
        assert_eq!(r.status, 200);
    }
    let nginx_dropped = stack.servers[0].counters()["records_dropped"]
        .as_u64()
        .expect("records_dropped");
    stack.start_agent();
    let logged = eventually(Duration::from_secs(10), || {
        dropped_logged(&stack, "tiny") >= nginx_dropped
    });
    assert!(
        logged.is_some(),
        "{} of {nginx_dropped}",
        dropped_logged(&stack, "tiny")
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        stack.events("ring_overflow").len(),
        1,
        "once a minute per server"
    );
}
