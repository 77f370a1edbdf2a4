//! Snapshots in Envoy shared data (scoped by `vm_id`, seen by every worker):
//! the command endpoint publishes with compare-and-swap so versions only go
//! up; each worker's tick reads the small version key and loads the snapshot
//! only when that changed.

use log::{info, warn};
use proxy_wasm::types::Status;
use usher_core::Snapshot;

use crate::host;
use crate::protocol::{
    decode_stored, encode_stored, parse_version, stored_version, SNAPSHOT_KEY, VERSION_KEY,
};

/// Attempts before giving up on a compare-and-swap race.
const CAS_ATTEMPTS: usize = 16;

/// Outcome of publishing a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publish {
    Applied(u64),
    Stale { current: u64 },
    Failed(String),
}

/// Creates the snapshot key (version 0) if absent, so that every later
/// write can use compare-and-swap. Called on the main thread first.
pub fn init() {
    if let (None, _) = host::shared_get(SNAPSHOT_KEY) {
        if let Err(e) = host::shared_set(SNAPSHOT_KEY, b"0\n", None) {
            warn!("cannot create {SNAPSHOT_KEY}: {e:?}");
        }
    }
}

/// The version of the latest accepted snapshot (0: none).
pub fn current_version() -> u64 {
    match host::shared_get(VERSION_KEY) {
        (Some(v), _) => parse_version(&v),
        _ => 0,
    }
}

/// Publishes `snapshot` if its version is above the stored one.
pub fn publish(snapshot: &Snapshot) -> Publish {
    let stored = match encode_stored(snapshot) {
        Ok(s) => s,
        Err(e) => return Publish::Failed(e),
    };
    for _ in 0..CAS_ATTEMPTS {
        let (old, cas) = host::shared_get(SNAPSHOT_KEY);
        let current = old.as_deref().and_then(stored_version).unwrap_or(0);
        if snapshot.version <= current {
            return Publish::Stale { current };
        }
        match host::shared_set(SNAPSHOT_KEY, &stored, cas) {
            Ok(()) => {
                raise_version_hint(snapshot.version);
                info!("snapshot {} accepted", snapshot.version);
                return Publish::Applied(snapshot.version);
            }
            Err(Status::CasMismatch) => continue,
            Err(e) => return Publish::Failed(format!("shared data: {e:?}")),
        }
    }
    Publish::Failed("too many concurrent snapshot writes".to_string())
}

/// Raises the version key to `version` (never lowers it).
fn raise_version_hint(version: u64) {
    for _ in 0..CAS_ATTEMPTS {
        let (old, cas) = host::shared_get(VERSION_KEY);
        if old.as_deref().map_or(0, parse_version) >= version {
            return;
        }
        match host::shared_set(VERSION_KEY, version.to_string().as_bytes(), cas) {
            Err(Status::CasMismatch) => continue,
            Err(e) => warn!("cannot write {VERSION_KEY}: {e:?}"),
            Ok(()) => {}
        }
        return;
    }
}

/// The stored snapshot if its version is above `applied`.
pub fn load_newer(applied: u64) -> Option<Snapshot> {
    let (stored, _) = host::shared_get(SNAPSHOT_KEY);
    let stored = stored?;
    if stored_version(&stored)? <= applied {
        return None;
    }
    match decode_stored(&stored) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!("stored snapshot unreadable, keeping version {applied}: {e}");
            None
        }
    }
}
