//! `usher ctl server start|stop|restart NAME`: process control through the
//! agent that watches the server (`POST /api/v1/servers/{name}/<action>`).

use std::time::Duration;

use serde_json::{json, Value};

use super::client::{Client, CtlError};
use super::parse::seg;

/// How long to wait for the answer: the control plane waits up to 30 s for
/// the agent (a restart), plus room for the call itself.
const LIMIT: Duration = Duration::from_secs(40);

/// Sends the order; returns the answer and the line to print.
pub fn order(
    c: &Client,
    action: &str,
    name: &str,
    signal: Option<&str>,
) -> Result<(Value, String), CtlError> {
    let body = match signal {
        Some(s) => json!({ "signal": s }),
        None => json!({}),
    };
    let path = format!("/servers/{}/{action}", seg(name));
    let v = c.call_within("POST", &path, Some(&body), LIMIT)?;
    let line = line(name, action, &v);
    Ok((v, line))
}

/// What happened, in one line: `server web1 restarted: pid 4711 -> 4790`.
fn line(name: &str, action: &str, v: &Value) -> String {
    let pid = |key: &str| {
        v.get(key)
            .and_then(Value::as_u64)
            .map_or_else(|| "unknown".to_string(), |p| p.to_string())
    };
    match action {
        "start" => format!("server {name} started: pid {}", pid("pid")),
        "stop" => format!("server {name} stopped (was pid {})", pid("previous_pid")),
        _ => format!(
            "server {name} restarted: pid {} -> {}",
            pid("previous_pid"),
            pid("pid")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_the_pids() {
        let v = json!({"server": "web1", "action": "restart", "pid": 12, "previous_pid": 10});
        assert_eq!(
            line("web1", "restart", &v),
            "server web1 restarted: pid 10 -> 12"
        );
        let v = json!({"server": "web1", "action": "stop", "pid": null, "previous_pid": 12});
        assert_eq!(line("web1", "stop", &v), "server web1 stopped (was pid 12)");
        let v = json!({"server": "web1", "action": "start", "pid": 13, "previous_pid": null});
        assert_eq!(line("web1", "start", &v), "server web1 started: pid 13");
        assert_eq!(
            line("web1", "restart", &json!({})),
            "server web1 restarted: pid unknown -> unknown"
        );
    }
}
