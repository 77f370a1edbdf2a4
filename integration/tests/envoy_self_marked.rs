//! Pages that mark themselves stateful, Envoy server role: a response with
//! `Usher-Stateful: 1` teaches the worker VM that served it its path, and
//! from then on a redirect order never moves a request for that path (with
//! or without a query) off that worker, while stateless pages go on being
//! redirected and listed pages and session holders stay as before. The
//! memory is per worker (`--concurrency 2`): a page no worker has served is
//! redirected like any other.

use std::time::Duration;

use serde_json::json;
use usher_integration::envoy::*;
use usher_integration::{eventually, free_port, http, DemoApp};

const TARGET: &str = "http://127.0.0.1:9";

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

fn redirect_on(version: u64) -> serde_json::Value {
    json!({"version": version, "orders": {"redirect": {"target": TARGET}}})
}

/// What a test looks at in one answer.
#[derive(Debug)]
struct Seen {
    status: u16,
    location: Option<String>,
    /// The `Usher-Stateful` response header.
    stateful: Option<String>,
    /// `x-usher-worker` (set on the filter's own redirects).
    worker: Option<String>,
}

/// A request on a fresh connection (so Envoy may give it to either worker).
fn fresh(method: &str, url: &str, cookie: Option<&str>) -> Seen {
    let mut req = http().request(method, url).set("connection", "close");
    if let Some(c) = cookie {
        req = req.set("cookie", c);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    Seen {
        status: resp.status(),
        location: resp.header("location").map(str::to_string),
        stateful: resp.header("usher-stateful").map(str::to_string),
        worker: resp.header("x-usher-worker").map(str::to_string),
    }
}

/// Paths learned, summed over workers (published on each worker's tick).
fn self_marked(envoy: &Envoy) -> u64 {
    envoy.counters()["self_marked"].as_u64().unwrap_or(0)
}

/// Pushes `snapshot` and waits until fresh connections to `/` are all
/// redirected (both workers applied it); returns how many of its requests
/// were redirected.
fn push_and_wait(envoy: &Envoy, snapshot: serde_json::Value) -> u64 {
    envoy.push(snapshot);
    let mut redirected = 0;
    let on = eventually(Duration::from_secs(3), || {
        (0..10).all(|_| {
            let moved = fresh("GET", &envoy.url("/"), None).status == 302;
            redirected += u64::from(moved);
            moved
        })
    });
    assert!(on.is_some(), "redirect order not applied by every worker");
    redirected
}

#[test]
fn a_self_marked_page_is_never_redirected_by_workers_that_served_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_app, envoy) = start(dir.path());
    assert_eq!(self_marked(&envoy), 0);

    let first = fresh("GET", &envoy.url("/account"), None);
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(
        first.stateful.as_deref(),
        Some("1"),
        "the page marks itself"
    );
    // Serve it on fresh connections until both workers learned it: the
    // counter counts one per worker and path.
    let mut sent = 1;
    let learned = eventually(Duration::from_secs(15), || {
        let r = fresh("GET", &envoy.url("/account?from=test"), None);
        assert_eq!(r.status, 200, "{r:?}");
        sent += 1;
        self_marked(&envoy) >= 2
    });
    assert!(
        learned.is_some(),
        "both workers should have served /account after {sent} requests: {}",
        envoy.counters()
    );
    eprintln!("/account reached both workers within {sent} fresh requests");

    let redirects_before = push_and_wait(&envoy, redirect_on(10));

    for i in 0..40 {
        for (method, path) in [
            ("GET", "/account".to_string()),
            ("GET", format!("/account?tab={i}")),
        ] {
            let r = fresh(method, &envoy.url(&path), None);
            assert_eq!(
                (r.status, r.location.as_deref(), r.worker.as_deref()),
                (200, None, None),
                "{method} {path} stays"
            );
        }
    }

    // HEAD is kept too: it reaches the app, whose own 404 (it serves only
    // GET) shows it was not redirected.
    for _ in 0..10 {
        let r = fresh("HEAD", &envoy.url("/account"), None);
        assert_eq!((r.status, r.location), (404, None), "HEAD /account stays");
    }

    // Stateless pages (and paths only like the marked one) are redirected;
    // the listed page and the session holder are not.
    for path in ["/", "/static.html?v=1", "/account/", "/accounts"] {
        let r = fresh("GET", &envoy.url(path), None);
        assert_eq!(r.status, 302, "{path}: {r:?}");
        assert_eq!(
            r.location.as_deref(),
            Some(format!("{TARGET}{path}").as_str())
        );
    }
    let cart = fresh("GET", &envoy.url("/cart"), None);
    assert_eq!((cart.status, cart.location), (200, None));
    let holder = fresh("GET", &envoy.url("/"), Some("a=1; usher_session=xyz"));
    assert_eq!((holder.status, holder.location), (200, None));

    // Exactly the four stateless requests (besides the waiting ones) were
    // counted, and nothing new was learned (the counters reach the metric
    // on each worker's next tick).
    let counted = eventually(Duration::from_secs(2), || {
        envoy.counters()["redirects"].as_u64() == Some(redirects_before + 4)
    });
    let c = envoy.counters();
    assert!(counted.is_some(), "redirects {redirects_before} + 4: {c}");
    assert_eq!(c["self_marked"], 2, "{c}");
}

#[test]
fn a_page_no_worker_has_served_is_redirected_like_any_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_app, envoy) = start(dir.path());
    let waiting = push_and_wait(&envoy, redirect_on(20));
    // Nothing can tell a worker that /account is stateful: a redirected
    // request never reaches the app to say so.
    for _ in 0..10 {
        let r = fresh("GET", &envoy.url("/account"), None);
        assert_eq!(r.status, 302, "{r:?}");
        assert_eq!(
            r.location.as_deref(),
            Some(format!("{TARGET}/account").as_str())
        );
        assert_eq!(r.stateful, None, "answered by the filter, not the app");
    }
    // Once the workers' ticks published every redirect, anything learned
    // would be published too.
    let published = eventually(Duration::from_secs(2), || {
        envoy.counters()["redirects"].as_u64() == Some(waiting + 10)
    });
    assert!(published.is_some(), "{}", envoy.counters());
    assert_eq!(self_marked(&envoy), 0);
}
