//! Server role, redirects and the command endpoint: snapshots pushed to real
//! nginx turn redirection on and off for every worker, never for stateful
//! pages or users with the session cookie; stale, bad and unauthorised
//! commands change nothing.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use usher_integration::{call, http, DemoApp, Nginx};

const TARGET: &str = "http://127.0.0.1:9";

fn server(app: &DemoApp) -> Nginx {
    Nginx::start(
        "usher_ring {RING} 64k;",
        &format!(
            "usher_role server; usher_app shop; usher_stateful_prefix /checkout/;\n location / {{ proxy_pass {}; }}",
            app.url()
        ),
    )
}

fn redirect_on(version: u64) -> Value {
    json!({
        "version": version,
        "orders": {
            "redirect": {"target": TARGET},
            "rules": {"stateful": ["/cart"], "session_cookie": "usher_session"}
        }
    })
}

#[test]
fn redirect_on_moves_stateless_pages_only_and_off_serves_again() {
    let app = DemoApp::start("redir", 0);
    let nginx = server(&app);
    assert_eq!(nginx.get("/").status, 200, "no snapshot yet: served");

    let r = nginx.push(&redirect_on(10));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["applied"], 10);

    for path in ["/", "/static.html?x=1&y=2", "/health"] {
        let r = nginx.get(path);
        assert_eq!(r.status, 302, "{path} is redirected");
        assert_eq!(
            r.location.as_deref(),
            Some(format!("{TARGET}{path}").as_str()),
            "{path}"
        );
    }
    // Never a stateful page (pushed list, configured prefix) or a user with
    // the session cookie.
    let cart = nginx.get("/cart");
    assert_eq!(cart.status, 200, "stateful /cart is served");
    assert!(cart.body.contains("redir"), "{}", cart.body);
    assert_eq!(
        nginx.get("/checkout/pay").status,
        404,
        "configured stateful prefix reaches the app (404 there)"
    );
    let with_cookie = nginx.get_with_cookie("/", "a=1; usher_session=abc");
    assert_eq!(with_cookie.status, 200, "cookie-marked request is served");
    // A host header never leaks into the target.
    let evil = call(
        http().get(&nginx.url("/")).set("Host", "evil.example"),
        None,
    );
    assert_eq!(
        evil.location.as_deref(),
        Some(format!("{TARGET}/").as_str())
    );

    assert_eq!(nginx.counters()["redirects"], 4);

    let off = nginx.push(&json!({"version": 11, "orders": {"rules": {"stateful": ["/cart"]}}}));
    assert_eq!(off.status, 200, "{}", off.body);
    for path in ["/", "/static.html"] {
        assert_eq!(nginx.get(path).status, 200, "redirect off: {path} served");
    }
}

#[test]
fn every_worker_applies_a_pushed_change_within_one_second() {
    let app = DemoApp::start("apply", 0);
    let nginx = server(&app);
    let c = nginx.counters();
    assert_eq!(
        c["workers_applied"].as_array().map(Vec::len),
        Some(2),
        "{c}"
    );

    let pushed = Instant::now();
    assert_eq!(nginx.push(&redirect_on(1_000)).status, 200);
    let mut last = Value::Null;
    let applied = usher_integration::eventually(Duration::from_secs(2), || {
        last = nginx.counters();
        last["workers_applied"]
            .as_array()
            .is_some_and(|a| a.iter().all(|v| v == 1_000))
    });
    let took = applied.unwrap_or_else(|| panic!("not all workers applied version 1000: {last}"));
    assert!(
        took < Duration::from_secs(1),
        "all workers applied after {took:?}"
    );
    assert!(pushed.elapsed() < Duration::from_secs(2));
    // And they act on it: fresh connections land on both workers.
    for _ in 0..20 {
        assert_eq!(nginx.get("/").status, 302);
    }
}

