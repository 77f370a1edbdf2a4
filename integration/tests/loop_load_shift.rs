//! Closed loop, done-when (a): making one of three demo servers 5x slower
//! moves its share of new referrals at the front door below half its
//! previous share within 2 s, and back (above half of it again... and near
//! its old share) within 2 s after it recovers. Real nginx + usher module,
//! `usher agent`, `usher control` with the manager's default settings.
//!
//! Shares are counted over windows of 400 front-door requests (the pick is
//! random: at a share of 1/3 one window's share has a standard deviation of
//! about 2.4 points), the baseline over 2,000.

use std::time::{Duration, Instant};

use usher_integration::closed_loop::{Stack, SERVICE_MS};
use usher_integration::{http, secs};

const WINDOW: usize = 400;
/// Windows are counted for at most this long after a change.
const WATCH: Duration = Duration::from_secs(3);

fn share(counts: &std::collections::BTreeMap<&'static str, usize>, name: &str) -> f64 {
    let total: usize = counts.values().sum();
    counts.get(name).copied().unwrap_or(0) as f64 / total.max(1) as f64
}

#[test]
fn a_slow_server_loses_then_regains_its_share_within_2_s() {
    let stack = Stack::start("");
    let agent = http();
    let slow = &stack.apps[1];

    // Baseline: let a few intervals pass so every load is settled.
    std::thread::sleep(Duration::from_millis(1500));
    let base = stack.referrals(&agent, 2000);
    let before = share(&base, &slow.name);
    eprintln!(
        "baseline referrals {base:?}: {} share {before:.3}",
        slow.name
    );
    assert!(
        (0.22..=0.45).contains(&before),
        "baseline share of {} is {before:.3} (expected about 1/3): {base:?}; servers {:?}",
        slow.name,
        stack.servers()
    );

    // 5x slower.
    slow.set_service_ms(SERVICE_MS * 5);
    let t = Instant::now();
    let mut moved = None;
    let mut trace = Vec::new();
    while t.elapsed() < WATCH {
        let c = stack.referrals(&agent, WINDOW);
        let s = share(&c, &slow.name);
        let loads: Vec<u64> = stack
            .servers()
            .values()
            .map(|v| v["dynamic_load"].as_u64().unwrap_or(0))
            .collect();
        trace.push((secs(t), s, loads));
        if s < before / 2.0 {
            moved = Some(secs(t));
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    eprintln!("after the slow-down (s since, share): {trace:?}");
    let moved = moved.unwrap_or_else(|| {
        panic!(
            "share never fell below {:.3}: {trace:?}; servers {:?}",
            before / 2.0,
            stack.servers()
        )
    });
    assert!(
        moved <= 2.0,
        "share fell below half only after {moved} s: {trace:?}"
    );
    // And it stays there (a fresh 2,000-request count).
    let low = stack.referrals(&agent, 2000);
    let during = share(&low, &slow.name);
    eprintln!("while slow: {low:?} share {during:.3}");
    assert!(
        during < before / 2.0,
        "share while slow {during:.3} vs before {before:.3}: {low:?}"
    );

    // Recovery.
    slow.set_service_ms(SERVICE_MS);
    let t = Instant::now();
    let mut back = None;
    let mut trace = Vec::new();
    while t.elapsed() < WATCH {
        let c = stack.referrals(&agent, WINDOW);
        let s = share(&c, &slow.name);
        let loads: Vec<u64> = stack
            .servers()
            .values()
            .map(|v| v["dynamic_load"].as_u64().unwrap_or(0))
            .collect();
        trace.push((secs(t), s, loads));
        // Back: at least 3/4 of the old share (well above half of it).
        if s >= before * 0.75 {
            back = Some(secs(t));
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    eprintln!("after the recovery (s since, share): {trace:?}");
    let back = back.unwrap_or_else(|| {
        panic!(
            "share never came back to {:.3}: {trace:?}; servers {:?}",
            before * 0.75,
            stack.servers()
        )
    });
    assert!(
        back <= 2.0,
        "share came back only after {back} s: {trace:?}"
    );
    // And it holds: 2,000 requests from 2 s after the recovery on.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(t.elapsed()));
    let again = stack.referrals(&agent, 2000);
    let after = share(&again, &slow.name);
    eprintln!("recovered: {again:?} share {after:.3}");
    assert!(
        after >= before * 0.75,
        "share after recovery {after:.3} vs before {before:.3}: {again:?}"
    );
}
