//! `usher ctl --wsi URL --token-file F …`: drives one WSI's command
//! endpoint directly, for sites or moments without a control plane (issue
//! 14). It reads the snapshot the WSI holds (`GET`, which answers it with
//! the counters), builds the next one with the change asked for
//! ([`edit`]), and posts it (`{"type":"snapshot",…}`); the WSI checks it
//! as it checks the control plane's.
//!
//! The commands it takes are the subset of `usher ctl` one snapshot can
//! carry: `apps`, `servers`, `app enable|disable|mode`, `server
//! add|remove|enable|disable|load|redirect`. A control plane that pushes
//! later replaces what was set here (its versions are the clock too).

mod edit;

use std::time::Duration;

use serde_json::{json, Value};
use usher_core::model::AppMode;
use usher_core::snapshot::Snapshot;

use super::args::{AppCmd, CtlArgs, ServerCmd, What};
use super::client::{api_error, CtlError};
use super::token::read_token;
use super::{now, Show};
use edit::{apply, Change};

/// How long one call to the endpoint may take.
const LIMIT: Duration = Duration::from_secs(10);

/// One WSI's command endpoint.
struct Endpoint {
    url: String,
    token: String,
    agent: ureq::Agent,
}

impl Endpoint {
    fn call(&self, body: Option<&Value>) -> Result<Value, CtlError> {
        let req = self
            .agent
            .request(if body.is_some() { "POST" } else { "GET" }, &self.url)
            .timeout(LIMIT)
            .set("Authorization", &format!("Bearer {}", self.token));
        let res = match body {
            Some(b) => req.send_json(b.clone()),
            None => req.call(),
        };
        match res {
            Ok(r) => r.into_json::<Value>().map_err(|e| {
                CtlError::Local(format!("{} answered, but not with JSON: {e}", self.url))
            }),
            Err(ureq::Error::Status(401, _)) => Err(CtlError::Local(format!(
                "token refused by the WSI at {} (--token-file: its command token, \
                 usher_command_token_file in nginx, command_token in Envoy)",
                self.url
            ))),
            Err(ureq::Error::Status(status, r)) => Err(api_error(status, r)),
            Err(ureq::Error::Transport(t)) => Err(CtlError::Unreachable {
                url: self.url.clone(),
                detail: t.to_string(),
            }),
        }
    }

    /// The snapshot the WSI holds (`None` before its first).
    fn snapshot(&self) -> Result<Option<Snapshot>, CtlError> {
        let counters = self.call(None)?;
        match counters.get("snapshot") {
            None => Err(CtlError::Local(format!(
                "{} answers no snapshot: is it a usher command endpoint of this version?",
                self.url
            ))),
            Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| CtlError::Local(format!("the WSI's snapshot does not decode: {e}"))),
        }
    }
}

/// The change a command asks for, or why `--wsi` cannot do it.
fn change(what: &What) -> Result<Option<Change>, CtlError> {
    let unsupported = |what: &str| {
        Err(CtlError::Local(format!(
            "{what} needs the control plane; with --wsi: apps, servers, app enable|disable|mode, \
             server add|remove|enable|disable|load|redirect"
        )))
    };
    Ok(Some(match what {
        What::Apps | What::Servers => return Ok(None),
        What::App(AppCmd::Enable { name }) => Change::AppEnabled {
            app: name.clone(),
            enabled: true,
        },
        What::App(AppCmd::Disable { name }) => Change::AppEnabled {
            app: name.clone(),
            enabled: false,
        },
        What::App(AppCmd::Mode { name, mode }) => Change::AppMode {
            app: name.clone(),
            mode: parse_mode(mode)?,
        },
        What::Server(ServerCmd::Add {
            name,
            app,
            url,
            capacity,
        }) => Change::ServerAdd {
            name: name.clone(),
            app: app.clone(),
            url: url.clone(),
            capacity: *capacity,
        },
        What::Server(ServerCmd::Remove { name }) => Change::ServerRemove { name: name.clone() },
        What::Server(ServerCmd::Enable { name }) => Change::ServerAvailable {
            name: name.clone(),
            available: true,
        },
        What::Server(ServerCmd::Disable { name }) => Change::ServerAvailable {
            name: name.clone(),
            available: false,
        },
        What::Server(ServerCmd::Load {
            name, value, for_, ..
        }) => {
            if for_.is_some() {
                return unsupported("server load --for");
            }
            Change::ServerLoad {
                name: name.clone(),
                load: *value,
            }
        }
        What::Server(ServerCmd::Redirect { target, .. }) => Change::Redirect {
            target: target.clone(),
        },
        _ => return unsupported("this command"),
    }))
}

fn parse_mode(mode: &str) -> Result<AppMode, CtlError> {
    serde_json::from_value(json!(mode))
        .map_err(|_| CtlError::Local(format!("app mode: {mode:?} is not redirect or proxy")))
}

/// `apps` and `servers` of a snapshot as tables.
fn tables(s: Option<&Snapshot>, servers: bool) -> String {
    let Some(s) = s else {
        return "the WSI holds no snapshot yet\n".into();
    };
    let mut out = String::new();
    if servers {
        out.push_str("SERVER  APP  URL  CAPACITY  AVAILABLE  LOAD\n");
        for a in &s.apps {
            for v in &a.servers {
                let load = v.dynamic_load.map_or("-".into(), |l| l.to_string());
                out.push_str(&format!(
                    "{}  {}  {}  {}  {}  {load}\n",
                    v.name, a.name, v.url, v.capacity, v.available
                ));
            }
        }
    } else {
        out.push_str("APP  ENABLED  MODE  SERVERS\n");
        for a in &s.apps {
            out.push_str(&format!(
                "{}  {}  {}  {}\n",
                a.name,
                a.enabled,
                if a.mode == AppMode::Proxy {
                    "proxy"
                } else {
                    "redirect"
                },
                a.servers.len()
            ));
        }
    }
    if let Some(t) = s.orders.as_ref().and_then(|o| o.redirect.as_ref()) {
        out.push_str(&format!("redirect order: {}\n", t.target));
    }
    out.push_str(&format!("snapshot version {}\n", s.version));
    out
}

/// Runs one command against the WSI at `url`.
pub(super) fn run(args: &CtlArgs, url: &str) -> Result<(Value, Show), CtlError> {
    let Some(file) = args.token_file.as_deref() else {
        return Err(CtlError::Local(
            "--wsi needs --token-file: the file holding the endpoint's command token".into(),
        ));
    };
    let endpoint = Endpoint {
        url: url.to_string(),
        token: read_token(Some(file), None)?,
        agent: ureq::AgentBuilder::new().redirects(0).build(),
    };
    let current = endpoint.snapshot()?;
    let Some(change) = change(&args.what)? else {
        let value = serde_json::to_value(&current).unwrap_or(Value::Null);
        let text = tables(current.as_ref(), matches!(args.what, What::Servers));
        return Ok((value, Show::Line(text.trim_end().to_string())));
    };
    let next =
        apply(current.as_ref(), &change, now().as_millis() as u64).map_err(CtlError::Local)?;
    let answer = endpoint.call(Some(&json!({"type": "snapshot", "snapshot": next})))?;
    let applied = answer["applied"].as_u64().unwrap_or(next.version);
    Ok((
        answer,
        Show::Line(format!("WSI {url}: snapshot {applied} applied")),
    ))
}