#[test]
fn stale_bad_and_unauthorised_commands_change_nothing() {
    let app = DemoApp::start("bad", 0);
    let nginx = server(&app);
    assert_eq!(nginx.push(&redirect_on(50)).status, 200);

    let stale = nginx.push(&json!({"version": 50}));
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert_eq!(
        stale.json(),
        json!({"error": "stale version", "current": 50})
    );
    assert_eq!(nginx.push(&json!({"version": 7})).status, 409);

    let mut bad = redirect_on(60);
    bad["orders"]["redirect"]["target"] = json!("javascript:alert(1)");
    let r = nginx.push(&bad);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("orders.redirect.target")),
        "{}",
        r.body
    );

    let r = nginx.push(
        &json!({"version": 61, "apps": [{"name": "shop", "enabled": true, "servers": [
        {"name": "a", "url": "http://127.0.0.1:1", "capacity": 50, "available": true}]}]}),
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("apps[0].servers[0].capacity"), "{}", r.body);

    let r = nginx.command("{not json");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].is_string());
    let r = nginx.command(r#"{"type":"snapshot","snapshot":{"version":62,"bogus":1}}"#);
    assert_eq!(r.status, 400, "unknown fields are refused: {}", r.body);

    let r = call(
        http()
            .post(&nginx.url("/usher/command"))
            .set("Authorization", "Bearer wrong-token-000"),
        Some("{}"),
    );
    assert_eq!(r.status, 401);
    let r = call(http().get(&nginx.url("/usher/command")), None);
    assert_eq!(r.status, 401, "no token, no counters");

    // Nothing changed: still version 50, still redirecting.
    assert_eq!(nginx.counters()["version"], 50);
    assert_eq!(nginx.get("/").status, 302);
    assert_eq!(
        nginx.get("/").location.as_deref(),
        Some(format!("{TARGET}/").as_str())
    );
}

#[test]
fn echo_answers_text_and_the_worker_pid() {
    let app = DemoApp::start("echo", 0);
    let nginx = server(&app);
    let r = nginx.command(r#"{"type":"echo","text":"hello usher"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["echo"], "hello usher");
    let pid = v["pid"].as_u64().expect("pid");
    let master: u64 = std::fs::read_to_string(nginx.dir.path().join("logs/nginx.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_ne!(pid, master, "answered by a worker");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} is a live process"
    );
    assert!(r
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("application/json")));
}

#[test]
fn probes_and_methods_other_than_get_and_head_are_served_where_they_landed() {
    let app = DemoApp::start("landed", 0);
    let nginx = server(&app);
    let r = nginx.push(&redirect_on(20));
    assert_eq!(r.status, 200, "{}", r.body);

    // The redirect is on for ordinary GETs.
    let r = nginx.get("/");
    assert_eq!(r.status, 302);
    assert_eq!(r.location.as_deref(), Some(format!("{TARGET}/").as_str()));

    // The agent's probe (and any query carrying its parameter) is served.
    for path in ["/health?usher-probe=7", "/health?a=1&usher-probe=8"] {
        let r = nginx.get(path);
        assert_eq!(r.status, 200, "probe {path} served, not redirected");
        assert_eq!(r.location, None, "{path}");
        assert_eq!(r.body, "ok landed\n", "{path} answered by the app");
    }
    // A look-alike parameter is no probe.
    let r = nginx.get("/health?xusher-probe=7");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.location.as_deref(),
        Some(format!("{TARGET}/health?xusher-probe=7").as_str())
    );

    // POST (with a body) and PUT reach the app: the demo app only serves
    // GET on `/`, so its own 404 text shows the request got there.
    let agent = http();
    for req in [agent.post(&nginx.url("/")), agent.put(&nginx.url("/"))] {
        let r = call(req.set("Content-Type", "text/plain"), Some("name=value"));
        assert_eq!(r.status, 404, "{}", r.body);
        assert_eq!(r.location, None);
        assert_eq!(r.body, "not found\n", "the app's own answer");
    }
    // …and a POST the app serves is answered by it.
    let r = call(agent.post(&nginx.url("/control")), Some("x"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["name"], "landed");

    // HEAD is redirected like GET.
    let r = call(agent.head(&nginx.url("/static.html?v=2")), None);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.location.as_deref(),
        Some(format!("{TARGET}/static.html?v=2").as_str())
    );

    // Only the three redirects were counted.
    assert_eq!(nginx.counters()["redirects"], 3);
}
