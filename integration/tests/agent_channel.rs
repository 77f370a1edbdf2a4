//! The agent and the manager over a real WebSocket on loopback, both in
//! this process (the manager's routes mounted on an ephemeral port), with a
//! real demo app the agent starts and stops on command:
//! registration and host facts, reports as metric samples, a killed server
//! failing within 1 s (event logged) and recovering after a restart, a
//! snapshot relayed to a web server interface's command endpoint, and
//! Envoy-style record batches through the agent's loopback receiver into
//! the request log, each record exactly once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use usher_control_plane::manager::{
    api_routes, channel_route, AuthCheck, LoadListener, Manager, ManagerConfig, ServerStatus,
};
use usher_core::channel::CommandKind;
use usher_core::record::encode_batch;
use usher_core::{FieldMask, RequestRecord, Snapshot};
use usher_integration::setup::runtime;
use usher_integration::{
    call, eventually, free_port, get_json as api, http, wait_for_port, Artifact,
};
use warp::Filter;

#[derive(Default)]
struct Transitions(Mutex<Vec<(String, bool, Instant)>>);

impl LoadListener for Transitions {
    fn statuses(&self, _: &[ServerStatus]) {}
    fn server_failed(&self, server: &str, _reason: &str) {
        self.0
            .lock()
            .expect("lock")
            .push((server.to_string(), true, Instant::now()));
    }
    fn server_recovered(&self, server: &str) {
        self.0
            .lock()
            .expect("lock")
            .push((server.to_string(), false, Instant::now()));
    }
}

type Seen = Arc<Mutex<Vec<(Option<String>, Vec<u8>)>>>;

