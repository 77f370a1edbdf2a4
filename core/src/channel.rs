//! The agent ↔ manager control channel: message types and framing.
//!
//! The agent dials the manager and keeps one WebSocket open. Each text frame
//! is one JSON [`Frame`]: `{"v":2,"msg":{"type":"...",...}}`. Record batches,
//! the bulk, go as binary frames instead ([`binary`]: a 12-byte header, the
//! server name, then the batch bytes as they are), so neither side base64s
//! or parses JSON for them. Messages that must reach the logging database
//! exactly once (`report`, record batches, `event`) carry the agent's
//! sequence number; the manager answers `ack` with the highest sequence
//! number it has stored (acks are cumulative: every message up to and
//! including `seq` is stored). The manager de-duplicates by
//! `(agent_id, seq)`, so the agent may resend anything not yet acknowledged.
//!
//! Versions: every frame carries [`PROTOCOL_VERSION`] (`v` in JSON, the
//! first byte of a binary frame). A frame of another version decodes to
//! [`FrameError::Version`]; the manager closes a connection whose `hello` is
//! of another version (close code 1008, the reason names both versions) and
//! skips (and counts) any later frame that does not decode.
//!
//! The message types are here; the host facts and interval figures they
//! carry are in `figures`, the binary record frames in [`binary`].

use serde::{Deserialize, Serialize};

use crate::snapshot::Snapshot;

pub mod binary;
mod figures;

pub use binary::{decode_records, encode_records, RecordsFrame, RECORDS_HEADER_BYTES};
pub use figures::{
    CpuSplit, DiskFacts, DiskMetrics, HostFacts, HostMetrics, NetInterface, NetMetrics, Report,
    ServerAggregate,
};

/// Version of the messages below; a peer refuses frames of another version.
/// 2: record batches are binary frames (1 sent them base64 in JSON).
pub const PROTOCOL_VERSION: u32 = 2;
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
    #[error("binary frame is {got} bytes; its header and server name need {need}")]
    Truncated { need: usize, got: usize },
    #[error("binary frame kind {0:#04x} is unknown")]
    Kind(u8),
    #[error("binary frame: server name is empty, not UTF-8 or above 65535 bytes")]
    ServerName,
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

impl Event {
    /// An event of type `(code, name)` (see [`event_type`]) raised by
    /// `origin` (a server, an agent or a manager component) at `time_us`
    /// (Unix time, microseconds: the caller reads its clock).
    pub fn new(
        seq: u64,
        origin: &str,
        (code, name): (u32, &str),
        text: String,
        time_us: u64,
    ) -> Event {
        Event {
            seq,
            origin_id: origin.to_string(),
            origin_name: origin.to_string(),
            type_name: name.to_string(),
            type_code: code,
            text,
            time_occurred_us: time_us,
        }
    }
}

