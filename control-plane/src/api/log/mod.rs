//! The logging database over the admin API:
//! `GET /api/v1/{hosts,agents,metrics,events,requests}`, in the same
//! routes / handlers / models style as the rest of the API and with its one
//! error type ([`super::ApiError`]).
//!
//! Times are Unix microseconds; every list is capped by `limit` (default
//! 1000, at most 10000), newest first. `/requests` leaves out the agents'
//! probes (`usher-probe=<n>` in the query) unless `probes=true`. `/agents`
//! adds when each agent was last heard, from the manager's live agent
//! table, not from the database.

mod handlers;
mod models;
mod query;
mod routes;
mod sql;

pub use handlers::{latest_events, select_events};
pub use models::EventRow;
pub use routes::{areas, log_routes, AuthCheck};

#[cfg(test)]
mod tests;
