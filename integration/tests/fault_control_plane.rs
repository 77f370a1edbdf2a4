//! The control plane's crash costs users nothing (issue 10): under bounded
//! load through the built-in front door (run as `usher door`, its own
//! process), an nginx and an Envoy front door (all in proxy mode,
//! [`FaultStack`]), `usher control` is killed with SIGKILL and started
//! again 10 s later. Every request through every door must get its 200, and
//! afterwards the loop runs again: every front door gets pushes and the
//! agent's reports reach the new control plane.

use std::time::Duration;

use usher_integration::door_load::{assert_all_served, summary, under_load};
use usher_integration::fault_stack::{FaultSpec, FaultStack};
use usher_integration::{eventually, send_signal};

#[test]
fn a_killed_control_plane_costs_no_user_a_request() {
    let mut stack = FaultStack::start(FaultSpec {
        separate_door: true,
        ..FaultSpec::default()
    });
    let doors = stack.doors();
    assert_eq!(doors.len(), 3, "built-in, nginx and Envoy doors");
    let versions = |s: &FaultStack| {
        [
            s.usher_door.as_ref().map_or(0, |d| d.version("shop")),
            s.nginx_door
                .as_ref()
                .map_or(0, |n| n.counters()["version"].as_u64().unwrap_or(0)),
            s.envoy_door
                .as_ref()
                .map_or(0, |e| e.counters()["version"].as_u64().unwrap_or(0)),
        ]
    };
    let mut before = [0; 3];
    // 3 doors × 2 threads × 60 requests/s, 3 s before and after the outage.
    let tallies = under_load(&doors, 2, 60, Duration::from_secs(3), || {
        let pid = stack.cp.pid().expect("control plane runs");
        send_signal("KILL", &pid.to_string());
        std::thread::sleep(Duration::from_secs(10));
        before = versions(&stack);
        stack.cp.restart();
    });
    eprintln!("control plane killed for 10 s:\n{}", summary(&tallies));
    assert_all_served(&tallies, 1_500);
    // The loop runs again: new snapshots at every front door, and the
    // agent's measurements at the new control plane.
    let pushed = eventually(Duration::from_secs(10), || {
        versions(&stack)
            .iter()
            .zip(before)
            .all(|(now, then)| *now > then)
    });
    assert!(
        pushed.is_some(),
        "front doors not pushed to after the restart: {before:?} -> {:?}\n{}",
        versions(&stack),
        stack.cp.log()
    );
    let measured = eventually(Duration::from_secs(10), || {
        let rows = stack.server_rows();
        rows.len() == 3 && rows.iter().all(|s| s["dynamic_load"].as_u64().is_some())
    });
    assert!(
        measured.is_some(),
        "no measurements after the restart: {:?}\n--- agent:\n{}",
        stack.server_rows(),
        stack.agent_log()
    );
}
