//! The agent ↔ manager control channel: message types and framing.
//!
//! The agent dials the manager and keeps one WebSocket open; each text frame
//! is one [`Frame`]: `{"v":1,"msg":{"type":"...",...}}`. Messages that must
//! reach the logging database exactly once (`report`, `records`, `event`)
//! carry the agent's sequence number; the manager answers `ack` with the
//! highest sequence number it has stored (acks are cumulative: every message
//! up to and including `seq` is stored). The manager de-duplicates by
//! `(agent_id, seq)`, so the agent may resend anything not yet acknowledged.
//!
//! Size: the whole agent↔manager protocol (every message type) is kept in
//! one file so both sides read one definition; about 70 lines are tests.

use serde::{Deserialize, Serialize};

use crate::snapshot::Snapshot;

/// Version of the messages below; a peer refuses frames of another version.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest frame either side accepts.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// One framed message with its protocol version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame<M> {
    pub v: u32,
    pub msg: M,
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is larger than {MAX_FRAME_BYTES} bytes")]
    TooLarge,
    #[error("frame has protocol version {0}, this side speaks {PROTOCOL_VERSION}")]
    Version(u32),
    #[error("frame is not valid: {0}")]
    Json(String),
}

/// Encodes a message as one frame.
pub fn encode<M: Serialize>(msg: &M) -> String {
    #[derive(Serialize)]
    struct Out<'a, M> {
        v: u32,
        msg: &'a M,
    }
    // Serializing these plain types cannot fail (no maps with non-string keys).
    serde_json::to_string(&Out {
        v: PROTOCOL_VERSION,
        msg,
    })
    .unwrap_or_default()
}

/// Decodes one frame, checking size and version.
pub fn decode<M: for<'de> Deserialize<'de>>(text: &str) -> Result<M, FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge);
    }
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let v: Version = serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
    if v.v != PROTOCOL_VERSION {
        return Err(FrameError::Version(v.v));
    }
    let f: Frame<M> = serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
    Ok(f.msg)
}

/// Agent → manager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentMessage {
    /// First message on every connection.
    Hello(Hello),
    /// Per-interval figures (sequenced).
    Report(Report),
    /// Raw request records for the request log (sequenced).
    Records(Records),
    /// Something happened (sequenced).
    Event(Event),
    /// Heartbeat; the peer answers `pong` with the same nonce.
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    /// Outcome of a manager command.
    CommandResult(CommandResult),
}

/// Manager → agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ManagerMessage {
    /// Answer to `hello`: the highest sequence number already stored for
    /// this agent (0 = none), so the agent can drop what is already in.
    Welcome {
        agent_id: String,
        stored_seq: u64,
    },
    /// Every sequenced message up to `seq` is stored.
    Ack {
        seq: u64,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    Command(AgentCommand),
}

/// Who the agent is, what host it runs on and which servers it watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    pub protocol: u32,
    pub agent_id: String,
    pub facts: HostFacts,
    pub servers: Vec<ServerInfo>,
}

/// One local web server the agent watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerInfo {
    /// Name as the control plane knows the server.
    pub name: String,
    /// Base URL the agent probes.
    pub url: String,
    /// PID of the process the agent started, if any.
    #[serde(default)]
    pub pid: Option<u32>,
}

/// Host facts (seed Table 1, as far as the OS tells).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFacts {
    /// Stable host id (machine id, else the host name).
    pub host_id: String,
    pub host_name: String,
    pub os_name: String,
    pub os_release: String,
    pub os_version: String,
    pub arch: String,
    pub cpu_physical: u32,
    pub cpu_logical: u32,
    pub cpu_brand: String,
    pub memory_bytes: u64,
    pub swap_bytes: u64,
    pub boot_time_secs: u64,
    pub interfaces: Vec<NetInterface>,
    pub disks: Vec<DiskFacts>,
}

/// A network interface and its addresses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetInterface {
    pub name: String,
    pub mac: String,
    pub addresses: Vec<String>,
}

/// A disk and where it is mounted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskFacts {
    pub name: String,
    pub mount: String,
    pub file_system: String,
    pub total_bytes: u64,
    pub removable: bool,
}

/// One interval's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub seq: u64,
    /// Unix time, microseconds.
    pub interval_start_us: u64,
    pub interval_stop_us: u64,
    pub servers: Vec<ServerAggregate>,
    pub host: HostMetrics,
}

/// One server over one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerAggregate {
    pub server: String,
    pub count: u64,
    pub mean_us: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub errors_4xx: u64,
    pub errors_5xx: u64,
    /// Records that could not be decoded or were dropped by the producer.
    #[serde(default)]
    pub dropped: u64,
    /// From the last probe found in the record stream, if any.
    #[serde(default)]
    pub queue_length: Option<u32>,
    #[serde(default)]
    pub queue_delay_us: Option<u64>,
    /// Whether the last probe answered as expected; `None` = not probed.
    #[serde(default)]
    pub probe_ok: Option<bool>,
    /// Why the last probe failed.
    #[serde(default)]
    pub probe_error: Option<String>,
}

/// CPU time split, in percent of the interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuSplit {
    pub user: f64,
    pub system: f64,
    pub idle: f64,
}

/// Host performance figures over one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostMetrics {
    pub cpu: CpuSplit,
    pub per_cpu: Vec<CpuSplit>,
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    /// Runnable processes (run queue), when the OS tells.
    #[serde(default)]
    pub run_queue: Option<u64>,
    pub memory_total: u64,
    pub memory_used: u64,
    pub swap_total: u64,
    pub swap_used: u64,
    pub disks: Vec<DiskMetrics>,
    pub nets: Vec<NetMetrics>,
}

