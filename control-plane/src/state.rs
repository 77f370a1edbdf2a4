//! What every part of the running control plane shares: the store, the
//! admin token, the config folder and the push status. Routes take an
//! `AppState`; later areas (console, agent channel) add fields here.

use std::path::PathBuf;
use std::sync::Arc;

use crate::push::PushStatus;
use crate::store::Store;

/// Shared state of a running control plane; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    /// Admin token every `/api/v1` request must present.
    pub token: Arc<str>,
    /// Folder relative paths in API bodies (sorry pages, token files) are against.
    pub base_dir: Arc<PathBuf>,
    /// Last push result per WSI.
    pub push_status: PushStatus,
}
