//! What every part of the running control plane shares: the store, the
//! admin token, the config folder and the push status. Routes take an
//! `AppState`; later areas (console, agent channel) add fields here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::live::LiveView;
use crate::manager::Manager;
use crate::push::PushStatus;
use crate::store::Store;

/// Shared state of a running control plane; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    /// What the manager measures and decides (loads, verdicts).
    pub live: LiveView,
    /// The manager: agents and the logging database.
    pub manager: Manager,
    /// The manager's decisions (drain orders go here).
    pub acts: crate::acts::Acts,
    /// Admin token every `/api/v1` request must present.
    pub token: Arc<str>,
    /// Folder relative paths in API bodies (sorry pages, token files) are against.
    pub base_dir: Arc<PathBuf>,
    /// WSI URLs may be off this machine (`[control] allow_remote_wsis`).
    pub allow_remote_wsis: bool,
    /// `GET /metrics` answers without the token (`[control] metrics_public`).
    pub metrics_public: bool,
    /// Last push result per WSI.
    pub push_status: PushStatus,
    /// Fleet generation the built-in front doors have applied.
    pub front_doors: watch::Receiver<u64>,
    /// Signed-in consoles (`crate::console`).
    pub sessions: crate::console::Sessions,
    /// Alerts the consoles acknowledged.
    pub acks: crate::console::alerts::Acks,
    /// The admin listener serves TLS (console cookies get `Secure`).
    pub tls: bool,
}

impl AppState {
    /// Waits (at most 1 s) until the built-in front doors serve the latest
    /// committed change, so an API answer means "in effect".
    pub async fn settle(&self) {
        let target = self.store.fleet().generation;
        let mut rx = self.front_doors.clone();
        let waited = tokio::time::timeout(Duration::from_secs(1), rx.wait_for(|g| *g >= target))
            .await
            .map(|r| r.is_ok());
        match waited {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the front doors have stopped"),
            Err(_) => tracing::warn!("the front doors took over 1 s to apply generation {target}"),
        }
    }
}
