//! `usher ctl` for the manager's actions, end to end against the real
//! control plane with no agent: drain with a quiet period until drained,
//! undrain, an app's policy read and changed (and changes refused, with
//! nothing sent), the apps table's SWAMPED column, and clear errors.
//!
//! With no agent no server reports and none fails: each stays `ok`, and a
//! drain counts its quiet period from the order (no request ever arrives).

use std::time::Duration;

use serde_json::Value;
use usher_integration::ctl_output::{fails, ok, table_row, text};
use usher_integration::{eventually, free_port, ControlPlane};

/// App `shop` with servers `web1` and `web2` on free ports where nothing
/// listens (no agent watches them).
fn shop() -> ControlPlane {
    let (front, p1, p2) = (free_port(), free_port(), free_port());
    ControlPlane::start(
        &format!(
            "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\n\
             [[servers]]\nname = \"web1\"\napp = \"shop\"\nurl = \"http://127.0.0.1:{p1}\"\ncapacity = 5\n\
             [[servers]]\nname = \"web2\"\napp = \"shop\"\nurl = \"http://127.0.0.1:{p2}\"\ncapacity = 5\n"
        ),
        &[],
    )
}

fn server(cp: &ControlPlane, name: &str) -> Value {
    cp.api_ok("GET", &format!("/api/v1/servers/{name}"), None)
}

fn policy(cp: &ControlPlane) -> Value {
    cp.api_ok("GET", "/api/v1/apps/shop/policy", None)
}

