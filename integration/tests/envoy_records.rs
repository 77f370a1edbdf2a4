//! Envoy + usher filter, server role: every request's record reaches the
//! agent endpoint in binary batches with exactly the selected fields; with
//! the agent away every request is still served and the drops are counted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use usher_core::{FieldMask, RequestRecord};
use usher_integration::envoy::*;
use usher_integration::{call, eventually, free_port, http, BatchReceiver};

const FIELDS: &[&str] = &[
    "method",
    "content_path",
    "status",
    "start_time",
    "processing_time",
    "user_agent",
    "logged_at",
];

fn server_plugin(agent_port_name: &str) -> String {
    serde_json::json!({
        "role": "server", "app": "shop", "record": FIELDS,
        "agent_cluster": agent_port_name, "agent_path": "/usher/records", "agent_token": AGENT_TOKEN,
    })
    .to_string()
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[test]
fn records_reach_the_agent_one_per_request_with_the_selected_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = demo_app(dir.path(), "a");
    let receiver = BatchReceiver::start();
    let envoy = start_envoy(
        dir.path(),
        &EnvoySpec {
            plugin: server_plugin("usher_agent"),
            app_ports: vec![app.port],
            override_host: false,
            agent_port: receiver.port,
        },
    );
    let before = now_us();
    let paths = ["/", "/static.html", "/health"];
    let agent = http();
    let n = 250;
    for i in 0..n {
        let path = paths[i % paths.len()];
        let r = call(agent.get(&envoy.url(&format!("{path}?i={i}"))), None);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let after = now_us();
    let got = eventually(Duration::from_secs(5), || receiver.records().len() >= n);
    let records = receiver.records();
    assert!(
        got.is_some(),
        "only {} of {n} records arrived",
        records.len()
    );
    std::thread::sleep(Duration::from_millis(1_300));
    let records: Vec<RequestRecord> = receiver.records();
    assert_eq!(records.len(), n, "one record per request");

    let mask = FieldMask::from_names(FIELDS.iter().copied()).expect("mask");
    for r in &records {
        assert_eq!(r.mask(), mask, "exactly the selected fields: {r:?}");
        assert_eq!(r.method.as_deref(), Some("GET"));
        assert_eq!(r.status, Some(200));
        assert!(
            r.user_agent.as_deref().unwrap_or("").starts_with("ureq"),
            "{r:?}"
        );
        let start = r.start_time_us.unwrap_or(0);
        let took = r.processing_time_us.unwrap_or(u64::MAX);
        assert!(
            start >= before && start <= after,
            "start time {start} outside the test"
        );
        assert!(took < 1_000_000, "processing time {took} µs");
        assert_eq!(
            r.logged_at_us,
            Some(start + took),
            "logged at = start + processing"
        );
    }
    for path in paths {
        let count = records
            .iter()
            .filter(|r| r.content_path.as_deref() == Some(path))
            .count();
        let want = (0..n).filter(|i| paths[i % paths.len()] == path).count();
        assert_eq!(count, want, "records for {path}");
    }
    let batches = receiver.batches();
    for b in &batches {
        assert_eq!(b.path, "/usher/records");
        assert_eq!(
            b.authorization.as_deref(),
            Some(format!("Bearer {AGENT_TOKEN}").as_str())
        );
        let count = usher_core::decode_batch(&b.body)
            .expect("decodes")
            .records
            .len();
        assert!((1..=100).contains(&count), "batch of {count} records");
    }
    assert!(
        batches.len() >= 3,
        "{n} records need at least 3 batches, got {}",
        batches.len()
    );
    let ok = eventually(Duration::from_secs(3), || {
        envoy.counters()["records_written"] == n as u64
    });
    assert!(ok.is_some(), "records_written: {}", envoy.counters());
    assert_eq!(envoy.counters()["records_dropped"], 0);
}

#[test]
fn agent_away_every_request_served_and_drops_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = demo_app(dir.path(), "a");
    let nobody = free_port();
    let envoy = start_envoy(
        dir.path(),
        &EnvoySpec {
            plugin: server_plugin("usher_agent"),
            app_ports: vec![app.port],
            override_host: false,
            agent_port: nobody,
        },
    );
    let agent = http();
    let n = 430;
    for i in 0..n {
        let r = call(agent.get(&envoy.url(&format!("/?i={i}"))), None);
        assert_eq!(r.status, 200, "request {i} with the agent away: {}", r.body);
        assert!(r.body.contains("hello from a"), "{}", r.body);
    }
    let counted = eventually(Duration::from_secs(6), || {
        envoy.counters()["records_dropped"] == n as u64
    });
    let c = envoy.counters();
    assert!(counted.is_some(), "every record dropped and counted: {c}");
    assert_eq!(c["records_written"], 0, "{c}");
    let stats = call(
        http().get(&format!(
            "http://127.0.0.1:{}/stats?filter=usher",
            envoy.admin
        )),
        None,
    );
    assert!(
        stats.body.contains(&format!("usher_records_dropped: {n}")),
        "metric: {}",
        stats.body
    );
}
