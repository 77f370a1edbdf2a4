//! Envoy + usher filter, interceptor role: the front door follows pushed
//! weights in both modes (10,000 picks within ±1.5 points of the shares),
//! never picks an unavailable server, and in proxy mode every request really
//! reaches the chosen backend through the override_host load balancer.
//! Methods other than GET and HEAD get 307 (method and body kept); a
//! disabled app shows usher's one built-in sorry page.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::json;
use usher_integration::envoy::*;
use usher_integration::{call, eventually, free_port, fresh_get, http, DemoApp};

const PICKS: usize = 10_000;
const THREADS: usize = 4;
/// Percentage points; 10,000 picks at 25 % have a binomial sd of 0.43.
const TOLERANCE: f64 = 2.0;

struct Door {
    apps: Vec<DemoApp>,
    envoy: Envoy,
    _dir: tempfile::TempDir,
}

fn start(mode: &str) -> Door {
    let dir = tempfile::tempdir().expect("tempdir");
    let apps: Vec<DemoApp> = ["a", "b", "c"]
        .iter()
        .map(|n| demo_app(dir.path(), n))
        .collect();
    let servers: Vec<_> = apps
        .iter()
        .map(|a| json!({"name": a.name, "url": a.url(), "capacity": 5}))
        .collect();
    let plugin = json!({"role": "interceptor", "app": "shop", "mode": mode, "servers": servers});
    let envoy = start_envoy(
        dir.path(),
        &EnvoySpec {
            plugin: plugin.to_string(),
            app_ports: apps.iter().map(|a| a.port).collect(),
            override_host: mode == "proxy",
            agent_port: free_port(),
        },
    );
    Door {
        apps,
        envoy,
        _dir: dir,
    }
}

/// a: capacity 2, b: capacity 6 (so 25% / 75%), c: unavailable.
fn weights(door: &Door, version: u64, mode: &str) -> serde_json::Value {
    let caps = [2, 6, 5];
    let servers: Vec<_> = door
        .apps
        .iter()
        .zip(caps)
        .map(|(a, c)| json!({"name": a.name, "url": a.url(), "capacity": c, "available": a.name != "c"}))
        .collect();
    json!({"version": version, "apps": [{"name": "shop", "enabled": true, "mode": mode, "servers": servers}]})
}

/// Sends `PICKS` requests over keep-alive connections and counts `key(response)`.
fn count(
    envoy: &Envoy,
    key: impl Fn(&usher_integration::Response) -> String + Sync,
) -> BTreeMap<String, usize> {
    let counts = Arc::new(Mutex::new(BTreeMap::new()));
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let counts = counts.clone();
            let key = &key;
            s.spawn(move || {
                let agent = http();
                let mut local: BTreeMap<String, usize> = BTreeMap::new();
                for i in 0..PICKS / THREADS {
                    let r = call(agent.get(&envoy.url(&format!("/?t={t}&i={i}"))), None);
                    *local.entry(key(&r)).or_default() += 1;
                }
                let mut all = counts.lock().expect("lock");
                for (k, v) in local {
                    *all.entry(k).or_default() += v;
                }
            });
        }
    });
    let out = counts.lock().expect("lock").clone();
    out
}

fn assert_shares(counts: &BTreeMap<String, usize>, want: &[(&str, f64)]) {
    eprintln!("picks: {counts:?}");
    let total: usize = counts.values().sum();
    assert_eq!(total, PICKS);
    for (k, share) in want {
        let got = 100.0 * *counts.get(*k).unwrap_or(&0) as f64 / total as f64;
        assert!(
            (got - share).abs() <= TOLERANCE,
            "{k}: {got:.2}% vs {share}% (±{TOLERANCE}): {counts:?}"
        );
    }
    let known: usize = want
        .iter()
        .map(|(k, _)| *counts.get(*k).unwrap_or(&0))
        .sum();
    assert_eq!(
        known, total,
        "only the expected servers are picked: {counts:?}"
    );
}

