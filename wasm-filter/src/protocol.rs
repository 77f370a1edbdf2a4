//! The command endpoint's protocol (`usher_core::command`, the same JSON as
//! the nginx module's) and the form a snapshot takes in Envoy shared data,
//! with no host calls.
//!
//! Shared data holds two keys per `vm_id`: `usher.snapshot` is
//! `<version>\n<snapshot JSON>`, written with compare-and-swap so versions
//! only go up; `usher.version` is the version alone, a small key every
//! worker reads on its tick to notice a change without copying the snapshot.

use serde::de::DeserializeOwned;
use serde::Serialize;
use usher_core::command::{Command, ErrorReply};
use usher_core::snapshot::{Snapshot, MAX_SNAPSHOT_BYTES};

/// Shared-data key holding the latest accepted snapshot.
pub const SNAPSHOT_KEY: &str = "usher.snapshot";
/// Shared-data key holding the latest accepted version (a hint).
pub const VERSION_KEY: &str = "usher.version";
/// Largest command body accepted (a snapshot plus its envelope).
pub const MAX_COMMAND_BYTES: usize = MAX_SNAPSHOT_BYTES + 1024;

/// Parses JSON; the error starts with the path of the bad field.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// A reply of the command endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub body: String,
}

impl Reply {
    pub fn json(status: u32, value: &impl Serialize) -> Reply {
        let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string());
        Reply { status, body }
    }

    /// `{"error": message}`.
    pub fn error(status: u32, message: &str) -> Reply {
        Reply::json(status, &ErrorReply::new(message))
    }
}

/// The counters a `GET` on the command path answers with, and the snapshot
/// in force (`null` before the first), so that `usher ctl --wsi` can build
/// the next one from it with no control plane.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counters {
    pub version: u64,
    pub records_written: u64,
    pub records_dropped: u64,
    pub redirects: u64,
    /// Paths the workers learned are self-marked stateful (one per worker
    /// and path).
    pub self_marked: u64,
    /// Requests the interceptor let through to a server it picked (proxy
    /// mode), all workers.
    pub proxied: u64,
    /// Of those, the ones still in flight (as of each worker's last tick).
    pub in_flight: u64,
    pub snapshot: Option<usher_core::snapshot::Snapshot>,
    /// Each worker heard from in the last few seconds, with the version it
    /// applied (`roll`).
    pub workers_applied: Vec<crate::roll::Entry>,
}

/// True when `header` is `Bearer <token>` (compared in constant time by
/// `usher_core::token`, as every usher host does).
pub fn bearer_ok(header: Option<&str>, token: &str) -> bool {
    usher_core::token::bearer_matches(header.map(str::as_bytes), token.as_bytes())
}

/// Parses a command body; a bad one gives the 400/413 reply naming the field.
pub fn parse_command(body: &[u8]) -> Result<Command, Reply> {
    if body.len() > MAX_COMMAND_BYTES {
        return Err(Reply::error(413, "command body too large"));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Reply::error(400, &format!("body is not JSON: {e}")))?;
    // The internally tagged `Command` loses field paths: check the snapshot
    // part on its own first so the error names e.g. `snapshot.apps[0].name`.
    if value.get("type").and_then(|t| t.as_str()) == Some("snapshot") {
        if let Some(snap) = value.get("snapshot") {
            serde_path_to_error::deserialize::<_, Snapshot>(snap)
                .map_err(|e| Reply::error(400, &format!("snapshot.{}: {}", e.path(), e.inner())))?;
        }
    }
    let command: Command =
        serde_json::from_value(value).map_err(|e| Reply::error(400, &e.to_string()))?;
    if let Command::Snapshot { snapshot } = &command {
        snapshot
            .validate()
            .map_err(|e| Reply::error(400, &format!("snapshot.{e}")))?;
    }
    Ok(command)
}

/// The shared-data form of a snapshot.
pub fn encode_stored(snapshot: &Snapshot) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(snapshot).map_err(|e| e.to_string())?;
    let mut out = format!("{}\n", snapshot.version).into_bytes();
    out.extend_from_slice(&json);
    Ok(out)
}

/// The version of a stored snapshot, read without parsing the JSON.
pub fn stored_version(stored: &[u8]) -> Option<u64> {
    let end = stored.iter().position(|b| *b == b'\n')?;
    std::str::from_utf8(&stored[..end]).ok()?.parse().ok()
}

/// Parses a stored snapshot (validated again: shared data is an input too).
pub fn decode_stored(stored: &[u8]) -> Result<Snapshot, String> {
    let end = stored
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("no version line")?;
    Snapshot::from_json(&stored[end + 1..]).map_err(|e| e.to_string())
}

/// Parses the version hint key.
pub fn parse_version(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(bearer_ok(Some("Bearer s3cret"), "s3cret"));
        assert!(!bearer_ok(Some("Bearer s3cre"), "s3cret"));
        assert!(!bearer_ok(Some("Basic s3cret"), "s3cret"));
        assert!(!bearer_ok(None, "s3cret"));
    }

    #[test]
    fn commands_and_errors() {
        let ok = parse_command(br#"{"type":"snapshot","snapshot":{"version":3}}"#).expect("valid");
        assert!(matches!(ok, Command::Snapshot { snapshot } if snapshot.version == 3));
        let e = parse_command(br#"{"type":"snapshot","snapshot":{"version":0}}"#).expect_err("bad");
        assert_eq!(e.status, 400);
        assert!(e.body.contains("snapshot.version"), "{}", e.body);
        let e = parse_command(br#"{"type":"snapshot","snapshot":{"version":1,"apps":[{"name":"a","enabled":true,"servers":[{"name":"s","url":"http://a","capacity":"x","available":true}]}]}}"#).expect_err("bad");
        assert!(
            e.body.contains("snapshot.apps[0].servers[0].capacity"),
            "{}",
            e.body
        );
        let e = parse_command(b"not json").expect_err("bad");
        assert_eq!(e.status, 400);
        assert!(matches!(
            parse_command(br#"{"type":"echo","text":"hi"}"#),
            Ok(Command::Echo { .. })
        ));
    }

    #[test]
    fn stored_round_trip() {
        let s = Snapshot::from_json(br#"{"version":42}"#).expect("snapshot");
        let stored = encode_stored(&s).expect("encode");
        assert_eq!(stored_version(&stored), Some(42));
        assert_eq!(decode_stored(&stored), Ok(s));
        assert_eq!(parse_version(b"17"), 17);
        assert_eq!(parse_version(b"x"), 0);
    }
}
