//! One scenario from start to figures: the usher stack and the two peers
//! on the same backends, the hidden load where the scenario has one, then
//! each round sends the scenario's requests through every front door one
//! after another (warm-up first, not counted), reading each door's CPU
//! time before and after its measured run.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use hyper::Uri;
use tokio::runtime::Runtime;

use super::client::{closed_loop, Outcome, Plan};
use super::cpu;
use super::peers;
use super::scenario::Scenario;
use super::settings::Settings;
use super::stats::percentile;
use crate::fault_stack::FaultStack;

/// Time the agent gets to report the steady state before the first round
/// (two report intervals and then some).
const SETTLE: Duration = Duration::from_secs(3);
/// Longest a warm-up may take.
const WARMUP_CAP: Duration = Duration::from_secs(30);

/// A front door under test: where users reach it, and the processes whose
/// CPU time is its own (each with its descendants).
#[derive(Debug, Clone)]
pub struct Door {
    pub name: &'static str,
    pub port: u16,
    pub pids: Vec<u32>,
}

/// One measured run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Share (0..1) of the 2xx answers from the watched backend.
    pub share: f64,
    /// CPU time of the door's processes per request sent (µs).
    pub cpu_us: f64,
    /// Requests sent per second of the run.
    pub rate: f64,
}

/// Every round of one front door, and what went wrong in them.
#[derive(Debug, Clone)]
pub struct DoorResult {
    pub door: Door,
    pub rounds: Vec<Figures>,
    pub sent: u64,
    pub non_2xx: BTreeMap<u16, u64>,
    pub errors: u64,
    /// Rounds the time cap cut short.
    pub capped: usize,
    pub samples: Vec<String>,
}

/// A scenario's results, doors in the order they ran (nginx `least_conn`,
/// the baseline of every ratio, first).
#[derive(Debug)]
pub struct ScenarioResult {
    pub doors: Vec<DoorResult>,
    /// The hidden load's own outcome, where there was one.
    pub hidden: Option<Outcome>,
}

/// The figures of one run; `ticks` of CPU at `per_second`.
pub fn figures(o: &Outcome, watched: &str, ticks: Option<u64>, per_second: u64) -> Figures {
    let mut lat = o.latencies_us.clone();
    lat.sort_unstable();
    let ms = |q| percentile(&lat, q) as f64 / 1000.0;
    let ok = o.ok();
    let share = if ok == 0 {
        f64::NAN
    } else {
        o.served_by.get(watched).copied().unwrap_or(0) as f64 / ok as f64
    };
    let cpu_us = match ticks {
        Some(t) if o.sent() > 0 => t as f64 * 1e6 / per_second as f64 / o.sent() as f64,
        _ => f64::NAN,
    };
    Figures {
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        share,
        cpu_us,
        rate: o.sent() as f64 / o.elapsed.as_secs_f64().max(1e-9),
    }
}

fn uri(port: u16) -> Uri {
    format!("http://127.0.0.1:{port}/")
        .parse()
        .expect("a loopback URI parses")
}

fn nginx_pids(n: &crate::nginx::Nginx) -> Vec<u32> {
    peers::nginx_master_pid(n).into_iter().collect()
}

