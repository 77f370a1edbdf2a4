//! Human-readable tables for `usher ctl`.
//!
//! Size: about 210 lines are unit tests on sample JSON; the tables
//! themselves are under 450.

use serde::Deserialize;
use serde_json::Value;

fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(x)) => x.clone(),
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.into(),
        Some(Value::Number(n)) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
            format!("{}", n.as_f64().unwrap_or_default() as i64)
        }
        Some(other) => other.to_string(),
    }
}

/// Rows under a header, columns padded to their widest cell.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let out: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = width.get(i).copied().unwrap_or(0)))
            .collect();
        format!("{}\n", out.join("  ").trim_end())
    };
    let mut text = line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for r in rows {
        text.push_str(&line(&r));
    }
    text
}

/// A duration in seconds as an operator reads it: `0.3s`, `12s`, `5m`,
/// `3h`, `2d`.
pub fn age(secs: f64) -> String {
    let s = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    if s < 10.0 {
        // Truncated like the larger units: 9.96 reads 9.9s, not 10.0s.
        format!("{:.1}s", (s * 10.0).floor() / 10.0)
    } else if s < 60.0 {
        format!("{}s", s as u64)
    } else if s < 3600.0 {
        format!("{}m", (s / 60.0) as u64)
    } else if s < 86_400.0 {
        format!("{}h", (s / 3600.0) as u64)
    } else {
        format!("{}d", (s / 86_400.0) as u64)
    }
}

