//! End to end with the control plane: `usher control` pushes snapshots to
//! real nginx instances (a web server in the server role, a front door in
//! the interceptor role); a change made with `usher ctl` is applied by every
//! nginx worker within 1 s.

use std::time::{Duration, Instant};

use serde_json::Value;
use usher_integration::nginx::TOKEN;
use usher_integration::{eventually, free_port, ControlPlane, DemoApp, Nginx};

/// True when every worker of `nginx` acts on the version the endpoint holds
/// and that version is newer than `after`.
fn all_workers_applied(nginx: &Nginx, after: u64) -> Option<u64> {
    let c: Value = nginx.counters();
    let version = c["version"].as_u64()?;
    let applied = c["workers_applied"].as_array()?;
    (version > after && applied.len() == 2 && applied.iter().all(|v| v.as_u64() == Some(version)))
        .then_some(version)
}

#[test]
fn a_change_made_with_usher_ctl_reaches_every_nginx_worker_within_a_second() {
    let (app_a, app_b) = (DemoApp::start("ctl-a", 0), DemoApp::start("ctl-b", 0));
    let server = Nginx::start(
        "usher_ring {RING} 64k;",
        &format!(
            "usher_role server; usher_app shop;\n location / {{ proxy_pass {}; }}",
            app_a.url()
        ),
    );
    let door = Nginx::start(
        "",
        &format!(
            "usher_role interceptor; usher_app shop; usher_server a {} 5; usher_server b {} 5;\n location / {{ }}",
            server.url(""),
            app_b.url()
        ),
    );
    let cfg = format!(
        "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\nstateful = [\"/cart\"]\n\
         [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"{a}\"\ncapacity = 5\n\
         [[servers]]\nname = \"b\"\napp = \"shop\"\nurl = \"{b}\"\ncapacity = 5\n\
         [[wsis]]\nname = \"ngx-a\"\nurl = \"{a_cmd}\"\nrole = \"server\"\napp = \"shop\"\nserver = \"a\"\ntoken = \"{TOKEN}\"\n\
         [[wsis]]\nname = \"ngx-door\"\nurl = \"{door_cmd}\"\nrole = \"interceptor\"\napp = \"shop\"\ntoken_file = \"door.token\"\n",
        front = free_port(),
        a = server.url(""),
        b = app_b.url(),
        a_cmd = server.url("/usher/command"),
        door_cmd = door.url("/usher/command"),
    );
    let cp = ControlPlane::start(&cfg, &[("door.token", &format!("{TOKEN}\n"))]);

    // First pushes arrive and every worker applies them.
    let mut first = (0, 0);
    eventually(Duration::from_secs(5), || {
        first = (
            all_workers_applied(&server, 0).unwrap_or(0),
            all_workers_applied(&door, 0).unwrap_or(0),
        );
        first.0 > 0 && first.1 > 0
    })
    .unwrap_or_else(|| panic!("no snapshot applied by nginx: {first:?}\n{}", cp.log()));
    assert_eq!(server.get("/").status, 200, "no redirect order yet");

    // Redirect order for server a → every worker of its nginx applies it
    // within 1 s, and users are sent to b.
    let before = server.counters()["version"].as_u64().expect("version");
    let t = Instant::now();
    let out = cp.ctl(&["server", "redirect", "a", "b"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = eventually(Duration::from_secs(3), || {
        all_workers_applied(&server, before).is_some() && server.get("/").status == 302
    })
    .map(|_| t.elapsed())
    .unwrap_or_else(|| panic!("redirect order not applied: {}", server.counters()));
    assert!(
        took < Duration::from_secs(1),
        "applied by all workers after {took:?}"
    );
    let r = server.get("/static.html");
    assert_eq!(
        r.location.as_deref(),
        Some(format!("{}/static.html", app_b.url()).as_str())
    );
    assert_eq!(
        server.get("/cart").status,
        200,
        "stateful page from the control plane's rules"
    );

    // Disable the application → the nginx front door answers the sorry page.
    let before = door.counters()["version"].as_u64().expect("version");
    let t = Instant::now();
    assert!(cp.ctl(&["app", "disable", "shop"]).status.success());
    let took = eventually(Duration::from_secs(3), || {
        all_workers_applied(&door, before).is_some() && door.get("/").status == 503
    })
    .map(|_| t.elapsed())
    .unwrap_or_else(|| panic!("disable not applied: {}", door.counters()));
    assert!(
        took < Duration::from_secs(1),
        "applied by all workers after {took:?}"
    );
    for _ in 0..10 {
        assert_eq!(door.get("/").status, 503);
    }
    assert!(cp.ctl(&["app", "enable", "shop"]).status.success());
    eventually(Duration::from_secs(3), || door.get("/").status == 302).expect("enabled again");
}
