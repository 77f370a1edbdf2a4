//! The benchmark's two scenarios, as issue 12 states them, and the usher
//! stack each runs on ([`FaultSpec`]: demo apps behind server-role nginx,
//! the agent, the control plane, three proxy-mode front doors, the
//! built-in one as its own `usher door` process so that its CPU is its
//! own).

use crate::demo_app::DemoAppSpec;
use crate::fault_stack::FaultSpec;

use super::settings::Settings;

/// Scenario 1's backends: answers take uniform(0, max) ms, unbounded
/// concurrency (tower-balance's published peak-EWMA comparison).
const SPREAD_MAX_MS: [u64; 10] = [1, 10, 10, 10, 10, 100, 100, 100, 100, 1000];
const SPREAD_NAMES: [&str; 10] = [
    "u1", "u10a", "u10b", "u10c", "u10d", "u100a", "u100b", "u100c", "u100d", "u1000",
];

/// One scenario of the benchmark.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub number: u8,
    pub title: String,
    /// Users in flight through the front door under test.
    pub in_flight: usize,
    /// Requests per front door per round (scaled).
    pub requests: u64,
    /// Index (in `spec.servers`) of the backend whose share is reported.
    pub watched: usize,
    /// What the share column means.
    pub share_label: String,
    /// Users in flight straight at the watched backend's server-role
    /// nginx for the whole scenario, which no front door sees (0: none).
    pub hidden_in_flight: usize,
    pub spec: FaultSpec,
}

/// The app policy of both scenarios: thresholds no backend here reaches,
/// so the manager never takes a server out (heavy, offload, swamped,
/// restart) and no slow start holds one back; what is measured is each
/// front door's own choice over the load values.
const POLICY: &str = "[apps.policy]\nheavy_ms = 100000\nmax_ms = 200000\n\
     heavy_queue = 100000\nmax_queue = 200000\nheavy_cpu_pct = 100\nheavy_mem_pct = 100\n\
     slow_start_s = 0\nrestart_error_pct = 100\n";

fn spread(i: usize, app: DemoAppSpec) -> DemoAppSpec {
    app.workers(0).latency_uniform_ms(SPREAD_MAX_MS[i])
}

fn four_workers(_: usize, app: DemoAppSpec) -> DemoAppSpec {
    app.workers(4)
}

fn stack(
    names: &[&str],
    service_ms: u64,
    app_spec: fn(usize, DemoAppSpec) -> DemoAppSpec,
) -> FaultSpec {
    FaultSpec {
        servers: names.iter().map(|n| n.to_string()).collect(),
        service_ms,
        separate_door: true,
        app_toml: POLICY.into(),
        app_spec: Some(app_spec),
        ..FaultSpec::default()
    }
}

/// Scenario 1: ten backends from 1 ms to 1000 ms, 50 in flight, 20,000
/// requests per front door.
pub fn spread_latency(s: &Settings) -> Scenario {
    Scenario {
        number: 1,
        title: "ten backends, answers uniform(0, max), max = 1 ms, 10 ms x4, 100 ms x4, \
                1000 ms, unbounded concurrency; closed loop, 50 in flight"
            .into(),
        in_flight: 50,
        requests: s.scaled(20_000),
        watched: 9,
        share_label: "share to u1000 (the 1 s backend)".into(),
        hidden_in_flight: 0,
        spec: stack(&SPREAD_NAMES, 0, spread),
    }
}

/// Scenario 2: four backends of 4 workers and 5 ms, one also loaded by 4
/// users the front door cannot see; 16 in flight, 30,000 requests.
pub fn hidden_load(s: &Settings) -> Scenario {
    Scenario {
        number: 2,
        title: "four backends, 4 workers, 5 ms each; web4 also loaded by a closed loop of 4 \
                straight at its nginx; closed loop, 16 in flight"
            .into(),
        in_flight: 16,
        requests: s.scaled(30_000),
        watched: 3,
        share_label: "share to web4 (the loaded one)".into(),
        hidden_in_flight: 4,
        spec: stack(&["web1", "web2", "web3", "web4"], 5, four_workers),
    }
}
