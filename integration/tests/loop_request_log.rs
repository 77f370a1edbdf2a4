//! Closed loop, done-when (c): every request of a test run appears exactly
//! once in the request log (admin API request query) with the selected
//! fields. Users come through the front door (redirect mode) and follow the
//! Location to one of three real nginx servers; each request carries a
//! unique tag in its query string; nginx's usher module records it into its
//! ring, `usher agent` forwards the records in batches, the manager writes
//! them into the logging database.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use usher_integration::closed_loop::Stack;
use usher_integration::{call, eventually, http};

const USERS: usize = 300;

#[test]
fn every_request_is_logged_exactly_once_with_its_fields() {
    let stack = Stack::start("");
    let agent = http();
    let tag = format!("run{}", std::process::id());
    let mut sent: BTreeMap<String, &'static str> = BTreeMap::new();
    for i in 0..USERS {
        let id = format!("{tag}-{i}");
        let r = call(
            agent.get(&format!(
                "http://127.0.0.1:{}/?id={id}",
                stack.front_door_port
            )),
            None,
        );
        assert!((300..400).contains(&r.status), "front door: {}", r.status);
        let loc = r.location.expect("Location");
        let server = stack.server_of(&loc).expect("a server");
        assert!(loc.ends_with(&format!("/?id={id}")), "Location {loc}");
        let page = call(agent.get(&loc), None);
        assert_eq!(page.status, 200, "{loc}: {}", page.body);
        assert!(page.body.contains(&format!("hello from {server}")));
        sent.insert(id, server);
    }

    let rows = |stack: &Stack| -> Vec<Value> {
        stack
            .get("/api/v1/requests?limit=10000")
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| {
                r["request_line"]
                    .as_str()
                    .is_some_and(|l| l.contains(&format!("id={tag}-")))
            })
            .collect()
    };
    let complete = eventually(Duration::from_secs(10), || rows(&stack).len() >= USERS);
    let logged = rows(&stack);
    assert!(
        complete.is_some(),
        "{} of {USERS} requests logged after 10 s",
        logged.len()
    );
    // Nothing more arrives late (no duplicates from resends).
    std::thread::sleep(Duration::from_millis(800));
    let logged = rows(&stack);
    assert_eq!(logged.len(), USERS, "each request once, no more");

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in &logged {
        let line = r["request_line"].as_str().unwrap_or_default();
        let id = line
            .split("id=")
            .nth(1)
            .and_then(|x| x.split_whitespace().next())
            .unwrap_or_default()
            .to_string();
        *seen.entry(id.clone()).or_default() += 1;
        let server = sent
            .get(&id)
            .unwrap_or_else(|| panic!("logged request {id} was never sent: {r}"));
        assert_eq!(r["server"], *server, "{r}");
        assert_eq!(r["agent_id"], "loop-agent", "{r}");
        assert_eq!(r["method"], "GET", "{r}");
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["content_path"], "/", "{r}");
        assert_eq!(line, format!("GET /?id={id} HTTP/1.1"), "{r}");
        assert!(
            r["start_time_us"].as_i64().unwrap_or(0) > 1_700_000_000_000_000,
            "{r}"
        );
        let pt = r["processing_time_us"].as_i64().unwrap_or(-1);
        // The demo app serves in 10 ms.
        assert!(
            (9_000..2_000_000).contains(&pt),
            "processing time {pt}: {r}"
        );
        assert!(
            r["client_endpoint"]
                .as_str()
                .is_some_and(|c| c.starts_with("127.0.0.1:")),
            "{r}"
        );
        // Not selected in nginx's usher_record: not logged.
        assert!(r["user_agent"].is_null(), "{r}");
    }
    assert_eq!(seen.len(), USERS);
    assert!(seen.values().all(|n| *n == 1), "duplicates: {seen:?}");

    // The same through `usher ctl requests`.
    let out = stack.cp.ctl(&[
        "requests", "--server", "web1", "--path", "/", "--limit", "10000", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let web1 = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| {
                    r["request_line"]
                        .as_str()
                        .is_some_and(|l| l.contains(&format!("id={tag}-")))
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(web1, sent.values().filter(|s| **s == "web1").count());

    // The other log views through `usher ctl`, as tables.
    let table = |args: &[&str]| -> String {
        let out = stack.cp.ctl(args);
        assert!(
            out.status.success(),
            "usher ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let agents = table(&["agents"]);
    assert!(
        agents.starts_with("AGENT")
            && agents.contains("loop-agent")
            && agents.contains("web2: load "),
        "usher ctl agents:\n{agents}"
    );
    let hosts = table(&["hosts"]);
    assert!(
        hosts.starts_with("HOST") && hosts.contains("loop-agent"),
        "usher ctl hosts:\n{hosts}"
    );
    let metrics = table(&[
        "metrics",
        "--component",
        "server:web1",
        "--metric",
        "dynamic_load",
        "--since",
        "1m",
        "--limit",
        "3",
    ]);
    assert_eq!(
        metrics
            .lines()
            .filter(|l| l.contains("server:web1  dynamic_load"))
            .count(),
        3,
        "usher ctl metrics:\n{metrics}"
    );
    let requests = table(&[
        "requests", "--server", "web3", "--status", "200", "--limit", "5",
    ]);
    assert_eq!(
        requests.lines().count(),
        6,
        "usher ctl requests:\n{requests}"
    );
}
