//! What the load loop tells the rest of the control plane about one
//! server each interval (its own module so the manager's state and the load
//! loop both use it without importing each other).

use serde::Serialize;

/// One server's status at one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerStatus {
    pub server: String,
    pub agent_id: String,
    /// Dynamic load value 1..=10000; `None` when nothing was measured lately.
    pub dynamic_load: Option<u32>,
    /// The delay the value came from, in microseconds.
    pub delay_us: Option<u64>,
    /// When the agent measured it (unix seconds): data age counts from here.
    pub measured_at_unix: Option<f64>,
    /// True when the server must leave rotation.
    pub failed: bool,
    pub reason: Option<String>,
    /// Probe queue length in the latest report.
    pub queue_length: Option<u32>,
    /// Users' requests (not probes) in the latest report, and how many of
    /// them answered 5xx or 429.
    pub requests: u64,
    pub errors: u64,
    /// The agent's host, latest report: CPU busy and memory used, percent.
    pub host_cpu_pct: Option<f64>,
    pub host_mem_pct: Option<f64>,
    /// Share (0..1) of users' answers that were 5xx/429: the latest
    /// report's, or the remembered one while only probes arrive.
    pub error_share: f64,
}
