//! Pages that mark themselves stateful, nginx server role: a response with
//! `Usher-Stateful: 1` (or `true`, any case of the name) teaches the worker
//! that served it its path, and from then on a redirect order never moves a
//! request for that path (query or not) off that worker, while stateless
//! pages go on being redirected. The memory is per worker: a page no worker
//! has served yet is redirected like any other. Also: the demo app's
//! `error_pct` knob fails `/` through nginx and never `/health`.

use std::time::Duration;

use serde_json::{json, Value};
use usher_integration::{eventually, http, DemoApp, Nginx};

const TARGET: &str = "http://127.0.0.1:9";

/// nginx (2 workers) in the server role in front of `app`: everything goes
/// to the app; `/profile` is the app's `/health` with nginx adding
/// `USHER-STATEFUL: true`, `/plain` the same with `Usher-Stateful: 0`.
fn server(app: &DemoApp) -> Nginx {
    let url = app.url();
    Nginx::start(
        "",
        &format!(
            "usher_role server; usher_app shop;
        location / {{ proxy_pass {url}; }}
        location = /profile {{ add_header USHER-STATEFUL true always; proxy_pass {url}/health; }}
        location = /plain {{ add_header Usher-Stateful 0 always; proxy_pass {url}/health; }}"
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

/// What a test looks at in one answer.
#[derive(Debug)]
struct Seen {
    status: u16,
    location: Option<String>,
    /// The `Usher-Stateful` response header.
    stateful: Option<String>,
}

/// A request on a fresh connection (so nginx may give it to either worker).
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
    }
}

fn self_marked(nginx: &Nginx) -> u64 {
    nginx.counters()["self_marked"].as_u64().unwrap_or(0)
}

/// Serves `path` on fresh connections until both workers learned it (the
/// shared counter counts one per worker and path) and returns how many
/// requests that took.
fn teach_both_workers(nginx: &Nginx, path: &str, before: u64) -> u32 {
    let mut sent = 0;
    let learned = eventually(Duration::from_secs(15), || {
        let r = fresh("GET", &nginx.url(path), None);
        assert_eq!(r.status, 200, "{path} served before any order: {r:?}");
        sent += 1;
        self_marked(nginx) >= before + 2
    });
    assert!(
        learned.is_some(),
        "both workers should have served {path} after {sent} fresh requests: {}",
        nginx.counters()
    );
    sent
}

#[test]
fn a_self_marked_page_is_never_redirected_by_workers_that_served_it() {
    let app = DemoApp::start("marked", 0);
    let nginx = server(&app);
    assert_eq!(self_marked(&nginx), 0);

    let first = fresh("GET", &nginx.url("/account"), None);
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(
        first.stateful.as_deref(),
        Some("1"),
        "the page marks itself"
    );
    let sent = teach_both_workers(&nginx, "/account", 0);
    eprintln!("/account reached both workers within {sent} fresh requests");
    teach_both_workers(&nginx, "/profile", 2);
    // Known paths are not counted again; a `0` value teaches nothing.
    for path in ["/account", "/account?tab=orders", "/profile", "/plain", "/"] {
        assert_eq!(fresh("GET", &nginx.url(path), None).status, 200, "{path}");
    }
    assert_eq!(self_marked(&nginx), 4, "{}", nginx.counters());

    let r = nginx.push(&redirect_on(10));
    assert_eq!(r.status, 200, "{}", r.body);
    let c = nginx.counters();
    let applied = eventually(Duration::from_secs(2), || {
        nginx.counters()["workers_applied"]
            .as_array()
            .is_some_and(|a| a.iter().all(|v| v == 10))
    });
    assert!(applied.is_some(), "both workers apply the order: {c}");

    let mut kept = 0;
    for i in 0..40 {
        for (method, path) in [
            ("GET", "/account".to_string()),
            ("GET", format!("/account?tab={i}")),
            ("GET", "/profile".to_string()),
        ] {
            let r = fresh(method, &nginx.url(&path), None);
            assert_eq!(
                (r.status, r.location.as_deref()),
                (200, None),
                "{method} {path} stays"
            );
            kept += 1;
        }
    }
    assert_eq!(kept, 120);
    // HEAD is kept too: it reaches the app, whose own 404 (it serves only
    // GET) shows it was not redirected.
    for _ in 0..10 {
        let r = fresh("HEAD", &nginx.url("/account"), None);
        assert_eq!((r.status, r.location), (404, None), "HEAD /account stays");
    }

    // Stateless pages (and a page whose header says 0, or a path that is
    // only like a marked one) are redirected; listed pages and session
    // holders are not.
    for path in ["/", "/static.html?v=1", "/plain", "/account/", "/accounts"] {
        let r = fresh("GET", &nginx.url(path), None);
        assert_eq!(r.status, 302, "{path}: {r:?}");
        assert_eq!(
            r.location.as_deref(),
            Some(format!("{TARGET}{path}").as_str())
        );
    }
    assert_eq!(fresh("GET", &nginx.url("/cart"), None).status, 200);
    let holder = fresh("GET", &nginx.url("/"), Some("a=1; usher_session=xyz"));
    assert_eq!((holder.status, holder.location), (200, None));

    let c = nginx.counters();
    assert_eq!(c["redirects"], 5, "only the five stateless requests: {c}");
    assert_eq!(c["self_marked"], 4, "{c}");
}

#[test]
fn a_page_no_worker_has_served_is_redirected_like_any_other() {
    let app = DemoApp::start("unmarked", 0);
    let nginx = server(&app);
    let r = nginx.push(&redirect_on(20));
    assert_eq!(r.status, 200, "{}", r.body);
    let applied = eventually(Duration::from_secs(2), || {
        nginx.counters()["workers_applied"]
            .as_array()
            .is_some_and(|a| a.iter().all(|v| v == 20))
    });
    assert!(applied.is_some(), "{}", nginx.counters());
    // The per-worker memory is empty: nothing can tell nginx that /account
    // is stateful, and a redirected request never reaches the app to say so.
    for _ in 0..10 {
        let r = fresh("GET", &nginx.url("/account"), None);
        assert_eq!(r.status, 302, "{r:?}");
        assert_eq!(
            r.location.as_deref(),
            Some(format!("{TARGET}/account").as_str())
        );
        assert_eq!(r.stateful, None, "answered by nginx, not the app");
    }
    let c = nginx.counters();
    assert_eq!(
        (c["self_marked"].as_u64(), c["redirects"].as_u64()),
        (Some(0), Some(10)),
        "{c}"
    );
    assert_eq!(app_served(&app), 0, "no request reached the app");
}

#[test]
fn error_pct_fails_pages_through_nginx_but_never_health() {
    let app = DemoApp::start("failing", 0);
    let nginx = server(&app);
    app.set_error_pct(100);
    for _ in 0..5 {
        assert_eq!(nginx.get("/").status, 500);
        assert_eq!(nginx.get("/static.html").status, 500);
        let h = nginx.get("/health");
        assert_eq!((h.status, h.body.as_str()), (200, "ok failing\n"));
    }
    app.set_error_pct(50);
    let failed = (0..10).filter(|_| nginx.get("/").status == 500).count();
    assert_eq!(failed, 5, "exactly half");
    app.set_error_pct(0);
    assert_eq!(nginx.get("/").status, 200);
    let stats = nginx.get("/stats").json();
    assert_eq!(
        (stats["error_pct"].as_u64(), stats["errors"].as_u64()),
        (Some(0), Some(15))
    );
}

/// Requests the app served with a worker (`/stats` itself takes none).
fn app_served(app: &DemoApp) -> u64 {
    let r = usher_integration::call(http().get(&format!("{}/stats", app.url())), None);
    r.json()["served"].as_u64().unwrap_or(u64::MAX)
}
