//! Load-triggered offload through Envoy in the server role (issue 11; the
//! nginx module is covered by `manager_acts`): the real `usher control`,
//! a real agent probing the servers, demo app `a` behind Envoy with the
//! usher filter (`--concurrency 2`) and demo app `b` on its own.
//!
//! `a` is slowed past `max_ms`: the manager puts it at maximum load and
//! its Envoy redirects new stateless GETs to the front door within 1 s,
//! on every worker — but never a listed stateful page (`/cart`), a page
//! under a stateful prefix (`/stat…`), a page that marked itself stateful
//! (`/account`, `Usher-Stateful: 1`), a request with the session cookie,
//! or a POST. When `a` is fast again the order is lifted.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use usher_integration::envoy::*;
use usher_integration::{
    call, eventually, free_port, fresh_get, http, start_agent, AgentBinary, ControlPlane,
};

fn state(cp: &ControlPlane, name: &str) -> String {
    cp.api_ok("GET", &format!("/api/v1/servers/{name}"), None)["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// A request on a fresh connection (either Envoy worker): status and
/// Location.
fn fresh(method: &str, url: &str, cookie: Option<&str>) -> (u16, Option<String>) {
    let mut req = http().request(method, url).set("connection", "close");
    if let Some(c) = cookie {
        req = req.set("cookie", c);
    }
    let r = call(req, if method == "POST" { Some("x=1") } else { None });
    (r.status, r.location)
}

#[test]
fn envoy_server_role_offloads_stateless_users_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app_a = demo_app(dir.path(), "a");
    let app_b = demo_app(dir.path(), "b");
    // Envoy sends its records (the probes' too, for the queue delay) to
    // the agent's batch receiver.
    let receiver = free_port();
    let envoy = start_envoy(
        dir.path(),
        &EnvoySpec {
            plugin: json!({
                "role": "server", "app": "shop",
                "record": ["method", "request_line", "content_path", "status", "start_time",
                           "processing_time", "client_endpoint"],
                "agent_cluster": "usher_agent", "agent_path": "/usher/records/a",
                "agent_token": AGENT_TOKEN,
            })
            .to_string(),
            app_ports: vec![app_a.port],
            override_host: false,
            agent_port: receiver,
        },
    );
    let front = free_port();
    let cfg = format!(
        "[manager]\ninterval_ms = 100\n\n\
         [[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:{front}\"\n\
         stateful = [\"/cart\"]\nstateful_prefixes = [\"/stat\"]\nsession_cookie = \"usher_session\"\n\
         [apps.policy]\nheavy_ms = 40\nmax_ms = 400\nrecover_ms = 1000\nheavy_queue = 10000\n\
         max_queue = 20000\nheavy_cpu_pct = 100\nheavy_mem_pct = 100\nslow_start_s = 0\n\n\
         [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"{a}\"\ncapacity = 5\n\
         [[servers]]\nname = \"b\"\napp = \"shop\"\nurl = \"{b}\"\ncapacity = 5\n\
         [[wsis]]\nname = \"envoy-a\"\nurl = \"{cmd}\"\nrole = \"server\"\napp = \"shop\"\n\
         server = \"a\"\ntoken = \"{COMMAND_TOKEN}\"\n",
        a = envoy.url(""),
        b = app_b.url(),
        cmd = envoy.command_url(),
    );
    let cp = ControlPlane::start(&cfg, &[]);
    let agent_dir = tempfile::tempdir().expect("tempdir");
    let agent_toml = format!(
        "agent_id = \"offload-agent\"\ndata_dir = \"{data}\"\n\
         control_url = \"ws://127.0.0.1:{admin}/api/v1/agent/channel\"\ntoken = \"{token}\"\n\
         interval_ms = 200\nprobe_interval_ms = 100\nreconnect_max_ms = 500\n\
         [receiver]\nlisten = \"127.0.0.1:{receiver}\"\ntoken = \"{AGENT_TOKEN}\"\n\
         [[servers]]\nname = \"a\"\nurl = \"{a}\"\nprobe_body = \"ok a\"\nprobe_timeout_ms = 3000\n\
         [[servers]]\nname = \"b\"\nurl = \"{b}\"\nprobe_body = \"ok b\"\nprobe_timeout_ms = 3000\n",
        data = agent_dir.path().join("data").display(),
        admin = cp.admin_port,
        token = cp.agent_token(),
        a = envoy.url(""),
        b = app_b.url(),
    );
    let agent = start_agent(agent_dir.path(), &agent_toml, AgentBinary::Usher);
    let log = || {
        format!(
            "--- agent:\n{}\n--- control:\n{}\n--- envoy:\n{}",
            agent.log_text(),
            cp.log(),
            envoy.log_text()
        )
    };
    eventually(Duration::from_secs(15), || {
        let a = cp.api_ok("GET", "/api/v1/servers/a", None);
        a["load"].as_u64().is_some() && envoy.counters()["version"].as_u64() > Some(0)
    })
    .unwrap_or_else(|| panic!("a never measured or pushed\n{}", log()));

    // Each worker learns that /account marks itself stateful.
    for _ in 0..20 {
        assert_eq!(fresh("GET", &envoy.url("/account"), None).0, 200);
    }

    // Maximum load: offloading, and Envoy redirects within 1 s.
    app_a.set_service_ms(500);
    eventually(Duration::from_secs(10), || state(&cp, "a") == "offloading").unwrap_or_else(|| {
        panic!(
            "a never offloading: {}\n{}",
            cp.api_ok("GET", "/api/v1/servers/a", None),
            log()
        )
    });
    let entered = Instant::now();
    let all_moved = eventually(Duration::from_secs(1), || {
        (0..10).all(|_| fresh("GET", &envoy.url("/"), None).0 == 302)
    });
    assert!(
        all_moved.is_some(),
        "Envoy did not redirect within 1 s of the offloading state\n{}",
        log()
    );
    eprintln!(
        "every worker redirects {:?} after the state",
        entered.elapsed()
    );
    let (status, location) = fresh("GET", &envoy.url("/?x=1"), None);
    assert_eq!(status, 302);
    assert_eq!(
        location.as_deref(),
        Some(format!("http://127.0.0.1:{front}/?x=1").as_str())
    );
    let staying: [(&str, &str, Option<&str>); 5] = [
        ("GET", "/cart", None),
        ("GET", "/stats", None),
        ("GET", "/account", None),
        ("GET", "/", Some("usher_session=abc")),
        ("POST", "/", None),
    ];
    for (method, path, cookie) in staying {
        for _ in 0..4 {
            let (status, location) = fresh(method, &envoy.url(path), cookie);
            assert_ne!(
                status, 302,
                "{method} {path} (cookie {cookie:?}) was moved to {location:?}"
            );
        }
    }
    let redirects: Value = envoy.counters()["redirects"].clone();
    eprintln!("Envoy counters: redirects {redirects}");

    // Fast again: the order is lifted after the lower mark held.
    app_a.set_service_ms(0);
    eventually(Duration::from_secs(10), || state(&cp, "a") == "ok")
        .unwrap_or_else(|| panic!("a never back: {}\n{}", state(&cp, "a"), log()));
    let lifted = eventually(Duration::from_secs(2), || {
        (0..10).all(|_| fresh_get(&envoy.url("/")).status == 200)
    });
    assert!(
        lifted.is_some(),
        "Envoy still redirects after the order was lifted"
    );
}
