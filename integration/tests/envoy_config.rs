//! Envoy + usher filter: a bad plugin configuration is refused (by
//! `envoy --mode validate` and at start), with a log line naming the field;
//! the command endpoint speaks the WSI protocol (token, 400 naming the
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
