//! Agent identity (issue 10), against the real `usher control`, agents
//! played by the test and `usher ctl`:
//!
//! * `usher ctl agent add` issues an agent its own token, bound to
//!   servers; with it the agent connects and reports on those servers;
//! * a wrong or revoked token is refused with 401 at the upgrade; the
//!   shared token cannot say hello as an agent that has its own token;
//! * a claim outside the binding is refused with an event and changes
//!   nothing in rotation: neither its figures, nor a forged `probe_failed`
//!   event, nor a claim through the shared token;
//! * `usher ctl agent remove` disconnects a live agent within a second;
//! * a stale agent is listed `gone`, then removed with `DELETE`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use usher_core::channel::event_type;
use usher_integration::setup::{runtime, shutdown};
use usher_integration::{eventually, ControlPlane, PlayedAgent};

const CFG_TOKEN: &str = "cfg-agent-token-0123456789";

fn config(extra_manager: &str) -> String {
    let mut c = format!(
        "[manager]\ninterval_ms = 100\nping_after_ms = 500\nsilent_after_ms = 1500\n{extra_manager}\n\
         [[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{}\"\n\n\
         [[agents]]\nid = \"cfg-agent\"\nservers = [\"c\"]\ntoken_file = \"cfg.token\"\n\n",
        usher_integration::free_port()
    );
    for (name, port) in [("a", 20701), ("b", 20702), ("c", 20703)] {
        c.push_str(&format!(
            "[[servers]]\nname = \"{name}\"\napp = \"shop\"\nurl = \"http://127.0.0.1:{port}\"\ncapacity = 5\n"
        ));
    }
    c
}

fn start(extra_manager: &str) -> ControlPlane {
    ControlPlane::start(&config(extra_manager), &[("cfg.token", CFG_TOKEN)])
}

fn server(cp: &ControlPlane, name: &str) -> Value {
    cp.api_ok("GET", "/api/v1/servers", None)
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no server {name}"))
}

fn agent_row(cp: &ControlPlane, id: &str) -> Option<Value> {
    cp.api_ok("GET", "/api/v1/agents", None)
        .as_array()
        .and_then(|a| a.iter().find(|r| r["agent_id"] == id).cloned())
}

