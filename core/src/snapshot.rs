//! The versioned snapshot the control plane pushes to every front door and
//! web server interface: everything a host needs to act without asking.
//!
//! A host applies a snapshot only if its `version` is newer than the one it
//! holds, so a late or replayed push never rolls state back, and never one
//! far ahead of its clock ([`crate::version`]).

use serde::{Deserialize, Serialize};

use crate::model::{
    validate_base_url, validate_capacity, validate_load, validate_name, AppMode, ModelError,
};
use crate::record::FieldMask;
use crate::rules::RedirectRules;

/// Largest snapshot body a host accepts.
pub const MAX_SNAPSHOT_BYTES: usize = 256 * 1024;

/// What one front door or web server interface needs to act.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Strictly increasing; a host refuses a version not above its own or
    /// far ahead of its clock ([`crate::version::admit`]).
    pub version: u64,
    /// Applications this host fronts (interceptor role).
    #[serde(default)]
    pub apps: Vec<AppView>,
    /// Orders for a host in the server role.
    #[serde(default)]
    pub orders: Option<WsiOrders>,
}

/// One application as a front door sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppView {
    pub name: String,
    pub enabled: bool,
    #[serde(default)]
    pub mode: AppMode,
    /// Load-metric bump per pick toward "busier".
    #[serde(default)]
    pub epsilon: f64,
    /// `T`: seconds after which a dynamic load value has fully aged out.
    #[serde(default = "default_obsolescence_secs")]
    pub obsolescence_secs: f64,
    /// Body of the sorry page (HTML); `None` means the host's built-in page.
    #[serde(default)]
    pub sorry_page: Option<String>,
    pub servers: Vec<ServerView>,
}

/// Default `T`: 20 minutes, the design's example.
pub fn default_obsolescence_secs() -> f64 {
    1200.0
}

/// One server as a front door sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerView {
    pub name: String,
    /// Base URL the front door refers users to.
    pub url: String,
    /// Operator's static capacity, 1..=10.
    pub capacity: u32,
    /// Latest dynamic load value `L` (0..=10000), if measured.
    #[serde(default)]
    pub dynamic_load: Option<u32>,
    /// Age of `dynamic_load` in seconds when the snapshot was made; the host
    /// adds the time since it received the snapshot.
    #[serde(default)]
    pub load_age_secs: f64,
    /// False when disabled, failed, draining or heavily loaded: gets no users.
    pub available: bool,
    /// The manager's long-term load value for this server (its mean over an
    /// extended window, e.g. the last hour): what an aging dynamic value
    /// slides back to, instead of the bare capacity, when the manager goes
    /// silent. `None`: the capacity.
    #[serde(default)]
    pub static_load: Option<u32>,
    /// Slow start: the server just entered rotation and its share ramps
    /// from 10 % of its weight to all of it over `slow_start_secs`; this is
    /// how much of the ramp was left when the snapshot was made (0: none).
    /// The host counts down from when it received the snapshot.
    #[serde(default)]
    pub slow_start_left_secs: f64,
    /// Length of the whole ramp, seconds.
    #[serde(default)]
    pub slow_start_secs: f64,
}

/// Orders for a web server interface in the server role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsiOrders {
    /// When set, redirect every request the rules allow to this target.
    #[serde(default)]
    pub redirect: Option<RedirectOrder>,
    #[serde(default)]
    pub rules: RedirectRules,
    /// Which request fields to record; `None` keeps the host's configured mask.
    #[serde(default)]
    pub field_mask: Option<FieldMask>,
    /// Path prefixes to report; empty reports every request.
    #[serde(default)]
    pub report_pages: Vec<String>,
}

/// Where to send users away to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectOrder {
    /// Base URL of another server or of the front door.
    pub target: String,
}

/// A snapshot that cannot be applied; names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is not valid JSON for this version: {0}")]
    Json(String),
    #[error("snapshot is larger than {MAX_SNAPSHOT_BYTES} bytes")]
    TooLarge,
    #[error(transparent)]
    Invalid(#[from] ModelError),
}

impl Snapshot {
    /// Parses and validates a snapshot body.
    pub fn from_json(body: &[u8]) -> Result<Snapshot, SnapshotError> {
        if body.len() > MAX_SNAPSHOT_BYTES {
            return Err(SnapshotError::TooLarge);
        }
        let snapshot: Snapshot =
            serde_json::from_slice(body).map_err(|e| SnapshotError::Json(e.to_string()))?;
        snapshot.validate()?;
        Ok(snapshot)
    }

