//! Interceptor role: nginx as the front door picks servers by the pushed
//! load metrics (the core's interval table), falls back to the configured
//! static capacities, proxies in proxy mode and answers the sorry page when
//! the application is disabled or has no server.

use std::collections::HashMap;

use serde_json::json;
use usher_integration::{call, http, DemoApp, Nginx};

const SORRY: &str = "<html><body>usher test sorry page</body></html>\n";

/// A front door. The workers' draws are seeded and one keep-alive
/// connection (one worker) carries a whole test, so a spread check gives the
/// same answer on every run instead of failing now and then by chance.
fn front_door(servers: &str, extra: &str) -> Nginx {
    Nginx::start(
        "usher_random_seed 20261126; keepalive_requests 1000000;",
        &format!(
            "usher_role interceptor; usher_app shop; {servers} {extra}\n location / {{ proxy_pass $usher_upstream; }}"
        ),
    )
}

/// Sends `n` requests and counts the redirect targets' base URLs.
fn picks(nginx: &Nginx, n: usize) -> HashMap<String, usize> {
    let agent = http();
    let mut counts = HashMap::new();
    for i in 0..n {
        let r = call(agent.get(&nginx.url(&format!("/page?i={i}"))), None);
        assert_eq!(r.status, 302, "{}", r.body);
        let loc = r.location.expect("Location");
        let base = loc.split("/page").next().unwrap_or_default().to_string();
        assert_eq!(loc, format!("{base}/page?i={i}"), "path and query kept");
        *counts.entry(base).or_default() += 1;
    }
    counts
}

fn share(counts: &HashMap<String, usize>, url: &str, n: usize) -> f64 {
    *counts.get(url).unwrap_or(&0) as f64 * 100.0 / n as f64
}

#[test]
fn ten_thousand_picks_follow_pushed_weights() {
    let nginx = front_door("usher_server a http://127.0.0.1:1001 5;", "");
    // Dynamic loads 1000 / 3000 / 6000, never aged (T = 0), no epsilon: the
    // intervals are 10 %, 30 %, 60 %.
    let snapshot = json!({"version": 5, "apps": [{"name": "shop", "enabled": true, "epsilon": 0.0, "obsolescence_secs": 0.0,
    "servers": [
        {"name": "a", "url": "http://127.0.0.1:1001", "capacity": 5, "dynamic_load": 1000, "available": true},
        {"name": "b", "url": "http://127.0.0.1:1002", "capacity": 5, "dynamic_load": 3000, "available": true},
        {"name": "c", "url": "http://127.0.0.1:1003", "capacity": 5, "dynamic_load": 6000, "available": true},
        {"name": "d", "url": "http://127.0.0.1:1004", "capacity": 5, "dynamic_load": 9000, "available": false}
    ]}]});
    let r = nginx.push(&snapshot);
    assert_eq!(r.status, 200, "{}", r.body);
    let n = 10_000;
    let counts = picks(&nginx, n);
    eprintln!("10,000 picks: {counts:?}");
    assert_eq!(
        counts.get("http://127.0.0.1:1004"),
        None,
        "an unavailable server gets no user"
    );
    for (url, want) in [
        ("http://127.0.0.1:1001", 10.0),
        ("http://127.0.0.1:1002", 30.0),
        ("http://127.0.0.1:1003", 60.0),
    ] {
        let got = share(&counts, url, n);
        assert!(
            (got - want).abs() <= 1.5,
            "{url}: {got:.2} % of picks, want {want} % ± 1.5: {counts:?}"
        );
    }
    assert_eq!(nginx.counters()["picks"], n as u64);
}

#[test]
fn static_capacities_before_any_snapshot() {
    let nginx = front_door(
        "usher_server a http://127.0.0.1:2001 2; usher_server b http://127.0.0.1:2002 8;",
        "",
    );
    let n = 4_000;
    let counts = picks(&nginx, n);
    let a = share(&counts, "http://127.0.0.1:2001", n);
    assert!(
        (a - 20.0).abs() <= 2.5,
        "capacity 2 of 10: {a:.2} %: {counts:?}"
    );
}

#[test]
fn proxy_mode_forwards_to_the_picked_server() {
    let (one, two) = (DemoApp::start("one", 0), DemoApp::start("two", 0));
    let nginx = front_door(
        &format!("usher_server one {} 5; usher_mode proxy;", one.url()),
        "",
    );
    let r = nginx.get("/");
    assert_eq!(r.status, 200, "static default in proxy mode");
    assert!(r.body.contains("hello from one"), "{}", r.body);

    let snapshot = json!({"version": 9, "apps": [{"name": "shop", "enabled": true, "mode": "proxy", "obsolescence_secs": 0.0,
    "servers": [
        {"name": "one", "url": one.url(), "capacity": 5, "dynamic_load": 0, "available": true},
        {"name": "two", "url": two.url(), "capacity": 5, "dynamic_load": 5000, "available": true}
    ]}]});
    assert_eq!(nginx.push(&snapshot).status, 200);
    for _ in 0..10 {
        let r = nginx.get("/health");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body.trim(),
            "ok two",
            "all users go to the only server with spare capacity"
        );
    }
}

