//! Human-readable tables for `usher ctl`.

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

/// Prints rows under a header, columns padded to their widest cell.
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        let out: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = width[i]))
            .collect();
        println!("{}", out.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

fn items(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

pub fn apps(v: &Value) {
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
        ],
        rows,
    );
}

pub fn servers(v: &Value) {
    let rows = items(v)
        .iter()
        .map(|x| {
            vec![
                s(x, "name"),
                s(x, "app"),
                s(x, "enabled"),
                s(x, "capacity"),
                s(x, "dynamic_load"),
                s(x, "load_metric"),
                s(x, "redirect"),
                s(x, "url"),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "APP", "ENABLED", "CAPACITY", "LOAD", "METRIC", "REDIRECT", "URL",
        ],
        rows,
    );
}

pub fn wsis(v: &Value) {
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
    );
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

pub fn hosts(v: &Value) {
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
    );
}

pub fn agents(v: &Value) {
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
        rows.push(vec![
            s(&a, "agent_id"),
            s(&a, "host_name"),
            s(&a, "connected"),
            time_us(&a, "last_seen_us"),
            servers.join(", "),
        ]);
    }
    table(
        &["AGENT", "HOST", "CONNECTED", "LAST SEEN", "SERVERS"],
        rows,
    );
}

pub fn events(v: &Value) {
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
    table(&["OCCURRED (UTC)", "TYPE", "ORIGIN", "TEXT"], rows);
}

pub fn metrics(v: &Value) {
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
    );
}

pub fn requests(v: &Value) {
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
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc() {
        let v = serde_json::json!({"t": 1_790_000_000_123_456i64});
        assert_eq!(time_us(&v, "t"), "2026-09-21 14:13:20.123");
        assert_eq!(time_us(&v, "missing"), "-");
    }
}
