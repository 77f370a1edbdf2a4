//! The control plane goes away for a while (3 s here; `USHER_OUTAGE_SECS`
//! sets it, e.g. 30 for the figure) while events happen on the
//! agent's host: after it comes back every event is in the logging
//! database exactly once, and so is every other sequenced message (no gap,
//! no duplicate in the agent's sequence numbers). The demo app keeps
//! serving throughout.

use std::time::Duration;

use usher_integration::{
    agent_config, call, eventually, free_port, get_json as api, http, manager_agent_token,
    start_agent, start_manager, AgentBinary, DemoApp,
};

fn probe_events(port: u16, token: &str) -> Vec<(String, u64)> {
    let v = api(port, "/api/v1/events?component=web1&limit=10000", token);
    let mut out: Vec<(String, u64)> = v
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["agent_id"] == "agent-1")
        .map(|e| {
            (
                e["type_name"].as_str().unwrap_or_default().to_string(),
                e["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    out.sort_by_key(|(_, seq)| *seq);
    out
}

#[test]
fn events_during_a_control_plane_outage_arrive_exactly_once() {
    let outage: u64 = std::env::var("USHER_OUTAGE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = "admin-secret";
    let mport = free_port();
    let mut mgr = start_manager(dir.path(), mport, admin);
    let token = manager_agent_token(dir.path());
    let mut web = DemoApp::spec("web1")
        .workers(4)
        .service_ms(1)
        .log_dir(dir.path())
        .start();
    let wport = web.port;
    let _agent = start_agent(
        dir.path(),
        &agent_config(dir.path(), mport, &token, &[("web1", wport)], None),
        AgentBinary::Standalone,
    );

    // Connected and reporting.
    eventually(Duration::from_secs(10), || {
        api(
            mport,
            "/api/v1/metrics?component=server:web1&metric=probe_ok&limit=1",
            admin,
        )[0]["value"]
            == 1.0
    })
    .expect("agent reports a healthy web1");

    // Outage: the manager stops; meanwhile web1 goes down and up twice.
    mgr.stop();
    for _ in 0..2 {
        web.stop();
        std::thread::sleep(Duration::from_millis(outage * 1000 / 4));
        web.launch();
        // The app serves while the control plane is away.
        let r = call(http().get(&format!("http://127.0.0.1:{wport}/")), None);
        assert_eq!(r.status, 200);
        std::thread::sleep(Duration::from_millis(outage * 1000 / 4));
    }

    let _mgr = start_manager(dir.path(), mport, admin);
    // Every probe event the agent raised: two failures, two recoveries, in order.
    let want = [
        "probe_failed",
        "probe_recovered",
        "probe_failed",
        "probe_recovered",
    ];
    let took = eventually(Duration::from_secs(15), || {
        probe_events(mport, admin).len() >= want.len()
    });
    let events = probe_events(mport, admin);
    assert!(took.is_some(), "events after the outage: {events:?}");
    assert_eq!(
        events.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        want,
        "{events:?}"
    );

    // Exactly once, no gap: the stored sequence numbers of this agent are
    // 1..=max with no hole (duplicates are impossible by the primary key).
    std::thread::sleep(Duration::from_millis(500));
    let db =
        rusqlite::Connection::open(dir.path().join("manager/usher-log.db")).expect("open log db");
    let (n, lo, hi): (i64, i64, i64) = db
        .query_row(
            "SELECT COUNT(*), MIN(seq), MAX(seq) FROM received WHERE agent_id = 'agent-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("query");
    assert_eq!(lo, 1);
    assert_eq!(
        n,
        hi - lo + 1,
        "gap in the agent's stored messages: {n} stored, seq {lo}..={hi}"
    );
    let dup: i64 = db
        .query_row("SELECT COUNT(*) FROM (SELECT agent_id, seq FROM events GROUP BY agent_id, seq HAVING COUNT(*) > 1)", [], |r| r.get(0))
        .expect("query");
    assert_eq!(dup, 0);
    assert!(
        hi as u64 >= outage * 5,
        "reports from the outage were kept too: {hi} messages"
    );
}
