//! Logging of the long-running subcommands (`control`, `door`, `agent`):
//! one set-up, so each reads `USHER_LOG` (default `info`) and writes to
//! stderr the same way.

use tracing_subscriber::EnvFilter;

/// Starts the tracing subscriber: `USHER_LOG` filter (default `info`), stderr.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("USHER_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}
