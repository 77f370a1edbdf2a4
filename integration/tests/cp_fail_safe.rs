//! usher's own faults do not take a healthy site down (issue 10, first
//! part), against the real `usher control` with an agent played by the test:
//!
//! * missing data is not failure: an agent that falls silent (connection
//!   open, nothing sent: as under SIGSTOP) or hangs up (as under `kill -9`)
//!   fails none of its servers: referrals keep reaching all of them, and an
//!   `agent_silent` event is logged;
//! * a failed probe does take its server out, at once;
//! * panic: when fewer than the app's threshold (50 %) of its enabled
//!   servers are in rotation, the front doors use every enabled server
//!   (event `app_panic`), and say so again when it ends (`app_panic_over`);
//! * a second connection with a live agent's id, and a hello claiming
//!   another agent's server, change nothing in rotation: an event each.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use usher_integration::setup::{runtime, shutdown};
use usher_integration::{call, eventually, free_port, http, ControlPlane, PlayedAgent};

const PORTS: [(&str, u16); 3] = [("a", 20601), ("b", 20602), ("c", 20603)];

fn config(front: u16) -> String {
    let mut c = format!(
        "[manager]\ninterval_ms = 100\nping_after_ms = 500\nsilent_after_ms = 1500\n\n\
         [[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\n\n"
    );
    for (name, port) in PORTS {
        c.push_str(&format!(
            "[[servers]]\nname = \"{name}\"\napp = \"shop\"\nurl = \"http://127.0.0.1:{port}\"\ncapacity = 5\n"
        ));
    }
    c
}

/// Where `n` new users are referred, by server name; every answer must be
/// a 302 to a configured server.
fn referrals(front: u16, n: usize) -> BTreeMap<&'static str, usize> {
    let agent = http();
    let mut counts = BTreeMap::new();
    for i in 0..n {
        let r = call(agent.get(&format!("http://127.0.0.1:{front}/p{i}")), None);
        assert_eq!(
            r.status, 302,
            "a user was turned away: {} {}",
            r.status, r.body
        );
        let loc = r.location.unwrap_or_default();
        let name = PORTS
            .iter()
            .find(|(_, p)| loc.starts_with(&format!("http://127.0.0.1:{p}/")))
            .map(|(n, _)| *n)
            .unwrap_or_else(|| panic!("Location {loc} is not a configured server"));
        *counts.entry(name).or_default() += 1;
    }
    counts
}

/// Not failed: `ok`, or `slow-start` (a server back from failed probes
/// ramps its share up; that is no failure).
fn in_rotation(state: &str) -> bool {
    state == "ok" || state == "slow-start"
}

