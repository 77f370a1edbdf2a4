//! Admin API over the manager: `/api/v1/{hosts,agents,metrics,events,requests}`.
//!
//! Every route checks the admin token through the [`AuthCheck`] the control
//! plane passes in (it gets the `Authorization` header value) and answers
//! JSON: 200 with rows, 400 `{"error": "..."}` naming the bad query
//! parameter, 401 without a valid token, 500 when the database fails.
//! Times are Unix microseconds; every list is capped by `limit` (default
//! 1000, at most 10000), newest first.
//!
//! `/requests` leaves out the agents' probes (`usher-probe=<n>` in the
//! query) unless `probes=true`. `/agents` adds when each agent was last
//! heard (`last_heard_unix`, `last_heard_age_secs`, seconds), read from the
//! manager's live agent table, not from the database.
//!
//! Size: about 230 lines are tests; this is the log-query API that issue 8
//! asks to rebuild in the routes/handlers/models style (open work).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use serde_json::{json, Map};
use warp::http::StatusCode;
use warp::reply::{json as json_reply, with_status, Json, WithStatus};
use warp::{filters::BoxedFilter, Filter};

use usher_core::probe::PROBE_PARAM;

use crate::manager::logdb::now_us;
use crate::manager::state::{lock, Manager};

/// Checks the `Authorization` header (None when absent).
pub type AuthCheck = Arc<dyn Fn(Option<&str>) -> bool + Send + Sync>;

type Reply = WithStatus<Json>;

fn error(status: StatusCode, text: impl Into<String>) -> Reply {
    with_status(json_reply(&json!({"error": text.into()})), status)
}

/// The query routes; mount them under the control plane's root.
pub fn api_routes(m: Manager, auth: AuthCheck) -> BoxedFilter<(Reply,)> {
    let m = warp::any().map(move || m.clone());
    warp::get()
        .and(warp::path("api"))
        .and(warp::path("v1"))
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::query::<HashMap<String, String>>())
        .and(m)
        .and_then(
            move |area: String, header: Option<String>, q: HashMap<String, String>, m: Manager| {
                let auth = auth.clone();
                async move {
                    if !matches!(
                        area.as_str(),
                        "hosts" | "agents" | "metrics" | "events" | "requests"
                    ) {
                        return Err(warp::reject::not_found());
                    }
                    if !auth(header.as_deref()) {
                        return Ok(error(
                            StatusCode::UNAUTHORIZED,
                            "authorization: missing or wrong token",
                        ));
                    }
                    Ok(match answer(&m, &area, &q).await {
                        Ok(v) => with_status(json_reply(&v), StatusCode::OK),
                        Err((status, text)) => error(status, text),
                    })
                }
            },
        )
        .boxed()
}

type Answer = Result<serde_json::Value, (StatusCode, String)>;

fn num(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, (StatusCode, String)> {
    q.get(key)
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                (
                    StatusCode::BAD_REQUEST,
                    format!("{key}: not a whole number: {v}"),
                )
            })
        })
        .transpose()
}

fn limit(q: &HashMap<String, String>) -> Result<i64, (StatusCode, String)> {
    let l = num(q, "limit")?.unwrap_or(1000);
    if !(1..=10_000).contains(&l) {
        return Err((StatusCode::BAD_REQUEST, "limit: must be 1..=10000".into()));
    }
    Ok(l)
}

fn check_keys(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), (StatusCode, String)> {
    match q.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err((
            StatusCode::BAD_REQUEST,
            format!("{k}: unknown query parameter"),
        )),
        None => Ok(()),
    }
}

