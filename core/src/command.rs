//! The command endpoint of a web server interface (the nginx module's
//! `usher_command` location, the Envoy filter's command listener): what the
//! control plane (or the host's agent, relaying) sends, and what comes back.
//!
//! `POST` a [`Command`] as JSON with `Authorization: Bearer <token>`. The
//! answers, one type each:
//!
//! | status | body | type |
//! |---|---|---|
//! | 200 | `{"applied":N}` | [`Applied`] |
//! | 200 | `{"echo":"...","pid":N}` (Envoy adds `"worker":"<id>"`) | [`Echoed`] |
//! | 409 | `{"error":"stale version","current":N}` | [`ErrorReply::stale`] |
//! | 4xx/5xx | `{"error":"..."}` | [`ErrorReply`] |
//!
//! Replies are read leniently (unknown fields are ignored), so a host may add
//! fields without breaking an older control plane; commands are strict.

use serde::{Deserialize, Serialize};

use crate::snapshot::Snapshot;

/// The `error` text of a 409: the snapshot's version is not above the
/// host's own.
pub const STALE_VERSION: &str = "stale version";

/// A message to a web server interface's command endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Command {
    /// Apply this snapshot.
    Snapshot { snapshot: Snapshot },
    /// Answer with the same text and the host's process id (a liveness test).
    Echo { text: String },
}

/// 200 to a snapshot: the version now applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub applied: u64,
}

/// 200 to an echo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echoed {
    /// The text that was sent.
    pub echo: String,
    /// The answering process (0 where the host cannot tell, e.g. a wasm VM).
    pub pid: u32,
    /// The answering worker, where the host has ids for them (Envoy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

/// Any refusal: what went wrong and, for a stale version, the host's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub error: String,
    /// The version the host holds (only with [`STALE_VERSION`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
}

impl ErrorReply {
    /// `{"error": message}`.
    pub fn new(message: impl Into<String>) -> ErrorReply {
        ErrorReply {
            error: message.into(),
            current: None,
        }
    }

    /// `{"error":"stale version","current":current}` (the 409).
    pub fn stale(current: u64) -> ErrorReply {
        ErrorReply {
            error: STALE_VERSION.to_string(),
            current: Some(current),
        }
    }

    /// The host's version when this is a stale-version refusal.
    pub fn stale_current(&self) -> Option<u64> {
        self.current.filter(|_| self.error == STALE_VERSION)
    }

    /// Reads an error body; `None` when it is not one.
    pub fn from_json(body: &[u8]) -> Option<ErrorReply> {
        serde_json::from_slice(body).ok()
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.current {
            Some(c) => write!(f, "{} (current {c})", self.error),
            None => f.write_str(&self.error),
        }
    }
}

/// The JSON body of a reply. These types hold only strings and numbers, so
/// serializing cannot fail; the fallback is never used.
pub fn to_json<T: Serialize>(reply: &T) -> Vec<u8> {
    serde_json::to_vec(reply).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_keep_their_wire_form() {
        let stale = ErrorReply::stale(50);
        assert_eq!(
            to_json(&stale),
            br#"{"error":"stale version","current":50}"#
        );
        assert_eq!(to_json(&ErrorReply::new("nope")), br#"{"error":"nope"}"#);
        assert_eq!(to_json(&Applied { applied: 7 }), br#"{"applied":7}"#);
        let echo = Echoed {
            echo: "hi".into(),
            pid: 12,
            worker: None,
        };
        assert_eq!(to_json(&echo), br#"{"echo":"hi","pid":12}"#);
        let echo = Echoed {
            worker: Some("w1".into()),
            ..echo
        };
        assert_eq!(to_json(&echo), br#"{"echo":"hi","pid":12,"worker":"w1"}"#);
    }

    #[test]
    fn error_replies_read_back_leniently() {
        let r = ErrorReply::from_json(br#"{"current":9,"error":"stale version","x":1}"#);
        assert_eq!(r.as_ref().and_then(ErrorReply::stale_current), Some(9));
        assert_eq!(
            r.map(|r| r.to_string()),
            Some("stale version (current 9)".into())
        );
        let other = ErrorReply::from_json(br#"{"error":"busy","current":9}"#);
        assert_eq!(other.and_then(|r| r.stale_current()), None);
        assert_eq!(ErrorReply::from_json(b"stale"), None);
        assert_eq!(ErrorReply::from_json(br#"{"applied":3}"#), None);
    }

    #[test]
    fn commands_round_trip() {
        let c: Command = serde_json::from_str(r#"{"type":"echo","text":"hi"}"#).expect("echo");
        assert_eq!(c, Command::Echo { text: "hi".into() });
        let c: Command =
            serde_json::from_str(r#"{"type":"snapshot","snapshot":{"version":3}}"#).expect("snap");
        assert!(matches!(&c, Command::Snapshot { snapshot } if snapshot.version == 3));
        let text = serde_json::to_string(&c).expect("json");
        assert!(
            text.starts_with(r#"{"type":"snapshot","snapshot":{"version":3"#),
            "{text}"
        );
        assert!(serde_json::from_str::<Command>(r#"{"type":"echo","text":"a","x":1}"#).is_err());
    }
}
