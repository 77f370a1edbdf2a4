//! Request and answer bodies of the admin API.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use usher_core::model::validate_load;
use usher_core::FrontDoor;

use super::errors::ApiError;
use crate::live::Live;
use crate::model::{Fleet, Server, Wsi};
use crate::push::WsiPushState;
use crate::views::{app_view, effective_load};

/// Parses a JSON body; an error names the field it is about (`value`,
/// `stateful[2]`) or `body` when the JSON itself is broken.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if path == "." || path == "?" {
            unknown_field(&inner.to_string()).unwrap_or_else(|| "body".to_string())
        } else {
            path
        };
        ApiError::bad(field.clone(), format!("{field}: {inner}"))
    })?;
    de.end()
        .map_err(|e| ApiError::bad("body", format!("body: {e}")))?;
    Ok(value)
}

/// Pulls the name out of serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next().map(str::to_string)
}

/// `PUT /servers/{name}/load`: pins the dynamic load value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBody {
    /// Dynamic load value `L`, 0..10000 (10000 = no delay).
    pub value: u32,
    /// How long the pin holds, in seconds; absent = until cleared.
    #[serde(default)]
    pub for_secs: Option<f64>,
}

/// Longest pin duration accepted: 30 days.
const MAX_PIN_SECS: f64 = 30.0 * 24.0 * 3600.0;

impl LoadBody {
    /// The value and how long it holds (seconds), checked.
    pub fn check(&self) -> Result<(u32, Option<f64>), ApiError> {
        validate_load("value", self.value)?;
        if let Some(d) = self.for_secs {
            if !(d > 0.0 && d <= MAX_PIN_SECS) {
                return Err(ApiError::bad(
                    "for_secs",
                    format!("for_secs: must be more than 0 and at most {MAX_PIN_SECS}, got {d}"),
                ));
            }
        }
        Ok((self.value, self.for_secs))
    }
}

/// `PUT /servers/{name}/redirect`: `{"target": "<server>" | "front-door" | null}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectBody {
    /// Required key; `null` switches the redirect order off.
    #[serde(deserialize_with = "required_nullable")]
    pub target: Option<String>,
}

fn required_nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// A server's pinned load as the API shows it.
#[derive(Debug, Serialize)]
pub struct PinOut {
    pub value: u32,
    /// When the pin ends (unix seconds); `null` = until cleared.
    pub until_unix: Option<f64>,
}

/// A server as the API shows it: its configured record, its live state and
/// what the built-in front door makes of both right now.
#[derive(Debug, Serialize)]
pub struct ServerOut<'a> {
    #[serde(flatten)]
    pub server: &'a Server,
    /// `disabled` (operator), `failed` (manager's verdict, see `failed`),
    /// then the manager's decision (`held-out`, `restarting`, `drained`,
    /// `draining`, `offloading`, `heavy`, `slow-start`: see `acts`), then
    /// `pinned` (operator's load in force) or `ok`.
    pub state: &'static str,
    /// What the manager decided about it (docs/manager.md).
    pub acts: crate::acts::ServerActs,
    /// Why the manager took it out of rotation.
    pub failed: Option<String>,
    /// PID of its process as the agent last reported it (hello, start,
    /// restart); `null` when unknown or stopped.
    pub pid: Option<u32>,
    /// The load value the front doors use (pinned or measured), 0..10000.
    pub load: Option<u32>,
    /// Same as `load` (the name earlier versions used).
    pub dynamic_load: Option<u32>,
    /// Age of `load`: since the agent measured it (0 while pinned).
    pub load_age_secs: Option<f64>,
    /// Latest measured value, applied or not.
    pub measured_load: Option<u32>,
    pub measured_age_secs: Option<f64>,
    /// Mean load over the manager's long-term window: the static value
    /// front doors age toward when the manager is away.
    pub long_term_load: Option<u32>,
    pub pinned: Option<PinOut>,
    /// Load metric now (0 when out of rotation): its weight at the front door.
    pub load_metric: f64,
    /// Share of the app's new users it gets now, 0..1.
    pub share: f64,
}

