//! usher-control-plane: the manager. Keeps the managed-object database,
//! serves the admin API, runs a built-in front door per application and
//! pushes versioned snapshots to every web server interface.
//!
//! Data flow: config file → [`store`] (SQLite, one writer thread) → a new
//! [`model::Fleet`] picture after every commit; the manager's measurements
//! and verdicts → the in-memory [`live`] view. Both pictures feed the
//! [`front_door`] listeners and the [`push`] tasks (a snapshot is a pure
//! function of the two, [`views`]). The admin [`api`] changes the store;
//! nothing on a request path touches the database.
#![forbid(unsafe_code)]

pub mod acts;
pub mod api;
pub mod config;
pub mod console;
pub mod door;
pub mod front_door;
pub mod live;
pub mod manager;
pub mod manager_link;
pub mod metrics;
pub mod model;
pub mod panic_watch;
pub mod push;
pub mod run;
pub mod spec;
pub mod state;
pub mod store;
pub mod tls;
pub mod token;
pub mod views;

pub use config::{Config, ConfigError};
pub use model::{App, Fleet, Server, Wsi, WsiRole};
pub use run::{run, RunError};
pub use state::AppState;
pub use store::{Store, StoreError};
