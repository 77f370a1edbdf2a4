//! Snapshot pushes to web server interfaces: a loopback receiver in the
//! test plays the WSI command endpoint; changes made with `usher ctl` must
//! reach it within 1 s, with the WSI's token and increasing versions.

use std::time::{Duration, Instant};

use usher_integration::{eventually, free_port, ControlPlane, WsiRecorder};

#[test]
fn changes_reach_wsis_within_a_second_with_token_and_rising_versions() {
    let (rx, port) = WsiRecorder::start();
    let front = free_port();
    let cfg = format!(
        "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\nstateful = [\"/cart\"]\nsession_cookie = \"usher_session\"\n\
         [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"http://127.0.0.1:20401\"\ncapacity = 5\n\
         [[servers]]\nname = \"b\"\napp = \"shop\"\nurl = \"http://127.0.0.1:20402\"\ncapacity = 3\n\
         [[wsis]]\nname = \"ngx-a\"\nurl = \"http://127.0.0.1:{port}/a/command\"\nrole = \"server\"\napp = \"shop\"\nserver = \"a\"\ntoken_file = \"a.token\"\n\
         [[wsis]]\nname = \"door\"\nurl = \"http://127.0.0.1:{port}/door/command\"\nrole = \"interceptor\"\napp = \"shop\"\ntoken = \"door-token\"\n"
    );
    let cp = ControlPlane::start(&cfg, &[("a.token", "a-token-1\n")]);
    let t0 = Instant::now();
    let first_a = rx
        .wait_for("/a/command", t0, Duration::from_secs(3), |_| true)
        .expect("first push to ngx-a");
    assert_eq!(first_a.auth, "Bearer a-token-1");
    assert_eq!(first_a.body["type"], "snapshot");
    let orders = &first_a.body["snapshot"]["orders"];
    assert!(orders["redirect"].is_null(), "{orders}");
    assert_eq!(orders["rules"]["stateful"][0], "/cart");
    assert_eq!(orders["rules"]["session_cookie"], "usher_session");
    let first_door = rx
        .wait_for("/door/command", t0, Duration::from_secs(3), |_| true)
        .expect("first push to door");
    assert_eq!(first_door.auth, "Bearer door-token");
    let app = &first_door.body["snapshot"]["apps"][0];
    assert_eq!(app["name"], "shop");
    assert_eq!(app["enabled"], true);
    assert_eq!(app["servers"].as_array().map(Vec::len), Some(2));

    // Redirect order via usher ctl: reaches the server WSI within 1 s,
    // resolved to the configured URL of b.
    let t = Instant::now();
    assert!(cp.ctl(&["server", "redirect", "a", "b"]).status.success());
    let got = rx
        .wait_for("/a/command", t, Duration::from_secs(3), |s| {
            s["orders"]["redirect"]["target"] == "http://127.0.0.1:20402"
        })
        .expect("redirect order pushed");
    assert!(got.at - t < Duration::from_secs(1), "took {:?}", got.at - t);
    // To the front door: the app's front-door URL.
    let t = Instant::now();
    assert!(cp
        .ctl(&["server", "redirect", "a", "front-door"])
        .status
        .success());
    let got = rx
        .wait_for("/a/command", t, Duration::from_secs(3), |s| {
            s["orders"]["redirect"]["target"] == format!("http://127.0.0.1:{front}")
        })
        .expect("front-door order pushed");
    assert!(got.at - t < Duration::from_secs(1), "took {:?}", got.at - t);

    // App disabled and a load set: reach the interceptor within 1 s.
    let t = Instant::now();
    assert!(cp.ctl(&["app", "disable", "shop"]).status.success());
    let got = rx
        .wait_for("/door/command", t, Duration::from_secs(3), |s| {
            s["apps"][0]["enabled"] == false
        })
        .expect("disable pushed");
    assert!(got.at - t < Duration::from_secs(1), "took {:?}", got.at - t);
    let t = Instant::now();
    assert!(cp.ctl(&["server", "load", "b", "2500"]).status.success());
    let got = rx
        .wait_for("/door/command", t, Duration::from_secs(3), |s| {
            s["apps"][0]["servers"].as_array().is_some_and(|v| {
                v.iter()
                    .any(|x| x["name"] == "b" && x["dynamic_load"] == 2500)
            })
        })
        .expect("load pushed");
    assert!(got.at - t < Duration::from_secs(1), "took {:?}", got.at - t);

    // Without changes, pushes still come (every 2 s).
    let t = Instant::now();
    let again = rx
        .wait_for("/door/command", t, Duration::from_secs(4), |_| true)
        .expect("periodic push");
    assert!(
        again.at - t <= Duration::from_millis(2600),
        "took {:?}",
        again.at - t
    );

    // A WSI that reports a newer version (409) makes the next one higher.
    let last = rx
        .all("/door/command")
        .last()
        .and_then(|g| g.body["snapshot"]["version"].as_u64())
        .expect("v");
    let ahead = last + 3_600_000;
    rx.stale_once("/door/command", ahead);
    let t = Instant::now();
    assert!(cp.ctl(&["app", "enable", "shop"]).status.success());
    let got = rx
        .wait_for("/door/command", t, Duration::from_secs(3), |s| {
            s["apps"][0]["enabled"] == true
        })
        .expect("push after 409");
    assert!(got.body["snapshot"]["version"].as_u64().expect("v") > ahead);

    // One far ahead of the control plane's clock (more than 24 h) is not
    // followed: a warning names the WSI, and later versions stay near the
    // clock (`usher_core::version`).
    rx.stale_once("/door/command", u64::MAX);
    let t = Instant::now();
    assert!(cp.ctl(&["server", "load", "b", "2400"]).status.success());
    rx.wait_for("/door/command", t, Duration::from_secs(3), |s| {
        s["apps"][0]["servers"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x["dynamic_load"] == 2400))
    })
    .expect("pushed, refused as stale");
    let t = Instant::now();
    let next = rx
        .wait_for("/door/command", t, Duration::from_secs(4), |_| true)
        .expect("the next push");
    let v = next.body["snapshot"]["version"].as_u64().expect("v");
    assert!(v < ahead + 60_000, "the clock followed u64::MAX: {v}");
    assert!(
        cp.log()
            .lines()
            .any(|l| l.contains("WSI door:") && l.contains("18446744073709551615")),
        "{}",
        cp.log()
    );

    // A WSI added through the API gets its first snapshot within 1 s.
    let t = Instant::now();
    let o = cp.ctl(&[
        "wsi",
        "add",
        "ngx-b",
        "--url",
        &format!("http://127.0.0.1:{port}/b/command"),
        "--role",
        "server",
        "--app",
        "shop",
        "--server",
        "b",
        "--token",
        "b-token-1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = rx
        .wait_for("/b/command", t, Duration::from_secs(3), |_| true)
        .expect("push to new WSI");
    assert!(got.at - t < Duration::from_secs(1), "took {:?}", got.at - t);
    assert_eq!(got.auth, "Bearer b-token-1");

    // Versions rise strictly on every endpoint, and the status is shown.
    for path in ["/a/command", "/door/command", "/b/command"] {
        let versions: Vec<u64> = rx
            .all(path)
            .iter()
            .map(|g| g.body["snapshot"]["version"].as_u64().expect("version"))
            .collect();
        assert!(
            versions.windows(2).all(|w| w[1] > w[0]),
            "{path}: {versions:?}"
        );
    }
    let wsis = cp.api_ok("GET", "/api/v1/wsis", None);
    let door = wsis
        .as_array()
        .and_then(|a| a.iter().find(|w| w["name"] == "door"))
        .expect("door");
    assert!(door["push"]["applied_version"].as_u64().is_some(), "{door}");
    assert!(door.get("token").is_none(), "{door}");
}

#[test]
fn an_unreachable_wsi_is_logged_and_blocks_nothing() {
    let dead = free_port();
    let front = free_port();
    let cfg = format!(
        "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\n\
         [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"http://127.0.0.1:20501\"\ncapacity = 5\n\
         [[wsis]]\nname = \"gone\"\nurl = \"http://127.0.0.1:{dead}/usher/command\"\nrole = \"interceptor\"\napp = \"shop\"\ntoken = \"gone-token\"\n"
    );
    let cp = ControlPlane::start(&cfg, &[]);
    // The API and the front door keep answering.
    for _ in 0..5 {
        assert!(cp.ctl(&["server", "load", "a", "100"]).status.success());
    }
    let status = eventually(Duration::from_secs(3), || {
        let w = cp.api_ok("GET", "/api/v1/wsis", None);
        w[0]["push"]["last_error"].as_str().is_some()
    });
    assert!(status.is_some(), "push failure not reported");
    assert!(cp.log().contains("WSI gone: push to"), "{}", cp.log());
}