/// Disk space and I/O over one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskMetrics {
    pub mount: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
}

/// Network counters of one interface over one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetMetrics {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}

/// A batch of raw request records of one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Records {
    pub seq: u64,
    pub server: String,
    /// A `usher_core::record` batch, base64 (standard alphabet, padded).
    pub batch: String,
}

/// An event (seed Table 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub seq: u64,
    pub origin_id: String,
    pub origin_name: String,
    pub type_name: String,
    pub type_code: u32,
    pub text: String,
    /// Unix time, microseconds.
    pub time_occurred_us: u64,
}

/// Event types: (code, name).
pub mod event_type {
    pub const AGENT_STARTED: (u32, &str) = (100, "agent_started");
    pub const PROBE_FAILED: (u32, &str) = (110, "probe_failed");
    pub const PROBE_RECOVERED: (u32, &str) = (111, "probe_recovered");
    pub const SERVER_STARTED: (u32, &str) = (120, "server_started");
    pub const SERVER_STOPPED: (u32, &str) = (121, "server_stopped");
    pub const SERVER_EXITED: (u32, &str) = (122, "server_exited");
    pub const RECORDS_DROPPED: (u32, &str) = (130, "records_dropped");
    pub const SPOOL_OVERFLOW: (u32, &str) = (131, "spool_overflow");
    pub const REPORT_FAILED: (u32, &str) = (132, "report_failed");
    pub const AGENT_CONNECTED: (u32, &str) = (200, "agent_connected");
    pub const AGENT_SILENT: (u32, &str) = (201, "agent_silent");
    /// A connection said hello with the id of an agent that is connected
    /// and heard from: refused, the first connection is left alone.
    pub const AGENT_REFUSED: (u32, &str) = (202, "agent_refused");
    /// An agent claimed (hello) or reported on a server that another live
    /// agent watches: the claim is ignored.
    pub const CLAIM_REFUSED: (u32, &str) = (203, "claim_refused");
    pub const SERVER_FAILED: (u32, &str) = (210, "server_failed");
    pub const SERVER_RECOVERED: (u32, &str) = (211, "server_recovered");
    /// Fewer than the app's panic threshold of its enabled servers are in
    /// rotation: the front doors use every enabled server.
    pub const APP_PANIC: (u32, &str) = (220, "app_panic");
    pub const APP_PANIC_OVER: (u32, &str) = (221, "app_panic_over");
}

/// A manager command with an id the result refers to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentCommand {
    pub id: u64,
    pub kind: CommandKind,
}

/// What the manager asks an agent to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CommandKind {
    StartServer {
        server: String,
    },
    /// Stop with a signal name (`TERM` by default, `KILL`, `INT`, `HUP`, `QUIT`).
    StopServer {
        server: String,
        #[serde(default)]
        signal: Option<String>,
    },
    RestartServer {
        server: String,
    },
    /// Hand a snapshot to a local web server interface's command endpoint.
    RelaySnapshot {
        server: String,
        snapshot: Snapshot,
    },
}

/// Outcome of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandResult {
    pub id: u64,
    pub ok: bool,
    pub text: String,
    #[serde(default)]
    pub pid: Option<u32>,
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard padded base64.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard padded base64; `None` for anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (q, quad) in bytes.chunks(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && q + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in quad.iter().enumerate() {
            let v = if i >= 4 - pad { 0 } else { val(c)? };
            n |= v << (18 - 6 * i);
        }
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_round_trip_and_check_version() {
        let m = AgentMessage::Event(Event {
            seq: 7,
            origin_id: "web1".into(),
            origin_name: "web1".into(),
            type_name: event_type::PROBE_FAILED.1.into(),
            type_code: event_type::PROBE_FAILED.0,
            text: "connection refused".into(),
            time_occurred_us: 1,
        });
        let text = encode(&m);
        assert!(
            text.starts_with(r#"{"v":1,"msg":{"type":"event""#),
            "{text}"
        );
        assert_eq!(decode::<AgentMessage>(&text), Ok(m));
        let other = text.replacen(r#""v":1"#, r#""v":9"#, 1);
        assert_eq!(decode::<AgentMessage>(&other), Err(FrameError::Version(9)));
        assert!(matches!(
            decode::<AgentMessage>("{"),
            Err(FrameError::Json(_))
        ));
        assert!(matches!(
            decode::<AgentMessage>(r#"{"v":1,"msg":{"type":"nope"}}"#),
            Err(FrameError::Json(_))
        ));
        let cmd = ManagerMessage::Command(AgentCommand {
            id: 3,
            kind: CommandKind::StopServer {
                server: "a".into(),
                signal: None,
            },
        });
        assert_eq!(decode::<ManagerMessage>(&encode(&cmd)), Ok(cmd));
        let ack: ManagerMessage = decode(r#"{"v":1,"msg":{"type":"ack","seq":5}}"#).expect("ack");
        assert_eq!(ack, ManagerMessage::Ack { seq: 5 });
    }

    #[test]
    fn base64_known_values() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_decode("Zm8="), Some(b"fo".to_vec()));
        assert_eq!(base64_decode("Zm8"), None);
        assert_eq!(base64_decode("Z=8="), None);
        assert_eq!(base64_decode("Zg==Zg=="), None);
        assert_eq!(base64_decode("Zm9*"), None);
    }

    proptest! {
        #[test]
        fn base64_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(base64_decode(&base64_encode(&bytes)), Some(bytes));
        }

        #[test]
        fn decode_never_panics(text in "\\PC{0,200}") {
            std::hint::black_box(decode::<AgentMessage>(&text)).ok();
            std::hint::black_box(base64_decode(&text));
        }
    }
}
