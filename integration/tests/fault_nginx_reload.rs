//! nginx reloads cost nothing (issue 10): under bounded load through the
//! nginx, Envoy and built-in front doors ([`FaultStack`], proxy mode), each
//! server-role nginx is reloaded (SIGHUP to its master) 20 times over about
//! 20 s. Every request gets its 200, and every one of them is in the
//! request log exactly once: the records written by old and new workers
//! all reach the logging database through the ring and the agent.

use std::collections::BTreeMap;
use std::time::Duration;

use usher_integration::door_load::{assert_all_served, summary, under_load};
use usher_integration::fault_stack::{FaultSpec, FaultStack};
use usher_integration::{eventually, send_signal, Nginx};

const RELOADS: usize = 20;

fn master_pid(nginx: &Nginx) -> String {
    std::fs::read_to_string(nginx.dir.path().join("logs/nginx.pid"))
        .expect("nginx.pid")
        .trim()
        .to_string()
}

/// Load tags (`<door>-<thread>-<n>`) in the request log, with how often
/// each appears.
fn logged(stack: &FaultStack) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for name in &stack.spec.servers {
        let rows = stack.cp.api_ok(
            "GET",
            &format!("/api/v1/requests?server={name}&limit=10000"),
            None,
        );
        for r in rows.as_array().cloned().unwrap_or_default() {
            let line = r["request_line"].as_str().unwrap_or_default();
            if let Some(tag) = line
                .split("load=")
                .nth(1)
                .and_then(|x| x.split_whitespace().next())
            {
                *seen.entry(tag.to_string()).or_default() += 1;
            }
        }
    }
    seen
}

#[test]
fn twenty_reloads_under_load_lose_no_request_and_no_record() {
    let stack = FaultStack::start(FaultSpec::default());
    let doors = stack.doors();
    let pids: Vec<String> = stack.servers.iter().map(master_pid).collect();
    // 3 doors × 2 threads × 50 requests/s: 300 requests/s, about 7,300 in all.
    let tallies = under_load(&doors, 2, 50, Duration::from_secs(2), || {
        for _ in 0..RELOADS {
            for pid in &pids {
                send_signal("HUP", pid);
            }
            std::thread::sleep(Duration::from_millis(1000));
        }
    });
    eprintln!(
        "{RELOADS} reloads of each server nginx:\n{}",
        summary(&tallies)
    );
    assert_all_served(&tallies, 1_500);
    for (n, nginx) in stack.servers.iter().enumerate() {
        let log = nginx.error_log();
        let reloads = log.matches("(SIGHUP) received").count();
        assert_eq!(
            reloads, RELOADS,
            "server nginx {n} reloaded {reloads} times"
        );
    }

    let answered: u64 = tallies
        .values()
        .map(|t| t.statuses.get(&200).copied().unwrap_or(0))
        .sum();
    let complete = eventually(Duration::from_secs(15), || {
        logged(&stack).len() as u64 >= answered
    });
    std::thread::sleep(Duration::from_millis(800));
    let seen = logged(&stack);
    let dropped: u64 = stack
        .servers
        .iter()
        .map(|n| n.counters()["records_dropped"].as_u64().unwrap_or(0))
        .sum();
    eprintln!(
        "{answered} requests answered, {} in the request log, {dropped} records dropped by nginx",
        seen.len()
    );
    assert!(
        complete.is_some(),
        "{} of {answered} requests logged after 15 s ({dropped} dropped by nginx)",
        seen.len()
    );
    assert_eq!(seen.len() as u64, answered, "0 lost records");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "logged more than once: {twice:?}");
    assert_eq!(dropped, 0, "no ring overflowed");
}
