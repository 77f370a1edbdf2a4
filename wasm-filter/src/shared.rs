//! Snapshots in Envoy shared data (scoped by `vm_id`, seen by every worker):
//! the command endpoint publishes with compare-and-swap under the version
//! rule of `usher_core::version` (versions go up, except that one within the
//! clock bound replaces a far-ahead one); each worker's tick reads the small
//! version key and loads the snapshot only when that changed.

use log::{info, warn};
use proxy_wasm::types::Status;
use usher_core::version::{admit, Accepted, Refused};
use usher_core::Snapshot;

use crate::host;
use crate::protocol::{
    decode_stored, encode_stored, parse_version, stored_version, SNAPSHOT_KEY, VERSION_KEY,
};
use crate::roll::{self, WORKERS_KEY};

/// Attempts before giving up on a compare-and-swap race.
const CAS_ATTEMPTS: usize = 16;

/// Outcome of publishing a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publish {
    Applied(u64),
    /// Refused by the version rule (`usher_core::version`).
    Refused(Refused),
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

/// Publishes `snapshot` if the version rule (`usher_core::version::admit`,
/// with the host's wall clock `now_ms` in unix ms) accepts it against the
/// stored version.
pub fn publish(snapshot: &Snapshot, now_ms: u64) -> Publish {
    let stored = match encode_stored(snapshot) {
        Ok(s) => s,
        Err(e) => return Publish::Failed(e),
    };
    for _ in 0..CAS_ATTEMPTS {
        let (old, cas) = host::shared_get(SNAPSHOT_KEY);
        let current = old.as_deref().and_then(stored_version).unwrap_or(0);
        let accepted = match admit(snapshot.version, current, now_ms) {
            Ok(a) => a,
            Err(refused) => return Publish::Refused(refused),
        };
        match host::shared_set(SNAPSHOT_KEY, &stored, cas) {
            Ok(()) => {
                if let Accepted::Recovers { from } = accepted {
                    warn!(
                        "snapshot {} replaces version {from}, which was more than 24 h ahead of the clock",
                        snapshot.version
                    );
                }
                set_version_hint(snapshot.version, accepted);
                info!("snapshot {} accepted", snapshot.version);
                return Publish::Applied(snapshot.version);
            }
            Err(Status::CasMismatch) => continue,
            Err(e) => return Publish::Failed(format!("shared data: {e:?}")),
        }
    }
    Publish::Failed("too many concurrent snapshot writes".to_string())
}

/// Raises the version key to `version`; lowers it only when `version`
/// replaced a far-ahead one (a racing writer may then leave the hint off by
/// one push, which costs workers one extra read per tick until the next).
fn set_version_hint(version: u64, accepted: Accepted) {
    let lower = matches!(accepted, Accepted::Recovers { .. });
    for _ in 0..CAS_ATTEMPTS {
        let (old, cas) = host::shared_get(VERSION_KEY);
        if !lower && old.as_deref().map_or(0, parse_version) >= version {
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

/// The stored snapshot if its version differs from `applied`. It is
/// normally above; it is below only after it replaced a version far ahead of
/// the clock (`usher_core::version`), which every worker must follow too.
pub fn load_changed(applied: u64) -> Option<Snapshot> {
    let (stored, _) = host::shared_get(SNAPSHOT_KEY);
    let stored = stored?;
    if stored_version(&stored)? == applied {
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

/// Writes this worker's line in the roll (`roll`): it applied `version`.
/// A lost race is retried; a failure only costs a stale line until the
/// next heartbeat.
pub fn report_applied(worker: &str, version: u64, now_ms: u64) {
    for _ in 0..CAS_ATTEMPTS {
        let (old, cas) = host::shared_get(WORKERS_KEY);
        let new = roll::with(old.as_deref().unwrap_or_default(), worker, version, now_ms);
        match host::shared_set(WORKERS_KEY, &new, cas) {
            Err(Status::CasMismatch) => continue,
            Err(e) => warn!("cannot write {WORKERS_KEY}: {e:?}"),
            Ok(()) => {}
        }
        return;
    }
}

/// The workers heard from lately, with the version each applied.
pub fn workers(now_ms: u64) -> Vec<roll::Entry> {
    match host::shared_get(WORKERS_KEY) {
        (Some(bytes), _) => roll::listed(&bytes, now_ms),
        _ => Vec::new(),
    }
}
