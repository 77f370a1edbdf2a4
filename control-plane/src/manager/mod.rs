//! The manager: agents, the logging database, load computation, log queries.
//!
//! Agents dial in over one WebSocket each ([`channel_server`]); what they
//! send goes into the logging database ([`logdb`], its own SQLite file,
//! written in batches on a dedicated thread); every interval [`loadcalc`]
//! turns the latest figures into a dynamic load value per server, marks
//! failed servers and tells the control plane through [`LoadListener`];
//! `crate::api::log` serves the log over the admin API.
//!
//! [`crate::run`] mounts [`channel_route`] next to the admin API and opens
//! one [`Manager`] at start.

pub mod channel_server;
pub mod config;
pub mod loadcalc;
pub mod logdb;
pub mod state;
pub mod status;

/// The log routes alone (the admin API mounts them itself).
pub use crate::api::log::{log_routes as api_routes, AuthCheck};
pub use channel_server::channel_route;
pub use config::{LoadSource, ManagerConfig};
pub use logdb::LogDb;
pub use state::{LoadListener, Manager, ManagerError, NoListener};
pub use status::ServerStatus;
