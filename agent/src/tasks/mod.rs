//! The agent's task loops, one file each. [`crate::run`] wires them; each
//! loop runs until the agent stops, and keeps its decisions in small
//! functions the tests call without sockets or timers.
//!
//! - [`rings`]: a thread drains the nginx rings into the record sink and
//!   hands full batches to the outbox, pausing while too many wait;
//!   [`ring_state`] keeps its drop marks across restarts;
//! - [`probes`]: probes every server each `probe_interval_ms`, raises
//!   failure and recovery events;
//! - [`reports`]: every `interval_ms` a report (aggregates, probe state, host
//!   figures), aged record batches, and exits of started servers;
//! - [`commands`]: runs the control plane's commands one at a time;
//! - [`relay`]: posts a snapshot to a web server interface's command endpoint;
//! - [`watch_events`]: sends what `usher watch` recorded on this host.

pub mod commands;
pub mod probes;
pub mod relay;
pub mod reports;
pub mod ring_state;
pub mod rings;
pub mod watch_events;

use std::sync::Arc;

use tokio::sync::watch;

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// What the loops share: the configuration and the outbox.
pub(crate) type Cfg = Arc<crate::AgentConfig>;
