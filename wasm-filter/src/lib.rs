//! usher inside Envoy: a proxy-wasm filter (Envoy 1.40, V8 runtime) that is
//! usher's web server interface.
//!
//! One plugin, three roles chosen by the plugin configuration (`config`):
//! - `server`: times every request, records the selected fields in the
//!   worker's own memory and ships binary batches to the host's agent
//!   (`records`); redirects users away when the snapshot orders it (`server`).
//! - `interceptor`: the front door: weighted pick over load metrics, then a
//!   302 or a steering header for the `override_host` load balancer
//!   (`interceptor`).
//! - `command`: answers the command endpoint on a loopback listener, writes
//!   accepted snapshots to Envoy shared data (`command`, `shared`).
//!
//! Every worker's root context reads the snapshot version from shared data
//! on a tick and reparses only when it changed (`view`, `root`). Everything
//! that decides is pure and unit-tested; the modules that call Envoy are
//! compiled for `wasm32` only.

pub mod authority;
pub mod config;
pub mod fields;
pub mod protocol;
pub mod records;
pub mod rng;
pub mod roll;
pub mod view;

#[cfg(target_arch = "wasm32")]
mod command;
#[cfg(target_arch = "wasm32")]
mod host;
#[cfg(target_arch = "wasm32")]
mod interceptor;
#[cfg(target_arch = "wasm32")]
mod root;
#[cfg(target_arch = "wasm32")]
mod server;
#[cfg(target_arch = "wasm32")]
mod shared;
#[cfg(target_arch = "wasm32")]
mod worker;

pub use config::{PluginConfig, Role, Settings};
pub use view::{Decision, View};

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(root::new_root);
}}
