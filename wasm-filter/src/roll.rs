//! The roll of workers: which snapshot version each worker's VM applied,
//! and when it last said so. Envoy routes a connection to one worker, so
//! answers seen from outside cannot prove that *every* worker took a change
//! (a test may see all its connections land on one); the roll can, like the
//! nginx module's `workers_applied`.
//!
//! Shared data key `usher.workers` holds one line per worker,
//! `<worker id> <applied version> <unix ms>`; each worker rewrites its own
//! line (compare-and-swap) when it applies a snapshot and every
//! [`HEARTBEAT_MS`], and drops lines older than [`FORGET_MS`] (workers gone
//! with a config reload). Pure: the host calls live in `shared`.

/// Shared-data key of the roll.
pub const WORKERS_KEY: &str = "usher.workers";
/// A worker rewrites its line at least this often.
pub const HEARTBEAT_MS: u64 = 1_000;
/// Lines older than this are dropped (the worker is gone).
pub const FORGET_MS: u64 = 10 * HEARTBEAT_MS;
/// Lines older than this are not listed by the command endpoint.
pub const LISTED_MS: u64 = 3 * HEARTBEAT_MS;

/// One worker's line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub worker: String,
    pub version: u64,
    /// Unix ms of the worker's last word.
    #[serde(skip)]
    pub at_ms: u64,
    /// How old that word is when listed.
    pub age_ms: u64,
}

/// Parses the roll; lines that do not decode are skipped (shared data is
/// an input too).
pub fn parse(bytes: &[u8]) -> Vec<Entry> {
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let mut parts = std::str::from_utf8(line).ok()?.split(' ');
            let worker = parts.next().filter(|w| !w.is_empty())?.to_string();
            let version = parts.next()?.parse().ok()?;
            let at_ms = parts.next()?.parse().ok()?;
            Some(Entry {
                worker,
                version,
                at_ms,
                age_ms: 0,
            })
        })
        .collect()
}

/// The roll with `worker`'s line set to `version` at `now_ms`, lines older
/// than [`FORGET_MS`] dropped.
pub fn with(bytes: &[u8], worker: &str, version: u64, now_ms: u64) -> Vec<u8> {
    let mut out = String::new();
    for e in parse(bytes) {
        if e.worker != worker && now_ms.saturating_sub(e.at_ms) <= FORGET_MS {
            out.push_str(&format!("{} {} {}\n", e.worker, e.version, e.at_ms));
        }
    }
    out.push_str(&format!("{worker} {version} {now_ms}\n"));
    out.into_bytes()
}

/// The workers heard from within [`LISTED_MS`] of `now_ms`, with their age.
pub fn listed(bytes: &[u8], now_ms: u64) -> Vec<Entry> {
    parse(bytes)
        .into_iter()
        .filter_map(|mut e| {
            e.age_ms = now_ms.saturating_sub(e.at_ms);
            (e.age_ms <= LISTED_MS).then_some(e)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_owns_one_line_and_old_ones_go() {
        let roll = with(b"", "w1", 3, 1_000);
        let roll = with(&roll, "w2", 3, 1_100);
        let roll = with(&roll, "w1", 4, 1_200);
        let all = parse(&roll);
        assert_eq!(all.len(), 2);
        assert_eq!(
            all.iter().find(|e| e.worker == "w1").map(|e| e.version),
            Some(4)
        );
        // w2 says nothing for longer than FORGET_MS: w1's next word drops it.
        let roll = with(&roll, "w1", 4, 1_100 + FORGET_MS + 1);
        let all = parse(&roll);
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].worker, "w1");
    }

    #[test]
    fn listing_gives_ages_and_hides_silent_workers() {
        let roll = with(b"", "w1", 7, 10_000);
        let roll = with(&roll, "w2", 6, 10_000 - LISTED_MS - 1);
        let listed = listed(&roll, 10_500);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!((listed[0].version, listed[0].age_ms), (7, 500));
    }

    #[test]
    fn bad_lines_are_skipped() {
        let all = parse(b"w1 5 100\ngarbage\n w 1 2\nw2 x 1\nw3 6 200\n\xff\xfe\n");
        let names: Vec<_> = all.iter().map(|e| e.worker.as_str()).collect();
        assert_eq!(names, ["w1", "w3"]);
        assert!(parse(b"\xff 1 2").is_empty());
    }
}
