//! Host facts, collected at start (seed Table 1 as far as Linux tells):
//! id, OS name/release/version, host name, architecture, CPU counts,
//! memory, network interfaces with addresses, disks and mounts.

use sysinfo::{Disks, Networks, System};
use usher_core::channel::{DiskFacts, HostFacts, NetInterface};

/// The host's stable id: `/etc/machine-id`, else the host name.
fn host_id(host_name: &str) -> String {
    std::fs::read_to_string("/etc/machine-id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| host_name.to_string())
}

/// Collects the facts (takes a few milliseconds).
pub fn collect() -> HostFacts {
    let host_name = System::host_name().unwrap_or_else(|_| "unknown".into());
    let mut sys = match System::new() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("host facts: system information unavailable: {e}");
            None
        }
    };
    let (cpu_logical, cpu_brand, memory_bytes, swap_bytes) = match sys.as_mut() {
        Some(s) => {
            s.refresh_cpu_all();
            s.refresh_memory();
            (
                s.cpus().len() as u32,
                s.cpus()
                    .first()
                    .map(|c| c.brand().to_string())
                    .unwrap_or_default(),
                s.total_memory(),
                s.total_swap(),
            )
        }
        None => (0, String::new(), 0, 0),
    };
    let mut interfaces: Vec<NetInterface> = match Networks::new_with_refreshed_list() {
        Ok(nets) => nets
            .iter()
            .map(|(name, data)| NetInterface {
                name: name.to_string_lossy().into_owned(),
                mac: data.mac_address().to_string(),
                addresses: data.ip_networks().iter().map(|n| n.to_string()).collect(),
            })
            .collect(),
        Err(e) => {
            tracing::warn!("host facts: network interfaces unavailable: {e}");
            Vec::new()
        }
    };
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    for i in &mut interfaces {
        i.addresses.sort();
    }
    let mut disks: Vec<DiskFacts> = match Disks::new_with_refreshed_list() {
        Ok(d) => d
            .iter()
            .map(|d| DiskFacts {
                name: d.name().to_string_lossy().into_owned(),
                mount: d.mount_point().display().to_string(),
                file_system: d.file_system().to_string_lossy().into_owned(),
                total_bytes: d.total_space(),
                removable: d.is_removable(),
            })
            .collect(),
        Err(e) => {
            tracing::warn!("host facts: disks unavailable: {e}");
            Vec::new()
        }
    };
    disks.sort_by(|a, b| a.mount.cmp(&b.mount));
    HostFacts {
        host_id: host_id(&host_name),
        os_name: System::name().unwrap_or_default(),
        os_release: System::kernel_version().unwrap_or_default(),
        os_version: System::long_os_version()
            .or_else(|_| System::os_version())
            .unwrap_or_default(),
        arch: System::cpu_arch(),
        cpu_physical: System::physical_core_count().map(|n| n as u32).unwrap_or(0),
        cpu_logical,
        cpu_brand,
        memory_bytes,
        swap_bytes,
        boot_time_secs: System::boot_time().unwrap_or(0),
        interfaces,
        disks,
        host_name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_of_this_host() {
        let f = collect();
        assert!(!f.host_name.is_empty());
        assert!(!f.host_id.is_empty());
        assert!(f.cpu_logical >= 1);
        assert!(f.memory_bytes > 0);
        assert!(
            f.interfaces
                .iter()
                .any(|i| i.name == "lo" && i.addresses.iter().any(|a| a.starts_with("127.0.0.1"))),
            "{:?}",
            f.interfaces
        );
        assert!(!f.os_release.is_empty());
        // Collected twice, the facts are equal (the manager logs them only on change).
        assert_eq!(collect().interfaces, f.interfaces);
    }
}
