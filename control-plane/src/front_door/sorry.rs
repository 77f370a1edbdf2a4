//! Fixed answers of the built-in front door: the sorry page shown with 503
//! when an app is disabled and no sorry page is configured (the one text
//! every front door shares, from `usher_core`), and the plain 503 bodies.

/// HTML of the built-in sorry page: the same text the nginx module and the
/// Envoy filter answer.
pub use usher_core::sorry::BUILT_IN_SORRY_PAGE;

/// Body of the 503 answer when no server is available and no sorry page is configured.
pub const NO_SERVER_BODY: &str = "503 Service Unavailable: no server is available\n";

/// Body of the 503 answer when the app's concurrent-request limit is reached.
pub const BUSY_BODY: &str = "503 Service Unavailable: too many requests in progress\n";