fn items(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

pub fn apps(v: &Value) -> String {
    let rows = items(v)
        .iter()
        .map(|a| {
            vec![
                s(a, "name"),
                s(a, "enabled"),
                s(a, "mode"),
                s(a, "listen"),
                s(a, "max_concurrent"),
                s(a, "epsilon"),
                a.get("sorry_page")
                    .and_then(|p| p.get("path"))
                    .and_then(Value::as_str)
                    .unwrap_or("-")
                    .to_string(),
                // Why the manager judges the app swamped; last, as the
                // servers' REASON, because it is a sentence.
                s(a, "swamped"),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "ENABLED",
            "MODE",
            "FRONT DOOR",
            "MAX CONC",
            "EPSILON",
            "SORRY PAGE",
            "SWAMPED",
        ],
        rows,
    )
}

/// An app's policy, one key a row, sorted by key.
pub fn policy(v: &Value) -> String {
    let rows = v
        .as_object()
        .map(|m| m.keys().map(|k| vec![k.clone(), s(v, k)]).collect())
        .unwrap_or_default();
    table(&["KEY", "VALUE"], rows)
}

/// Deserializes a field when it has the expected type, else `None`: a
/// missing or changed field shows as `-`, never as a failed command.
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(serde_json::from_value(Value::deserialize(d)?).ok())
}

/// One row of `GET /api/v1/servers`, as far as the table needs it.
#[derive(Debug, Default, Deserialize)]
struct ServerRow {
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    app: Option<String>,
    /// `ok`, `failed`, `disabled`, `pinned` (and later states).
    #[serde(default, deserialize_with = "lenient")]
    state: Option<String>,
    /// Why the server failed.
    #[serde(default, deserialize_with = "lenient")]
    failed: Option<String>,
    /// Fraction (0..1) of new users the built-in front door sends here.
    #[serde(default, deserialize_with = "lenient")]
    share: Option<f64>,
    /// Effective dynamic load value 0..10000.
    #[serde(default, deserialize_with = "lenient")]
    load: Option<u32>,
    #[serde(default, deserialize_with = "lenient")]
    load_age_secs: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    pinned: Option<Pin>,
    #[serde(default, deserialize_with = "lenient")]
    capacity: Option<u32>,
    #[serde(default, deserialize_with = "lenient")]
    url: Option<String>,
    /// PID of its process, as its agent reported it.
    #[serde(default, deserialize_with = "lenient")]
    pid: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Pin {
    #[serde(default)]
    until_unix: Option<f64>,
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

/// The servers table; `now_unix` turns a pin's end into the time left.
pub fn servers(v: &Value, now_unix: f64) -> String {
    let rows: Vec<ServerRow> = items(v)
        .into_iter()
        .map(|x| serde_json::from_value(x).unwrap_or_default())
        .collect();
    let any_failed = rows.iter().any(|r| r.failed.is_some());
    // PIDs only where some agent reports one (agents that start servers).
    let any_pid = rows.iter().any(|r| r.pid.is_some());
    let cells = rows
        .into_iter()
        .map(|r| {
            let age_cell = match (&r.pinned, r.load_age_secs) {
                (Some(Pin { until_unix: None }), _) => "pinned".to_string(),
                (
                    Some(Pin {
                        until_unix: Some(until),
                    }),
                    _,
                ) => format!("pinned, {} left", age(until - now_unix)),
                (None, Some(a)) => age(a),
                (None, None) => "-".to_string(),
            };
            let mut row = vec![
                or_dash(r.name),
                or_dash(r.app),
                or_dash(r.state),
                r.share
                    .map(|f| format!("{:.1}%", f * 100.0))
                    .unwrap_or_else(|| "-".into()),
                or_dash(r.load),
                age_cell,
                or_dash(r.capacity),
                or_dash(r.url),
            ];
            if any_pid {
                row.push(or_dash(r.pid));
            }
            if any_failed {
                row.push(or_dash(r.failed));
            }
            row
        })
        .collect();
    let mut header = vec![
        "NAME", "APP", "STATE", "WEIGHT", "LOAD", "AGE", "CAP", "URL",
    ];
    if any_pid {
        header.push("PID");
    }
    if any_failed {
        header.push("REASON");
    }
    table(&header, cells)
}

pub fn wsis(v: &Value) -> String {
    let rows = items(v)
        .iter()
        .map(|w| {
            let push = w.get("push").cloned().unwrap_or(Value::Null);
            let state = if push.is_null() {
                "-".to_string()
            } else if let Some(e) = push.get("last_error").and_then(Value::as_str) {
                format!("failing: {e}")
            } else {
                format!("ok v{}", s(&push, "applied_version"))
            };
            vec![
                s(w, "name"),
                s(w, "role"),
                s(w, "app"),
                s(w, "server"),
                s(w, "url"),
                state,
            ]
        })
        .collect();
    table(
        &["NAME", "ROLE", "APP", "SERVER", "COMMAND URL", "LAST PUSH"],
        rows,
    )
}

/// A Unix time in microseconds as `YYYY-MM-DD HH:MM:SS.mmm` UTC.
fn time_us(v: &Value, key: &str) -> String {
    let Some(us) = v.get(key).and_then(Value::as_i64) else {
        return "-".into();
    };
    let secs = us.div_euclid(1_000_000);
    let ms = us.rem_euclid(1_000_000) / 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{ms:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn hosts(v: &Value) -> String {
    let rows = items(v)
        .iter()
        .map(|h| {
            let f = h.get("facts").cloned().unwrap_or(Value::Null);
            vec![
                s(h, "host_name"),
                s(h, "agent_id"),
                format!("{} {}", s(&f, "os_name"), s(&f, "os_release")),
                s(&f, "arch"),
                s(&f, "cpu_logical"),
                f.get("memory_bytes")
                    .and_then(Value::as_u64)
                    .map(|b| format!("{} MiB", b >> 20))
                    .unwrap_or_else(|| "-".into()),
                time_us(h, "time_logged_us"),
            ]
        })
        .collect();
    table(
        &[
            "HOST",
            "AGENT",
            "OS",
            "ARCH",
            "CPUS",
            "MEMORY",
            "FACTS LOGGED",
        ],
        rows,
    )
}

pub fn agents(v: &Value) -> String {
    let mut rows = Vec::new();
    for a in items(v) {
        let statuses = a.get("status").map(items).unwrap_or_default();
        let servers: Vec<String> = if statuses.is_empty() {
            a.get("servers")
                .map(items)
                .unwrap_or_default()
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| s(x, "name"))
                })
                .collect()
        } else {
            statuses
                .iter()
                .map(|st| {
                    let state = if st.get("failed").and_then(Value::as_bool) == Some(true) {
                        format!("FAILED ({})", s(st, "reason"))
                    } else {
                        format!("load {}", s(st, "dynamic_load"))
                    };
                    format!("{}: {state}", s(st, "server"))
                })
                .collect()
        };
        // `state` (connected, silent, gone, never) from a control plane
        // that lists it; else whether connected.
        let state = match a.get("state").and_then(Value::as_str) {
            Some(st) => st.to_string(),
            None => s(&a, "connected"),
        };
        let token = match a.get("bound_servers").and_then(Value::as_array) {
            Some(bound) => format!(
                "own: {}",
                bound
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => "shared".into(),
        };
        rows.push(vec![
            s(&a, "agent_id"),
            s(&a, "host_name"),
            state,
            token,
            a.get("last_heard_age_secs")
                .and_then(Value::as_f64)
                .map(|secs| format!("{} ago", age(secs)))
                .unwrap_or_else(|| "-".into()),
            time_us(&a, "last_seen_us"),
            servers.join(", "),
        ]);
    }
    table(
        &[
            "AGENT",
            "HOST",
            "STATE",
            "TOKEN (BOUND SERVERS)",
            "LAST HEARD",
            "LAST HELLO (UTC)",
            "SERVERS",
        ],
        rows,
    )
}

pub fn events(v: &Value) -> String {
    let rows = items(v)
        .iter()
        .map(|e| {
            vec![
                time_us(e, "time_occurred_us"),
                format!("{} {}", s(e, "type_code"), s(e, "type_name")),
                s(e, "origin_name"),
                s(e, "text"),
            ]
        })
        .collect();
    table(&["OCCURRED (UTC)", "TYPE", "ORIGIN", "TEXT"], rows)
}

pub fn metrics(v: &Value) -> String {
    let rows = items(v)
        .iter()
        .map(|m| {
            vec![
                time_us(m, "interval_stop_us"),
                s(m, "component"),
                s(m, "metric"),
                s(m, "value"),
            ]
        })
        .collect();
    table(
        &["INTERVAL END (UTC)", "COMPONENT", "METRIC", "VALUE"],
        rows,
    )
}

pub fn requests(v: &Value) -> String {
    let rows = items(v)
        .iter()
        .map(|r| {
            vec![
                time_us(r, "start_time_us"),
                s(r, "server"),
                s(r, "method"),
                s(r, "content_path"),
                s(r, "status"),
                r.get("processing_time_us")
                    .and_then(Value::as_i64)
                    .map(|us| format!("{:.1} ms", us as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into()),
                s(r, "client_endpoint"),
            ]
        })
        .collect();
    table(
        &[
            "START (UTC)",
            "SERVER",
            "METHOD",
            "PATH",
            "STATUS",
            "TIME",
            "CLIENT",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVERS: &str = r#"[
      {"name": "a", "app": "shop", "url": "http://127.0.0.1:9081", "capacity": 2,
       "enabled": true, "state": "ok", "failed": null, "load": 7300,
       "load_age_secs": 0.34, "measured_load": 7300, "pinned": null,
       "load_metric": 2.0, "share": 0.1333},
      {"name": "b", "app": "shop", "url": "http://127.0.0.1:9082", "capacity": 5,
       "state": "failed", "failed": "probe failed: status 302, expected 200",
       "load": null, "load_age_secs": null, "pinned": null, "share": 0.0},
      {"name": "c", "app": "shop", "url": "http://127.0.0.1:9083", "capacity": 8,
       "state": "pinned", "failed": null, "load": 500, "load_age_secs": 12.9,
       "measured_load": 8000, "pinned": {"value": 500, "until_unix": 1090.0},
       "share": 0.8667},
      {"name": "d", "app": "shop", "url": "http://127.0.0.1:9084", "capacity": 1,
       "state": "pinned", "load": 10, "pinned": {"value": 10, "until_unix": null},
       "share": 0.0},
      {"name": "e", "app": "shop", "url": "http://127.0.0.1:9085", "capacity": 3,
       "state": "disabled", "load": 9000, "load_age_secs": 400, "share": 0}
    ]"#;

    fn line<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row {name}: {text}"))
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }

    /// The header's column names (single words, as in these tables).
    fn header(text: &str) -> Vec<&str> {
        text.lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect()
    }

    #[test]
    fn apps_show_why_they_are_swamped() {
        let v = serde_json::json!([
            {"name": "shop", "enabled": true, "mode": "redirect", "listen": "127.0.0.1:8080",
             "swamped": null},
            {"name": "blog", "enabled": true, "mode": "proxy", "listen": "127.0.0.1:8081",
             "swamped": "1 of 2 servers are out of rotation"}
        ]);
        let text = apps(&v);
        assert!(text.starts_with("NAME"), "{text}");
        assert!(
            text.lines().next().unwrap_or_default().ends_with("SWAMPED"),
            "{text}"
        );
        assert_eq!(line(&text, "shop").last(), Some(&"-"));
        assert_eq!(
            line(&text, "blog").last(),
            Some(&"1 of 2 servers are out of rotation")
        );
    }

    #[test]
    fn policies_show_a_key_a_row() {
        let v =
            serde_json::json!({"heavy_ms": 500.0, "offload_to": "front-door", "recover_pct": 80.5});
        let text = policy(&v);
        assert_eq!(header(&text), ["KEY", "VALUE"]);
        assert_eq!(line(&text, "heavy_ms"), ["heavy_ms", "500"]);
        assert_eq!(line(&text, "offload_to"), ["offload_to", "front-door"]);
        assert_eq!(line(&text, "recover_pct"), ["recover_pct", "80.5"]);
        assert_eq!(policy(&serde_json::json!([])).trim(), "KEY  VALUE");
    }

    #[test]
    fn servers_show_state_weight_load_and_age() {
        let v: Value = serde_json::from_str(SERVERS).expect("json");
        let text = servers(&v, 1000.0);
        assert_eq!(
            header(&text),
            ["NAME", "APP", "STATE", "WEIGHT", "LOAD", "AGE", "CAP", "URL", "REASON"]
        );
        assert_eq!(
            line(&text, "a"),
            [
                "a",
                "shop",
                "ok",
                "13.3%",
                "7300",
                "0.3s",
                "2",
                "http://127.0.0.1:9081",
                "-"
            ]
        );
        assert_eq!(
            line(&text, "b"),
            [
                "b",
                "shop",
                "failed",
                "0.0%",
                "-",
                "-",
                "5",
                "http://127.0.0.1:9082",
                "probe failed: status 302, expected 200"
            ]
        );
        assert_eq!(
            line(&text, "c"),
            [
                "c",
                "shop",
                "pinned",
                "86.7%",
                "500",
                "pinned, 1m left",
                "8",
                "http://127.0.0.1:9083",
                "-"
            ]
        );
        assert_eq!(line(&text, "d")[5], "pinned");
        assert_eq!(line(&text, "e")[2..6], ["disabled", "0.0%", "9000", "6m"]);
    }

    #[test]
    fn servers_show_pids_when_an_agent_reports_them() {
        let v = serde_json::json!([
            {"name": "a", "app": "shop", "url": "http://x", "capacity": 5, "state": "ok", "pid": 4711},
            {"name": "b", "app": "shop", "url": "http://y", "capacity": 5, "state": "failed",
             "failed": "probe failed", "pid": null}
        ]);
        let text = servers(&v, 0.0);
        assert_eq!(
            header(&text),
            ["NAME", "APP", "STATE", "WEIGHT", "LOAD", "AGE", "CAP", "URL", "PID", "REASON"]
        );
        assert_eq!(line(&text, "a")[7..], ["http://x", "4711", "-"]);
        assert_eq!(line(&text, "b")[7..], ["http://y", "-", "probe failed"]);
    }

    #[test]
    fn servers_without_the_new_fields_show_dashes() {
        // An older control plane (no state, share, load), a field of the
        // wrong type, and no failure: no REASON column.
        let v = serde_json::json!([
            {"name": "a", "app": "shop", "url": "http://x", "capacity": 5, "dynamic_load": 1500},
            {"name": "b", "state": 7, "share": "lots", "pinned": true}
        ]);
        let text = servers(&v, 0.0);
        assert!(!text.contains("REASON"), "{text}");
        assert_eq!(
            line(&text, "a"),
            ["a", "shop", "-", "-", "-", "-", "5", "http://x"]
        );
        assert_eq!(line(&text, "b"), ["b", "-", "-", "-", "-", "-", "-", "-"]);
        assert_eq!(
            servers(&serde_json::json!({"error": "x"}), 0.0).trim(),
            "NAME  APP  STATE  WEIGHT  LOAD  AGE  CAP  URL"
        );
    }

    #[test]
    fn ages_read_short() {
        assert_eq!(age(0.34), "0.3s");
        assert_eq!(age(9.96), "9.9s");
        assert_eq!(age(12.9), "12s");
        assert_eq!(age(300.0), "5m");
        assert_eq!(age(7200.0), "2h");
        assert_eq!(age(200_000.0), "2d");
        assert_eq!(age(-3.0), "0.0s");
    }

    #[test]
    fn agents_show_when_last_heard() {
        let v = serde_json::json!([
            {"agent_id": "agent-1", "host_name": "h", "connected": true,
             "last_seen_us": 1_790_000_000_123_456i64, "last_heard_age_secs": 0.42,
             "state": "connected", "bound_servers": ["a", "z"],
             "status": [{"server": "a", "failed": false, "dynamic_load": 7000}]},
            {"agent_id": "agent-2", "host_name": "h2", "connected": false,
             "last_seen_us": 1_790_000_000_123_456i64, "last_heard_age_secs": null,
             "servers": [{"name": "b"}]}
        ]);
        let text = agents(&v);
        assert!(text.starts_with("AGENT"), "{text}");
        assert!(text.contains("LAST HEARD"), "{text}");
        assert_eq!(
            line(&text, "agent-1"),
            [
                "agent-1",
                "h",
                "connected",
                "own: a, z",
                "0.4s ago",
                "2026-09-21 14:13:20.123",
                "a: load 7000"
            ]
        );
        assert_eq!(line(&text, "agent-2")[2..5], ["no", "shared", "-"]);
    }

    #[test]
    fn times_print_as_utc() {
        let v = serde_json::json!({"t": 1_790_000_000_123_456i64});
        assert_eq!(time_us(&v, "t"), "2026-09-21 14:13:20.123");
        assert_eq!(time_us(&v, "missing"), "-");
    }
}
