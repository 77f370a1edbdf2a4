//! Polling instead of sleeping: a test waits for a condition with a limit
//! and learns how long it took.

use std::time::{Duration, Instant};

/// Polls `check` until it returns true or `limit` passes; returns the time taken.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Seconds since `t` with millisecond resolution, for messages.
pub fn secs(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}
