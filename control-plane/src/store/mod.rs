//! The managed-object database (SQLite at `<data_dir>/usher.db`).
//!
//! One dedicated thread owns the connection ([`Store`]); every change runs
//! there in one transaction, and after each commit the thread publishes a new
//! [`Fleet`](crate::model::Fleet) picture. The async runtime never waits on
//! disk: callers await a reply channel.

mod agents;
mod handle;
mod read;
mod schema;
mod seed;
mod write;

pub use agents::{add_agent, check_agent, load_agents, remove_agent, upsert_agent};
pub use handle::Store;
pub use read::load_fleet;
pub use schema::open;
pub use seed::{apply_config, SeedOutcome};
pub use write::*;

/// A change the store refused or could not make.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("no {kind} named {name:?}")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name:?} already exists")]
    Exists { kind: &'static str, name: String },
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    #[error("{0}")]
    Conflict(String),
    #[error("the database schema is version {found}, this usher knows {expected}")]
    Schema { found: i64, expected: i64 },
    #[error("the store thread has stopped")]
    Stopped,
}

impl StoreError {
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }
}