    /// Checks every field; the error names the first bad one by its path.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.version == 0 {
            return Err(ModelError::invalid("version", "must be at least 1"));
        }
        for (a, app) in self.apps.iter().enumerate() {
            let at = |f: &str| format!("apps[{a}].{f}");
            validate_name(&at("name"), &app.name)?;
            if !app.epsilon.is_finite() || app.epsilon < 0.0 {
                return Err(ModelError::invalid(
                    at("epsilon"),
                    "must be a finite number >= 0",
                ));
            }
            if !app.obsolescence_secs.is_finite() || app.obsolescence_secs < 0.0 {
                return Err(ModelError::invalid(
                    at("obsolescence_secs"),
                    "must be a finite number >= 0",
                ));
            }
            for (s, server) in app.servers.iter().enumerate() {
                let at = |f: &str| format!("apps[{a}].servers[{s}].{f}");
                validate_name(&at("name"), &server.name)?;
                validate_base_url(&at("url"), &server.url)?;
                validate_capacity(&at("capacity"), server.capacity)?;
                if let Some(l) = server.dynamic_load {
                    validate_load(&at("dynamic_load"), l)?;
                }
                if let Some(l) = server.static_load {
                    validate_load(&at("static_load"), l)?;
                }
                for (field, v) in [
                    ("slow_start_left_secs", server.slow_start_left_secs),
                    ("slow_start_secs", server.slow_start_secs),
                ] {
                    if !v.is_finite() || v < 0.0 {
                        return Err(ModelError::invalid(
                            at(field),
                            "must be a finite number >= 0",
                        ));
                    }
                }
                if server.slow_start_left_secs > server.slow_start_secs {
                    return Err(ModelError::invalid(
                        at("slow_start_left_secs"),
                        "must not exceed slow_start_secs",
                    ));
                }
                if !server.load_age_secs.is_finite() || server.load_age_secs < 0.0 {
                    return Err(ModelError::invalid(
                        at("load_age_secs"),
                        "must be a finite number >= 0",
                    ));
                }
            }
        }
        if let Some(orders) = &self.orders {
            if let Some(r) = &orders.redirect {
                validate_base_url("orders.redirect.target", &r.target)?;
            }
            orders.rules.validate().map_err(|e| {
                ModelError::invalid(format!("orders.rules.{}", e.field()), e.to_string())
            })?;
            for (i, p) in orders.report_pages.iter().enumerate() {
                if !p.starts_with('/') {
                    return Err(ModelError::invalid(
                        format!("orders.report_pages[{i}]"),
                        "must start with '/'",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> &'static str {
        r#"{"version":3,"apps":[{"name":"shop","enabled":true,"mode":"proxy","epsilon":1,
            "servers":[{"name":"a","url":"http://127.0.0.1:8081","capacity":5,"dynamic_load":2000,"load_age_secs":1.5,"available":true}]}],
            "orders":{"redirect":{"target":"http://127.0.0.1:8080"},"rules":{"stateful":["/cart"],"session_cookie":"sid"},"field_mask":7}}"#
    }

    #[test]
    fn parses_and_validates() {
        let s = Snapshot::from_json(sample().as_bytes()).expect("valid");
        assert_eq!(s.version, 3);
        assert_eq!(s.apps[0].mode, AppMode::Proxy);
        assert_eq!(s.apps[0].obsolescence_secs, 1200.0);
        assert_eq!(
            s.orders.as_ref().and_then(|o| o.field_mask),
            Some(FieldMask(7))
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let bad = sample().replace("\"capacity\":5", "\"capacity\":50");
        let e = Snapshot::from_json(bad.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("apps[0].servers[0].capacity"), "{e}");
        let bad = sample().replace("http://127.0.0.1:8080", "javascript:alert(1)");
        assert!(Snapshot::from_json(bad.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("orders.redirect.target"));
        assert!(matches!(
            Snapshot::from_json(b"{"),
            Err(SnapshotError::Json(_))
        ));
        assert!(matches!(
            Snapshot::from_json(br#"{"version":1,"bogus":1}"#),
            Err(SnapshotError::Json(_))
        ));
        assert!(Snapshot::from_json(br#"{"version":0}"#)
            .unwrap_err()
            .to_string()
            .contains("version"));
    }
}