/// Runs a SELECT with `WHERE` parts and binds, returning rows as objects.
async fn rows(m: &Manager, sql: String, binds: Vec<Value>) -> Answer {
    m.logdb()
        .read(move |c| {
            let mut st = c.prepare(&sql)?;
            let names: Vec<String> = st.column_names().iter().map(|s| s.to_string()).collect();
            let mut out = Vec::new();
            let mut rs = st.query(rusqlite::params_from_iter(binds))?;
            while let Some(r) = rs.next()? {
                let mut obj = Map::new();
                for (i, n) in names.iter().enumerate() {
                    let v = match r.get::<_, Value>(i)? {
                        Value::Null => serde_json::Value::Null,
                        Value::Integer(x) => json!(x),
                        Value::Real(x) => json!(x),
                        Value::Text(t) => json!(t),
                        Value::Blob(b) => json!(b.len()),
                    };
                    obj.insert(n.clone(), v);
                }
                out.push(serde_json::Value::Object(obj));
            }
            Ok(serde_json::Value::Array(out))
        })
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// A `true`/`false` query parameter (absent = false).
fn flag(q: &HashMap<String, String>, key: &str) -> Result<bool, (StatusCode, String)> {
    match q.get(key).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(v) => Err((
            StatusCode::BAD_REQUEST,
            format!("{key}: not true or false: {v}"),
        )),
    }
}

/// How long ago each agent was last heard (any message): connected agents
/// from the live table, agents that went away since the manager started
/// from when they were last heard before that.
fn last_heard(m: &Manager) -> HashMap<String, Duration> {
    let now = Instant::now();
    let mut out: HashMap<String, Duration> = lock(&m.inner.gone)
        .iter()
        .map(|(k, t)| (k.clone(), now.saturating_duration_since(*t)))
        .collect();
    for (k, a) in lock(&m.inner.agents).iter() {
        out.insert(k.clone(), now.saturating_duration_since(a.last_heard));
    }
    out
}

/// Seconds rounded to the millisecond, for JSON that reads well.
fn round_ms(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

struct Where {
    parts: Vec<String>,
    binds: Vec<Value>,
}

impl Where {
    fn new() -> Where {
        Where {
            parts: Vec::new(),
            binds: Vec::new(),
        }
    }
    fn add(&mut self, cond: &str, v: Value) {
        self.binds.push(v);
        self.parts
            .push(cond.replace('?', &format!("?{}", self.binds.len())));
    }
    fn sql(&self) -> String {
        if self.parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.parts.join(" AND "))
        }
    }
}

