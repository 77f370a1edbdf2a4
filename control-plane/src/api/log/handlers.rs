//! One handler per log route: check the query, read typed rows, answer.

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::Row;
use serde::Serialize;
use warp::reply::Response;
use warp::Reply;

use usher_core::probe::PROBE_PARAM;

use super::models::{AgentRow, EventRow, HostRow, MetricRow, RequestRow};
use super::query::LogQuery;
use super::sql::Where;
use crate::api::agents::state_of;
use crate::api::ApiError;
use crate::manager::logdb::now_us;
use crate::manager::state::{lock, Manager};

/// Runs one SELECT on the logging database's reader and maps each row.
async fn select<T, F>(
    m: &Manager,
    sql: String,
    binds: Vec<Value>,
    map: F,
) -> Result<Vec<T>, ApiError>
where
    T: Send + 'static,
    F: Fn(&Row<'_>) -> rusqlite::Result<T> + Send + 'static,
{
    m.logdb()
        .read(move |c| {
            let mut st = c.prepare(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(binds), |r| map(r))?;
            rows.collect::<rusqlite::Result<Vec<T>>>()
        })
        .await
        .map_err(|e| ApiError::Internal(format!("logging database: {e}")))
}

fn json<T: Serialize>(rows: &T) -> Response {
    warp::reply::json(rows).into_response()
}

/// `GET /api/v1/hosts`: each host's latest facts.
pub async fn hosts(m: Manager, q: LogQuery) -> Result<Response, ApiError> {
    q.only(&["limit"])?;
    let sql = format!(
        "SELECT {} FROM host_facts h
         WHERE h.id = (SELECT MAX(id) FROM host_facts x WHERE x.host_id = h.host_id)
         ORDER BY h.host_name LIMIT {}",
        HostRow::COLUMNS,
        q.limit()?
    );
    Ok(json(&select(&m, sql, Vec::new(), HostRow::from_row).await?))
}

/// `GET /api/v1/agents`: every agent heard from, with its live state, and
/// every agent with its own token that never connected (state `never`).
pub async fn agents(m: Manager, q: LogQuery) -> Result<Response, ApiError> {
    q.only(&["limit"])?;
    let sql = format!(
        "SELECT {} FROM agents ORDER BY agent_id LIMIT {}",
        AgentRow::COLUMNS,
        q.limit()?
    );
    let mut rows = select(&m, sql, Vec::new(), AgentRow::from_row).await?;
    let connected = m.connected_agents();
    let statuses = m.statuses();
    let pinged: HashMap<String, bool> = lock(&m.inner.agents)
        .iter()
        .map(|(k, a)| (k.clone(), a.pinged))
        .collect();
    let heard = m.last_heard();
    let now = now_us() as f64 / 1e6;
    let ids = m.identities();
    for id in ids.ids() {
        if !rows.iter().any(|r| r.agent_id == id) {
            rows.push(AgentRow::never(id));
        }
    }
    rows.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
    let silent_after = Duration::from_millis(m.config().silent_after_ms);
    let gone_after = Duration::from_secs(m.config().gone_after_s);
    for row in &mut rows {
        let id = row.agent_id.as_str();
        row.connected = connected.iter().any(|c| c == id);
        row.pinged = pinged.get(id).copied().unwrap_or(false);
        let age = heard.get(id).map(Duration::as_secs_f64);
        row.last_heard_age_secs = age.map(round_ms);
        row.last_heard_unix = age.map(|a| round_ms(now - a));
        row.status = statuses
            .iter()
            .filter(|s| s.agent_id == id)
            .cloned()
            .collect();
        // Not heard since the manager started: count from its last hello.
        let ago = age.map(Duration::from_secs_f64).or_else(|| {
            (row.last_seen_us > 0)
                .then(|| Duration::from_micros(now_us().saturating_sub(row.last_seen_us as u64)))
        });
        row.state = state_of(row.connected, ago, silent_after, gone_after);
        row.bound_servers = ids.bound_servers(id).map(<[String]>::to_vec);
        row.refused_reports = m.refused_count(id);
    }
    Ok(json(&rows))
}

/// `GET /api/v1/metrics`: logged figures, newest interval first.
pub async fn metrics(m: Manager, q: LogQuery) -> Result<Response, ApiError> {
    q.only(&["component", "metric", "from_us", "to_us", "limit"])?;
    let mut w = Where::default();
    if let Some(c) = q.text("component") {
        w.add("component = ?", Value::Text(c.into()));
    }
    if let Some(c) = q.text("metric") {
        w.add("metric = ?", Value::Text(c.into()));
    }
    if let Some(t) = q.num("from_us")? {
        w.add("interval_stop_us >= ?", Value::Integer(t));
    }
    if let Some(t) = q.num("to_us")? {
        w.add("interval_start_us <= ?", Value::Integer(t));
    }
    let sql = format!(
        "SELECT {} FROM metric_samples{} ORDER BY interval_start_us DESC LIMIT {}",
        MetricRow::COLUMNS,
        w.sql(),
        q.limit()?
    );
    Ok(json(&select(&m, sql, w.binds, MetricRow::from_row).await?))
}

/// `GET /api/v1/events`: events, newest first; `type` is a code or a name.
pub async fn events(m: Manager, q: LogQuery) -> Result<Response, ApiError> {
    q.only(&["component", "type", "from_us", "to_us", "limit"])?;
    let mut w = Where::default();
    if let Some(c) = q.text("component") {
        w.add("(origin_id = ? OR origin_name = ?)", Value::Text(c.into()));
    }
    if let Some(t) = q.text("type") {
        match t.parse::<i64>() {
            Ok(code) => w.add("type_code = ?", Value::Integer(code)),
            Err(_) => w.add("type_name = ?", Value::Text(t.into())),
        }
    }
    if let Some(t) = q.num("from_us")? {
        w.add("time_occurred_us >= ?", Value::Integer(t));
    }
    if let Some(t) = q.num("to_us")? {
        w.add("time_occurred_us <= ?", Value::Integer(t));
    }
    let sql = format!(
        "SELECT {} FROM events{} ORDER BY time_occurred_us DESC, id DESC LIMIT {}",
        EventRow::COLUMNS,
        w.sql(),
        q.limit()?
    );
    Ok(json(&select(&m, sql, w.binds, EventRow::from_row).await?))
}

/// The newest `limit` events, newest first (the console's live feed).
pub async fn latest_events(m: &Manager, limit: u32) -> Result<Vec<EventRow>, ApiError> {
    select_events(m, String::new(), Vec::new(), limit).await
}

/// The newest `limit` events that pass `filter` (`WHERE ...` with `?`
/// marks for `binds`, or empty), newest first.
pub async fn select_events(
    m: &Manager,
    filter: String,
    binds: Vec<Value>,
    limit: u32,
) -> Result<Vec<EventRow>, ApiError> {
    let sql = format!(
        "SELECT {} FROM events {filter} ORDER BY time_occurred_us DESC, id DESC LIMIT {limit}",
        EventRow::COLUMNS
    );
    select(m, sql, binds, EventRow::from_row).await
}

/// `GET /api/v1/requests`: logged requests, newest first, probes hidden
/// unless `probes=true`.
pub async fn requests(m: Manager, q: LogQuery) -> Result<Response, ApiError> {
    q.only(&[
        "server", "status", "path", "from_us", "to_us", "limit", "probes",
    ])?;
    let mut w = Where::default();
    if !q.flag("probes")? {
        // The agent's probes carry `usher-probe=<n>` in their query
        // (usher_core::probe); the request line or the path has it.
        w.add(
            "NOT (COALESCE(request_line, '') GLOB ? OR COALESCE(content_path, '') GLOB ?)",
            Value::Text(format!("*[?&]{PROBE_PARAM}[0-9]*")),
        );
    }
    if let Some(s) = q.text("server") {
        w.add("server = ?", Value::Text(s.into()));
    }
    if let Some(s) = q.num("status")? {
        w.add("status = ?", Value::Integer(s));
    }
    if let Some(p) = q.text("path") {
        let like = format!("{}%", p.replace(['%', '_'], ""));
        w.add("content_path LIKE ?", Value::Text(like));
    }
    if let Some(t) = q.num("from_us")? {
        w.add("start_time_us >= ?", Value::Integer(t));
    }
    if let Some(t) = q.num("to_us")? {
        w.add("start_time_us <= ?", Value::Integer(t));
    }
    let sql = format!(
        "SELECT {} FROM requests{} ORDER BY id DESC LIMIT {}",
        RequestRow::COLUMNS,
        w.sql(),
        q.limit()?
    );
    Ok(json(&select(&m, sql, w.binds, RequestRow::from_row).await?))
}

/// Seconds rounded to the millisecond, for JSON that reads well.
fn round_ms(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}