/// Runs scenario `sc` on `rt` (the client's runtime); prints a line per
/// door and round to stderr as it goes.
pub fn run_scenario(rt: &Runtime, sc: &Scenario, s: &Settings) -> ScenarioResult {
    eprintln!(
        "scenario {}: starting the usher stack ({} backends, 3 front doors) and the peers",
        sc.number,
        sc.spec.servers.len()
    );
    let stack = FaultStack::start(sc.spec.clone());
    let ports: Vec<u16> = stack.servers.iter().map(|n| n.port).collect();
    let peer_dir = tempfile::tempdir().expect("tempdir");
    let least_conn = peers::nginx_least_conn(&ports);
    let least_request = peers::envoy_least_request(peer_dir.path(), &ports);
    let usher_door_pid = stack
        .usher_door
        .as_ref()
        .and_then(|d| cpu::pid_with_arg(&d.dir.path().join("door.toml").display().to_string()));
    let mut doors = vec![
        Door {
            name: "nginx least_conn",
            port: least_conn.port,
            pids: nginx_pids(&least_conn),
        },
        Door {
            name: "Envoy LEAST_REQUEST",
            port: least_request.web,
            pids: vec![least_request.proc.pid()],
        },
        Door {
            name: "usher built-in (usher door)",
            port: stack.front_door_port,
            pids: usher_door_pid.into_iter().collect(),
        },
    ];
    if let Some(n) = &stack.nginx_door {
        doors.push(Door {
            name: "usher nginx interceptor",
            port: n.port,
            pids: nginx_pids(n),
        });
    }
    if let Some(e) = &stack.envoy_door {
        doors.push(Door {
            name: "usher Envoy interceptor",
            port: e.web,
            pids: vec![e.proc.pid()],
        });
    }
    for d in doors.iter().filter(|d| d.pids.is_empty()) {
        eprintln!("  {}: process not found, its CPU is not measured", d.name);
    }

    let hidden_stop = Arc::new(AtomicBool::new(false));
    let hidden = (sc.hidden_in_flight > 0).then(|| {
        let target = stack.servers[sc.watched].port;
        let plan = Plan {
            in_flight: sc.hidden_in_flight,
            requests: u64::MAX,
            cap: Duration::from_secs(24 * 3600),
        };
        rt.spawn(closed_loop(uri(target), plan, hidden_stop.clone()))
    });
    std::thread::sleep(SETTLE);

    let watched = sc.spec.servers[sc.watched].clone();
    let per_second = cpu::ticks_per_second();
    let never = Arc::new(AtomicBool::new(false));
    let mut results: Vec<DoorResult> = doors
        .iter()
        .map(|d| DoorResult {
            door: d.clone(),
            rounds: Vec::new(),
            sent: 0,
            non_2xx: BTreeMap::new(),
            errors: 0,
            capped: 0,
            samples: Vec::new(),
        })
        .collect();
    for round in 1..=s.rounds {
        for r in results.iter_mut() {
            let d = &r.door;
            if s.warmup > 0 {
                let warm = Plan {
                    in_flight: sc.in_flight,
                    requests: s.warmup,
                    cap: WARMUP_CAP,
                };
                rt.block_on(closed_loop(uri(d.port), warm, never.clone()));
            }
            let plan = Plan {
                in_flight: sc.in_flight,
                requests: sc.requests,
                cap: s.cap,
            };
            let before = (!d.pids.is_empty()).then(|| cpu::tree_ticks(&d.pids));
            let o = rt.block_on(closed_loop(uri(d.port), plan, never.clone()));
            let ticks = before.map(|b| cpu::tree_ticks(&d.pids).saturating_sub(b));
            let f = figures(&o, &watched, ticks, per_second);
            eprintln!(
                "  round {round} {:<28} {:>6} sent {:>6.0} req/s  p50 {:>7.2}  p99 {:>7.1}  p99.9 {:>7.1} ms  \
                 share {:>5.1} %  CPU {:>6.1} µs/req  non-2xx {}  errors {}{}",
                d.name,
                o.sent(),
                f.rate,
                f.p50_ms,
                f.p99_ms,
                f.p999_ms,
                f.share * 100.0,
                f.cpu_us,
                o.non_2xx.values().sum::<u64>(),
                o.errors,
                if o.capped { "  (time cap)" } else { "" }
            );
            r.rounds.push(f);
            r.sent += o.sent();
            for (k, v) in &o.non_2xx {
                *r.non_2xx.entry(*k).or_default() += v;
            }
            r.errors += o.errors;
            r.capped += usize::from(o.capped);
            for sample in o.samples {
                if r.samples.len() < 3 {
                    r.samples.push(sample);
                }
            }
        }
    }
    hidden_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let hidden = hidden.map(|h| {
        rt.block_on(h).unwrap_or_else(|e| {
            eprintln!("the hidden load's task failed: {e}");
            Outcome::default()
        })
    });
    ScenarioResult {
        doors: results,
        hidden,
    }
}
