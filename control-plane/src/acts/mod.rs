//! The manager acts: thresholds (heavily loaded, maximum load → offload),
//! swamp detection, drain, automatic restart after errors, slow start and
//! long-term defaults.
//!
//! [`engine`] decides (pure); [`task`] runs it every manager interval over
//! the latest figures, publishes its picture in the live view (never in
//! the managed-object database), logs its events and carries its actions
//! out through the agents. The WSIs, the built-in front doors and `usher
//! door` act on the picture through their snapshots ([`crate::views`]).

pub mod engine;
pub mod forecast;
pub mod policy;
mod task;

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

pub use engine::{Drain, Engine, OrderError, ServerActs, Then};
pub use policy::{OffloadTo, Policy, SwampedAction};
pub use task::start;

/// The running engine, shared by the task and the admin API's drain
/// routes (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Acts {
    engine: Arc<Mutex<Engine>>,
    wake: Arc<Notify>,
}

impl Acts {
    pub fn new() -> Acts {
        Acts::default()
    }

    fn lock(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Operator: drain `server`; the task publishes it at once.
    pub fn drain(&self, server: &str, quiet_s: f64, then: Then) {
        self.lock()
            .drain(server, quiet_s, then, crate::views::now_unix());
        self.wake.notify_one();
    }

    /// Operator: undrain `server` (also lets a held-out server back).
    pub fn undrain(&self, server: &str) -> Result<(), OrderError> {
        let r = self.lock().undrain(server);
        self.wake.notify_one();
        r
    }
}
