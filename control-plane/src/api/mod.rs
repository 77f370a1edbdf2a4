//! The admin API under `/api/v1/` (JSON, bearer token), plus `/healthz`.
//! Described for users in docs/admin-api.md and docs/openapi.yaml.

mod acts;
pub mod agents;
mod errors;
pub(crate) mod handlers;
mod index;
pub mod log;
pub(crate) mod models;
mod process;
mod routes;

pub use errors::ApiError;
pub use errors::MAX_BODY_BYTES;
pub use routes::routes;
