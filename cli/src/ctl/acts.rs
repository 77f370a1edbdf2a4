//! The manager's actions an operator orders: `usher ctl server drain|undrain
//! NAME` (`POST /servers/{name}/drain|undrain`) and `usher ctl app policy
//! NAME [--set KEY=VALUE]…` (`GET`/`PUT /apps/{name}/policy`).

use serde_json::{json, Map, Value};

use super::args::Then;
use super::client::{Client, CtlError};
use super::parse::{quiet_secs, seg};

/// Orders the drain; returns the answer and the line to print.
pub fn drain(
    c: &Client,
    name: &str,
    quiet: Option<&str>,
    then: Option<Then>,
) -> Result<(Value, String), CtlError> {
    // Keys left out take the API's defaults (the app's drain_quiet_s,
    // nothing after the drain), so the CLI repeats none of them.
    let quiet_s = quiet.map(quiet_secs).transpose()?;
    let mut body = json!({});
    if let Some(q) = quiet_s {
        body["quiet_s"] = json!(q);
    }
    if let Some(t) = then {
        body["then"] = json!(t.api());
    }
    let v = c.call(
        "POST",
        &format!("/servers/{}/drain", seg(name)),
        Some(&body),
    )?;
    let line = drain_line(name, &v, quiet_s, then);
    Ok((v, line))
}

/// Ends a drain; returns the answer and the line to print.
pub fn undrain(c: &Client, name: &str) -> Result<(Value, String), CtlError> {
    // `{}` rather than no body: the route reads a body and a POST without
    // one may go without Content-Length.
    let v = c.call(
        "POST",
        &format!("/servers/{}/undrain", seg(name)),
        Some(&json!({})),
    )?;
    let state = v.get("state").and_then(Value::as_str).unwrap_or("unknown");
    let line = format!("server {name} undrained (now {state})");
    Ok((v, line))
}

/// The app's policy; with `sets`, changed and stored first. Every `--set`
/// is checked before anything is sent, so a typo changes nothing.
pub fn policy(c: &Client, name: &str, sets: &[String]) -> Result<Value, CtlError> {
    let path = format!("/apps/{}/policy", seg(name));
    let mut current = c.call("GET", &path, None)?;
    if sets.is_empty() {
        return Ok(current);
    }
    let changes = sets
        .iter()
        .map(|s| parse_set(s))
        .collect::<Result<Vec<_>, _>>()?;
    apply(&mut current, &changes)?;
    c.call("PUT", &path, Some(&current))
}

/// The order in one line: `server web2 draining (quiet 10s, then
/// restart)`. The quiet period and the follow-up are the ones asked for;
/// the answer gives what was not (the app's default quiet period).
fn drain_line(name: &str, v: &Value, quiet_s: Option<u64>, then: Option<Then>) -> String {
    let state = v.get("state").and_then(Value::as_str).unwrap_or("draining");
    let quiet = match quiet_s {
        Some(q) => span(q as f64),
        None => v
            .pointer("/acts/drain/quiet_s")
            .and_then(Value::as_f64)
            .map_or_else(|| "unknown".to_string(), span),
    };
    match then {
        Some(t) => format!("server {name} {state} (quiet {quiet}, then {})", t.api()),
        None => format!("server {name} {state} (quiet {quiet})"),
    }
}

/// Seconds in the largest unit that says them exactly: `600` reads `10m`,
/// `90` reads `90s` (not `1m`, as a table's rounded age would).
fn span(secs: f64) -> String {
    if !(secs.is_finite() && secs >= 0.0 && secs.fract() == 0.0) {
        return format!("{secs}s");
    }
    let s = secs as u64;
    if s > 0 {
        for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if s.is_multiple_of(len) {
                return format!("{}{unit}", s / len);
            }
        }
    }
    format!("{s}s")
}

