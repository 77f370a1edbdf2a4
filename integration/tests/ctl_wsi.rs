//! `usher ctl --wsi URL --token-file F …` drives one WSI with no control
//! plane running (issue 14): an nginx interceptor and an Envoy interceptor
//! are given servers, lose one, change mode, are disabled and enabled, all
//! by snapshots `usher ctl` builds from the one the WSI holds; an nginx in
//! the server role takes a redirect order and lifts it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use usher_integration::artifacts::Artifact;
use usher_integration::envoy::{demo_app, start_envoy, EnvoySpec, COMMAND_TOKEN};
use usher_integration::nginx::TOKEN;
use usher_integration::{free_port, fresh_get, DemoApp, Nginx};

/// Runs `usher ctl --wsi url --token-file token …`: (success, stdout, stderr).
fn ctl(url: &str, token: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(Artifact::Usher.path())
        .arg("ctl")
        .arg("--wsi")
        .arg(url)
        .arg("--token-file")
        .arg(token)
        .args(args)
        .env_remove("USHER_TOKEN")
        .output()
        .expect("run usher ctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(url: &str, token: &Path, args: &[&str]) -> String {
    let (ok, out, err) = ctl(url, token, args);
    assert!(ok, "usher ctl --wsi {url} {args:?} failed: {err}{out}");
    out
}

/// Which of `apps` a redirect points at, for `n` new users at `door`.
fn referrals(door: &str, apps: &[&DemoApp], n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let r = fresh_get(door);
        let key = match (r.status, r.location.as_deref()) {
            (302, Some(loc)) => apps
                .iter()
                .find(|a| loc.starts_with(&a.url()))
                .map_or_else(|| format!("elsewhere {loc}"), |a| a.name.clone()),
            (s, _) => format!("status {s}"),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// Polls `check` for up to 3 s until it holds (each worker takes a new
/// snapshot within its tick); fails with its last look.
fn settle<T: std::fmt::Debug>(what: &str, mut check: impl FnMut() -> (bool, T)) {
    let start = Instant::now();
    loop {
        let (held, seen) = check();
        if held {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{what}: not within 3 s: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `server add NAME --app shop --url URL --capacity 5`.
fn add(url: &str, token: &Path, name: &str, server_url: &str) -> String {
    let args = ["server", "add", name, "--app", "shop", "--url", server_url];
    ok(url, token, &[&args[..], &["--capacity", "5"]].concat())
}

/// `n` new users at `door` all went to `name`.
fn all_to(door: &str, apps: &[&DemoApp], name: &str, n: usize) -> (bool, BTreeMap<String, usize>) {
    let c = referrals(door, apps, n);
    (c.get(name) == Some(&n), c)
}

/// The same walk through any interceptor: `door` its front-door URL,
/// `url` its command endpoint.
fn drive_interceptor(door: &str, url: &str, token: &Path, a: &DemoApp, b: &DemoApp) {
    // Nothing pushed yet: the WSI says so.
    let shown = ok(url, token, &["servers"]);
    assert!(shown.contains("no snapshot yet"), "{shown}");

    add(url, token, "a", &a.url());
    let said = add(url, token, "b", &b.url());
    assert!(said.contains("applied"), "{said}");
    settle("a and b both get users", || {
        let c = referrals(door, &[a, b], 100);
        let got = |app: &DemoApp| c.get(&app.name).copied().unwrap_or(0);
        let both = got(a) > 15 && got(b) > 15;
        (both, c)
    });

    ok(url, token, &["server", "disable", "a"]);
    settle("only b once a is disabled", || {
        all_to(door, &[a, b], &b.name, 60)
    });
    let table = ok(url, token, &["servers"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("a  shop") && l.contains("false")),
        "{table}"
    );

    ok(url, token, &["app", "disable", "shop"]);
    settle("the sorry page (503) for a disabled app", || {
        let s = fresh_get(door).status;
        (s == 503, s)
    });
    ok(url, token, &["app", "enable", "shop"]);
    ok(url, token, &["server", "enable", "a"]);
    ok(url, token, &["server", "remove", "b"]);
    settle("only a once b is removed", || {
        all_to(door, &[a, b], &a.name, 60)
    });

    // Bad input: named, and nothing changes.
    let (done, _, err) = ctl(url, token, &["server", "disable", "nope"]);
    assert!(!done && err.contains("no server nope"), "{err}");
    let (done, _, err) = ctl(url, token, &["wsis"]);
    assert!(!done && err.contains("needs the control plane"), "{err}");
    let wrong = token.with_extension("wrong");
    std::fs::write(&wrong, "not-the-token-at-all").expect("token file");
    let (done, _, err) = ctl(url, &wrong, &["servers"]);
    assert!(!done && err.contains("token refused by the WSI"), "{err}");
}

#[test]
fn nginx_interceptor_and_server_role_without_a_control_plane() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("nginx.token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token file");
    let (a, b) = (DemoApp::start("wsi-a", 0), DemoApp::start("wsi-b", 0));
    let door = Nginx::start(
        "",
        "usher_role interceptor; usher_app shop;\n location / { }",
    );
    drive_interceptor(&door.url("/"), &door.url("/usher/command"), &token, &a, &b);

    // Proxy mode through $usher_upstream: the answer comes from a itself.
    let proxy = Nginx::start(
        "",
        "usher_role interceptor; usher_app shop;\n location / { proxy_pass $usher_upstream; }",
    );
    let cmd = proxy.url("/usher/command");
    add(&cmd, &token, "a", &a.url());
    ok(&cmd, &token, &["app", "mode", "shop", "proxy"]);
    settle("proxied to a", || {
        let r = fresh_get(&proxy.url("/"));
        (r.status == 200 && r.body.contains("wsi-a"), r)
    });
    let apps = ok(&cmd, &token, &["apps"]);
    assert!(apps.contains("shop  true  proxy  1"), "{apps}");

    // Server role: a redirect order, then lifted.
    let server = Nginx::start(
        "",
        &format!(
            "usher_role server; usher_app shop;\n location / {{ proxy_pass {}; }}",
            b.url()
        ),
    );
    let cmd = server.url("/usher/command");
    let target = format!("http://127.0.0.1:{}", free_port());
    ok(&cmd, &token, &["server", "redirect", "self", &target]);
    settle("redirected to the target", || {
        let r = fresh_get(&server.url("/"));
        let to_target = r
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with(&target));
        (r.status == 302 && to_target, r)
    });
    ok(&cmd, &token, &["server", "redirect", "self", "--off"]);
    settle("served again once the order is lifted", || {
        let r = fresh_get(&server.url("/"));
        (r.status == 200, r)
    });
    let counters = server.counters();
    assert!(
        counters["snapshot"]["orders"]["redirect"].is_null(),
        "{counters}"
    );
}

#[test]
fn envoy_interceptor_without_a_control_plane() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("envoy.token");
    std::fs::write(&token, format!("{COMMAND_TOKEN}\n")).expect("token file");
    let (a, b) = (demo_app(dir.path(), "a"), demo_app(dir.path(), "b"));
    let plugin = json!({"role": "interceptor", "app": "shop", "mode": "redirect", "servers": []});
    let envoy = start_envoy(
        dir.path(),
        &EnvoySpec {
            plugin: plugin.to_string(),
            app_ports: vec![a.port, b.port],
            override_host: false,
            agent_port: free_port(),
        },
    );
    drive_interceptor(&envoy.url("/"), &envoy.command_url(), &token, &a, &b);
    assert!(
        envoy.counters()["snapshot"]["version"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
}
