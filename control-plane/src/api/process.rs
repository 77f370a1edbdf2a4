//! `POST /api/v1/servers/{name}/start`, `/stop` and `/restart`: process
//! control through the agent that watches the server.
//!
//! The manager sends the command over the agent's channel and waits for its
//! result ([`crate::manager::Manager::command_server`]); the PID it carries
//! goes into the live view (`pid` of the server in `GET /servers`), and the
//! order is logged as an event naming who asked. The agent runs the command
//! (agent/src/tasks/commands.rs) and logs its own event of what it did.
//!
//! Answers: 200 `{"server", "action", "pid", "previous_pid"}`; 400 for a
//! bad body; 404 for a server not configured; 409 when no connected agent
//! watches it; 502 with the agent's text when the command failed there; 504
//! when the agent did not answer in time.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use usher_core::channel::{event_type, CommandKind, CommandResult};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::errors::ApiError;
use super::models::parse_body;
use crate::manager::ManagerError;
use crate::state::AppState;

type Answer = Result<Response, ApiError>;

/// Who asked, as the events say it.
const WHO: &str = "admin API";

/// Signals a server may be stopped with (the agent's list, agent/src/signal.rs).
pub const SIGNALS: [&str; 7] = ["TERM", "KILL", "INT", "HUP", "QUIT", "USR1", "USR2"];

/// The three process orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
}

impl Action {
    /// The route's last segment and the answer's `action`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Action::Start => "started",
            Action::Stop => "stopped",
            Action::Restart => "restarted",
        }
    }

    /// How long the agent may take to answer: a stop waits up to the
    /// agent's 5 s grace period before KILL, a restart does that and starts
    /// again, and the agent runs commands one at a time (one may be queued).
    pub fn timeout(self) -> Duration {
        Duration::from_secs(match self {
            Action::Start => 15,
            Action::Stop => 20,
            Action::Restart => 30,
        })
    }

    fn event(self) -> (u32, &'static str) {
        match self {
            Action::Start => event_type::SERVER_STARTED,
            Action::Stop => event_type::SERVER_STOPPED,
            Action::Restart => event_type::SERVER_RESTARTED,
        }
    }
}

/// The optional body: `{}`; for stop `{"signal": "KILL"}` (default: the
/// server's `stop_signal` in the agent's config).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessBody {
    #[serde(default)]
    pub signal: Option<String>,
}

impl ProcessBody {
    /// Parses an empty body as `{}`; checks the signal.
    pub fn parse(action: Action, body: &[u8]) -> Result<ProcessBody, ApiError> {
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            None => return Ok(ProcessBody::default()),
            // serde would take `[]` for a struct too.
            Some(b'{') => {}
            Some(_) => return Err(ApiError::bad("body", "body: must be a JSON object")),
        }
        let b: ProcessBody = parse_body(body)?;
        if let Some(sig) = &b.signal {
            if action != Action::Stop {
                return Err(ApiError::bad(
                    "signal",
                    format!("signal: only stop takes a signal, not {}", action.name()),
                ));
            }
            if !SIGNALS.contains(&sig.as_str()) {
                return Err(ApiError::bad(
                    "signal",
                    format!("signal: must be one of {}, got {sig:?}", SIGNALS.join(", ")),
                ));
            }
        }
        Ok(b)
    }
}

/// The answer to a process order.
#[derive(Debug, Serialize)]
pub struct ProcessOut {
    pub server: String,
    pub action: &'static str,
    /// PID of the server's process now (`null` after a stop).
    pub pid: Option<u32>,
    /// PID before the order: the one stopped, or the one the live view
    /// had before a start or restart (`null` when unknown).
    pub previous_pid: Option<u32>,
}

/// A failure the agent side caused: 502 (the command failed there) or 504
/// (no answer in time), in the API's error shape.
// To move into `ApiError` (errors.rs) as its own variants.
fn agent_error(status: StatusCode, error: String) -> Response {
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({ "error": error })),
        status,
    )
    .into_response()
}

