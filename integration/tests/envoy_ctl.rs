//! End to end with the control plane: `usher control` pushes snapshots to
//! the command endpoints of two real Envoys with the usher filter (a web
//! server in the server role, a front door in the interceptor role); a
//! change made with `usher ctl` is applied by every Envoy worker
//! (`--concurrency 2`) within 1 s, and both keep serving on the last
//! snapshot when the control plane stops.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use usher_integration::envoy::*;
use usher_integration::{eventually, free_port, fresh_get, fresh_get_worker, ControlPlane};

/// Waits until every worker of `envoy` (its roll, `workers_applied`)
/// applied the snapshot in force and that snapshot passes `has` (the
/// control plane may push others meanwhile), then polls `url` on fresh
/// connections: 30 answers must pass `ok`. Returns the time every worker
/// took.
fn all_workers(
    envoy: &Envoy,
    has: impl Fn(&Value) -> bool,
    url: &str,
    started: Instant,
    ok: impl Fn(u16, Option<&str>) -> bool,
) -> Duration {
    let mut last = Value::Null;
    let applied = eventually(Duration::from_secs(5), || {
        last = envoy.counters();
        workers_agree(&last) == last["version"].as_u64() && has(&last["snapshot"])
    });
    assert!(
        applied.is_some(),
        "change not applied by every worker within 5 s: {last}"
    );
    let took = started.elapsed();
    for _ in 0..30 {
        let (status, location, worker) = fresh_get_worker(url);
        assert!(
            ok(status, location.as_deref()),
            "worker {worker:?} answered {status} {location:?} after every worker applied"
        );
    }
    took
}

#[test]
fn a_change_made_with_usher_ctl_reaches_every_envoy_worker_within_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (app_a, app_b) = (demo_app(dir.path(), "a"), demo_app(dir.path(), "b"));
    let server_dir = dir.path().join("server");
    let door_dir = dir.path().join("door");
    std::fs::create_dir_all(&server_dir).expect("mkdir");
    std::fs::create_dir_all(&door_dir).expect("mkdir");
    let server = start_envoy(
        &server_dir,
        &EnvoySpec {
            plugin: json!({"role": "server", "app": "shop"}).to_string(),
            app_ports: vec![app_a.port],
            override_host: false,
            agent_port: free_port(),
        },
    );
    let door = start_envoy(
        &door_dir,
        &EnvoySpec {
            plugin: json!({"role": "interceptor", "app": "shop", "servers": [
                {"name": "a", "url": server.url(""), "capacity": 5},
                {"name": "b", "url": app_b.url(), "capacity": 5}]})
            .to_string(),
            app_ports: vec![server.web, app_b.port],
            override_host: false,
            agent_port: free_port(),
        },
    );
    let cfg = format!(
        "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\nstateful = [\"/cart\"]\n\
         [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"{a}\"\ncapacity = 5\n\
         [[servers]]\nname = \"b\"\napp = \"shop\"\nurl = \"{b}\"\ncapacity = 5\n\
         [[wsis]]\nname = \"envoy-a\"\nurl = \"{a_cmd}\"\nrole = \"server\"\napp = \"shop\"\nserver = \"a\"\ntoken = \"{COMMAND_TOKEN}\"\n\
         [[wsis]]\nname = \"envoy-door\"\nurl = \"{door_cmd}\"\nrole = \"interceptor\"\napp = \"shop\"\ntoken_file = \"door.token\"\n",
        front = free_port(),
        a = server.url(""),
        b = app_b.url(),
        a_cmd = server.command_url(),
        door_cmd = door.command_url(),
    );
    let cp = ControlPlane::start(&cfg, &[("door.token", &format!("{COMMAND_TOKEN}\n"))]);

    let first = eventually(Duration::from_secs(6), || {
        server.counters()["version"].as_u64() > Some(0)
            && door.counters()["version"].as_u64() > Some(0)
    });
    assert!(
        first.is_some(),
        "no snapshot reached Envoy: {} {}\n{}",
        server.counters(),
        door.counters(),
        cp.log()
    );
    assert_eq!(
        fresh_get(&server.url("/")).status,
        200,
        "no redirect order yet"
    );

    // Redirect order for server a: every worker of its Envoy sends users to b.
    let t = Instant::now();
    let out = cp.ctl(&["server", "redirect", "a", "b"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = format!("{}/", app_b.url());
    let redirected = |s: &Value| s["orders"]["redirect"]["target"].is_string();
    let took = all_workers(&server, redirected, &server.url("/"), t, |status, loc| {
        status == 302 && loc == Some(want.as_str())
    });
    assert!(
        took < Duration::from_secs(1),
        "redirect applied by every worker after {took:?}"
    );
    assert_eq!(
        fresh_get(&server.url("/cart")).status,
        200,
        "stateful page from the control plane's rules"
    );
    eprintln!("redirect order on every worker after {took:?}");

    // Disable the application: every worker of the Envoy front door answers
    // the sorry page.
    let t = Instant::now();
    assert!(cp.ctl(&["app", "disable", "shop"]).status.success());
    let disabled = |s: &Value| s["apps"][0]["enabled"] == false;
    let took = all_workers(&door, disabled, &door.url("/"), t, |status, _| {
        status == 503
    });
    assert!(
        took < Duration::from_secs(1),
        "disable applied by every worker after {took:?}"
    );
    eprintln!("app disabled on every worker after {took:?}");
    assert!(cp.ctl(&["app", "enable", "shop"]).status.success());
    let back = eventually(Duration::from_secs(3), || {
        fresh_get(&door.url("/")).status == 302
    });
    assert!(back.is_some(), "enabled again");

    // Control plane away: both Envoys keep serving on the last snapshot.
    let (server_version, door_version) = (
        server.counters()["version"].clone(),
        door.counters()["version"].clone(),
    );
    let mut cp = cp;
    cp.stop();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..20 {
        assert_eq!(
            fresh_get(&door.url("/")).status,
            302,
            "front door keeps picking"
        );
        let r = fresh_get(&server.url("/"));
        assert_eq!(
            (r.status, r.location.as_deref()),
            (302, Some(want.as_str())),
            "redirect order kept"
        );
    }
    assert_eq!(server.counters()["version"], server_version);
    assert_eq!(door.counters()["version"], door_version);
}
