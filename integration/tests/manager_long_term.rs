//! Long-term defaults (issue 11), on the whole stack ([`FaultStack`] with
//! the built-in front door as its own `usher door` process, so every front
//! door outlives the control plane):
//!
//! web1 is slow for a while, then fast again. Its long-term load (the
//! mean over `long_term_window_s`, recomputed every second here) stays
//! below the others' while its current load is back level with theirs; the
//! front doors, fed both, split new users about evenly. Then the control
//! plane is killed: as its last values age (`obsolescence_secs` = 3 here)
//! every front door moves toward the long-term values — web1's share falls
//! to its long-term proportion instead of returning to an even split by
//! capacity.

use std::time::Duration;

use serde_json::Value;
use usher_integration::acts::{row, served_by};
use usher_integration::fault_stack::{FaultSpec, FaultStack};
use usher_integration::{eventually, http, send_signal};

fn spec() -> FaultSpec {
    FaultSpec {
        separate_door: true,
        manager: "long_term_every_s = 1".into(),
        app_toml: "obsolescence_secs = 3\n[apps.policy]\nheavy_cpu_pct = 100\n\
                   heavy_mem_pct = 100\nslow_start_s = 0\n"
            .into(),
        ..FaultSpec::default()
    }
}

fn field(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(0.0)
}

/// web1's share of `n` new users at each front door.
fn web1_shares(stack: &FaultStack, n: usize) -> Vec<(String, f64)> {
    let agent = http();
    stack
        .doors()
        .iter()
        .map(|door| {
            let counts = served_by(&agent, door, n);
            let total: usize = counts.values().sum();
            let ok: usize = ["web1", "web2", "web3"]
                .iter()
                .map(|s| counts.get(*s).copied().unwrap_or(0))
                .sum();
            assert_eq!(
                ok, total,
                "{}: not every user served: {counts:?}",
                door.name
            );
            let web1 = counts.get("web1").copied().unwrap_or(0);
            (door.name.clone(), web1 as f64 / total as f64)
        })
        .collect()
}

#[test]
fn front_doors_age_toward_the_long_term_load() {
    let stack = FaultStack::start(spec());

    // web1 slow for 8 s: its loads in the logging database are low.
    stack.apps[0].set_service_ms(30);
    std::thread::sleep(Duration::from_secs(8));
    stack.apps[0].set_service_ms(2);

    // Back to level now, below the others over the long term.
    let level = eventually(Duration::from_secs(10), || {
        let (a, b) = (row(&stack, "web1"), row(&stack, "web2"));
        let (la, lb) = (field(&a, "load"), field(&b, "load"));
        let (ta, tb) = (field(&a, "long_term_load"), field(&b, "long_term_load"));
        la >= 0.85 * lb && ta > 0.0 && ta < 0.8 * tb
    });
    let rows: Vec<Value> = ["web1", "web2", "web3"]
        .iter()
        .map(|n| row(&stack, n))
        .collect();
    let summary: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (field(r, "load"), field(r, "long_term_load")))
        .collect();
    assert!(
        level.is_some(),
        "web1 not level now and low over the long term: (load, long_term_load) {summary:?}"
    );
    let before = web1_shares(&stack, 300);
    eprintln!("loads {summary:?}; web1 now {before:?}");
    for (door, share) in &before {
        assert!(
            *share > 0.22,
            "{door}: web1 should be about level before the kill: {share:.3}"
        );
    }

    // The manager goes away: the doors' values age toward the long term
    // (as last sent: web1's keeps rising while it is fast, so read it
    // right before the kill).
    let long_term: Vec<f64> = ["web1", "web2", "web3"]
        .iter()
        .map(|n| field(&row(&stack, n), "long_term_load"))
        .collect();
    let expected = long_term[0] / long_term.iter().sum::<f64>();
    let pid = stack.cp.pid().expect("control plane pid");
    send_signal("KILL", &pid.to_string());
    std::thread::sleep(Duration::from_secs(5));
    let after = web1_shares(&stack, 600);
    eprintln!(
        "web1 after the values aged: {after:?} (long-term {long_term:?}: share {expected:.3})"
    );
    for ((door, share), (_, was)) in after.iter().zip(&before) {
        assert!(
            (share - expected).abs() < 0.07,
            "{door}: web1's share {share:.3} is not its long-term share {expected:.3} \
             (an even split by capacity would be 0.333)"
        );
        assert!(share < &(was * 0.8), "{door}: {was:.3} -> {share:.3}");
    }
}