/// `POST /servers/{name}/start|stop|restart`.
pub async fn order(name: String, action: Action, st: AppState, body: Bytes) -> Answer {
    let body = ProcessBody::parse(action, &body)?;
    if st.store.fleet().server(&name).is_none() {
        return Err(ApiError::NotFound {
            kind: "server",
            name,
        });
    }
    let agent = st.manager.agent_of(&name).ok_or_else(|| no_agent(&name))?;
    let before = st.live.get().server(&name).and_then(|s| s.pid);
    let kind = match action {
        Action::Start => CommandKind::StartServer {
            server: name.clone(),
        },
        Action::Stop => CommandKind::StopServer {
            server: name.clone(),
            signal: body.signal,
        },
        Action::Restart => CommandKind::RestartServer {
            server: name.clone(),
        },
    };
    let result = match st.manager.command_server(kind, action.timeout()).await {
        Ok(r) => r,
        Err(ManagerError::NoServer(_) | ManagerError::NoAgent(_)) => return Err(no_agent(&name)),
        Err(ManagerError::Timeout(_)) => {
            let e = format!(
                "agent {agent} did not answer the {} of server {name} within {:?}",
                action.name(),
                action.timeout()
            );
            tracing::warn!("{e}");
            return Ok(agent_error(StatusCode::GATEWAY_TIMEOUT, e));
        }
        Err(e) => return Err(ApiError::Internal(e.to_string())),
    };
    let Some(out) = outcome(&name, action, before, &result) else {
        let e = format!(
            "agent {agent} could not {} server {name}: {}",
            action.name(),
            result.text
        );
        tracing::warn!("{e}");
        return Ok(agent_error(StatusCode::BAD_GATEWAY, e));
    };
    st.live.set_pid(&name, out.pid);
    st.manager
        .raise_event(&name, action.event(), event_text(&agent, action, &out))
        .await;
    Ok(warp::reply::json(&out).into_response())
}

fn no_agent(name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "no connected agent watches server {name}: start its agent (agent.toml [[servers]] name = {name:?})"
    ))
}

/// What a command result means for the server's PID; `None` when the
/// agent refused or failed.
fn outcome(
    name: &str,
    action: Action,
    before: Option<u32>,
    r: &CommandResult,
) -> Option<ProcessOut> {
    if !r.ok {
        return None;
    }
    let (pid, previous_pid) = match action {
        Action::Stop => (None, r.pid.or(before)),
        Action::Start | Action::Restart => (r.pid, before),
    };
    Some(ProcessOut {
        server: name.to_string(),
        action: action.name(),
        pid,
        previous_pid,
    })
}

fn event_text(agent: &str, action: Action, out: &ProcessOut) -> String {
    let pid = |p: Option<u32>| p.map_or_else(|| "unknown".to_string(), |p| p.to_string());
    let what = match action {
        Action::Start => format!("pid {}", pid(out.pid)),
        Action::Stop => format!("pid {}", pid(out.previous_pid)),
        Action::Restart => format!("pid {} -> {}", pid(out.previous_pid), pid(out.pid)),
    };
    format!(
        "server {} {} by {WHO} through agent {agent}: {what}",
        out.server,
        action.done()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(ok: bool, pid: Option<u32>) -> CommandResult {
        CommandResult {
            id: 1,
            ok,
            text: if ok { "done" } else { "no start command" }.into(),
            pid,
        }
    }

    #[test]
    fn bodies_are_optional_and_checked() {
        assert!(ProcessBody::parse(Action::Start, b"")
            .expect("empty")
            .signal
            .is_none());
        assert!(ProcessBody::parse(Action::Restart, b"{}").is_ok());
        let b = ProcessBody::parse(Action::Stop, br#"{"signal":"KILL"}"#).expect("kill");
        assert_eq!(b.signal.as_deref(), Some("KILL"));
        for (action, body, field) in [
            (Action::Stop, &br#"{"signal":"NOPE"}"#[..], "signal"),
            (Action::Start, br#"{"signal":"KILL"}"#, "signal"),
            (Action::Stop, br#"{"sig":"KILL"}"#, "sig"),
            (Action::Stop, b"{", "body"),
            (Action::Stop, b"null", "body"),
            (Action::Stop, b"[]", "body"),
        ] {
            let e = ProcessBody::parse(action, body).expect_err("refused");
            assert!(
                matches!(e, ApiError::BadRequest { field: ref f, .. } if f == field),
                "{action:?} {}: {e}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn results_set_the_pid_and_name_who_asked() {
        let out =
            outcome("web1", Action::Restart, Some(10), &result(true, Some(11))).expect("restart");
        assert_eq!((out.pid, out.previous_pid), (Some(11), Some(10)));
        assert_eq!(
            event_text("h1", Action::Restart, &out),
            "server web1 restarted by admin API through agent h1: pid 10 -> 11"
        );
        let out = outcome("web1", Action::Stop, None, &result(true, Some(11))).expect("stop");
        assert_eq!((out.pid, out.previous_pid), (None, Some(11)));
        assert_eq!(
            event_text("h1", Action::Stop, &out),
            "server web1 stopped by admin API through agent h1: pid 11"
        );
        let out = outcome("web1", Action::Start, None, &result(true, Some(12))).expect("start");
        assert_eq!(
            (out.pid, out.previous_pid, out.action),
            (Some(12), None, "start")
        );
        assert!(outcome("web1", Action::Start, None, &result(false, None)).is_none());
        assert_eq!(Action::Restart.timeout(), Duration::from_secs(30));
    }
}