async fn answer(m: &Manager, area: &str, q: &HashMap<String, String>) -> Answer {
    match area {
        "hosts" => {
            check_keys(q, &["limit"])?;
            let sql = format!(
                "SELECT h.host_id, h.host_name, h.agent_id, h.facts, h.time_logged_us FROM host_facts h
                 WHERE h.id = (SELECT MAX(id) FROM host_facts x WHERE x.host_id = h.host_id)
                 ORDER BY h.host_name LIMIT {}",
                limit(q)?
            );
            let mut v = rows(m, sql, Vec::new()).await?;
            // The facts column holds JSON: return it as an object.
            if let Some(list) = v.as_array_mut() {
                for row in list {
                    if let Some(f) = row.get("facts").and_then(|f| f.as_str()).map(str::to_owned) {
                        row["facts"] = serde_json::from_str(&f).unwrap_or(serde_json::Value::Null);
                    }
                }
            }
            Ok(v)
        }
        "agents" => {
            check_keys(q, &["limit"])?;
            let sql = format!(
                "SELECT agent_id, host_id, host_name, servers, first_seen_us, last_seen_us FROM agents
                 ORDER BY agent_id LIMIT {}",
                limit(q)?
            );
            let mut v = rows(m, sql, Vec::new()).await?;
            let connected = m.connected_agents();
            let statuses = m.statuses();
            let pinged: HashMap<String, bool> = lock(&m.inner.agents)
                .iter()
                .map(|(k, a)| (k.clone(), a.pinged))
                .collect();
            let heard = last_heard(m);
            let now = now_us() as f64 / 1e6;
            if let Some(list) = v.as_array_mut() {
                for row in list {
                    let id = row["agent_id"].as_str().unwrap_or_default().to_string();
                    if let Some(s) = row
                        .get("servers")
                        .and_then(|f| f.as_str())
                        .map(str::to_owned)
                    {
                        row["servers"] =
                            serde_json::from_str(&s).unwrap_or(serde_json::Value::Null);
                    }
                    row["connected"] = json!(connected.contains(&id));
                    row["pinged"] = json!(pinged.get(&id).copied().unwrap_or(false));
                    let age = heard.get(&id).map(|d| d.as_secs_f64());
                    row["last_heard_age_secs"] = json!(age.map(round_ms));
                    row["last_heard_unix"] = json!(age.map(|a| round_ms(now - a)));
                    row["status"] = json!(statuses
                        .iter()
                        .filter(|s| s.agent_id == id)
                        .collect::<Vec<_>>());
                }
            }
            Ok(v)
        }
        "metrics" => {
            check_keys(q, &["component", "metric", "from_us", "to_us", "limit"])?;
            let mut w = Where::new();
            if let Some(c) = q.get("component") {
                w.add("component = ?", Value::Text(c.clone()));
            }
            if let Some(c) = q.get("metric") {
                w.add("metric = ?", Value::Text(c.clone()));
            }
            if let Some(t) = num(q, "from_us")? {
                w.add("interval_stop_us >= ?", Value::Integer(t));
            }
            if let Some(t) = num(q, "to_us")? {
                w.add("interval_start_us <= ?", Value::Integer(t));
            }
            let sql = format!(
                "SELECT component, metric, interval_start_us, interval_stop_us, value FROM metric_samples{}
                 ORDER BY interval_start_us DESC LIMIT {}",
                w.sql(),
                limit(q)?
            );
            rows(m, sql, w.binds).await
        }
        "events" => {
            check_keys(q, &["component", "type", "from_us", "to_us", "limit"])?;
            let mut w = Where::new();
            if let Some(c) = q.get("component") {
                w.add(
                    "(origin_id = ? OR origin_name = ?1)",
                    Value::Text(c.clone()),
                );
                // `?1`-style reuse: rewrite to the bind just added.
                let n = w.binds.len();
                if let Some(last) = w.parts.last_mut() {
                    *last = format!("(origin_id = ?{n} OR origin_name = ?{n})");
                }
            }
            if let Some(t) = q.get("type") {
                match t.parse::<i64>() {
                    Ok(code) => w.add("type_code = ?", Value::Integer(code)),
                    Err(_) => w.add("type_name = ?", Value::Text(t.clone())),
                }
            }
            if let Some(t) = num(q, "from_us")? {
                w.add("time_occurred_us >= ?", Value::Integer(t));
            }
            if let Some(t) = num(q, "to_us")? {
                w.add("time_occurred_us <= ?", Value::Integer(t));
            }
            let sql = format!(
                "SELECT agent_id, seq, origin_id, origin_name, type_name, type_code, text,
                 time_occurred_us, time_logged_us FROM events{} ORDER BY time_occurred_us DESC, id DESC LIMIT {}",
                w.sql(),
                limit(q)?
            );
            rows(m, sql, w.binds).await
        }
        _ => {
            check_keys(
                q,
                &[
                    "server", "status", "path", "from_us", "to_us", "limit", "probes",
                ],
            )?;
            let mut w = Where::new();
            if !flag(q, "probes")? {
                // The agent's probes carry `usher-probe=<n>` in their query
                // (usher_core::probe); the request line or the path has it.
                let glob = format!("*[?&]{PROBE_PARAM}[0-9]*");
                // (`add` numbers both `?` as the one bind.)
                w.add(
                    "NOT (COALESCE(request_line, '') GLOB ? OR COALESCE(content_path, '') GLOB ?)",
                    Value::Text(glob),
                );
            }
            if let Some(s) = q.get("server") {
                w.add("server = ?", Value::Text(s.clone()));
            }
            if let Some(s) = num(q, "status")? {
                w.add("status = ?", Value::Integer(s));
            }
            if let Some(p) = q.get("path") {
                let like = format!("{}%", p.replace(['%', '_'], ""));
                w.add("content_path LIKE ?", Value::Text(like));
            }
            if let Some(t) = num(q, "from_us")? {
                w.add("start_time_us >= ?", Value::Integer(t));
            }
            if let Some(t) = num(q, "to_us")? {
                w.add("start_time_us <= ?", Value::Integer(t));
            }
            let sql = format!(
                "SELECT * FROM requests{} ORDER BY id DESC LIMIT {}",
                w.sql(),
                limit(q)?
            );
            rows(m, sql, w.binds).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::logdb::Write;
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
}