#[test]
fn redirect_mode_follows_pushed_weights() {
    let door = start("redirect");
    let (a, b) = (door.apps[0].url(), door.apps[1].url());
    // Static capacities first: a, b and c share equally.
    let r = call(http().get(&door.envoy.url("/x?y=1")), None);
    assert_eq!(r.status, 302);
    let loc = r.location.unwrap_or_default();
    assert!(
        loc.ends_with("/x?y=1") && door.apps.iter().any(|a| loc.starts_with(&a.url())),
        "{loc}"
    );

    door.envoy.push(weights(&door, 7, "redirect"));
    let applied = eventually(std::time::Duration::from_secs(2), || {
        (0..40).all(|_| {
            !call(http().get(&door.envoy.url("/")), None)
                .location
                .unwrap_or_default()
                .starts_with(&door.apps[2].url())
        })
    });
    assert!(applied.is_some(), "weights not applied");
    let counts = count(&door.envoy, |r| {
        assert_eq!(r.status, 302);
        let loc = r.location.clone().unwrap_or_default();
        if loc.starts_with(&format!("{a}/?t=")) {
            "a".into()
        } else if loc.starts_with(&format!("{b}/?t=")) {
            "b".into()
        } else {
            loc
        }
    });
    assert_shares(&counts, &[("a", 25.0), ("b", 75.0)]);
    let counted = eventually(std::time::Duration::from_secs(2), || {
        door.envoy.counters()["redirects"].as_u64().unwrap_or(0) >= PICKS as u64
    });
    assert!(
        counted.is_some(),
        "redirects counted: {}",
        door.envoy.counters()
    );
}

#[test]
fn proxy_mode_reaches_the_chosen_backend_by_weight() {
    let door = start("proxy");
    door.envoy.push(weights(&door, 3, "proxy"));
    let applied = eventually(std::time::Duration::from_secs(2), || {
        (0..40).all(|_| {
            !call(http().get(&door.envoy.url("/")), None)
                .body
                .contains("hello from c")
        })
    });
    assert!(applied.is_some(), "weights not applied");
    let counts = count(&door.envoy, |r| {
        assert_eq!(r.status, 200, "{}", r.body);
        let name = ["a", "b", "c"]
            .into_iter()
            .find(|n| r.body.contains(&format!("hello from {n}")));
        name.unwrap_or("?").to_string()
    });
    // Round robin (the fallback) would give a third each; the pick gives 25/75.
    assert_shares(&counts, &[("a", 25.0), ("b", 75.0)]);

    // Disabled app: the sorry page, no backend reached.
    let mut off = weights(&door, 4, "proxy");
    off["apps"][0]["enabled"] = json!(false);
    door.envoy.push(off);
    // Each Envoy worker applies the push on its own tick: wait until 20
    // answers in a row (spread over the workers) are the sorry page.
    let sorry = eventually(std::time::Duration::from_secs(2), || {
        (0..20).all(|_| {
            let r = call(http().get(&door.envoy.url("/")), None);
            r.status == 503 && r.body.contains("Sorry")
        })
    });
    assert!(
        sorry.is_some(),
        "disabled app not answered with the sorry page by every worker"
    );
}

#[test]
fn redirect_mode_answers_307_to_methods_other_than_get_and_head() {
    let door = start("redirect");
    let agent = http();
    let is_server_url = |loc: &str, path: &str| {
        door.apps
            .iter()
            .any(|a| loc == format!("{}{path}", a.url()))
    };
    let r = call(agent.get(&door.envoy.url("/form?x=1")), None);
    assert_eq!(r.status, 302, "{}", r.body);
    let loc = r.location.unwrap_or_default();
    assert!(is_server_url(&loc, "/form?x=1"), "{loc}");
    let r = call(agent.head(&door.envoy.url("/form")), None);
    assert_eq!(r.status, 302);
    let loc = r.location.unwrap_or_default();
    assert!(is_server_url(&loc, "/form"), "{loc}");
    // POST and PUT keep their method and body: 307 to the chosen server.
    for req in [
        agent.post(&door.envoy.url("/form?x=1")),
        agent.put(&door.envoy.url("/form?x=1")),
    ] {
        let r = call(
            req.set("content-type", "application/x-www-form-urlencoded"),
            Some("name=value&other=1"),
        );
        assert_eq!(r.status, 307, "{}", r.body);
        let loc = r.location.unwrap_or_default();
        assert!(is_server_url(&loc, "/form?x=1"), "{loc}");
    }
}

#[test]
fn disabled_app_shows_the_built_in_sorry_page() {
    let door = start("redirect");
    let mut off = weights(&door, 5, "redirect");
    off["apps"][0]["enabled"] = json!(false);
    door.envoy.push(off);
    let sorry = eventually(std::time::Duration::from_secs(2), || {
        (0..10).all(|_| fresh_get(&door.envoy.url("/")).status == 503)
    });
    assert!(sorry.is_some(), "disabled app not answered with 503");
    for _ in 0..10 {
        let r = fresh_get(&door.envoy.url("/"));
        assert_eq!(r.status, 503);
        assert_eq!(r.body, usher_core::BUILT_IN_SORRY_PAGE);
        assert!(r
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("text/html")));
    }
}