fn states(cp: &ControlPlane) -> BTreeMap<String, String> {
    let all = cp.api_ok("GET", "/api/v1/servers", None);
    all.as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or("?").to_string(),
                        s["state"].as_str().unwrap_or("?").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn events(cp: &ControlPlane, kind: &str) -> Vec<Value> {
    cp.api_ok("GET", &format!("/api/v1/events?type={kind}"), None)
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn all_reached(c: &BTreeMap<&str, usize>) -> bool {
    PORTS
        .iter()
        .all(|(n, _)| c.get(n).copied().unwrap_or(0) > 0)
}

/// A control plane for `config`, its agent token and a runtime for played agents.
struct Setup {
    front: u16,
    cp: ControlPlane,
    token: String,
    rt: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    let front = free_port();
    let cp = ControlPlane::start(&config(front), &[]);
    let token = cp.agent_token();
    let rt = runtime(1);
    Setup {
        front,
        cp,
        token,
        rt,
    }
}

/// Starts `agent` and waits until its figures for every server arrived.
fn start_agent(
    rt: &tokio::runtime::Runtime,
    cp: &ControlPlane,
    token: &str,
    agent: &Arc<PlayedAgent>,
) {
    rt.spawn(agent.clone().run(cp.admin_port, token.to_string()));
    let measured = eventually(Duration::from_secs(5), || {
        let all = cp.api_ok("GET", "/api/v1/servers", None);
        all.as_array()
            .is_some_and(|a| a.iter().all(|s| s["measured_load"].as_u64().is_some()))
    });
    assert!(measured.is_some(), "{}'s figures arrive", agent.agent_id);
}

#[test]
fn silence_is_no_failure_probes_are_and_panic_keeps_users_in() {
    let Setup {
        front,
        cp,
        token,
        rt,
    } = setup();
    let agent = PlayedAgent::new("fs-agent", &["a", "b", "c"], 5_000, Duration::ZERO);
    start_agent(&rt, &cp, &token, &agent);

    // A failed probe takes its server out at once; the others carry on.
    agent.set_probe_ok("a", false);
    let out = eventually(Duration::from_secs(2), || states(&cp)["a"] == "failed");
    assert!(out.is_some(), "a failed probe fails a: {:?}", states(&cp));
    let c = referrals(front, 300);
    assert_eq!(c.get("a"), None, "no new users for a failed server: {c:?}");

    // Panic: with b failed too, one of three (< 50 %) is left: every enabled
    // server gets users again, and the operator hears of it.
    agent.set_probe_ok("b", false);
    let panicked = eventually(Duration::from_secs(3), || {
        states(&cp)["b"] == "failed" && !events(&cp, "app_panic").is_empty()
    });
    assert!(
        panicked.is_some(),
        "app_panic event: {:?} {:?}",
        states(&cp),
        events(&cp, "app_panic")
    );
    let c = referrals(front, 600);
    assert!(
        all_reached(&c),
        "in panic every enabled server gets users: {c:?}"
    );
    agent.set_probe_ok("a", true);
    agent.set_probe_ok("b", true);
    let over = eventually(Duration::from_secs(3), || {
        !events(&cp, "app_panic_over").is_empty()
    });
    assert!(over.is_some(), "app_panic_over event");
    assert_eq!(events(&cp, "app_panic").len(), 1, "one app_panic event");

    // Silence (as under SIGSTOP): past ping and silent_after, no server is
    // failed and every one still gets users.
    agent.set_silent(true);
    let silent = eventually(Duration::from_secs(5), || {
        !events(&cp, "agent_silent").is_empty()
    });
    assert!(silent.is_some(), "agent_silent event");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        states(&cp).values().all(|s| in_rotation(s)),
        "a silent agent failed a server: {:?}",
        states(&cp)
    );
    let c = referrals(front, 600);
    assert!(all_reached(&c), "users still reach every server: {c:?}");

    // Hung up (as under kill -9): the same.
    agent.set_silent(false);
    std::thread::sleep(Duration::from_millis(300));
    agent.hang_up();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        states(&cp).values().all(|s| in_rotation(s)),
        "a gone agent failed a server: {:?}",
        states(&cp)
    );
    let c = referrals(front, 600);
    assert!(all_reached(&c), "users still reach every server: {c:?}");

    // The agent comes back (a restart): still nothing failed, no panic.
    let again = PlayedAgent::new("fs-agent", &["a", "b", "c"], 5_000, Duration::ZERO);
    rt.spawn(again.clone().run(cp.admin_port, token));
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        states(&cp).values().all(|s| in_rotation(s)),
        "{:?}",
        states(&cp)
    );
    assert_eq!(events(&cp, "app_panic").len(), 1, "no panic from a restart");
    shutdown(rt);
}

#[test]
fn a_second_connection_or_a_foreign_claim_changes_nothing() {
    let Setup {
        front,
        cp,
        token,
        rt,
    } = setup();
    let owner = PlayedAgent::new("owner", &["a", "b", "c"], 5_000, Duration::ZERO);
    start_agent(&rt, &cp, &token, &owner);

    // The same id again (a copied agent.toml, a forger): refused, and its
    // failed probe and its hang-up touch nothing.
    let twin = PlayedAgent::new("owner", &["a", "b", "c"], 5_000, Duration::ZERO);
    twin.set_probe_ok("a", false);
    rt.spawn(twin.clone().run(cp.admin_port, token.clone()));
    // Another id claiming a server the owner watches: the claim is ignored.
    let intruder = PlayedAgent::new("intruder", &["b"], 5_000, Duration::ZERO);
    intruder.set_probe_ok("b", false);
    rt.spawn(intruder.clone().run(cp.admin_port, token));
    let both = eventually(Duration::from_secs(3), || {
        events(&cp, "agent_refused").len() == 1 && events(&cp, "claim_refused").len() == 1
    });
    assert!(
        both.is_some(),
        "one event each: {:?} {:?}",
        events(&cp, "agent_refused"),
        events(&cp, "claim_refused")
    );
    std::thread::sleep(Duration::from_millis(1000));
    twin.hang_up();
    intruder.hang_up();
    for _ in 0..10 {
        assert!(
            states(&cp).values().all(|s| in_rotation(s)),
            "rotation changed: {:?}",
            states(&cp)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let c = referrals(front, 600);
    assert!(all_reached(&c), "users still reach every server: {c:?}");
    // The owner's connection still works: its own failed probe counts.
    owner.set_probe_ok("c", false);
    let out = eventually(Duration::from_secs(2), || states(&cp)["c"] == "failed");
    assert!(
        out.is_some(),
        "the owner still speaks for c: {:?}",
        states(&cp)
    );
    shutdown(rt);
}