/// Event types: (code, name).
pub mod event_type {
    pub const AGENT_STARTED: (u32, &str) = (100, "agent_started");
    pub const PROBE_FAILED: (u32, &str) = (110, "probe_failed");
    pub const PROBE_RECOVERED: (u32, &str) = (111, "probe_recovered");
    /// A server process was started: by its agent (at boot or on a
    /// command; origin the server) and, when an operator ordered it, by the
    /// manager too, naming who asked (`admin API`).
    pub const SERVER_STARTED: (u32, &str) = (120, "server_started");
    /// A server process was stopped (agent, and manager as above).
    pub const SERVER_STOPPED: (u32, &str) = (121, "server_stopped");
    pub const SERVER_EXITED: (u32, &str) = (122, "server_exited");
    /// An operator's restart of a server process went through (manager
    /// side, naming who asked and the old and new PID).
    pub const SERVER_RESTARTED: (u32, &str) = (123, "server_restarted");
    pub const RECORDS_DROPPED: (u32, &str) = (130, "records_dropped");
    pub const SPOOL_OVERFLOW: (u32, &str) = (131, "spool_overflow");
    pub const REPORT_FAILED: (u32, &str) = (132, "report_failed");
    /// A server's record ring was full and nginx dropped records (at most
    /// once a minute per server; every drop is in its `dropped` count).
    pub const RING_OVERFLOW: (u32, &str) = (133, "ring_overflow");
    pub const AGENT_CONNECTED: (u32, &str) = (200, "agent_connected");
    pub const AGENT_SILENT: (u32, &str) = (201, "agent_silent");
    /// A connection said hello with the id of an agent that is connected
    /// and heard from: refused, the first connection is left alone.
    pub const AGENT_REFUSED: (u32, &str) = (202, "agent_refused");
    /// An agent claimed (hello) or reported on a server that another live
    /// agent watches: the claim is ignored.
    pub const CLAIM_REFUSED: (u32, &str) = (203, "claim_refused");
    /// Figures, events or records about servers the agent does not watch
    /// were refused (counted; at most one event a minute per agent).
    pub const REPORT_REFUSED: (u32, &str) = (204, "report_refused");
    pub const SERVER_FAILED: (u32, &str) = (210, "server_failed");
    pub const SERVER_RECOVERED: (u32, &str) = (211, "server_recovered");
    /// Fewer than the app's panic threshold of its enabled servers are in
    /// rotation: the front doors use every enabled server.
    pub const APP_PANIC: (u32, &str) = (220, "app_panic");
    pub const APP_PANIC_OVER: (u32, &str) = (221, "app_panic_over");
    // The manager acting on its own (docs/manager.md, "The manager acts").
    /// A server's delay, probe queue or host CPU/memory passed its
    /// heavily-loaded threshold: no new users.
    pub const SERVER_HEAVY: (u32, &str) = (230, "server_heavy");
    pub const SERVER_HEAVY_OVER: (u32, &str) = (231, "server_heavy_over");
    /// Maximum load: the server's WSI redirects new stateless users away.
    pub const SERVER_OFFLOADING: (u32, &str) = (232, "server_offloading");
    pub const SERVER_OFFLOAD_OVER: (u32, &str) = (233, "server_offload_over");
    pub const APP_SWAMPED: (u32, &str) = (234, "app_swamped");
    pub const APP_UNSWAMPED: (u32, &str) = (235, "app_unswamped");
    pub const SYSTEM_SWAMPED: (u32, &str) = (236, "system_swamped");
    pub const SYSTEM_UNSWAMPED: (u32, &str) = (237, "system_unswamped");
    pub const SERVER_DRAINING: (u32, &str) = (240, "server_draining");
    pub const SERVER_DRAINED: (u32, &str) = (241, "server_drained");
    pub const SERVER_UNDRAINED: (u32, &str) = (242, "server_undrained");
    /// The manager restarts a server on its own (errors, probe failing
    /// while the process lives).
    pub const SERVER_RESTARTING: (u32, &str) = (243, "server_restarting");
    /// Too many automatic restarts within the hour: the server stays out.
    pub const RESTART_REFUSED: (u32, &str) = (244, "restart_refused");
    pub const RESTART_FAILED: (u32, &str) = (245, "restart_failed");
    pub const SLOW_START_BEGUN: (u32, &str) = (246, "slow_start_begun");
    pub const SLOW_START_DONE: (u32, &str) = (247, "slow_start_done");
    /// A logged figure is heading for the limit where the manager (or the
    /// disk) will have to act: what trend, over which window, and when
    /// (predictive alerts, docs/manager.md).
    pub const TREND_PREDICTED: (u32, &str) = (250, "trend_predicted");
    /// A predicted trend no longer heads for its limit in time.
    pub const TREND_OVER: (u32, &str) = (251, "trend_over");
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_round_trip_and_check_version() {
        let m = AgentMessage::Event(Event::new(
            7,
            "web1",
            event_type::PROBE_FAILED,
            "connection refused".into(),
            1,
        ));
        let text = encode(&m);
        assert!(
            text.starts_with(r#"{"v":2,"msg":{"type":"event","seq":7,"origin_id":"web1","origin_name":"web1","type_name":"probe_failed","type_code":110"#),
            "{text}"
        );
        assert_eq!(decode::<AgentMessage>(&text), Ok(m));
        let other = text.replacen(r#""v":2"#, r#""v":1"#, 1);
        assert_eq!(decode::<AgentMessage>(&other), Err(FrameError::Version(1)));
        assert!(matches!(
            decode::<AgentMessage>("{"),
            Err(FrameError::Json(_))
        ));
        assert!(matches!(
            decode::<AgentMessage>(r#"{"v":2,"msg":{"type":"nope"}}"#),
            Err(FrameError::Json(_))
        ));
        // Version 2 has no JSON record batches.
        assert!(matches!(
            decode::<AgentMessage>(
                r#"{"v":2,"msg":{"type":"records","seq":1,"server":"a","batch":""}}"#
            ),
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
        let ack: ManagerMessage = decode(r#"{"v":2,"msg":{"type":"ack","seq":5}}"#).expect("ack");
        assert_eq!(ack, ManagerMessage::Ack { seq: 5 });
    }

    proptest! {
        #[test]
        fn decode_never_panics(text in "\\PC{0,200}") {
            std::hint::black_box(decode::<AgentMessage>(&text)).ok();
        }
    }
}
