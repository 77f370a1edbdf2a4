//! Harness for usher's integration tests: finds the built artifacts, picks
//! free loopback ports, starts real processes (demo app, nginx with the
//! module, Envoy with the filter, `usher control`, the agent) and stops
//! them by PID, and records the HTTP requests usher sends.
//!
//! Every process started here binds 127.0.0.1 and is killed (by its own PID)
//! when its guard drops, even when the test panics.
#![forbid(unsafe_code)]

pub mod acts;
pub mod agent;
pub mod artifacts;
pub mod bench_lb;
pub mod closed_loop;
pub mod control_plane;
pub mod ctl_output;
pub mod demo_app;
pub mod demo_script;
pub mod door_load;
pub mod envoy;
pub mod fault_stack;
pub mod http;
pub mod manager;
pub mod nginx;
pub mod played_agent;
pub mod poll;
pub mod ports;
pub mod proc;
pub mod recorder;
pub mod setup;
pub mod stand_ins;
pub mod usher_door;
pub mod webdriver;
pub mod wire;

pub use self::{
    agent::{agent_config, start_agent, AgentBinary},
    artifacts::{
        demo_app_bin, envoy_bin, nginx_module, repo_root, usher_bin, wasm_filter, Artifact,
    },
    control_plane::ControlPlane,
    demo_app::{DemoApp, DemoAppSpec},
    envoy::{start_envoy, Envoy, EnvoySpec},
    http::{call, fresh_get, fresh_get_worker, get_json, http, raw_request, Response},
    manager::{manager_agent_token, start_manager},
    nginx::{nginx_t, Nginx, NginxPrefix},
    played_agent::PlayedAgent,
    poll::{eventually, secs},
    ports::{answers, free_port, wait_for_port},
    proc::{alive, send_signal, Proc},
    recorder::{Recorded, Recorder, Reply, Request},
    stand_ins::{Batch, BatchReceiver, Got, WsiRecorder},
    usher_door::UsherDoor,
};
