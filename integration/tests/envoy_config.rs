//! Envoy + usher filter: a bad plugin configuration is refused (by
//! `envoy --mode validate` and at start), with a log line naming the field;
//! an `agent_cluster` Envoy does not define is named in an error at the
//! first send; the command endpoint speaks the WSI protocol (token, 400 naming the
//! field, 409 for a stale version, echo, counters).

use std::time::{Duration, Instant};

use serde_json::json;
use usher_integration::envoy::*;
use usher_integration::{call, free_port, http};

fn spec(plugin: serde_json::Value) -> EnvoySpec {
    EnvoySpec {
        plugin: plugin.to_string(),
        app_ports: vec![free_port()],
        override_host: false,
        agent_port: free_port(),
    }
}

#[test]
fn bad_plugin_configs_are_refused_naming_the_field() {
    let cases = [
        (
            json!({"role": "server", "app": "shop", "colour": "red"}),
            "colour",
        ),
        (
            json!({"role": "server", "app": "shop", "record": ["status", "nonsense"], "agent_cluster": "usher_agent"}),
            "record",
        ),
        (
            json!({"role": "interceptor", "app": "shop", "servers": [{"name": "a", "url": "ftp://x", "capacity": 5}]}),
            "servers[0].url",
        ),
        (
            json!({"role": "server", "app": "shop", "stateful": ["cart"]}),
            "stateful[0]",
        ),
        (json!({"role": "janitor", "app": "shop"}), "role"),
        // The nginx module's token rule, in its words.
        (
            json!({"role": "command", "command_token": "ab"}),
            "command_token: the token must be at least 8 printable characters without spaces",
        ),
        (
            json!({"role": "server", "app": "shop", "agent_cluster": "usher_agent", "agent_token": "short"}),
            "agent_token: the token must be at least 8",
        ),
        // The 64 KiB sorry-page cap of every usher host.
        (
            json!({"role": "interceptor", "app": "shop", "sorry_page": "x".repeat(70_000)}),
            "sorry_page: is larger than 64 KiB",
        ),
    ];
    for (plugin, field) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cfg, [_, _, admin]) = write_config(dir.path(), &spec(plugin.clone()));
        let (ok, text) = validate(&cfg, admin);
        assert!(!ok, "validate accepted {plugin}");
        assert!(
            text.contains("refused: plugin configuration") && text.contains(field),
            "log must name {field}: {text}"
        );
    }

    // And a real start with a bad config fails instead of serving.
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = json!({"role": "server", "app": "shop", "colour": "red"});
    let (cfg, [_, _, admin]) = write_config(dir.path(), &spec(plugin));
    let mut envoy = spawn(&cfg, admin, &dir.path().join("envoy.log"));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = envoy.exit_status() {
            break Some(s);
        }
        if start.elapsed() > Duration::from_secs(20) {
            envoy.stop();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = status.expect("envoy kept running with a bad plugin config");
    assert!(!status.success(), "envoy exited 0 with a bad plugin config");
}

#[test]
fn an_unknown_agent_cluster_is_named_at_the_first_send() {
    // Envoy validates the plugin JSON as an opaque string, and the filter
    // has no call to look a cluster up, so the config starts; the first
    // record batch then names the key in an error, and requests still pass.
    let dir = tempfile::tempdir().expect("tempdir");
    let app = demo_app(dir.path(), "a");
    let mut s = spec(
        json!({"role": "server", "app": "shop", "record": ["status"],
        "agent_cluster": "usher_agnet", "agent_token": AGENT_TOKEN}),
    );
    s.app_ports = vec![app.port];
    let envoy = start_envoy(dir.path(), &s);
    let r = call(http().get(&envoy.url("/")), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let said = "agent_cluster \"usher_agnet\": Envoy has no cluster of that name";
    let start = Instant::now();
    while !envoy.log_text().contains(said) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no error naming agent_cluster in the log: {}",
            envoy.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = envoy
        .log_text()
        .lines()
        .find(|l| l.contains(said))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(line.contains("[error]"), "logged as an error: {line}");
    // Told once per worker (2), not once per batch.
    for _ in 0..150 {
        assert_eq!(call(http().get(&envoy.url("/")), None).status, 200);
    }
    std::thread::sleep(Duration::from_millis(1_500));
    let told = envoy.log_text().matches(said).count();
    assert!((1..=3).contains(&told), "told {told} times");
}

#[test]
fn command_endpoint_protocol() {
    let dir = tempfile::tempdir().expect("tempdir");
    let envoy = start_envoy(dir.path(), &spec(json!({"role": "server", "app": "shop"})));
    let url = envoy.command_url();

    let r = call(http().get(&url), None);
    assert_eq!(r.status, 401, "no token: {}", r.body);
    assert!(r.json()["error"].is_string());
    let r = call(http().get(&url).set("authorization", "Bearer wrong"), None);
    assert_eq!(r.status, 401);
    let r = call(
        http().post(&url).set("authorization", "Bearer wrong"),
        Some(r#"{"type":"snapshot","snapshot":{"version":5}}"#),
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        envoy.counters()["version"],
        0,
        "a refused push changes nothing"
    );

    let r = envoy.command("{not json");
    assert_eq!(r.status, 400);
    let r = envoy.command(
        &json!({"type": "snapshot", "snapshot": {"version": 3, "apps": [{"name": "shop", "enabled": true,
            "servers": [{"name": "a", "url": "http://127.0.0.1:1", "capacity": 50, "available": true}]}]}})
        .to_string(),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("snapshot.apps[0].servers[0].capacity"),
        "{}",
        r.body
    );
    let r = envoy.command(
        &json!({"type": "snapshot", "snapshot": {"version": 3, "surprise": 1}}).to_string(),
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("surprise"), "{}", r.body);
    assert_eq!(envoy.counters()["version"], 0);

    let r = envoy.command(&json!({"type": "snapshot", "snapshot": {"version": 5}}).to_string());
    assert_eq!((r.status, r.json()["applied"].clone()), (200, json!(5)));
    let r = envoy.command(&json!({"type": "snapshot", "snapshot": {"version": 5}}).to_string());
    assert_eq!(r.status, 409);
    assert_eq!(r.json(), json!({"error": "stale version", "current": 5}));

    let r = envoy.command(r#"{"type":"echo","text":"ping"}"#);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["echo"], "ping");
    assert!(r.json()["pid"].is_u64());

    let c = envoy.counters();
    for key in ["version", "records_written", "records_dropped", "redirects"] {
        assert!(c[key].is_u64(), "{key} in {c}");
    }
    assert_eq!(c["version"], 5);
    let r = call(
        http()
            .get(&format!("http://127.0.0.1:{}/elsewhere", envoy.command))
            .set("authorization", &format!("Bearer {COMMAND_TOKEN}")),
        None,
    );
    assert_eq!(r.status, 404);
}
