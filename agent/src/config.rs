//! The agent's configuration file (TOML).
//!
//! ```toml
//! agent_id = "web-host-1"                    # default: <data_dir>/agent.id, made once
//! data_dir = "/var/lib/usher-agent"
//! control_url = "ws://127.0.0.1:7070/api/v1/agent/channel"
//! token_file = "/var/lib/usher/agent.token"  # or: token = "..."
//! interval_ms = 500
//!
//! [receiver]                                 # Envoy record batches
//! listen = "127.0.0.1:7071"
//! token = "..."
//!
//! [[servers]]
//! name = "web1"
//! url = "http://127.0.0.1:8081"
//! ring = "/dev/shm/usher-web1.ring"
//! command_url = "http://127.0.0.1:8081/usher/command"
//! command_token = "..."
//! start = ["/usr/sbin/nginx", "-p", "/srv/web1", "-c", "conf/nginx.conf"]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This agent's id as the control plane knows it; default: read from
    /// `<data_dir>/agent.id`, created (from the host name) on first start.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Where the agent keeps its spool and id.
    pub data_dir: PathBuf,
    /// WebSocket URL of the control plane's agent channel.
    pub control_url: String,
    /// The agent token (the control plane's `<data_dir>/agent.token`).
    #[serde(default)]
    pub token: Option<String>,
    /// File holding the agent token (read at start), instead of `token`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Report interval in milliseconds.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Probe interval in milliseconds.
    #[serde(default = "default_probe_interval_ms")]
    pub probe_interval_ms: u64,
    /// Ring polling period in milliseconds.
    #[serde(default = "default_drain_ms")]
    pub drain_ms: u64,
    /// Longest wait between reconnection attempts (ms); the wait starts at
    /// 250 ms and doubles up to this.
    #[serde(default = "default_reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// Request records forwarding to the request log.
    #[serde(default)]
    pub records: RecordsConfig,
    /// The spool that keeps messages while the control plane is away.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// The loopback endpoint for record batches (Envoy filter).
    #[serde(default)]
    pub receiver: Option<ReceiverConfig>,
    /// Local web servers.
    #[serde(default)]
    pub servers: Vec<ServerConfig>,
}

/// Raw record batches: sent when any limit is reached.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsConfig {
    /// Forward raw records at all.
    #[serde(default = "yes")]
    pub forward: bool,
    /// Records per batch.
    #[serde(default = "default_batch_records")]
    pub batch_records: usize,
    /// Encoded bytes per batch.
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: usize,
    /// Longest time a record waits for its batch (ms).
    #[serde(default = "default_batch_ms")]
    pub batch_ms: u64,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            forward: true,
            batch_records: default_batch_records(),
            batch_bytes: default_batch_bytes(),
            batch_ms: default_batch_ms(),
        }
    }
}

/// Spool bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Most bytes of unacknowledged messages kept on disk; beyond it the
    /// oldest reports and record batches go first, events last.
    #[serde(default = "default_spool_bytes")]
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_bytes: default_spool_bytes(),
        }
    }
}

/// The record batch endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Loopback address to listen on (a non-loopback address is refused).
    pub listen: SocketAddr,
    /// Bearer token the senders present.
    #[serde(default)]
    pub token: Option<String>,
    /// File holding that token, instead of `token`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Largest accepted body.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
}

/// One local web server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Name as the control plane knows it.
    pub name: String,
    /// Base URL the agent probes (`http://127.0.0.1:PORT`).
    pub url: String,
    /// Record ring file of an nginx module instance.
    #[serde(default)]
    pub ring: Option<PathBuf>,
    /// `server_endpoint` values in received batches that mean this server.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Probe path.
    #[serde(default = "default_probe_path")]
    pub probe_path: String,
    /// Status the probe must get.
    #[serde(default = "default_probe_status")]
    pub probe_status: u16,
    /// Text the probe's body must contain (empty: any body).
    #[serde(default)]
    pub probe_body: String,
    /// Probe timeout in milliseconds.
    #[serde(default = "default_probe_timeout_ms")]
    pub probe_timeout_ms: u64,
    /// Probe at all.
    #[serde(default = "yes")]
    pub probe: bool,
    /// The web server interface's command endpoint (snapshots are relayed).
    #[serde(default)]
    pub command_url: Option<String>,
    /// Its token.
    #[serde(default)]
    pub command_token: Option<String>,
    /// Command line to start the server (argv); enables process control.
    #[serde(default)]
    pub start: Vec<String>,
    /// Signal that stops it (TERM, INT, QUIT, KILL, HUP).
    #[serde(default = "default_stop_signal")]
    pub stop_signal: String,
    /// Start the server when the agent starts.
    #[serde(default)]
    pub start_at_boot: bool,
}

