//! The agent's configuration file (TOML).
//!
//! ```toml
//! agent_id = "web-host-1"                    # default: <data_dir>/agent.id, made once
//! data_dir = "/var/lib/usher-agent"
//! control_url = "ws://127.0.0.1:7070/api/v1/agent/channel"
//! token_file = "/var/lib/usher/agent.token"  # or: token = "..."
//! # control_url = "wss://cp.example.com:7900/api/v1/agent/channel"
//! # ca_file = "/etc/usher/ca.pem"            # the CA that signed its cert
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
    /// PEM file of the CA(s) that signed the control plane's certificate,
    /// for a `wss://` control_url; default: the Mozilla roots compiled in
    /// (`webpki-roots`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Allow a plain-text `ws://` control_url to a host that is not
    /// loopback (the token and every report then cross the network in
    /// clear). Default no: use `wss://`.
    #[serde(default)]
    pub insecure: bool,
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
    /// Events files of `usher watch` on this host (`--events-file`): their
    /// new lines are sent to the manager as events, read every second.
    #[serde(default)]
    pub watch_events: Vec<PathBuf>,
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
        let cfg = AgentConfig::parse(&text).map_err(err)?;
        if let Some(ca) = &cfg.ca_file {
            crate::tls::read_ca_file(ca).map_err(|e| err(format!("ca_file: {e}")))?;
        }
        Ok(cfg)
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
        self.check_transport()?;
        if self.token.is_none() && self.token_file.is_none() {
            return Err("token: give token or token_file".into());
        }
        check_token("token", self.token.as_deref())?;
        for (key, v, lo, hi) in [
            ("interval_ms", self.interval_ms, 10, 3_600_000),
            ("probe_interval_ms", self.probe_interval_ms, 10, 3_600_000),
            ("drain_ms", self.drain_ms, 1, 10_000),
            ("reconnect_max_ms", self.reconnect_max_ms, 10, 600_000),
            ("records.batch_ms", self.records.batch_ms, 1, 3_600_000),
            (
                "spool.max_bytes",
                self.spool.max_bytes,
                MIN_SPOOL_BYTES,
                1 << 40,
            ),
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
            check_token("receiver.token", r.token.as_deref())?;
            if !(MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&r.max_body_bytes) {
                return Err(format!(
                    "receiver.max_body_bytes: must be {MIN_BODY_BYTES}..={MAX_BODY_BYTES}"
                ));
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
            if !(100..=599).contains(&s.probe_status) {
                return Err(format!(
                    "{}: must be an HTTP status, 100..=599",
                    at("probe_status")
                ));
            }
            if !(10..=60_000).contains(&s.probe_timeout_ms) {
                return Err(format!("{}: must be 10..=60000", at("probe_timeout_ms")));
            }
            check_token(&at("command_token"), s.command_token.as_deref())?;
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

    /// The TLS rules: `ws://` only to loopback unless `insecure`, and
    /// `ca_file` only with `wss://`.
    fn check_transport(&self) -> Result<(), String> {
        let Some(host) = crate::tls::url_host(&self.control_url) else {
            return Err(format!("control_url: no host in {:?}", self.control_url));
        };
        let plain = self.control_url.starts_with("ws://");
        if plain && !self.insecure && !crate::tls::is_loopback_host(&host) {
            return Err(format!(
                "control_url: ws:// to {host}, which is not a loopback address, would send the agent token and every report in plain text; use wss:// (with ca_file for a private CA) or set insecure = true"
            ));
        }
        if plain && self.ca_file.is_some() {
            return Err("ca_file: only used with a wss:// control_url".into());
        }
        Ok(())
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

/// Smallest `spool.max_bytes`: room for a few reports and record batches.
const MIN_SPOOL_BYTES: u64 = 64 * 1024;
/// `receiver.max_body_bytes` bounds: at least two of the Envoy filter's
/// 8 KiB batches, at most 64 MiB.
const MIN_BODY_BYTES: u64 = 16 * 1024;
const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// An inline token, if given, keeps the rule of every usher host
/// (`usher_core::token`: at least 8 printable characters). The tokens the
/// agent holds are all checked: its own control-plane token (the control
/// plane makes 64-hex-digit ones, so a short one is a placeholder or a cut
/// file, better named here than answered with 401 on every reconnect), the
/// receiver's, and each server's `command_token` (the nginx module and the
/// Envoy filter refuse a shorter one, so a relay with it could never pass).
fn check_token(key: &str, token: Option<&str>) -> Result<(), String> {
    match token {
        Some(t) if !usher_core::token::token_is_acceptable(t) => {
            Err(format!("{key}: {}", usher_core::token::TOKEN_RULE))
        }
        _ => Ok(()),
    }
}

/// A secret given inline or in a file; either keeps the token rule.
pub fn read_secret(inline: Option<&str>, file: Option<&Path>, key: &str) -> Result<String, String> {
    if let Some(t) = inline {
        check_token(key.strip_suffix("_file").unwrap_or(key), Some(t))?;
        return Ok(t.to_string());
    }
    let f = file.ok_or_else(|| format!("{key}: missing"))?;
    let token = std::fs::read_to_string(f)
        .map(|t| t.trim().to_string())
        .map_err(|e| format!("{key} {}: {e}", f.display()))?;
    check_token(&format!("{key} {}", f.display()), Some(&token))?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "data_dir = \"/tmp/x\"\ncontrol_url = \"ws://127.0.0.1:1/api/v1/agent/channel\"\ntoken = \"test-token\"\n";

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
            "{BASE}[receiver]\nlisten = \"0.0.0.0:9\"\ntoken = \"x-token-1\"\n"
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

    #[test]
    fn bad_limits_and_short_tokens_are_refused_naming_the_key() {
        let server = |extra: &str| {
            format!("{BASE}[[servers]]\nname = \"a\"\nurl = \"http://127.0.0.1:2\"\n{extra}\n")
        };
        let receiver = |extra: &str| {
            format!("{BASE}[receiver]\nlisten = \"127.0.0.1:9\"\ntoken = \"rtok-1234\"\n{extra}\n")
        };
        let rule = "the token must be at least 8 printable characters without spaces";
        let cases = [
            (
                server("probe_timeout_ms = 0"),
                "servers[0].probe_timeout_ms: must be 10..=60000",
            ),
            (
                server("probe_timeout_ms = 60001"),
                "servers[0].probe_timeout_ms: must be",
            ),
            (
                server("probe_status = 999"),
                "servers[0].probe_status: must be an HTTP status",
            ),
            (
                server("probe_status = 99"),
                "servers[0].probe_status: must be an HTTP status",
            ),
            (
                server("command_token = \"wsi\""),
                "servers[0].command_token: the token must",
            ),
            (
                format!("{BASE}[spool]\nmax_bytes = 0\n"),
                "spool.max_bytes: must be 65536..=",
            ),
            (
                receiver("max_body_bytes = 0"),
                "receiver.max_body_bytes: must be 16384..=",
            ),
            (
                format!("{BASE}[receiver]\nlisten = \"127.0.0.1:9\"\ntoken = \"x\"\n"),
                "receiver.token: the token must",
            ),
            (BASE.replace("test-token", "t"), "token: the token must"),
            (
                BASE.replace("test-token", "test token"),
                "token: the token must",
            ),
        ];
        for (text, says) in cases {
            let e = AgentConfig::parse(&text).expect_err(says);
            assert!(e.starts_with(says), "{e} should start with {says}");
            assert!(!says.contains("token must") || e.ends_with(rule), "{e}");
        }
        // The limits themselves are accepted.
        let c = AgentConfig::parse(&server(
            "probe_timeout_ms = 10\nprobe_status = 599\ncommand_token = \"12345678\"",
        ))
        .expect("limits");
        assert_eq!(
            (c.servers[0].probe_timeout_ms, c.servers[0].probe_status),
            (10, 599)
        );
        AgentConfig::parse(&server("probe_status = 100")).expect("100");
        AgentConfig::parse(&format!("{BASE}[spool]\nmax_bytes = 65536\n")).expect("spool");
        AgentConfig::parse(&receiver("max_body_bytes = 16384")).expect("receiver");
    }

    #[test]
    fn token_files_keep_the_token_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let short = dir.path().join("short.token");
        std::fs::write(&short, "abc\n").expect("write");
        let e = read_secret(None, Some(&short), "receiver.token_file").unwrap_err();
        assert_eq!(
            e,
            format!(
                "receiver.token_file {}: the token must be at least 8 printable characters without spaces",
                short.display()
            )
        );
        let good = dir.path().join("good.token");
        std::fs::write(&good, "  0123456789abcdef\n").expect("write");
        assert_eq!(
            read_secret(None, Some(&good), "token_file").expect("good"),
            "0123456789abcdef"
        );
        let e = read_secret(Some("short"), None, "token_file").unwrap_err();
        assert!(e.starts_with("token: the token must"), "{e}");
    }

    #[test]
    fn plain_text_only_to_loopback_unless_insecure() {
        let remote = BASE.replace("127.0.0.1:1", "192.0.2.1:7900");
        let e = AgentConfig::parse(&remote).unwrap_err();
        assert!(
            e.starts_with("control_url: ws:// to 192.0.2.1, which is not a loopback address"),
            "{e}"
        );
        let e = AgentConfig::parse(&BASE.replace("127.0.0.1:1", "cp.example.com")).unwrap_err();
        assert!(e.starts_with("control_url: ws:// to cp.example.com"), "{e}");
        let c = AgentConfig::parse(&format!("{remote}insecure = true\n")).expect("insecure");
        assert!(c.insecure);
        for ok in ["127.0.0.1:1", "localhost:1", "[::1]:1", "127.1.2.3:1"] {
            AgentConfig::parse(&BASE.replace("127.0.0.1:1", ok)).expect(ok);
        }
        let tls = remote.replace("ws://", "wss://");
        let c =
            AgentConfig::parse(&format!("{tls}ca_file = \"/etc/usher/ca.pem\"\n")).expect("wss");
        assert_eq!(c.ca_file.as_deref(), Some(Path::new("/etc/usher/ca.pem")));
        AgentConfig::parse(&tls).expect("wss with the built-in roots");
        let e = AgentConfig::parse(&format!("{BASE}ca_file = \"ca.pem\"\n")).unwrap_err();
        assert!(e.starts_with("ca_file: only used with a wss://"), "{e}");
        let e = AgentConfig::parse(&BASE.replace("127.0.0.1:1", "")).unwrap_err();
        assert!(e.starts_with("control_url: no host"), "{e}");
    }

    #[test]
    fn load_checks_the_ca_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.toml");
        let tls = BASE.replace("ws://", "wss://");
        std::fs::write(
            &path,
            format!(
                "{tls}ca_file = \"{}\"\n",
                dir.path().join("no.pem").display()
            ),
        )
        .expect("write");
        let e = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: ca_file: cannot read", path.display())),
            "{e}"
        );
        std::fs::write(dir.path().join("words.pem"), "hello\n").expect("write");
        std::fs::write(
            &path,
            format!(
                "{tls}ca_file = \"{}\"\n",
                dir.path().join("words.pem").display()
            ),
        )
        .expect("write");
        let e = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("ca_file: ") && e.contains("holds no PEM certificate"),
            "{e}"
        );
    }
}