#[test]
fn disabled_app_or_no_server_gets_the_sorry_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("sorry.html");
    std::fs::write(&page, SORRY).expect("write sorry page");
    let nginx = front_door(
        "usher_server a http://127.0.0.1:3001 5;",
        &format!("usher_sorry_page {};", page.display()),
    );
    assert_eq!(nginx.get("/").status, 302);

    let app = |enabled: bool, available: bool, sorry: Option<&str>| {
        json!({"name": "shop", "enabled": enabled, "sorry_page": sorry, "servers": [
            {"name": "a", "url": "http://127.0.0.1:3001", "capacity": 5, "available": available}]})
    };
    assert_eq!(
        nginx
            .push(&json!({"version": 1, "apps": [app(false, true, None)]}))
            .status,
        200
    );
    let r = nginx.get("/");
    assert_eq!(r.status, 503, "disabled application");
    assert!(
        r.body.contains("Sorry") || r.body.contains("sorry"),
        "{}",
        r.body
    );

    assert_eq!(
        nginx
            .push(&json!({"version": 2, "apps": [app(true, false, Some("<p>pushed sorry</p>"))]}))
            .status,
        200
    );
    let r = nginx.get("/");
    assert_eq!(r.status, 503, "no available server");
    assert_eq!(r.body, "<p>pushed sorry</p>");
    assert!(r
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("text/html")));

    // A snapshot without this app: back to the static default (with the
    // configured sorry page kept for later).
    assert_eq!(nginx.push(&json!({"version": 3, "apps": []})).status, 200);
    assert_eq!(nginx.get("/").status, 302);
    assert!(nginx.counters()["sorry"].as_u64().is_some_and(|n| n == 2));
}

#[test]
fn configured_sorry_page_is_served_when_static_servers_are_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("sorry.html");
    std::fs::write(&page, SORRY).expect("write sorry page");
    let nginx = front_door("", &format!("usher_sorry_page {};", page.display()));
    let r = nginx.get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.body, SORRY);
}

#[test]
fn redirect_mode_answers_307_to_methods_other_than_get_and_head() {
    let nginx = front_door("usher_server a http://127.0.0.1:4001 5;", "");
    let agent = http();
    let r = call(agent.get(&nginx.url("/form?x=1")), None);
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(
        r.location.as_deref(),
        Some("http://127.0.0.1:4001/form?x=1")
    );
    let r = call(agent.head(&nginx.url("/form")), None);
    assert_eq!(r.status, 302);
    assert_eq!(r.location.as_deref(), Some("http://127.0.0.1:4001/form"));
    // POST and PUT keep their method and body: 307 to the same place.
    for req in [
        agent.post(&nginx.url("/form?x=1")),
        agent.put(&nginx.url("/form?x=1")),
    ] {
        let r = call(
            req.set("Content-Type", "application/x-www-form-urlencoded"),
            Some("name=value&other=1"),
        );
        assert_eq!(r.status, 307, "{}", r.body);
        assert_eq!(
            r.location.as_deref(),
            Some("http://127.0.0.1:4001/form?x=1")
        );
    }
    // A snapshot's server, too.
    let snapshot = json!({"version": 3, "apps": [{"name": "shop", "enabled": true, "servers": [
        {"name": "b", "url": "http://127.0.0.1:4002", "capacity": 5, "available": true}]}]});
    assert_eq!(nginx.push(&snapshot).status, 200);
    let r = call(agent.post(&nginx.url("/")), Some("a=b"));
    assert_eq!(r.status, 307, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("http://127.0.0.1:4002/"));
    assert_eq!(nginx.counters()["picks"], 5);
}

/// A disabled application without a page of its own shows usher's one
/// built-in sorry page (the same text as the Envoy filter and the control
/// plane's front door); `nginx/sorry.html` is that text; a configured page
/// wins over it when the snapshot carries none.
#[test]
fn disabled_app_shows_the_built_in_sorry_page() {
    let disabled = json!({"version": 1, "apps": [{"name": "shop", "enabled": false, "servers": [
        {"name": "a", "url": "http://127.0.0.1:5001", "capacity": 5, "available": true}]}]});

    let bare = front_door("usher_server a http://127.0.0.1:5001 5;", "");
    assert_eq!(bare.push(&disabled).status, 200);
    let r = bare.get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.body, usher_core::BUILT_IN_SORRY_PAGE);
    assert!(r
        .content_type
        .as_deref()
        .is_some_and(|c| c.starts_with("text/html")));

    let shipped = usher_integration::repo_root().join("nginx/sorry.html");
    let with_shipped = front_door(
        "usher_server a http://127.0.0.1:5001 5;",
        &format!("usher_sorry_page {};", shipped.display()),
    );
    assert_eq!(with_shipped.push(&disabled).status, 200);
    let r = with_shipped.get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.body, usher_core::BUILT_IN_SORRY_PAGE, "nginx/sorry.html");

    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("sorry.html");
    std::fs::write(&page, SORRY).expect("write sorry page");
    let own = front_door(
        "usher_server a http://127.0.0.1:5001 5;",
        &format!("usher_sorry_page {};", page.display()),
    );
    assert_eq!(own.push(&disabled).status, 200);
    let r = own.get("/");
    assert_eq!(r.status, 503);
    assert_eq!(r.body, SORRY, "the operator's page wins");
}
