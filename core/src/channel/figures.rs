//! The figures the agent sends: host facts (in `hello`) and one interval's
//! report (`report`). Re-exported from [`crate::channel`].

use serde::{Deserialize, Serialize};

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
    /// 429 answers (also in `errors_4xx`): the server shedding load.
    #[serde(default)]
    pub errors_429: u64,
    /// Of `count`, the agent's own probes (not users' requests).
    #[serde(default)]
    pub probes: u64,
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