fn events(cp: &ControlPlane, kind: &str) -> Vec<String> {
    cp.api_ok("GET", &format!("/api/v1/events?type={kind}"), None)
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["text"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn ok(o: std::process::Output) -> String {
    assert!(
        o.status.success(),
        "usher ctl failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn ended_within(agent: &PlayedAgent, limit: Duration) -> Option<(Duration, String)> {
    let t = Instant::now();
    eventually(limit, || agent.ended().is_some())?;
    Some((t.elapsed(), agent.ended().unwrap_or_default()))
}

#[test]
fn own_tokens_bind_agents_to_their_servers_and_removal_disconnects() {
    let cp = start("");
    let rt = runtime(1);
    let port = cp.admin_port;

    // Issue a token: printed once, on the last line.
    let out = ok(cp.ctl(&["agent", "add", "host-1", "--servers", "a,b"]));
    assert!(out.contains("agent host-1 added, bound to a, b"), "{out}");
    let token = out.lines().last().unwrap_or_default().trim().to_string();
    assert_eq!(token.len(), 64, "{out}");
    let db = std::fs::read(cp.dir.path().join("var/usher.db")).expect("usher.db");
    assert!(
        !db.windows(token.len()).any(|w| w == token.as_bytes()),
        "usher.db must not hold the token itself"
    );

    // host-1 claims a, b and c (c is cfg-agent's); reports on all three
    // and forges a failed probe of c.
    let host1 = PlayedAgent::new("host-1", &["a", "b", "c"], 5_000, Duration::ZERO);
    host1.set_probe_ok("c", false);
    rt.spawn(host1.clone().run(port, token.clone()));
    let measured = eventually(Duration::from_secs(5), || {
        server(&cp, "a")["measured_load"].is_u64() && server(&cp, "b")["measured_load"].is_u64()
    });
    assert!(measured.is_some(), "host-1's figures on a and b arrive");
    host1.send_event("c", event_type::PROBE_FAILED, "forged");
    let refused = eventually(Duration::from_secs(3), || {
        agent_row(&cp, "host-1").is_some_and(|r| r["refused_reports"].as_u64() >= Some(3))
    });
    assert!(refused.is_some(), "{:?}", agent_row(&cp, "host-1"));
    let claims = events(&cp, "claim_refused");
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert!(
        claims[0].contains("server c is not bound to agent host-1"),
        "{claims:?}"
    );
    let reports = events(&cp, "report_refused");
    assert_eq!(reports.len(), 1, "at most one event a minute: {reports:?}");
    let c = server(&cp, "c");
    assert_eq!(c["state"], "ok", "c untouched by host-1: {c}");
    assert!(c["measured_load"].is_null(), "no figures for c: {c}");
    let row = agent_row(&cp, "host-1").expect("listed");
    assert_eq!(row["state"], "connected", "{row}");
    assert_eq!(row["bound_servers"], serde_json::json!(["a", "b"]), "{row}");
    let listed = ok(cp.ctl(&["agents"]));
    assert!(
        listed.lines().any(|l| l.starts_with("host-1 ")
            && l.contains("connected")
            && l.contains("own: a, b")),
        "{listed}"
    );

    // The [[agents]] entry's token (from its file) speaks for c.
    let cfg = PlayedAgent::new("cfg-agent", &["c"], 5_000, Duration::ZERO);
    rt.spawn(cfg.clone().run(port, CFG_TOKEN.into()));
    let c_measured = eventually(Duration::from_secs(5), || {
        server(&cp, "c")["measured_load"].is_u64()
    });
    assert!(c_measured.is_some(), "cfg-agent reports on c");

    // A wrong token: 401 at the upgrade.
    let wrong = PlayedAgent::new("host-1", &["a"], 5_000, Duration::ZERO);
    rt.spawn(wrong.clone().run(port, "not-a-token-at-all".into()));
    let e = ended_within(&wrong, Duration::from_secs(3)).expect("wrong token ends");
    assert_eq!(e.1, "refused: 401");
    // The shared token cannot say hello as host-1 ...
    let posing = PlayedAgent::new("host-1", &["a"], 5_000, Duration::ZERO);
    rt.spawn(posing.clone().run(port, cp.agent_token()));
    let e = ended_within(&posing, Duration::from_secs(3)).expect("refused");
    assert!(
        e.1.starts_with("closed: 1008") && e.1.contains("has its own token"),
        "{e:?}"
    );
    // ... nor claim a server bound to an agent: b stays host-1's.
    let shared = PlayedAgent::new("shared-1", &["b"], 5_000, Duration::ZERO);
    shared.set_probe_ok("b", false);
    rt.spawn(shared.clone().run(port, cp.agent_token()));
    let claimed = eventually(Duration::from_secs(3), || {
        events(&cp, "claim_refused")
            .iter()
            .any(|t| t.contains("server b is bound to agent host-1"))
    });
    assert!(claimed.is_some(), "{:?}", events(&cp, "claim_refused"));
    std::thread::sleep(Duration::from_millis(500));
    for s in ["a", "b", "c"] {
        assert_eq!(server(&cp, s)["state"], "ok", "{}", server(&cp, s));
    }

    // Revoking host-1's token disconnects it within a second.
    let t = Instant::now();
    let out = ok(cp.ctl(&["agent", "remove", "host-1"]));
    assert!(out.contains("its token is revoked"), "{out}");
    let (_, why) = ended_within(&host1, Duration::from_secs(1)).expect("host-1 disconnected");
    let took = t.elapsed();
    assert!(
        why.starts_with("closed: 1008") && why.contains("revoked"),
        "{why}"
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    eprintln!("revocation to close frame: {took:?}");
    let kicked = eventually(Duration::from_secs(2), || {
        events(&cp, "agent_refused")
            .iter()
            .any(|t| t.contains("agent host-1 was disconnected"))
    });
    assert!(kicked.is_some(), "{:?}", events(&cp, "agent_refused"));
    assert!(agent_row(&cp, "host-1").is_none(), "removed from the list");
    // The revoked token opens nothing.
    let again = PlayedAgent::new("host-1", &["a"], 5_000, Duration::ZERO);
    rt.spawn(again.clone().run(port, token));
    let e = ended_within(&again, Duration::from_secs(3)).expect("ends");
    assert_eq!(e.1, "refused: 401");
    shutdown(rt);
}

#[test]
fn stale_agents_are_listed_gone_then_removable() {
    let cp = start("gone_after_s = 2");
    let rt = runtime(1);

    // An agent with its own token that never connected: `never`.
    ok(cp.ctl(&["agent", "add", "ghost", "--servers", "b"]));
    let row = agent_row(&cp, "ghost").expect("listed");
    assert_eq!(row["state"], "never", "{row}");

    // An agent on the shared token: connected, then hung up: silent, gone.
    let old: Arc<PlayedAgent> = PlayedAgent::new("old", &["a"], 5_000, Duration::ZERO);
    rt.spawn(old.clone().run(cp.admin_port, cp.agent_token()));
    let up = eventually(Duration::from_secs(5), || {
        agent_row(&cp, "old").is_some_and(|r| r["state"] == "connected")
    });
    assert!(up.is_some(), "{:?}", agent_row(&cp, "old"));
    let r = cp.api("DELETE", "/api/v1/agents/old", None);
    assert_eq!(r.status, 409, "a connected shared-token agent: {}", r.body);
    assert!(r.body.contains("shared agent token"), "{}", r.body);
    old.hang_up();
    let silent = eventually(Duration::from_secs(2), || {
        agent_row(&cp, "old").is_some_and(|r| r["state"] == "silent")
    });
    assert!(silent.is_some(), "{:?}", agent_row(&cp, "old"));
    let gone = eventually(Duration::from_secs(5), || {
        agent_row(&cp, "old").is_some_and(|r| r["state"] == "gone")
    });
    assert!(gone.is_some(), "{:?}", agent_row(&cp, "old"));
    let listed = ok(cp.ctl(&["agents"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("old ") && l.contains("gone")),
        "{listed}"
    );

    let v = cp.api_ok("DELETE", "/api/v1/agents/old", None);
    assert_eq!(v["removed"], true, "{v}");
    assert_eq!(v["revoked"], false, "{v}");
    assert!(agent_row(&cp, "old").is_none());
    let r = cp.api("DELETE", "/api/v1/agents/old", None);
    assert_eq!(r.status, 404, "{}", r.body);

    // Removing the never-connected agent revokes its token.
    let v = cp.api_ok("DELETE", "/api/v1/agents/ghost", None);
    assert_eq!(v["revoked"], true, "{v}");
    assert!(agent_row(&cp, "ghost").is_none());

    // Bad input names the field.
    let r = cp.api(
        "POST",
        "/api/v1/agents",
        Some(r#"{"id": "x", "servers": []}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["field"], "servers", "{}", r.body);
    let r = cp.api(
        "POST",
        "/api/v1/agents",
        Some(r#"{"id": "y", "servers": ["c"]}"#),
    );
    assert_eq!(r.status, 400, "c is cfg-agent's: {}", r.body);
    assert!(
        r.body.contains("already bound to agent \\\"cfg-agent\\\""),
        "{}",
        r.body
    );
    shutdown(rt);
}
