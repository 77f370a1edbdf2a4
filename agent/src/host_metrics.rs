//! Host performance figures per interval: CPU user/system/idle per CPU and
//! total (from `/proc/stat`, which splits user and system time), load
//! average and run queue, memory and swap, disk space and I/O, network
//! bytes/packets/errors per interface. One collector (one
//! `sysinfo::System`) lives across ticks, so every figure is a difference
//! since the previous tick.

use sysinfo::{Disks, Networks, System};
use usher_core::channel::{CpuSplit, DiskMetrics, HostMetrics, NetMetrics};

/// Jiffies of one CPU line of `/proc/stat`: (user+nice, system+irq+softirq, idle+iowait, total).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub system: u64,
    pub idle: u64,
    pub total: u64,
}

/// Parses `/proc/stat`: the total line first, then one per CPU.
pub fn parse_proc_stat(text: &str) -> Vec<CpuTimes> {
    text.lines()
        .filter(|l| l.starts_with("cpu"))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            let at = |i: usize| v.get(i).copied().unwrap_or(0);
            // user nice system idle iowait irq softirq steal
            CpuTimes {
                user: at(0) + at(1),
                system: at(2) + at(5) + at(6),
                idle: at(3) + at(4),
                total: (0..8).map(at).sum(),
            }
        })
        .collect()
}

/// Percent split between two readings.
pub fn split(before: CpuTimes, after: CpuTimes) -> CpuSplit {
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return CpuSplit {
            user: 0.0,
            system: 0.0,
            idle: 100.0,
        };
    }
    let pct = |a: u64, b: u64| a.saturating_sub(b) as f64 * 100.0 / total as f64;
    CpuSplit {
        user: pct(after.user, before.user),
        system: pct(after.system, before.system),
        idle: pct(after.idle, before.idle),
    }
}

/// Runnable processes from `/proc/loadavg` ("0.10 0.20 0.30 2/345 6789").
pub fn parse_run_queue(loadavg: &str) -> Option<u64> {
    loadavg
        .split_whitespace()
        .nth(3)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// The collector kept across ticks.
pub struct Collector {
    sys: Option<System>,
    disks: Option<Disks>,
    nets: Option<Networks>,
    last_cpu: Vec<CpuTimes>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").finish_non_exhaustive()
    }
}

impl Collector {
    /// A collector; the first sample covers the time since this call.
    pub fn new() -> Collector {
        let log = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!("host metrics: {what} unavailable: {e}")
        };
        Collector {
            sys: System::new().map_err(|e| log("system", &e)).ok(),
            disks: Disks::new_with_refreshed_list()
                .map_err(|e| log("disks", &e))
                .ok(),
            nets: Networks::new_with_refreshed_list()
                .map_err(|e| log("networks", &e))
                .ok(),
            last_cpu: read_cpu(),
        }
    }

    /// Figures since the previous call.
    pub fn sample(&mut self) -> HostMetrics {
        let now_cpu = read_cpu();
        let mut splits = now_cpu.iter().enumerate().map(|(i, a)| {
            let b = self.last_cpu.get(i).copied().unwrap_or_default();
            split(b, *a)
        });
        let cpu = splits.next().unwrap_or_default();
        let per_cpu: Vec<CpuSplit> = splits.collect();
        self.last_cpu = now_cpu;
        let load = System::load_average().unwrap_or(sysinfo::LoadAvg {
            one: 0.0,
            five: 0.0,
            fifteen: 0.0,
        });
        let mut m = HostMetrics {
            cpu,
            per_cpu,
            load1: load.one,
            load5: load.five,
            load15: load.fifteen,
            run_queue: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .as_deref()
                .and_then(parse_run_queue),
            ..Default::default()
        };
        if let Some(sys) = self.sys.as_mut() {
            sys.refresh_memory();
            m.memory_total = sys.total_memory();
            m.memory_used = sys.used_memory();
            m.swap_total = sys.total_swap();
            m.swap_used = sys.used_swap();
        }
        if let Some(disks) = self.disks.as_mut() {
            disks.refresh(false);
            m.disks = disks
                .iter()
                .map(|d| {
                    let u = d.usage();
                    DiskMetrics {
                        mount: d.mount_point().display().to_string(),
                        total_bytes: d.total_space(),
                        available_bytes: d.available_space(),
                        read_bytes: u.read_bytes,
                        written_bytes: u.written_bytes,
                    }
                })
                .collect();
        }
        if let Some(nets) = self.nets.as_mut() {
            nets.refresh(false);
            m.nets = nets
                .iter()
                .map(|(name, d)| NetMetrics {
                    name: name.to_string_lossy().into_owned(),
                    rx_bytes: d.received(),
                    tx_bytes: d.transmitted(),
                    rx_packets: d.packets_received(),
                    tx_packets: d.packets_transmitted(),
                    rx_errors: d.errors_on_received(),
                    tx_errors: d.errors_on_transmitted(),
                })
                .collect();
            m.nets.sort_by(|a, b| a.name.cmp(&b.name));
        }
        m
    }
}

impl Default for Collector {
    fn default() -> Self {
        Collector::new()
    }
}

fn read_cpu() -> Vec<CpuTimes> {
    std::fs::read_to_string("/proc/stat")
        .map(|t| parse_proc_stat(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_split() {
        let a = parse_proc_stat(
            "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 100 0 50 800 50 0 0 0 0 0\nintr 1\n",
        );
        let b =
            parse_proc_stat("cpu  160 0 70 900 50 10 10 0 0 0\ncpu0 160 0 70 900 50 10 10 0 0 0\n");
        assert_eq!(a.len(), 2);
        let s = split(a[0], b[0]);
        // 200 jiffies: user 60, system 20+10+10, idle 100
        assert_eq!((s.user, s.system, s.idle), (30.0, 20.0, 50.0));
        assert_eq!(split(a[0], a[0]).idle, 100.0);
        assert_eq!(parse_run_queue("0.10 0.20 0.30 2/345 6789"), Some(2));
        assert_eq!(parse_run_queue("garbage"), None);
    }

    #[test]
    fn samples_this_host() {
        let mut c = Collector::new();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let m = c.sample();
        assert!(m.memory_total > 0 && m.memory_used <= m.memory_total);
        assert!(!m.per_cpu.is_empty());
        let sum = m.cpu.user + m.cpu.system + m.cpu.idle;
        assert!(sum <= 100.5, "{sum}");
        assert!(m.nets.iter().any(|n| n.name == "lo"));
    }
}
