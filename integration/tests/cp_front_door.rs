//! The control plane's built-in front door, end to end against the real
//! `usher control`: weighted referral split, configured-URL-only Location
//! headers (forged Host, absolute-URI, `//` paths kept whole), sorry page / 503 (the built-in page
//! is the one every usher front door shows), re-enable, 307 for methods
//! other than GET and HEAD, proxy mode and the concurrency limit.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use usher_integration::{call, free_port, http, raw_request, wait_for_port, ControlPlane, DemoApp};

const LOADS: [u32; 6] = [1500, 2250, 3250, 2000, 1000, 1000];

fn six_servers(front: u16) -> (String, Vec<String>) {
    let urls: Vec<String> = (0..6)
        .map(|i| format!("http://127.0.0.1:{}", 20001 + i))
        .collect();
    let mut cfg = format!(
        "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\nmode = \"redirect\"\n\
         sorry_page = \"sorry.html\"\nstateful = [\"/cart\"]\nepsilon = 0\nobsolescence_secs = 1200\n"
    );
    for (i, u) in urls.iter().enumerate() {
        cfg.push_str(&format!(
            "[[servers]]\nname = \"s{i}\"\napp = \"shop\"\nurl = \"{u}\"\ncapacity = 5\n"
        ));
    }
    (cfg, urls)
}

fn get(port: u16, path: &str) -> usher_integration::Response {
    call(http().get(&format!("http://127.0.0.1:{port}{path}")), None)
}

#[test]
fn referrals_follow_load_metrics_and_only_name_configured_urls() {
    let front = free_port();
    let (cfg, urls) = six_servers(front);
    let cp = ControlPlane::start(&cfg, &[("sorry.html", "<h1>shop is closed</h1>")]);
    wait_for_port(front, Duration::from_secs(5));
    for (i, l) in LOADS.iter().enumerate() {
        cp.api_ok(
            "PUT",
            &format!("/api/v1/servers/s{i}/load"),
            Some(&format!("{{\"value\":{l}}}")),
        );
    }
    // Expected shares: each server's load metric over the sum, as the API
    // reports it (the loads were just set, so they equal the loads).
    let servers = cp.api_ok("GET", "/api/v1/servers", None);
    let metrics: Vec<f64> = (0..6)
        .map(|i| {
            servers
                .as_array()
                .and_then(|a| a.iter().find(|s| s["name"] == format!("s{i}")))
                .and_then(|s| s["load_metric"].as_f64())
                .expect("load_metric")
        })
        .collect();
    let total: f64 = metrics.iter().sum();

    let agent = http();
    let mut counts: HashMap<String, u32> = HashMap::new();
    let n = 10_000;
    for i in 0..n {
        let r = call(
            agent.get(&format!("http://127.0.0.1:{front}/p/{i}?q=1")),
            None,
        );
        assert_eq!(r.status, 302, "{}", r.body);
        let loc = r.location.expect("Location");
        let base = urls
            .iter()
            .find(|u| loc == format!("{u}/p/{i}?q=1"))
            .unwrap_or_else(|| panic!("Location {loc} is not a configured server URL + path"));
        *counts.entry(base.clone()).or_default() += 1;
    }
    for (i, u) in urls.iter().enumerate() {
        let got = f64::from(counts.get(u).copied().unwrap_or(0)) / f64::from(n);
        let want = metrics[i] / total;
        assert!(
            (got - want).abs() <= 0.015,
            "server s{i}: {:.2}% of referrals, load metric share {:.2}%",
            got * 100.0,
            want * 100.0
        );
        // The metrics are the loads just set (aging over T = 20 min moves
        // them by well under a point during the test).
        let by_load = f64::from(LOADS[i]) / f64::from(LOADS.iter().sum::<u32>());
        assert!(
            (want - by_load).abs() < 0.005,
            "s{i} metric share {want} vs load share {by_load}"
        );
    }

    // A forged Host header and an absolute-URI request line never put a
    // foreign host into Location (`//` paths: the test below).
    let cases = [
        ("GET /a?b=1 HTTP/1.1\r\nHost: evil.example\r\n\r\n", "/a?b=1"),
        ("GET http://evil.example/steal?x=1 HTTP/1.1\r\nHost: evil.example\r\n\r\n", "/steal?x=1"),
        ("GET http://evil.example:80/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Host: evil.example\r\n\r\n", "/"),
    ];
    for (req, path) in cases {
        for _ in 0..20 {
            let (status, loc, _) = raw_request(front, req);
            assert_eq!(status, 302, "{req:?}");
            let loc = loc.expect("Location");
            assert!(
                urls.iter().any(|u| loc == format!("{u}{path}")),
                "{req:?} gave Location {loc}"
            );
            assert!(!loc.contains("evil"), "{loc}");
        }
    }
}