/// `KEY=VALUE`: the value as a JSON number or boolean when it reads as
/// one, else as a string (`offload_to=lightest`).
fn parse_set(text: &str) -> Result<(String, Value), CtlError> {
    let bad = || CtlError::Local(format!("--set: expected KEY=VALUE, got {text:?}"));
    let (key, value) = text.split_once('=').ok_or_else(bad)?;
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() {
        return Err(bad());
    }
    let value = match serde_json::from_str::<Value>(value) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(value.to_string()),
    };
    Ok((key.to_string(), value))
}

/// Puts the changes into the policy; a key the policy does not have is
/// refused by name, with the keys it does have.
fn apply(policy: &mut Value, changes: &[(String, Value)]) -> Result<(), CtlError> {
    let Some(map) = policy.as_object_mut() else {
        return Err(CtlError::Local(
            "the control plane sent a policy that is not a JSON object".into(),
        ));
    };
    if let Some((key, _)) = changes.iter().find(|(k, _)| !map.contains_key(k)) {
        return Err(CtlError::Local(format!(
            "--set {key}: no policy key {key:?}; the keys are {}",
            keys(map)
        )));
    }
    for (key, value) in changes {
        map.insert(key.clone(), value.clone());
    }
    Ok(())
}

fn keys(map: &Map<String, Value>) -> String {
    map.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_lines_say_the_quiet_period_and_what_follows() {
        // An answer that still shows the drain it replaced.
        let v = json!({"server": "web2", "state": "draining",
            "acts": {"drain": {"quiet_s": 600.0, "then": "nothing"}}});
        assert_eq!(
            drain_line("web2", &v, Some(10), Some(Then::Restart)),
            "server web2 draining (quiet 10s, then restart)"
        );
        let v = json!({"state": "drained", "acts": {"drain": {"quiet_s": 600, "then": "nothing"}}});
        assert_eq!(
            drain_line("a", &v, None, None),
            "server a drained (quiet 10m)"
        );
        assert_eq!(
            drain_line("a", &json!({}), None, Some(Then::Stop)),
            "server a draining (quiet unknown, then stop)"
        );
    }

    #[test]
    fn spans_read_exactly() {
        assert_eq!(span(0.0), "0s");
        assert_eq!(span(1.0), "1s");
        assert_eq!(span(90.0), "90s");
        assert_eq!(span(600.0), "10m");
        assert_eq!(span(7200.0), "2h");
        assert_eq!(span(86_400.0), "1d");
        assert_eq!(span(1.5), "1.5s");
    }

    #[test]
    fn sets_read_numbers_booleans_and_strings() {
        assert_eq!(
            parse_set("heavy_ms=123").expect("n"),
            ("heavy_ms".into(), json!(123))
        );
        assert_eq!(parse_set(" x = 1.5 ").expect("f"), ("x".into(), json!(1.5)));
        assert_eq!(parse_set("x=true").expect("b"), ("x".into(), json!(true)));
        assert_eq!(
            parse_set("offload_to=lightest").expect("s"),
            ("offload_to".into(), json!("lightest"))
        );
        assert_eq!(parse_set("x=").expect("empty"), ("x".into(), json!("")));
        assert_eq!(parse_set("x=a=b").expect("="), ("x".into(), json!("a=b")));
        for bad in ["heavy_ms", "=1", ""] {
            let e = parse_set(bad).expect_err(bad).to_string();
            assert!(e.contains("expected KEY=VALUE"), "{e}");
        }
    }

    #[test]
    fn unknown_keys_change_nothing() {
        let mut p = json!({"heavy_ms": 500.0, "offload_to": "front-door"});
        let e = apply(
            &mut p,
            &[("heavy_ms".into(), json!(1)), ("nope".into(), json!(1))],
        )
        .expect_err("nope")
        .to_string();
        assert!(e.starts_with("--set nope: no policy key \"nope\""), "{e}");
        assert!(e.contains("heavy_ms, offload_to"), "{e}");
        assert_eq!(p["heavy_ms"], 500.0);
        apply(&mut p, &[("heavy_ms".into(), json!(123))]).expect("known");
        assert_eq!(p["heavy_ms"], 123);
        assert!(apply(&mut json!([]), &[]).is_err());
    }
}
