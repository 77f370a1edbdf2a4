//! usher's own process figures, named as Prometheus client libraries name
//! them (`process_*`), read from `/proc/self` (Linux). A figure that cannot
//! be read is left out rather than reported as 0.

/// Clock ticks per second in `/proc` figures: Linux exports CPU times in
/// USER_HZ, which is 100 on every architecture usher builds for.
const USER_HZ: f64 = 100.0;

/// What `/proc/self` says about this process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessFigures {
    /// User and system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident memory, bytes.
    pub resident_bytes: Option<f64>,
    /// Start time, unix seconds.
    pub start_time_unix: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<f64>,
    /// Threads.
    pub threads: Option<f64>,
}

impl ProcessFigures {
    /// Reads the figures of this process now.
    pub fn read() -> ProcessFigures {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let system = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let mut f = from_texts(&stat, &status, &system);
        f.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as f64);
        f
    }
}

/// The figures in the texts of `/proc/self/stat`, `/proc/self/status` and
/// `/proc/stat` (pure, for the tests).
pub fn from_texts(stat: &str, status: &str, system: &str) -> ProcessFigures {
    // Fields after the command name, which is in parentheses and may hold
    // spaces: field 3 (state) is the first after the last ')'.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let field = |n: usize| -> Option<f64> { after.split_whitespace().nth(n - 3)?.parse().ok() };
    let cpu_seconds = match (field(14), field(15)) {
        (Some(u), Some(s)) => Some((u + s) / USER_HZ),
        _ => None,
    };
    let boot = system
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    let start_time_unix = match (boot, field(22)) {
        (Some(b), Some(ticks)) => Some(b + ticks / USER_HZ),
        _ => None,
    };
    let kib = |key: &str| -> Option<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    ProcessFigures {
        cpu_seconds,
        resident_bytes: kib("VmRSS:").map(|k| k * 1024.0),
        start_time_unix,
        open_fds: None,
        threads: kib("Threads:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_proc_texts() {
        let stat = "4242 (usher (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 50 0 0 20 0 12 0 123456 1000000 2000 18446744073709551615";
        let status = "Name:\tusher\nVmRSS:\t  20480 kB\nThreads:\t12\n";
        let system = "cpu  1 2 3\nbtime 1700000000\nprocesses 99\n";
        let f = from_texts(stat, status, system);
        assert_eq!(f.cpu_seconds, Some(3.0));
        assert_eq!(f.resident_bytes, Some(20480.0 * 1024.0));
        assert_eq!(f.threads, Some(12.0));
        assert_eq!(f.start_time_unix, Some(1_700_000_000.0 + 1234.56));
    }

    #[test]
    fn unreadable_texts_give_no_figures() {
        assert_eq!(from_texts("", "", ""), ProcessFigures::default());
        assert_eq!(
            from_texts("garbage", "VmRSS: lots", "btime x").cpu_seconds,
            None
        );
    }

    #[test]
    fn this_process_has_figures() {
        let f = ProcessFigures::read();
        assert!(f.resident_bytes.is_some_and(|b| b > 0.0), "{f:?}");
        assert!(f.open_fds.is_some_and(|n| n >= 1.0), "{f:?}");
        assert!(f.start_time_unix.is_some_and(|t| t > 1.5e9), "{f:?}");
    }
}
