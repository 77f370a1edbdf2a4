//! `make bench-lb`: usher's steering benchmark (issue 12). Two scenarios,
//! each on a real usher stack ([`crate::fault_stack`]: demo apps behind
//! server-role nginx, the agent, the control plane, three proxy-mode
//! front doors) with nginx `least_conn` and Envoy `LEAST_REQUEST` on the
//! same backends as peers; a closed-loop client that records every
//! request; per door the median p50 / p99 / p99.9, the share sent to the
//! slow backend, the CPU per request, and the ratios to nginx
//! `least_conn`.

pub mod client;
pub mod cpu;
pub mod peers;
pub mod report;
pub mod run;
pub mod scenario;
pub mod settings;
pub mod stats;

pub use self::{
    client::{closed_loop, Outcome, Plan},
    run::{run_scenario, Door, DoorResult, Figures, ScenarioResult},
    scenario::{hidden_load, spread_latency, Scenario},
    settings::Settings,
};