fn yes() -> bool {
    true
}
fn default_interval_ms() -> u64 {
    500
}
fn default_probe_interval_ms() -> u64 {
    200
}
fn default_drain_ms() -> u64 {
    5
}
fn default_reconnect_max_ms() -> u64 {
    2000
}
fn default_batch_records() -> usize {
    100
}
fn default_batch_bytes() -> usize {
    8 * 1024
}
fn default_batch_ms() -> u64 {
    30_000
}
fn default_spool_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_max_body() -> u64 {
    1024 * 1024
}
fn default_probe_path() -> String {
    "/health".into()
}
fn default_probe_status() -> u16 {
    200
}
fn default_probe_timeout_ms() -> u64 {
    800
}
fn default_stop_signal() -> String {
    "TERM".into()
}

/// A config problem, naming the file and key.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct ConfigError {
    pub file: String,
    pub problem: String,
}

impl AgentConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let err = |problem: String| ConfigError {
            file: path.display().to_string(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        AgentConfig::parse(&text).map_err(err)
    }

    /// Parses and validates TOML text; the error names the key.
    pub fn parse(text: &str) -> Result<AgentConfig, String> {
        let cfg: AgentConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate()
    }

    /// Checks values; the error names the key.
    pub fn validate(self) -> Result<AgentConfig, String> {
        if !(self.control_url.starts_with("ws://") || self.control_url.starts_with("wss://")) {
            return Err("control_url: must start with ws:// or wss://".into());
        }
        if self.token.is_none() && self.token_file.is_none() {
            return Err("token: give token or token_file".into());
        }
        for (key, v, lo, hi) in [
            ("interval_ms", self.interval_ms, 10, 3_600_000),
            ("probe_interval_ms", self.probe_interval_ms, 10, 3_600_000),
            ("drain_ms", self.drain_ms, 1, 10_000),
            ("reconnect_max_ms", self.reconnect_max_ms, 10, 600_000),
            ("records.batch_ms", self.records.batch_ms, 1, 3_600_000),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(format!("{key}: must be {lo}..={hi}"));
            }
        }
        if self.records.batch_records == 0 || self.records.batch_bytes < 64 {
            return Err("records.batch_records/batch_bytes: must be at least 1 / 64".into());
        }
        if let Some(r) = &self.receiver {
            if !r.listen.ip().is_loopback() {
                return Err("receiver.listen: must be a loopback address".into());
            }
            if r.token.is_none() && r.token_file.is_none() {
                return Err("receiver.token: give token or token_file".into());
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.servers.iter().enumerate() {
            let at = |k: &str| format!("servers[{i}].{k}");
            if s.name.is_empty() || !names.insert(s.name.clone()) {
                return Err(format!("{}: empty or repeated", at("name")));
            }
            if !s.url.starts_with("http://") {
                return Err(format!("{}: must start with http://", at("url")));
            }
            if !s.probe_path.starts_with('/') {
                return Err(format!("{}: must start with '/'", at("probe_path")));
            }
            if crate::signal::signal_number(&s.stop_signal).is_none() {
                return Err(format!(
                    "{}: unknown signal {}",
                    at("stop_signal"),
                    s.stop_signal
                ));
            }
            if s.start_at_boot && s.start.is_empty() {
                return Err(format!("{}: needs start", at("start_at_boot")));
            }
        }
        Ok(self)
    }

    /// The agent token (from `token` or `token_file`).
    pub fn read_token(&self) -> Result<String, String> {
        read_secret(
            self.token.as_deref(),
            self.token_file.as_deref(),
            "token_file",
        )
    }
}

/// A secret given inline or in a file.
pub fn read_secret(inline: Option<&str>, file: Option<&Path>, key: &str) -> Result<String, String> {
    if let Some(t) = inline {
        return Ok(t.to_string());
    }
    let f = file.ok_or_else(|| format!("{key}: missing"))?;
    std::fs::read_to_string(f)
        .map(|t| t.trim().to_string())
        .map_err(|e| format!("{key} {}: {e}", f.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "data_dir = \"/tmp/x\"\ncontrol_url = \"ws://127.0.0.1:1/api/v1/agent/channel\"\ntoken = \"t\"\n";

    #[test]
    fn parses_with_defaults() {
        let c = AgentConfig::parse(&format!(
            "{BASE}[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:2\"\n"
        ))
        .expect("ok");
        assert_eq!(c.interval_ms, 500);
        assert_eq!(c.probe_interval_ms, 200);
        assert_eq!(c.records.batch_records, 100);
        assert_eq!(c.records.batch_bytes, 8192);
        assert_eq!(c.records.batch_ms, 30_000);
        assert_eq!(c.servers[0].probe_path, "/health");
    }

    #[test]
    fn errors_name_the_key() {
        let e = AgentConfig::parse(&format!("{BASE}bogus = 1\n")).unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = AgentConfig::parse(&format!(
            "{BASE}[receiver]\nlisten = \"0.0.0.0:9\"\ntoken = \"x\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("receiver.listen"), "{e}");
        let e = AgentConfig::parse(&format!(
            "{BASE}[[servers]]\nname = \"a\"\nurl = \"http://x\"\nstop_signal = \"NOPE\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("servers[0].stop_signal"), "{e}");
        let e = AgentConfig::parse(&BASE.replace("ws://", "http://")).unwrap_err();
        assert!(e.contains("control_url"), "{e}");
    }
}
