//! CPU time a front door spends, from `/proc`: user + system time of a
//! process and every descendant (nginx's master and its workers; Envoy
//! and `usher door` are one process of many threads, which `stat` sums).
//! Read before and after a measured run; the difference over the requests
//! is the door's CPU per request.

use std::collections::HashMap;
use std::process::Command;

/// Clock ticks per second of `stat`'s times (`getconf CLK_TCK`; 100, the
/// Linux value, if that cannot be run).
pub fn ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// (parent PID, utime + stime) from the text of `/proc/<pid>/stat`. The
/// command name may hold spaces and parentheses: fields are counted from
/// the last `)`.
pub fn parse_stat(text: &str) -> Option<(u32, u64)> {
    let (_, rest) = text.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// Every process now: PID → (parent PID, ticks).
fn processes() -> HashMap<u32, (u32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_stat(&text)?))
        })
        .collect()
}

/// Ticks of `roots` and all their descendants, summed.
pub fn tree_ticks(roots: &[u32]) -> u64 {
    let all = processes();
    let mut total = 0;
    let mut todo: Vec<u32> = roots.to_vec();
    let mut seen = Vec::new();
    while let Some(pid) = todo.pop() {
        if seen.contains(&pid) {
            continue;
        }
        seen.push(pid);
        if let Some((_, t)) = all.get(&pid) {
            total += t;
        }
        todo.extend(
            all.iter()
                .filter(|(_, (ppid, _))| *ppid == pid)
                .map(|(child, _)| *child),
        );
    }
    total
}

/// The PID of the process whose command line has `arg` as one argument
/// (e.g. a config file path no other process names); read-only.
pub fn pid_with_arg(arg: &str) -> Option<u32> {
    let dir = std::fs::read_dir("/proc").ok()?;
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
                .unwrap_or(false)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let line = "4242 (nginx: worker (x) 1) S 4200 4200 4200 0 -1 4194624 \
                    100 0 0 0 37 12 0 0 20 0 1 0 123 0 0";
        assert_eq!(parse_stat(line), Some((4200, 49)));
        assert_eq!(parse_stat("1 (init) S"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_has_ticks_and_is_found_by_argument() {
        let me = std::process::id();
        let text = std::fs::read_to_string(format!("/proc/{me}/stat")).expect("stat");
        assert!(parse_stat(&text).is_some(), "{text}");
        // Burn a little CPU so the tree has at least a tick.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(tree_ticks(&[me]) > 0);
        assert!(ticks_per_second() > 0);
        assert_eq!(pid_with_arg("no such argument, surely \u{1f980}"), None);
    }
}
