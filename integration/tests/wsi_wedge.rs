//! No wedged WSI (`usher_core::version`): a snapshot version more than 24 h
//! ahead of the host's clock (here `u64::MAX`) is refused with a 400 naming
//! `snapshot.version` by the real nginx module and the real Envoy filter, and
//! changes nothing; a normal version afterwards is applied.

use serde_json::{json, Value};
use usher_integration::envoy::*;
use usher_integration::{free_port, Nginx, Response};

/// A version like the control plane's: the wall clock in unix ms.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn snapshot(version: u64) -> String {
    json!({"type": "snapshot", "snapshot": {"version": version}}).to_string()
}

/// Checks the refusal of `u64::MAX` and that `counters` still show `before`.
fn assert_refused(r: &Response, counters: Value, before: u64) {
    assert_eq!(r.status, 400, "{}", r.body);
    let error = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.starts_with("snapshot.version: 18446744073709551615 "),
        "{error}"
    );
    assert!(r.json().get("current").is_none(), "{}", r.body);
    assert_eq!(counters["version"], before, "nothing changed: {counters}");
}

#[test]
fn nginx_refuses_a_version_far_ahead_and_takes_the_next_normal_one() {
    let nginx = Nginx::start(
        "usher_ring {RING} 64k;",
        "usher_role server; usher_app shop;",
    );
    let first = now_ms();
    let r = nginx.command(&snapshot(first));
    assert_eq!(r.status, 200, "{}", r.body);

    let r = nginx.command(&snapshot(u64::MAX));
    assert_refused(&r, nginx.counters(), first);
    let r = nginx.command(&snapshot(first + 25 * 3_600_000));
    assert_eq!(r.status, 400, "25 h ahead is refused too: {}", r.body);

    let next = now_ms().max(first + 1);
    let r = nginx.command(&snapshot(next));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["applied"], next);
    assert_eq!(nginx.counters()["version"], next);
    // The usual rule still holds below the bound.
    assert_eq!(nginx.command(&snapshot(first)).status, 409);
}

#[test]
fn envoy_refuses_a_version_far_ahead_and_takes_the_next_normal_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = demo_app(dir.path(), "a");
    let envoy = start_envoy(
        dir.path(),
        &EnvoySpec {
            plugin: json!({"role": "server", "app": "shop"}).to_string(),
            app_ports: vec![app.port],
            override_host: false,
            agent_port: free_port(),
        },
    );
    let first = now_ms();
    let r = envoy.command(&snapshot(first));
    assert_eq!(r.status, 200, "{}", r.body);

    let r = envoy.command(&snapshot(u64::MAX));
    assert_refused(&r, envoy.counters(), first);

    let next = now_ms().max(first + 1);
    let r = envoy.command(&snapshot(next));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["applied"], next);
    assert_eq!(envoy.counters()["version"], next);
    assert_eq!(envoy.command(&snapshot(first)).status, 409);
}
