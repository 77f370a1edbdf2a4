//! `usher ctl` end to end against the real control plane: tables, JSON,
//! every change command, and clear errors (unreachable, 401, 404, not the
//! admin API, empty token file) with a non-zero exit code; and the admin
//! API's index of routes.

use std::process::Command;
use std::time::Duration;

use usher_integration::ctl_output::{fails, ok, table_row};
use usher_integration::{call, free_port, http, usher_bin, wait_for_port, ControlPlane};

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
    let header: Vec<&str> = servers
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "APP", "STATE", "WEIGHT", "LOAD", "AGE", "CAP", "URL"],
        "{servers}"
    );
    let a = table_row(&servers, "a");
    assert_eq!(a[..3], ["a", "shop", "ok"], "{servers}");
    assert!(a[3].ends_with('%'), "WEIGHT is a share: {servers}");
    assert_eq!(a[6..], ["5", "http://127.0.0.1:20301"], "{servers}");

    // Pointed at the front door instead of the admin API: said plainly.
    let o = Command::new(usher_bin())
        .args([
            "ctl",
            "--url",
            &format!("http://127.0.0.1:{front}"),
            "servers",
        ])
        .env("USHER_TOKEN", &cp.token)
        .output()
        .expect("run");
    let err = fails(o);
    assert!(
        err.contains(&format!(
            "http://127.0.0.1:{front} is not an usher admin API (HTTP 302"
        )),
        "{err}"
    );

    // Operator loads: pinned until cleared, or for a while.
    let out = ok(cp.ctl(&["server", "load", "a", "1500"]));
    assert_eq!(out.trim(), "a pinned at 1500 until cleared");
    let j: serde_json::Value =
        serde_json::from_str(&ok(cp.ctl(&["--json", "servers"]))).expect("json");
    assert_eq!(j[0]["name"], "a");
    assert_eq!(j[0]["dynamic_load"], 1500);
    assert_eq!(j[0]["state"], "pinned", "{j}");
    assert_eq!(j[0]["pinned"]["value"], 1500, "{j}");
    assert!(j[0]["pinned"]["until_unix"].is_null(), "{j}");
    let servers = ok(cp.ctl(&["servers"]));
    let a = table_row(&servers, "a");
    assert_eq!(
        (a[2], a[4], a[5]),
        ("pinned", "1500", "pinned"),
        "{servers}"
    );
    let out = ok(cp.ctl(&["server", "load", "a", "1500", "--for", "5m"]));
    assert_eq!(out.trim(), "a pinned at 1500 for 5m");
    let until = cp.api_ok("GET", "/api/v1/servers/a", None)["pinned"]["until_unix"].as_f64();
    assert!(until.is_some(), "a pin for 5m has an end");
    let servers = ok(cp.ctl(&["servers"]));
    let age = table_row(&servers, "a")[5];
    assert!(
        age == "pinned, 4m left" || age == "pinned, 5m left",
        "{servers}"
    );
    // One scale: capacity 5 (5000) at 1500/10000 of full speed.
    assert_eq!(j[0]["load_metric"], 750.0);

    let out = ok(cp.ctl(&["server", "load", "a", "--clear"]));
    assert_eq!(out.trim(), "a: pin cleared");
    let a = cp.api_ok("GET", "/api/v1/servers/a", None);
    assert!(a["pinned"].is_null(), "{a}");
    assert_eq!(a["state"], "ok", "{a}");
    let err = fails(cp.ctl(&["server", "load", "a", "1500", "--for", "soon"]));
    assert!(err.contains("--for: not a duration"), "{err}");

    // The request log, with and without the agents' probes (none here).
    ok(cp.ctl(&["requests", "--probes"]));
    let j: serde_json::Value =
        serde_json::from_str(&ok(cp.ctl(&["--json", "requests", "--probes"]))).expect("json");
    assert!(j.is_array(), "{j}");

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
        "t0k-token",
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
    // An empty token file.
    let empty = cp.dir.path().join("empty.token");
    std::fs::write(&empty, "\n").expect("write");
    let o = Command::new(usher_bin())
        .args(["ctl", "--url", &cp.admin_url(), "--token-file"])
        .arg(&empty)
        .arg("apps")
        .env_remove("USHER_TOKEN")
        .output()
        .expect("run");
    let err = fails(o);
    assert!(
        err.contains(&format!("token file {} is empty", empty.display())),
        "{err}"
    );
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

#[test]
fn the_api_index_lists_every_route() {
    let cp = ControlPlane::start("", &[]);
    for path in ["/api/v1/", "/api/v1"] {
        let v = cp.api_ok("GET", path, None);
        let routes = v["routes"].as_array().expect("routes");
        for want in ["/api/v1/servers", "/api/v1/events", "/api/v1/requests"] {
            assert!(
                routes
                    .iter()
                    .any(|r| r["method"] == "GET" && r["path"] == want),
                "{want} missing: {v}"
            );
        }
        let r = call(http().get(&format!("{}{path}", cp.admin_url())), None);
        assert_eq!(r.status, 401, "{path} without the token");
    }
    // Every listed route exists (whatever it says about an empty body or
    // a missing name, it is not "no such route").
    let v = cp.api_ok("GET", "/api/v1/", None);
    for r in v["routes"].as_array().expect("routes") {
        let method = r["method"].as_str().expect("method");
        let path = r["path"].as_str().expect("path");
        assert!(!r["what"].as_str().unwrap_or_default().is_empty(), "{r}");
        if path.ends_with("/agent/channel") {
            continue; // a WebSocket with the agent token: agent_channel.rs
        }
        let path = path.replace("{name}", "nosuch");
        let body = (method != "GET" && method != "DELETE").then_some("{}");
        let res = cp.api(method, &path, body);
        assert!(
            !res.body.contains("no such route") && res.status != 405,
            "{method} {path}: {} {}",
            res.status,
            res.body
        );
    }
}
