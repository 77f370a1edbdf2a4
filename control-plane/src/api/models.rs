//! Request and answer bodies of the admin API.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use usher_core::model::validate_load;
use usher_core::{load_metric, scale_capacity};

use super::errors::ApiError;
use crate::model::{App, Server, Wsi};
use crate::push::WsiPushState;

/// Largest request body accepted (bigger gets 413).
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

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

/// `PUT /servers/{name}/load`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBody {
    /// Dynamic load value `L`, 0..10000 (10000 = no delay).
    pub value: u32,
}

impl LoadBody {
    pub fn check(&self) -> Result<u32, ApiError> {
        validate_load("value", self.value)?;
        Ok(self.value)
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

/// A server as the API shows it: its record plus the current load metric.
#[derive(Debug, Serialize)]
pub struct ServerOut<'a> {
    #[serde(flatten)]
    pub server: &'a Server,
    /// Load metric now (0 when disabled): the server's weight at the front door.
    pub load_metric: f64,
}

impl<'a> ServerOut<'a> {
    pub fn new(server: &'a Server, app: Option<&App>, now_unix: f64) -> Self {
        let t = app.map(|a| a.obsolescence_secs).unwrap_or(1200.0);
        let age = server
            .load_updated_unix
            .map(|u| (now_unix - u).max(0.0))
            .unwrap_or(0.0);
        let lm = load_metric(
            scale_capacity(server.capacity.min(10) as u8),
            server.dynamic_load.map(f64::from),
            age,
            t,
        );
        ServerOut {
            server,
            load_metric: if server.enabled && server.failed.is_none() {
                lm.round()
            } else {
                0.0
            },
        }
    }
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
        let e = parse_body::<RedirectBody>(br#"{}"#).unwrap_err();
        assert!(e.to_string().contains("target"), "{e}");
        let r = parse_body::<RedirectBody>(br#"{"target":null}"#).expect("null");
        assert_eq!(r.target, None);
    }
}
