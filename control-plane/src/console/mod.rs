//! The console: a web page served by the control plane on its admin
//! listener (`/console/`), signed in with the admin token, live through one
//! Server-Sent Events feed, acting through the admin API with its session
//! cookie, a CSRF token and an Origin check (docs/console.md).

pub mod alerts;
mod assets;
mod feed;
pub mod guard;
mod routes;
pub mod session;

pub use assets::total_bytes;
pub use routes::routes;
pub use session::Sessions;
