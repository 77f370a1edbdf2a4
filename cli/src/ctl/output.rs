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
