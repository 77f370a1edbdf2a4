//! The live view: what the manager measures and decides about each server,
//! held in memory and published as one consistent picture.
//!
//! It is the home of fast-changing state — measured load values with the
//! time they were measured, failure verdicts — which must not travel
//! through the managed-object database: a load change is a pointer swap
//! here, not a SQLite transaction, a fleet reload and a push fan-out.
//! Snapshots for the WSIs and the built-in front doors are built from the
//! configured objects ([`crate::model::Fleet`]) *and* this picture
//! ([`crate::views`]).
//!
//! Readers take an `Arc<Live>` (a clone of a pointer under a short read
//! lock, never held across work); nothing on a request path reads it: the
//! front doors rebuild their own per-app state when it changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::acts::ServerActs;
use crate::manager::ServerStatus;
use serde::Serialize;
use tokio::sync::watch;

/// What the manager knows right now about one server.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerLive {
    /// Latest measured dynamic load value `L` (0..=10000), if any.
    pub measured_load: Option<u32>,
    /// When the agent measured it (unix seconds).
    pub measured_at_unix: Option<f64>,
    /// The delay it came from, in microseconds.
    pub delay_us: Option<u64>,
    /// Why the server is out of rotation (probe failed, agent silent).
    pub failed: Option<String>,
    /// The agent that reports on it.
    pub agent_id: Option<String>,
    /// PID of the server's process, as its agent last reported it (hello,
    /// or the result of a start/restart command).
    pub pid: Option<u32>,
    /// What the manager decided about it (heavy, offloading, drain,
    /// restart, slow start): [`crate::acts`].
    pub acts: ServerActs,
    /// Its mean load value over the manager's long window (an hour): what
    /// the front doors age toward when the manager goes silent.
    pub long_term_load: Option<u32>,
}

/// One consistent picture of every server's live state.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Increases with every published change.
    pub generation: u64,
    pub servers: BTreeMap<String, ServerLive>,
    /// Swamped applications, with why.
    pub swamped: BTreeMap<String, String>,
    /// Every application is swamped.
    pub system_swamped: bool,
}

impl Live {
    pub fn server(&self, name: &str) -> Option<&ServerLive> {
        self.servers.get(name)
    }

    /// The manager's decisions about `name` (default: none).
    pub fn acts(&self, name: &str) -> ServerActs {
        self.server(name)
            .map(|s| s.acts.clone())
            .unwrap_or_default()
    }

    /// Why `app` is swamped, if it is.
    pub fn swamped(&self, app: &str) -> Option<&str> {
        self.swamped.get(app).map(String::as_str)
    }

    /// The failure verdict on `name`, if any.
    pub fn failed(&self, name: &str) -> Option<&str> {
        self.server(name).and_then(|s| s.failed.as_deref())
    }
}

/// The publisher of the live picture (cheap to clone).
#[derive(Debug, Clone)]
pub struct LiveView {
    tx: Arc<watch::Sender<Arc<Live>>>,
}

impl Default for LiveView {
    fn default() -> Self {
        LiveView::new()
    }
}

impl LiveView {
    pub fn new() -> LiveView {
        let (tx, _rx) = watch::channel(Arc::new(Live::default()));
        LiveView { tx: Arc::new(tx) }
    }

    /// The current picture.
    pub fn get(&self) -> Arc<Live> {
        self.tx.borrow().clone()
    }

    /// A receiver that wakes on every published change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Live>> {
        self.tx.subscribe()
    }

    /// Applies `f` to a copy of the picture and publishes it when `f` says
    /// it changed something.
    pub fn update(&self, f: impl FnOnce(&mut Live) -> bool) {
        let mut next = Live::clone(&self.get());
        if f(&mut next) {
            next.generation += 1;
            self.tx.send_replace(Arc::new(next));
        }
    }

    /// Folds one interval's statuses from the manager into the picture.
    pub fn apply_statuses(&self, statuses: &[ServerStatus]) {
        self.update(|live| {
            let mut changed = false;
            for st in statuses {
                let entry = live.servers.entry(st.server.clone()).or_default();
                let next = ServerLive {
                    measured_load: st.dynamic_load,
                    measured_at_unix: st.measured_at_unix,
                    delay_us: st.delay_us,
                    failed: if st.failed {
                        Some(st.reason.clone().unwrap_or_else(|| "failed".into()))
                    } else {
                        None
                    },
                    agent_id: Some(st.agent_id.clone()),
                    ..entry.clone()
                };
                if *entry != next {
                    *entry = next;
                    changed = true;
                }
            }
            changed
        });
    }

    /// Records the PID an agent reported for `server` (`None`: not running).
    pub fn set_pid(&self, server: &str, pid: Option<u32>) {
        self.update(|live| {
            let entry = live.servers.entry(server.to_string()).or_default();
            if entry.pid == pid {
                return false;
            }
            entry.pid = pid;
            true
        });
    }

    /// Sets (`Some`) or lifts (`None`) a failure verdict at once, between
    /// intervals.
    pub fn set_failed(&self, server: &str, reason: Option<&str>) {
        self.update(|live| {
            let entry = live.servers.entry(server.to_string()).or_default();
            let next = reason.map(str::to_string);
            if entry.failed == next {
                return false;
            }
            entry.failed = next;
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, load: Option<u32>, failed: Option<&str>) -> ServerStatus {
        ServerStatus {
            server: name.into(),
            agent_id: "ag".into(),
            dynamic_load: load,
            delay_us: load.map(|_| 100),
            measured_at_unix: load.map(|_| 50.0),
            failed: failed.is_some(),
            reason: failed.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn publishes_only_changes() {
        let view = LiveView::new();
        let mut rx = view.subscribe();
        view.apply_statuses(&[status("a", Some(5000), None), status("b", None, Some("x"))]);
        assert!(rx.has_changed().expect("open"));
        let live = rx.borrow_and_update().clone();
        assert_eq!(live.generation, 1);
        assert_eq!(live.server("a").and_then(|s| s.measured_load), Some(5000));
        assert_eq!(live.failed("b"), Some("x"));

        // The same figures again: nothing published.
        view.apply_statuses(&[status("a", Some(5000), None), status("b", None, Some("x"))]);
        assert!(!rx.has_changed().expect("open"));
        view.set_failed("b", Some("x"));
        assert!(!rx.has_changed().expect("open"));

        view.set_failed("b", None);
        assert!(rx.has_changed().expect("open"));
        assert_eq!(view.get().failed("b"), None);
        assert_eq!(view.get().generation, 2);
    }
}