#[test]
fn disable_gives_sorry_page_and_reenable_refers_at_once() {
    let front = free_port();
    let bare = free_port();
    let (mut cfg, _) = six_servers(front);
    cfg.push_str(&format!(
        "[[apps]]\nname = \"bare\"\nlisten = \"127.0.0.1:{bare}\"\n\
         [[servers]]\nname = \"b0\"\napp = \"bare\"\nurl = \"http://127.0.0.1:20101\"\ncapacity = 3\n"
    ));
    let cp = ControlPlane::start(&cfg, &[("sorry.html", "<h1>shop is closed</h1>")]);
    wait_for_port(front, Duration::from_secs(5));
    wait_for_port(bare, Duration::from_secs(5));
    assert_eq!(get(front, "/").status, 302);

    // Disabled app: the configured sorry page with 503.
    cp.api_ok("POST", "/api/v1/apps/shop/disable", None);
    let r = get(front, "/");
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "<h1>shop is closed</h1>");
    assert!(r.content_type.unwrap_or_default().starts_with("text/html"));
    // An app without a sorry page gets the built-in one.
    cp.api_ok("POST", "/api/v1/apps/bare/disable", None);
    let r = get(bare, "/");
    assert_eq!(r.status, 503);
    assert!(r.body.contains("Sorry"), "{}", r.body);

    // Re-enabled: referrals at once (the next request).
    cp.api_ok("POST", "/api/v1/apps/shop/enable", None);
    assert_eq!(get(front, "/").status, 302);
    cp.api_ok("POST", "/api/v1/apps/bare/enable", None);
    assert_eq!(get(bare, "/").status, 302);

    // Every server disabled: 503 (sorry page where configured, plain 503 else).
    for i in 0..6 {
        cp.api_ok("POST", &format!("/api/v1/servers/s{i}/disable"), None);
    }
    cp.api_ok("POST", "/api/v1/servers/b0/disable", None);
    for _ in 0..50 {
        let r = get(front, "/");
        assert_eq!(r.status, 503);
        assert_eq!(r.body, "<h1>shop is closed</h1>");
    }
    let r = get(bare, "/");
    assert_eq!(r.status, 503);
    assert!(r.body.contains("no server is available"), "{}", r.body);

    // One server back: every referral goes to it, at once.
    cp.api_ok("POST", "/api/v1/servers/s3/enable", None);
    for _ in 0..50 {
        let r = get(front, "/x");
        assert_eq!(r.status, 302);
        assert_eq!(r.location.as_deref(), Some("http://127.0.0.1:20004/x"));
    }
    // A server whose load is 0 gets nobody while others have spare capacity.
    cp.api_ok("POST", "/api/v1/servers/s0/enable", None);
    cp.api_ok("PUT", "/api/v1/servers/s0/load", Some(r#"{"value":0}"#));
    for _ in 0..200 {
        let r = get(front, "/");
        assert_eq!(r.location.as_deref(), Some("http://127.0.0.1:20004/"));
    }
}

#[test]
fn proxy_mode_reaches_the_backend_and_limits_concurrency() {
    let front = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let app = |name: &str, service_ms: u64| {
        DemoApp::spec(name)
            .workers(8)
            .service_ms(service_ms)
            .log_dir(dir.path())
            .start()
    };
    let (alpha, beta, slow) = (app("alpha", 5), app("beta", 5), app("slow", 1000));
    let (alpha_url, beta_url, slow_url) = (alpha.url(), beta.url(), slow.url());
    let slow_front = free_port();
    let dead = free_port();
    let cfg = format!(
        "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\nmode = \"proxy\"\n\
         [[servers]]\nname = \"alpha\"\napp = \"shop\"\nurl = \"{alpha_url}\"\ncapacity = 5\n\
         [[servers]]\nname = \"beta\"\napp = \"shop\"\nurl = \"{beta_url}\"\ncapacity = 5\n\
         [[apps]]\nname = \"slowapp\"\nlisten = \"127.0.0.1:{slow_front}\"\nmode = \"proxy\"\nmax_concurrent = 2\n\
         [[servers]]\nname = \"slow\"\napp = \"slowapp\"\nurl = \"{slow_url}\"\ncapacity = 5\n\
         [[servers]]\nname = \"dead\"\napp = \"slowapp\"\nurl = \"http://127.0.0.1:{dead}\"\ncapacity = 5\nenabled = false\n"
    );
    let cp = ControlPlane::start(&cfg, &[]);
    wait_for_port(front, Duration::from_secs(5));

    // The answer is the backend's own page, streamed back; both are used.
    let mut seen = HashMap::new();
    for _ in 0..60 {
        let r = get(front, "/");
        assert_eq!(r.status, 200, "{}", r.body);
        let who = if r.body.contains("hello from alpha") {
            "alpha"
        } else if r.body.contains("hello from beta") {
            "beta"
        } else {
            panic!("body names no server: {}", r.body)
        };
        *seen.entry(who).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    // Path and query reach the backend.
    let r = get(front, "/health");
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("ok "), "{}", r.body);
    // Only beta enabled: every answer comes from beta.
    cp.api_ok("POST", "/api/v1/servers/alpha/disable", None);
    for _ in 0..20 {
        assert!(get(front, "/").body.contains("hello from beta"));
    }

    // Concurrency limit 2 with a 1 s backend: of 6 requests at once, the
    // excess gets 503 at once.
    let start = Instant::now();
    let handles: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                let t = Instant::now();
                let r = get(slow_front, "/");
                (r.status, r.body, t.elapsed())
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let served = results.iter().filter(|r| r.0 == 200).count();
    let refused: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert_eq!(served + refused.len(), 6, "{results:?}");
    assert!((1..=2).contains(&served), "{results:?}");
    assert!(refused.len() >= 4, "{results:?}");
    for r in &refused {
        assert!(r.1.contains("too many requests"), "{}", r.1);
        assert!(r.2 < Duration::from_millis(500), "refusal took {:?}", r.2);
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    // Slots come back: later requests are served.
    assert_eq!(get(slow_front, "/").status, 200);

    // A backend that is down gives 502 naming the server.
    cp.api_ok("POST", "/api/v1/servers/slow/disable", None);
    cp.api_ok("POST", "/api/v1/servers/dead/enable", None);
    let r = get(slow_front, "/");
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("dead"), "{}", r.body);
}

#[test]
fn post_in_redirect_mode_gets_307_and_disabled_app_the_built_in_sorry_page() {
    let front = free_port();
    let cfg = format!(
        "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\nmode = \"redirect\"\n\
         [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"http://127.0.0.1:20201\"\ncapacity = 5\n"
    );
    let cp = ControlPlane::start(&cfg, &[]);
    wait_for_port(front, Duration::from_secs(5));
    let url = |path: &str| format!("http://127.0.0.1:{front}{path}");
    let agent = http();

    let r = call(agent.get(&url("/form?x=1")), None);
    assert_eq!(r.status, 302, "{}", r.body);
    assert_eq!(
        r.location.as_deref(),
        Some("http://127.0.0.1:20201/form?x=1")
    );
    let r = call(agent.head(&url("/form")), None);
    assert_eq!(r.status, 302);
    assert_eq!(r.location.as_deref(), Some("http://127.0.0.1:20201/form"));
    // POST and PUT keep their method and body: 307 to the same place.
    for req in [agent.post(&url("/form?x=1")), agent.put(&url("/form?x=1"))] {
        let r = call(
            req.set("content-type", "application/x-www-form-urlencoded"),
            Some("name=value&other=1"),
        );
        assert_eq!(r.status, 307, "{}", r.body);
        assert_eq!(
            r.location.as_deref(),
            Some("http://127.0.0.1:20201/form?x=1")
        );
    }

    // No sorry page configured: the built-in one, the same text the nginx
    // module and the Envoy filter show.
    cp.api_ok("POST", "/api/v1/apps/shop/disable", None);
    for (req, body) in [
        (agent.get(&url("/")), None),
        (agent.post(&url("/form")), Some("a=b")),
    ] {
        let r = call(req, body);
        assert_eq!(r.status, 503);
        assert_eq!(r.body, usher_core::BUILT_IN_SORRY_PAGE);
        assert!(r.content_type.unwrap_or_default().starts_with("text/html"));
    }
}

/// The authority (`host:port`) of an absolute `http://` URL.
fn authority(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or("");
    rest.split(['/', '?', '#']).next().unwrap_or("")
}

#[test]
fn double_slash_paths_keep_their_path_on_the_configured_host() {
    let front = free_port();
    let server = "http://127.0.0.1:20301";
    let cfg = format!(
        "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\nmode = \"redirect\"\n\
         [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"{server}/\"\ncapacity = 5\n"
    );
    let _cp = ControlPlane::start(&cfg, &[]);
    wait_for_port(front, Duration::from_secs(5));
    // Each path, sent as the request line's target with a forged Host, is
    // referred to the configured URL + the whole path and query: the `//`
    // stays part of the path, so the host is always the configured one.
    for path in [
        "//x/y",
        "//x/y?q=1&r=%2F%2Fz",
        "//evil.example/steal?x=1",
        "///evil.example",
        "//evil.example:80/",
        "/a//b",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: evil.example\r\n\r\n");
        let (status, loc, body) = raw_request(front, &req);
        assert_eq!(status, 302, "{path}: {body}");
        let loc = loc.expect("Location");
        assert_eq!(loc, format!("{server}{path}"), "{path}");
        assert_eq!(authority(&loc), "127.0.0.1:20301", "{path} gave {loc}");
    }
}