/// The events logged for `origin` (type name, text), oldest first.
fn events(cp: &ControlPlane, origin: &str) -> Vec<(String, String)> {
    let v = cp.api_ok(
        "GET",
        &format!("/api/v1/events?component={origin}&limit=100"),
        None,
    );
    let mut all: Vec<(String, String)> = v
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["type_name"].as_str().unwrap_or_default().to_string(),
                e["text"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    all.reverse();
    all
}

#[test]
fn drain_until_drained_then_undrain() {
    let cp = shop();

    let out = ok(cp.ctl(&["server", "drain", "web1", "--quiet", "3s"]));
    assert_eq!(out.trim(), "server web1 draining (quiet 3s)");
    assert_eq!(server(&cp, "web1")["state"], "draining");
    let table = ok(cp.ctl(&["servers"]));
    // No new users for a draining server: all of them go to web2.
    assert_eq!(
        table_row(&table, "web1")[2..4],
        ["draining", "0.0%"],
        "{table}"
    );
    assert_eq!(table_row(&table, "web2")[2..4], ["ok", "100.0%"], "{table}");

    // No request comes (nothing listens), so the quiet period runs from
    // the order: drained once it passed, not before.
    let took = eventually(Duration::from_secs(10), || {
        server(&cp, "web1")["state"] == "drained"
    });
    assert!(took.is_some(), "web1 not drained: {}", server(&cp, "web1"));
    let d = server(&cp, "web1")["acts"]["drain"].clone();
    let since = d["since_unix"].as_f64().expect("since_unix");
    let at = d["drained_at_unix"].as_f64().expect("drained_at_unix");
    assert!(at - since >= 3.0, "drained after {} s: {d}", at - since);
    assert_eq!(table_row(&ok(cp.ctl(&["servers"])), "web1")[2], "drained");
    let logged = eventually(Duration::from_secs(5), || {
        let kinds: Vec<String> = events(&cp, "web1")
            .into_iter()
            .map(|e| e.0)
            .filter(|k| k.starts_with("server_drain"))
            .collect();
        kinds == ["server_draining", "server_drained"]
    });
    assert!(logged.is_some(), "{:?}", events(&cp, "web1"));

    // Back in rotation: `ok`, or `slow-start` when the app's policy ramps
    // a returning server up (slow_start_s above 0).
    let out = ok(cp.ctl(&["server", "undrain", "web1"]));
    let s = server(&cp, "web1");
    let state = s["state"].as_str().unwrap_or_default();
    assert!(state == "ok" || state == "slow-start", "{s}");
    assert_eq!(out.trim(), format!("server web1 undrained (now {state})"));
    assert!(s["acts"]["drain"].is_null(), "{s}");
    let table = ok(cp.ctl(&["servers"]));
    let web1 = table_row(&table, "web1");
    assert!(!web1[2].starts_with("drain"), "{table}");
    assert_ne!(web1[3], "0.0%", "web1 gets new users again: {table}");
    // Undrained twice: the API's 409, said as the CLI says API errors.
    let err = fails(cp.ctl(&["server", "undrain", "web1"]));
    assert!(
        err.contains("server web1 is not draining (HTTP 409)"),
        "{err}"
    );

    // Without --quiet: the app's drain_quiet_s (600 s); --json prints the
    // API's answer; --then is passed on.
    let out = ok(cp.ctl(&["server", "drain", "web2"]));
    assert_eq!(out.trim(), "server web2 draining (quiet 10m)");
    let j: Value = serde_json::from_str(&ok(cp.ctl(&[
        "--json", "server", "drain", "web2", "--quiet", "1h", "--then", "stop",
    ])))
    .expect("json");
    assert_eq!(
        (&j["server"], &j["state"]),
        (&Value::from("web2"), &Value::from("draining")),
        "{j}"
    );
    // A drain that replaces another answers with the new order.
    let d = &j["acts"]["drain"];
    assert!(d["quiet_s"] == 3600.0 && d["then"] == "stop", "{j}");
    let out = ok(cp.ctl(&[
        "server", "drain", "web2", "--quiet", "90s", "--then", "restart",
    ]));
    assert_eq!(out.trim(), "server web2 draining (quiet 90s, then restart)");
    ok(cp.ctl(&["server", "undrain", "web2"]));
}

#[test]
fn drain_errors_are_clear() {
    let cp = shop();
    for cmd in ["drain", "undrain"] {
        let err = fails(cp.ctl(&["server", cmd, "ghost"]));
        assert!(
            err.contains("no server named \"ghost\" (HTTP 404)"),
            "{cmd}: {err}"
        );
    }
    // A duration the CLI cannot read: refused before anything is sent.
    let err = fails(cp.ctl(&["server", "drain", "web1", "--quiet", "soon"]));
    assert!(err.contains("--quiet: not a duration"), "{err}");
    // Longer than the API takes: its message.
    let err = fails(cp.ctl(&["server", "drain", "web1", "--quiet", "2d"]));
    assert!(err.contains("quiet_s: must be 0..86400"), "{err}");
    assert_eq!(server(&cp, "web1")["state"], "ok");
    // Only stop or restart follow a drain (clap's own error, status 2).
    let o = cp.ctl(&["server", "drain", "web1", "--then", "reboot"]);
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
    assert_eq!(server(&cp, "web1")["state"], "ok");
}

#[test]
fn a_drained_server_with_no_agent_cannot_be_stopped_or_restarted() {
    let cp = shop();
    ok(cp.ctl(&["server", "drain", "web1", "--quiet", "0s", "--then", "stop"]));
    ok(cp.ctl(&[
        "server", "drain", "web2", "--quiet", "0s", "--then", "restart",
    ]));
    for (name, what) in [("web1", "stop"), ("web2", "restart")] {
        let failed = eventually(Duration::from_secs(5), || {
            events(&cp, name).iter().any(|(kind, text)| {
                kind == "restart_failed"
                    && text.contains(&format!("{what} through its agent failed"))
                    && text.contains(&format!("no connected agent watches server {name}"))
            })
        });
        assert!(failed.is_some(), "{name}: {:?}", events(&cp, name));
    }
    // The stop that failed leaves web1 drained, for the operator to undrain.
    assert_eq!(server(&cp, "web1")["state"], "drained");
}

#[test]
fn policy_is_shown_and_changed_key_by_key() {
    let cp = shop();
    let before = policy(&cp);
    let keys = before.as_object().expect("object").len();

    let table = ok(cp.ctl(&["app", "policy", "shop"]));
    assert_eq!(
        table
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["KEY", "VALUE"],
        "{table}"
    );
    assert_eq!(table.lines().count(), keys + 1, "{table}");
    assert_eq!(
        table_row(&table, "heavy_ms"),
        ["heavy_ms", "500"],
        "{table}"
    );
    assert_eq!(
        table_row(&table, "offload_to"),
        ["offload_to", "front-door"]
    );
    let j: Value =
        serde_json::from_str(&ok(cp.ctl(&["--json", "app", "policy", "shop"]))).expect("json");
    assert_eq!(j, before);

    let table = ok(cp.ctl(&[
        "app",
        "policy",
        "shop",
        "--set",
        "heavy_ms=123",
        "--set",
        "offload_to=lightest",
    ]));
    assert_eq!(
        table_row(&table, "heavy_ms"),
        ["heavy_ms", "123"],
        "{table}"
    );
    assert_eq!(table_row(&table, "offload_to"), ["offload_to", "lightest"]);
    let after = policy(&cp);
    assert_eq!(after["heavy_ms"].as_f64(), Some(123.0), "{after}");
    assert_eq!(after["offload_to"], "lightest", "{after}");
    let mut rest = after.clone();
    rest["heavy_ms"] = before["heavy_ms"].clone();
    rest["offload_to"] = before["offload_to"].clone();
    assert_eq!(rest, before, "only the keys set changed");

    // A key the policy does not have: named, and nothing is sent (the
    // good --set before it is not applied either).
    let err = fails(cp.ctl(&[
        "app",
        "policy",
        "shop",
        "--set",
        "heavy_ms=99",
        "--set",
        "nope=1",
    ]));
    assert!(err.contains("--set nope: no policy key \"nope\""), "{err}");
    assert_eq!(policy(&cp), after);
    // A value the API refuses: its message, naming the key.
    let err = fails(cp.ctl(&["app", "policy", "shop", "--set", "heavy_ms=-1"]));
    assert!(
        err.contains("heavy_ms: must be a number above 0 (HTTP 400)"),
        "{err}"
    );
    assert_eq!(policy(&cp), after);
    let err = fails(cp.ctl(&["app", "policy", "shop", "--set", "heavy_ms"]));
    assert!(err.contains("--set: expected KEY=VALUE"), "{err}");
    let err = fails(cp.ctl(&["app", "policy", "ghost"]));
    assert!(err.contains("no app named \"ghost\" (HTTP 404)"), "{err}");

    // --json with --set prints the policy as stored.
    let j: Value = serde_json::from_str(&ok(cp.ctl(&[
        "--json",
        "app",
        "policy",
        "shop",
        "--set",
        "swamped_action=sorry",
    ])))
    .expect("json");
    assert_eq!(j["swamped_action"], "sorry", "{j}");
    assert_eq!(j, policy(&cp));
}

#[test]
fn apps_show_whether_swamped() {
    let cp = shop();
    let apps = ok(cp.ctl(&["apps"]));
    assert!(
        apps.lines().next().unwrap_or_default().ends_with("SWAMPED"),
        "{apps}"
    );
    assert_eq!(table_row(&apps, "shop").last(), Some(&"-"), "{apps}");

    // One of two servers out of rotation is more than a third: swamped.
    ok(cp.ctl(&["app", "policy", "shop", "--set", "unswamp_s=1"]));
    ok(cp.ctl(&["server", "disable", "web2"]));
    let why = "1 of 2 servers are out of rotation";
    let shown = eventually(Duration::from_secs(5), || {
        table_row(&ok(cp.ctl(&["apps"])), "shop").last() == Some(&why)
    });
    assert!(shown.is_some(), "{}", ok(cp.ctl(&["apps"])));
    assert_eq!(cp.api_ok("GET", "/api/v1/apps/shop", None)["swamped"], why);
    ok(cp.ctl(&["server", "enable", "web2"]));
    let over = eventually(Duration::from_secs(5), || {
        table_row(&ok(cp.ctl(&["apps"])), "shop").last() == Some(&"-")
    });
    assert!(over.is_some(), "{}", ok(cp.ctl(&["apps"])));
}
