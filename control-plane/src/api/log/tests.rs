//! The log routes against a real logging database (a temp folder).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::routes::{log_routes as api_routes, AuthCheck};
use crate::manager::logdb::{now_us, Write};
use crate::manager::state::{lock, Manager};
use crate::manager::{ManagerConfig, NoListener};
use usher_core::channel::Event;

#[tokio::test]
async fn events_filter_and_errors_name_the_parameter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = Manager::open(dir.path(), ManagerConfig::default(), Arc::new(NoListener))
        .await
        .expect("open");
    for (seq, origin, code) in [(1, "web1", 110), (2, "web2", 110), (3, "web1", 111)] {
        let event = Event {
            seq,
            origin_id: origin.into(),
            origin_name: origin.into(),
            type_name: if code == 110 {
                "probe_failed"
            } else {
                "probe_recovered"
            }
            .into(),
            type_code: code,
            text: "t".into(),
            time_occurred_us: 1_000 * seq,
        };
        m.logdb()
            .write(
                Write::Event {
                    agent_id: "a".into(),
                    event,
                },
                None,
            )
            .await
            .expect("w");
    }
    m.logdb().flush().await.expect("flush");
    let auth: AuthCheck = Arc::new(|h| h == Some("Bearer t"));
    let routes = api_routes(m, auth);
    let get = |path: &str, token: bool| {
        let mut r = warp::test::request().path(path);
        if token {
            r = r.header("authorization", "Bearer t");
        }
        r
    };
    let res = get("/api/v1/events?component=web1&type=probe_failed", true)
        .reply(&routes)
        .await;
    assert_eq!(res.status(), 200);
    let v: serde_json::Value = serde_json::from_slice(res.body()).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    assert_eq!(v[0]["seq"], 1);
    let res = get("/api/v1/events?from_us=2000", true)
        .reply(&routes)
        .await;
    let v: serde_json::Value = serde_json::from_slice(res.body()).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    let res = get("/api/v1/events?from_us=x", true).reply(&routes).await;
    assert_eq!(res.status(), 400);
    assert!(String::from_utf8_lossy(res.body()).contains("from_us"));
    let res = get("/api/v1/events?bogus=1", true).reply(&routes).await;
    assert!(String::from_utf8_lossy(res.body()).contains("bogus"));
    assert_eq!(
        get("/api/v1/events", false).reply(&routes).await.status(),
        401
    );
    assert_eq!(
        get("/api/v1/requests", true).reply(&routes).await.status(),
        200
    );
    assert_eq!(
        get("/api/v1/metrics?limit=0", true)
            .reply(&routes)
            .await
            .status(),
        400
    );
}

async fn manager() -> (tempfile::TempDir, Manager) {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = Manager::open(dir.path(), ManagerConfig::default(), Arc::new(NoListener))
        .await
        .expect("open");
    (dir, m)
}

async fn get_json(m: &Manager, path: &str) -> (u16, serde_json::Value) {
    let auth: AuthCheck = Arc::new(|h| h == Some("Bearer t"));
    let res = warp::test::request()
        .path(path)
        .header("authorization", "Bearer t")
        .reply(&api_routes(m.clone(), auth))
        .await;
    let v = serde_json::from_slice(res.body()).unwrap_or(serde_json::Value::Null);
    (res.status().as_u16(), v)
}

#[tokio::test]
async fn requests_hide_agent_probes_unless_asked() {
    use usher_core::record::{encode_batch, FieldMask, RequestRecord};
    let (_dir, m) = manager().await;
    let rec = |line: String, path: String| RequestRecord {
        method: Some("GET".into()),
        request_line: Some(line),
        content_path: Some(path),
        status: Some(200),
        start_time_us: Some(1_000_000),
        ..Default::default()
    };
    let mut records: Vec<RequestRecord> = (0..7)
        .map(|i| rec(format!("GET /page/{i} HTTP/1.1"), format!("/page/{i}")))
        .collect();
    // Probes as the agent sends them, one with the mark only in the path.
    for i in 0..4 {
        records.push(rec(
            format!("GET /health?usher-probe={i} HTTP/1.1"),
            "/health".into(),
        ));
    }
    records.push(RequestRecord {
        request_line: None,
        ..rec(String::new(), "/health?a=1&usher-probe=9".into())
    });
    // Look-alikes that are not probes stay.
    records.push(rec(
        "GET /docs/usher-probe=x HTTP/1.1".into(),
        "/docs/usher-probe=x".into(),
    ));
    records.push(rec(
        "GET /health?not-usher-probe=1 HTTP/1.1".into(),
        "/health".into(),
    ));
    m.logdb()
        .write(
            Write::Records {
                agent_id: "a".into(),
                seq: 1,
                server: "s".into(),
                batch: encode_batch(&records, FieldMask::ALL),
            },
            None,
        )
        .await
        .expect("write");
    m.logdb().flush().await.expect("flush");
    let count = |v: &serde_json::Value| v.as_array().map_or(usize::MAX, Vec::len);
    let (status, v) = get_json(&m, "/api/v1/requests").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(count(&v), 9, "{v}");
    let (_, v) = get_json(&m, "/api/v1/requests?probes=true").await;
    assert_eq!(count(&v), 14);
    let (_, v) = get_json(&m, "/api/v1/requests?probes=false&path=/health").await;
    assert_eq!(count(&v), 1, "{v}");
    let (_, v) = get_json(&m, "/api/v1/requests?probes=true&path=/health").await;
    assert_eq!(count(&v), 6, "{v}");
    let (status, v) = get_json(&m, "/api/v1/requests?probes=maybe").await;
    assert_eq!(status, 400);
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("probes")),
        "{v}"
    );
}

#[tokio::test]
async fn agents_show_when_last_heard() {
    let (_dir, m) = manager().await;
    for id in ["live", "gone", "never"] {
        m.logdb()
            .write(
                Write::Agent {
                    agent_id: id.into(),
                    host_id: "h".into(),
                    host_name: "h".into(),
                    servers: "[]".into(),
                },
                None,
            )
            .await
            .expect("write");
    }
    m.logdb().flush().await.expect("flush");
    let ago = |secs: u64| {
        Instant::now()
            .checked_sub(Duration::from_secs(secs))
            .expect("clock far enough from its start")
    };
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    lock(&m.inner.agents).insert(
        "live".into(),
        crate::manager::state::AgentConn {
            conn_id: 1,
            tx,
            last_heard: ago(2),
            pinged: false,
            servers: Vec::new(),
        },
    );
    lock(&m.inner.gone).insert("gone".into(), ago(30));
    let (status, v) = get_json(&m, "/api/v1/agents").await;
    assert_eq!(status, 200, "{v}");
    let row = |id: &str| {
        v.as_array()
            .and_then(|l| l.iter().find(|r| r["agent_id"] == id))
            .cloned()
            .unwrap_or_default()
    };
    let now = now_us() as f64 / 1e6;
    let live = row("live");
    assert_eq!(live["connected"], true);
    let age = live["last_heard_age_secs"].as_f64().expect("age");
    assert!((2.0..2.5).contains(&age), "{live}");
    let unix = live["last_heard_unix"].as_f64().expect("unix");
    assert!((now - unix - 2.0).abs() < 0.5, "{live}");
    let gone = row("gone");
    assert_eq!(gone["connected"], false);
    let age = gone["last_heard_age_secs"].as_f64().expect("age");
    assert!((30.0..30.5).contains(&age), "{gone}");
    let never = row("never");
    assert!(never["last_heard_age_secs"].is_null(), "{never}");
    assert!(never["last_heard_unix"].is_null(), "{never}");
}
