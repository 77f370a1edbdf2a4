//! Envoy + usher filter, server role: a pushed redirect order sends users
//! away (302 to the configured target, path kept), never from a stateful
//! page or a cookie-marked request; a newer snapshot turns it off; and a
//! change reaches every worker (`--concurrency 2`) within one second.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use usher_integration::envoy::*;
use usher_integration::{call, eventually, free_port, fresh_get, fresh_get_worker, http, DemoApp};

fn start(dir: &std::path::Path) -> (DemoApp, Envoy) {
    let app = demo_app(dir, "a");
    let plugin = json!({"role": "server", "app": "shop", "stateful": ["/cart"], "session_cookie": "usher_session"});
    let envoy = start_envoy(
        dir,
        &EnvoySpec {
            plugin: plugin.to_string(),
            app_ports: vec![app.port],
            override_host: false,
            agent_port: free_port(),
        },
    );
    (app, envoy)
}

fn redirect_to(version: u64, target: &str) -> serde_json::Value {
    json!({"version": version, "orders": {"redirect": {"target": target},
           "rules": {"stateful_prefixes": ["/checkout/"]}}})
}

#[test]
fn redirect_on_and_off_never_for_stateful_pages_or_session_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_app, envoy) = start(dir.path());
    let agent = http();
    let get = |path: &str, cookie: Option<&str>| {
        let mut req = agent.get(&envoy.url(path));
        if let Some(c) = cookie {
            req = req.set("cookie", c);
        }
        call(req, None)
    };
    assert_eq!(get("/", None).status, 200, "no redirect before any order");

    envoy.push(redirect_to(10, "http://127.0.0.1:9/"));
    let on = eventually(Duration::from_secs(2), || get("/", None).status == 302);
    assert!(on.is_some(), "redirect order not applied");
    let r = get("/shop/item?id=7", None);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.location.as_deref(),
        Some("http://127.0.0.1:9/shop/item?id=7")
    );
    let r = get("/cart", None);
    assert_eq!(
        (r.status, r.location.is_none()),
        (200, true),
        "stateful page (plugin config) kept"
    );
    let r = get("/checkout/pay", None);
    assert_ne!(r.status, 302, "stateful prefix (snapshot rules) kept");
    let r = get("/", Some("theme=dark; usher_session=abc"));
    assert_eq!(r.status, 200, "session user kept");
    assert!(r.body.contains("hello from a"));
    assert_eq!(get("/", Some("not_usher_session=abc")).status, 302);
    // Counts reach the shared metric on the worker's next tick.
    let counted = eventually(Duration::from_secs(2), || {
        envoy.counters()["redirects"].as_u64() >= Some(3)
    });
    assert!(counted.is_some(), "redirects counted: {}", envoy.counters());

    // A stale push is refused and changes nothing.
    let stale = envoy.command(&json!({"type": "snapshot", "snapshot": {"version": 9}}).to_string());
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert_eq!(stale.json()["current"], 10);
    assert_eq!(get("/", None).status, 302);

    envoy.push(json!({"version": 11}));
    let off = eventually(Duration::from_secs(2), || get("/", None).status == 200);
    assert!(off.is_some(), "redirect not turned off");
    assert_eq!(envoy.counters()["version"], 11);
}

#[test]
fn a_pushed_change_reaches_every_worker_within_one_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_app, envoy) = start(dir.path());
    envoy.push(redirect_to(100, "http://127.0.0.1:1/"));
    // Every worker in the filter's roll took the first snapshot.
    let ready = eventually(Duration::from_secs(10), || {
        envoy.all_workers_applied() == Some(100)
    });
    assert!(
        ready.is_some(),
        "workers never all applied version 100: {}",
        envoy.counters()["workers_applied"]
    );
    let (_, location, _) = fresh_get_worker(&envoy.url("/"));
    assert_eq!(location.as_deref(), Some("http://127.0.0.1:1/"));

    let pushed_at = Instant::now();
    envoy.push(redirect_to(101, "http://127.0.0.1:2/"));
    let applied = eventually(Duration::from_secs(3), || {
        envoy.all_workers_applied() == Some(101)
    });
    assert!(
        applied.is_some(),
        "not every worker applied 101: {}",
        envoy.counters()["workers_applied"]
    );
    let took = pushed_at.elapsed();
    assert!(
        took <= Duration::from_secs(1),
        "every worker after {took:?}"
    );
    // From then on every answer, on whichever worker, has the new target.
    let mut workers = BTreeSet::new();
    for _ in 0..50 {
        let (status, location, worker) = fresh_get_worker(&envoy.url("/"));
        assert_eq!(
            (status, location.as_deref()),
            (302, Some("http://127.0.0.1:2/")),
            "worker {worker:?} after every worker reported 101"
        );
        workers.extend(worker);
    }
    eprintln!(
        "change applied by every worker after {took:?}; answers from {} worker(s)",
        workers.len()
    );
}

#[test]
fn probes_and_methods_other_than_get_and_head_are_served_where_they_landed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_app, envoy) = start(dir.path());
    let agent = http();
    envoy.push(redirect_to(20, "http://127.0.0.1:9/"));
    let on = eventually(Duration::from_secs(2), || {
        (0..10).all(|_| fresh_get(&envoy.url("/")).status == 302)
    });
    assert!(on.is_some(), "redirect order not applied");
    let r = call(agent.get(&envoy.url("/")), None);
    assert_eq!(r.status, 302);
    assert_eq!(r.location.as_deref(), Some("http://127.0.0.1:9/"));

    // The agent's probe (and any query carrying its parameter) is served.
    for path in ["/health?usher-probe=7", "/health?a=1&usher-probe=8"] {
        let r = call(agent.get(&envoy.url(path)), None);
        assert_eq!(r.status, 200, "probe {path} served, not redirected");
        assert_eq!(r.location, None, "{path}");
        assert_eq!(r.body, "ok a\n", "{path} answered by the app");
    }
    // A look-alike parameter is no probe.
    let r = call(agent.get(&envoy.url("/health?xusher-probe=7")), None);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.location.as_deref(),
        Some("http://127.0.0.1:9/health?xusher-probe=7")
    );

    // POST (with a body) and PUT reach the app: the demo app only serves
    // GET on `/`, so its own 404 text shows the request got there.
    for req in [agent.post(&envoy.url("/")), agent.put(&envoy.url("/"))] {
        let r = call(req.set("content-type", "text/plain"), Some("name=value"));
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(r.location, None);
        assert_eq!(r.body, "not found\n", "the app's own answer");
    }
    // …and a POST the app serves is answered by it.
    let r = call(agent.post(&envoy.url("/control")), Some("x"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["name"], "a");

    // HEAD is redirected like GET.
    let r = call(agent.head(&envoy.url("/static.html?v=2")), None);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.location.as_deref(),
        Some("http://127.0.0.1:9/static.html?v=2")
    );
}