/// Every server of `fleet` as the API shows it at `now_unix`.
pub fn servers_out<'a>(fleet: &'a Fleet, live: &Live, now_unix: f64) -> Vec<ServerOut<'a>> {
    let mut weights: HashMap<&str, (f64, f64)> = HashMap::new();
    for app in &fleet.apps {
        let view = app_view(fleet, live, app, now_unix);
        let door = FrontDoor::new(&view, 0.0);
        for ((s, m), share) in view
            .servers
            .iter()
            .zip(door.metrics(0.0))
            .zip(door.shares())
        {
            if let Some(server) = fleet.server(&s.name) {
                weights.insert(server.name.as_str(), (m, share));
            }
        }
    }
    fleet
        .servers
        .iter()
        .map(|server| {
            let measured = live.server(&server.name);
            let failed = measured.and_then(|m| m.failed.clone());
            let pin = server.pin_at(now_unix);
            let acts = live.acts(&server.name);
            let (load, load_age_secs) = effective_load(server, live, now_unix);
            let (metric, share) = weights
                .get(server.name.as_str())
                .copied()
                .unwrap_or((0.0, 0.0));
            let state = if !server.enabled {
                "disabled"
            } else if failed.is_some() {
                "failed"
            } else if acts.state() != "ok" {
                acts.state()
            } else if pin.is_some() {
                "pinned"
            } else {
                "ok"
            };
            ServerOut {
                server,
                state,
                acts,
                failed,
                pid: measured.and_then(|m| m.pid),
                load,
                dynamic_load: load,
                load_age_secs,
                measured_load: measured.and_then(|m| m.measured_load),
                measured_age_secs: measured
                    .and_then(|m| m.measured_at_unix)
                    .map(|t| (now_unix - t).max(0.0)),
                long_term_load: measured.and_then(|m| m.long_term_load),
                pinned: pin.map(|value| PinOut {
                    value,
                    until_unix: server.pinned_until_unix,
                }),
                load_metric: metric.round(),
                share,
            }
        })
        .collect()
}

/// A WSI as the API shows it (never its token), with its last push.
#[derive(Debug, Serialize)]
pub struct WsiOut<'a> {
    #[serde(flatten)]
    pub wsi: &'a Wsi,
    pub push: Option<WsiPushState>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_errors_name_the_field() {
        let e = parse_body::<LoadBody>(br#"{"value":"high"}"#).unwrap_err();
        assert!(
            matches!(e, ApiError::BadRequest { ref field, .. } if field == "value"),
            "{e}"
        );
        let e = parse_body::<LoadBody>(br#"{"value":-1}"#).unwrap_err();
        assert!(
            matches!(e, ApiError::BadRequest { ref field, .. } if field == "value"),
            "{e}"
        );
        let e = parse_body::<LoadBody>(br#"{"valeu":1}"#).unwrap_err();
        assert!(
            matches!(e, ApiError::BadRequest { ref field, .. } if field == "valeu"),
            "{e}"
        );
        let e = parse_body::<LoadBody>(br#"{"value":1"#).unwrap_err();
        assert!(
            matches!(e, ApiError::BadRequest { ref field, .. } if field == "body"),
            "{e}"
        );
        let e = parse_body::<LoadBody>(br#"{}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `value`"), "{e}");
        let e = parse_body::<LoadBody>(br#"{"value":10001}"#)
            .expect("parses")
            .check()
            .unwrap_err();
        assert!(
            matches!(e, ApiError::BadRequest { ref field, .. } if field == "value"),
            "{e}"
        );
        let e = parse_body::<LoadBody>(br#"{"value":10,"for_secs":-1}"#)
            .expect("parses")
            .check()
            .unwrap_err();
        assert!(
            matches!(e, ApiError::BadRequest { ref field, .. } if field == "for_secs"),
            "{e}"
        );
        let e = parse_body::<RedirectBody>(br#"{}"#).unwrap_err();
        assert!(e.to_string().contains("target"), "{e}");
        let r = parse_body::<RedirectBody>(br#"{"target":null}"#).expect("null");
        assert_eq!(r.target, None);
    }
}
