//! `usher ctl` end to end against the real control plane: tables, JSON,
//! every change command, and clear errors (unreachable, 401, 404) with a
//! non-zero exit code.

mod cp_common;

use std::process::{Command, Output};
use std::time::Duration;

use cp_common::ControlPlane;
use usher_integration::{call, free_port, http, usher_bin, wait_for_port};

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

fn ok(o: Output) -> String {
    let (out, err) = text(&o);
    assert!(o.status.success(), "usher ctl failed: {err}\n{out}");
    out
}

fn fails(o: Output) -> String {
    let (out, err) = text(&o);
    assert!(!o.status.success(), "usher ctl should fail: {out}");
    assert_eq!(o.status.code(), Some(1));
    err
}

#[test]
fn ctl_drives_the_control_plane() {
    let front = free_port();
    let cp = ControlPlane::start(
        &format!(
            "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\n\
             [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"http://127.0.0.1:20301\"\ncapacity = 5\n\
             [[servers]]\nname = \"b\"\napp = \"shop\"\nurl = \"http://127.0.0.1:20302\"\ncapacity = 3\n"
        ),
        &[],
    );
    wait_for_port(front, Duration::from_secs(5));

    let apps = ok(cp.ctl(&["apps"]));
    assert!(apps.starts_with("NAME"), "{apps}");
    assert!(
        apps.lines()
            .any(|l| l.starts_with("shop") && l.contains("yes") && l.contains("redirect")),
        "{apps}"
    );
    let servers = ok(cp.ctl(&["servers"]));
    assert!(
        servers
            .lines()
            .any(|l| l.starts_with("a ") && l.contains("5000")),
        "{servers}"
    );

    let out = ok(cp.ctl(&["server", "load", "a", "1500"]));
    assert!(out.contains("load 1500"), "{out}");
    let j: serde_json::Value =
        serde_json::from_str(&ok(cp.ctl(&["--json", "servers"]))).expect("json");
    assert_eq!(j[0]["name"], "a");
    assert_eq!(j[0]["dynamic_load"], 1500);
    assert_eq!(j[0]["load_metric"], 1500.0);

    ok(cp.ctl(&["server", "disable", "a"]));
    for _ in 0..20 {
        let r = call(http().get(&format!("http://127.0.0.1:{front}/q")), None);
        assert_eq!(r.location.as_deref(), Some("http://127.0.0.1:20302/q"));
    }
    ok(cp.ctl(&["server", "enable", "a"]));
    ok(cp.ctl(&["app", "disable", "shop"]));
    assert_eq!(
        call(http().get(&format!("http://127.0.0.1:{front}/")), None).status,
        503
    );
    ok(cp.ctl(&["app", "enable", "shop"]));
    assert_eq!(
        call(http().get(&format!("http://127.0.0.1:{front}/")), None).status,
        302
    );

    let out = ok(cp.ctl(&["server", "redirect", "a", "b"]));
    assert!(out.contains("redirecting users to b"), "{out}");
    assert_eq!(cp.api_ok("GET", "/api/v1/servers/a", None)["redirect"], "b");
    ok(cp.ctl(&["server", "redirect", "a", "--off"]));
    assert!(cp.api_ok("GET", "/api/v1/servers/a", None)["redirect"].is_null());

    let blog = free_port();
    ok(cp.ctl(&[
        "app",
        "add",
        "blog",
        "--listen",
        &format!("127.0.0.1:{blog}"),
        "--stateful",
        "/edit",
    ]));
    ok(cp.ctl(&[
        "server",
        "add",
        "c",
        "--app",
        "blog",
        "--url",
        "http://127.0.0.1:20303",
        "--capacity",
        "2",
    ]));
    wait_for_port(blog, Duration::from_secs(5));
    let r = call(http().get(&format!("http://127.0.0.1:{blog}/x")), None);
    assert_eq!(r.location.as_deref(), Some("http://127.0.0.1:20303/x"));
    ok(cp.ctl(&[
        "wsi",
        "add",
        "ngx-c",
        "--url",
        "http://127.0.0.1:9/usher/command",
        "--role",
        "server",
        "--app",
        "blog",
        "--server",
        "c",
        "--token",
        "t0k",
    ]));
    let wsis = ok(cp.ctl(&["wsis"]));
    assert!(
        wsis.lines()
            .any(|l| l.starts_with("ngx-c") && l.contains("server")),
        "{wsis}"
    );
    assert!(
        !wsis.contains("t0k"),
        "the WSI token must not be shown: {wsis}"
    );

    // Errors: 404 names the object; 409 explains; bad value names the field.
    let err = fails(cp.ctl(&["server", "enable", "nosuch"]));
    assert!(err.contains("no server named \"nosuch\""), "{err}");
    let err = fails(cp.ctl(&["app", "remove", "blog"]));
    assert!(err.contains("remove them first"), "{err}");
    let err = fails(cp.ctl(&["server", "load", "a", "20000"]));
    assert!(err.contains("value: must be 0..10000"), "{err}");

    ok(cp.ctl(&["wsi", "remove", "ngx-c"]));
    ok(cp.ctl(&["server", "remove", "c"]));
    ok(cp.ctl(&["app", "remove", "blog"]));
    let apps = ok(cp.ctl(&["apps"]));
    assert!(!apps.contains("blog"), "{apps}");
}

#[test]
fn ctl_errors_are_clear() {
    let cp = ControlPlane::start("", &[]);

    // Wrong token (from the environment): 401 worded for the operator.
    let o = Command::new(usher_bin())
        .args(["ctl", "--url", &cp.admin_url(), "apps"])
        .env("USHER_TOKEN", "not-the-token")
        .output()
        .expect("run");
    let err = fails(o);
    assert!(err.contains("token refused"), "{err}");
    // The right token from the environment works.
    let o = Command::new(usher_bin())
        .args(["ctl", "--url", &cp.admin_url(), "apps"])
        .env("USHER_TOKEN", &cp.token)
        .output()
        .expect("run");
    assert!(ok(o).starts_with("NAME"));
    // No token at all.
    let o = Command::new(usher_bin())
        .args(["ctl", "--url", &cp.admin_url(), "apps"])
        .env_remove("USHER_TOKEN")
        .output()
        .expect("run");
    let err = fails(o);
    assert!(err.contains("no admin token"), "{err}");

    // Nothing listening.
    let dead = free_port();
    let o = Command::new(usher_bin())
        .args([
            "ctl",
            "--url",
            &format!("http://127.0.0.1:{dead}"),
            "servers",
        ])
        .env("USHER_TOKEN", "x")
        .output()
        .expect("run");
    let err = fails(o);
    assert!(
        err.contains(&format!(
            "cannot reach the control plane at http://127.0.0.1:{dead}"
        )),
        "{err}"
    );

    // 404 for an unknown app.
    let err = fails(cp.ctl(&["app", "disable", "ghost"]));
    assert!(err.contains("no app named \"ghost\""), "{err}");
}