#[test]
fn agent_and_manager_close_the_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(2);
    let transitions = Arc::new(Transitions::default());
    let admin = "admin-secret";

    // Manager on an ephemeral loopback port.
    let mdir = dir.path().join("manager");
    std::fs::create_dir_all(&mdir).expect("mkdir");
    let cfg = ManagerConfig {
        interval_ms: 100,
        ping_after_ms: 1000,
        silent_after_ms: 3000,
        flush_ms: 20,
        ..Default::default()
    };
    let m = rt
        .block_on(Manager::open(&mdir, cfg, transitions.clone()))
        .expect("manager");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let _load = {
        let _in_runtime = rt.enter();
        m.spawn(async {
            stop_rx.await.ok();
        })
    };
    let auth: AuthCheck = Arc::new(move |h| h == Some("Bearer admin-secret"));
    let routes = channel_route(m.clone()).or(api_routes(m.clone(), auth));
    let (maddr, server) =
        rt.block_on(async { warp::serve(routes).bind_ephemeral(([127, 0, 0, 1], 0)) });
    rt.spawn(server);
    let mport = maddr.port();

    // A fake web server interface command endpoint.
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    let wsi = warp::post()
        .and(warp::path("cmd"))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::content_length_limit(1 << 20))
        .and(warp::body::bytes())
        .map(move |auth: Option<String>, body: bytes::Bytes| {
            seen2.lock().expect("lock").push((auth, body.to_vec()));
            warp::reply::json(&serde_json::json!({"applied": 7}))
        });
    let (waddr, wsrv) = rt.block_on(async { warp::serve(wsi).bind_ephemeral(([127, 0, 0, 1], 0)) });
    rt.spawn(wsrv);

    // The agent, with a demo app it starts on command and a batch receiver.
    let web_port = free_port();
    let rport = free_port();
    let demo = Artifact::DemoApp.path();
    let text = format!(
        "agent_id = \"agent-1\"\ndata_dir = \"{data}\"\ncontrol_url = \"ws://127.0.0.1:{mport}/api/v1/agent/channel\"\ntoken = \"{token}\"\n\
         interval_ms = 200\nprobe_interval_ms = 100\nreconnect_max_ms = 500\n\
         [records]\nbatch_ms = 200\n\
         [receiver]\nlisten = \"127.0.0.1:{rport}\"\ntoken = \"rtok-1234\"\nmax_body_bytes = 65536\n\
         [[servers]]\nname = \"web1\"\nurl = \"http://127.0.0.1:{web_port}\"\nprobe_body = \"ok web1\"\nprobe_timeout_ms = 300\n\
         command_url = \"http://{waddr}/cmd\"\ncommand_token = \"wsi-token\"\nstop_signal = \"KILL\"\n\
         start = [\"{demo}\", \"--listen\", \"127.0.0.1:{web_port}\", \"--name\", \"web1\", \"--workers\", \"4\", \"--service-ms\", \"1\"]\n",
        data = dir.path().join("agent").display(),
        token = m.agent_token(),
        demo = demo.display(),
    );
    let cfg = usher_agent::AgentConfig::parse(&text).expect("agent config");
    let (handle, running) = rt.block_on(usher_agent::start(cfg)).expect("agent starts");
    assert_eq!(handle.receiver.map(|a| a.port()), Some(rport));

    // Registration: the agent is connected, its host facts are logged.
    eventually(Duration::from_secs(10), || {
        m.connected_agents() == ["agent-1"]
    })
    .expect("agent connects");
    eventually(Duration::from_secs(5), || {
        api(mport, "/api/v1/hosts", admin)
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })
    .expect("host facts logged");
    let hosts = api(mport, "/api/v1/hosts", admin);
    assert!(
        hosts[0]["facts"]["cpu_logical"].as_u64().unwrap_or(0) >= 1,
        "{hosts}"
    );
    assert!(hosts[0]["facts"]["interfaces"]
        .as_array()
        .is_some_and(|i| !i.is_empty()));
    let agents = api(mport, "/api/v1/agents", admin);
    assert_eq!(agents[0]["connected"], true, "{agents}");

    // Start the server by command: the manager gets its PID; the probe passes.
    let started = rt
        .block_on(m.command_server(
            CommandKind::StartServer {
                server: "web1".into(),
            },
            Duration::from_secs(10),
        ))
        .expect("start command");
    assert!(started.ok && started.pid.is_some(), "{started:?}");
    wait_for_port(web_port, Duration::from_secs(10));
    eventually(Duration::from_secs(5), || {
        m.statuses()
            .iter()
            .any(|s| s.server == "web1" && !s.failed && s.dynamic_load.is_some())
    })
    .expect("web1 healthy with a dynamic load value");
    // Host metrics arrive as samples.
    eventually(Duration::from_secs(5), || {
        api(
            mport,
            "/api/v1/metrics?component=host:agent-1&metric=cpu.idle&limit=1",
            admin,
        )
        .as_array()
        .is_some_and(|a| a.len() == 1)
    })
    .expect("cpu idle samples");

    // Killing the server takes it out of rotation within 1 s, with an event.
    let before = transitions.0.lock().expect("lock").len();
    let killed_at = Instant::now();
    let stopped = rt
        .block_on(m.command_server(
            CommandKind::StopServer {
                server: "web1".into(),
                signal: Some("KILL".into()),
            },
            Duration::from_secs(10),
        ))
        .expect("stop command");
    assert!(stopped.ok, "{stopped:?}");
    let failed_at = eventually(Duration::from_secs(3), || {
        transitions.0.lock().expect("lock")[before..]
            .iter()
            .any(|(s, failed, _)| s == "web1" && *failed)
    });
    assert!(failed_at.is_some(), "web1 never failed");
    let t = transitions
        .0
        .lock()
        .expect("lock")
        .iter()
        .find(|(s, f, _)| s == "web1" && *f)
        .map(|(_, _, t)| *t)
        .expect("failure");
    let took = t.duration_since(killed_at);
    assert!(
        took < Duration::from_secs(1),
        "failure noticed after {took:?}"
    );
    eventually(Duration::from_secs(3), || {
        api(
            mport,
            "/api/v1/events?component=web1&type=server_failed",
            admin,
        )
        .as_array()
        .is_some_and(|a| !a.is_empty())
    })
    .expect("server_failed event logged");

    // Restarting it brings it back (event each way).
    let restarted = rt
        .block_on(m.command_server(
            CommandKind::RestartServer {
                server: "web1".into(),
            },
            Duration::from_secs(10),
        ))
        .expect("restart command");
    assert!(
        restarted.ok && restarted.pid.is_some() && restarted.pid != started.pid,
        "{restarted:?}"
    );
    eventually(Duration::from_secs(5), || {
        api(
            mport,
            "/api/v1/events?component=web1&type=server_recovered",
            admin,
        )
        .as_array()
        .is_some_and(|a| !a.is_empty())
    })
    .expect("server_recovered event logged");
    // The event is logged when the probe recovers; the status table follows
    // at the manager's next interval.
    eventually(Duration::from_secs(5), || {
        m.statuses().iter().any(|s| s.server == "web1" && !s.failed)
    })
    .expect("web1 back in the manager's statuses");

    // A snapshot relayed to the local web server interface.
    let snap = Snapshot::from_json(br#"{"version": 7}"#).expect("snapshot");
    let relayed = rt
        .block_on(m.command_server(
            CommandKind::RelaySnapshot {
                server: "web1".into(),
                snapshot: snap,
            },
            Duration::from_secs(10),
        ))
        .expect("relay");
    assert!(
        relayed.ok && relayed.text.contains("applied"),
        "{relayed:?}"
    );
    {
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0.as_deref(), Some("Bearer wsi-token"));
        let body: serde_json::Value = serde_json::from_slice(&seen[0].1).expect("json body");
        assert_eq!(body["type"], "snapshot");
        assert_eq!(body["snapshot"]["version"], 7);
    }

    // Record batches through the loopback receiver into the request log.
    let records: Vec<RequestRecord> = (0..250)
        .map(|i| RequestRecord {
            method: Some("GET".into()),
            request_line: Some(format!("GET /r/{i} HTTP/1.1")),
            content_path: Some(format!("/r/{i}")),
            status: Some(if i % 50 == 0 { 503 } else { 200 }),
            start_time_us: Some(1_000_000 + i),
            processing_time_us: Some(1_000),
            ..Default::default()
        })
        .collect();
    let url = format!("http://127.0.0.1:{rport}/usher/records/web1");
    let post = |body: &[u8], token: &str| {
        let r = http()
            .post(&url)
            .set("authorization", &format!("Bearer {token}"))
            .send_bytes(body);
        match r {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
            Err(e) => panic!("post: {e}"),
        }
    };
    for chunk in records.chunks(125) {
        let (status, body) = post(&encode_batch(chunk, FieldMask::ALL), "rtok-1234");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"accepted\":125"), "{body}");
    }
    assert_eq!(
        post(&encode_batch(&records[..1], FieldMask::ALL), "wrong").0,
        401
    );
    assert_eq!(post(b"not a batch", "rtok-1234").0, 400);
    assert_eq!(post(&vec![0u8; 70_000], "rtok-1234").0, 413);
    let r = call(
        http()
            .post(&format!("http://127.0.0.1:{rport}/usher/records/nope"))
            .set("authorization", "Bearer rtok-1234"),
        Some("USB1"),
    );
    assert_eq!(r.status, 404);
    let rows = |q: &str| {
        api(
            mport,
            &format!("/api/v1/requests?server=web1&path=/r/{q}&limit=10000"),
            admin,
        )
    };
    eventually(Duration::from_secs(5), || {
        rows("").as_array().map_or(0, Vec::len) >= 250
    })
    .expect("records in the request log");
    std::thread::sleep(Duration::from_millis(500));
    let all = rows("");
    let list = all.as_array().expect("rows");
    assert_eq!(list.len(), 250, "each record exactly once");
    let mut lines: Vec<&str> = list
        .iter()
        .filter_map(|r| r["request_line"].as_str())
        .collect();
    lines.sort_unstable();
    lines.dedup();
    assert_eq!(lines.len(), 250);
    assert_eq!(list.iter().filter(|r| r["status"] == 503).count(), 5);
    assert!(list
        .iter()
        .all(|r| r["processing_time_us"] == 1000 && r["method"] == "GET"));
    // The aggregates count them (5xx split out).
    eventually(Duration::from_secs(3), || {
        api(
            mport,
            "/api/v1/metrics?component=server:web1&metric=errors_5xx&limit=100",
            admin,
        )
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s["value"] == 5.0))
    })
    .expect("5xx counted");

    // The agents' probes are in the log but hidden unless asked for (seq
    // numbers far from the agent's own, so its queue estimate ignores them).
    let probes: Vec<RequestRecord> = (0..10)
        .map(|i| RequestRecord {
            method: Some("GET".into()),
            request_line: Some(format!(
                "GET /health?usher-probe={} HTTP/1.1",
                900_000_000 + i
            )),
            content_path: Some("/health".into()),
            status: Some(200),
            start_time_us: Some(2_000_000 + i),
            processing_time_us: Some(100),
            ..Default::default()
        })
        .collect();
    let (status, body) = post(&encode_batch(&probes, FieldMask::ALL), "rtok-1234");
    assert_eq!(status, 200, "{body}");
    let count = |q: &str| {
        api(
            mport,
            &format!("/api/v1/requests?server=web1&limit=10000{q}"),
            admin,
        )
        .as_array()
        .map_or(0, Vec::len)
    };
    eventually(Duration::from_secs(5), || count("&probes=true") == 260)
        .expect("probes in the request log");
    assert_eq!(count(""), 250, "probes hidden by default");
    assert_eq!(count("&path=/health"), 0);
    assert_eq!(count("&path=/health&probes=true"), 10);

    // The agent is heard all the time (reports every 200 ms), not only
    // when it said hello.
    let agents = api(mport, "/api/v1/agents", admin);
    let age = agents[0]["last_heard_age_secs"]
        .as_f64()
        .expect("last heard");
    assert!(age < 1.0, "last heard {age}s ago: {agents}");
    let heard_us = agents[0]["last_heard_unix"].as_f64().expect("unix") * 1e6;
    let hello_us = agents[0]["last_seen_us"].as_f64().expect("hello");
    assert!(heard_us >= hello_us - 1000.0, "{agents}");

    // The agent listens only on loopback.
    let ss = std::process::Command::new("ss")
        .args(["-ltnp"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for line in ss.lines().filter(|l| l.contains(&format!(":{rport} "))) {
        assert!(
            line.contains("127.0.0.1:"),
            "receiver bound beyond loopback: {line}"
        );
    }

    rt.block_on(running.stop());
    stop_tx.send(()).ok();
}
