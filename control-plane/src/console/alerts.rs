//! Alerts: the events an operator must look at. They are events of the
//! alerting types ([`ALERT_TYPES`]) in the logging database, so a console
//! that was closed sees, when it opens, every alert it missed (newest
//! first, up to [`ALERTS_SHOWN`]); each stays until acknowledged. Which
//! alerts were acknowledged is held in memory (a restarted control plane
//! shows them again: an alert seen twice costs less than one lost).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rusqlite::types::Value;
use serde::{Deserialize, Serialize};

use crate::api::log::{select_events, EventRow};
use crate::api::ApiError;
use crate::manager::Manager;

/// The event types that alert: a server out of rotation, an app with too
/// few servers, a restart the manager refused or that failed, an agent
/// gone silent, a figure heading for its limit (disk filling, load rising).
pub const ALERT_TYPES: &[&str] = &[
    "server_failed",
    "app_swamped",
    "app_panic",
    "restart_refused",
    "restart_failed",
    "agent_silent",
    "trend_predicted",
];
/// Alerts sent to a console at most.
pub const ALERTS_SHOWN: u32 = 50;
/// Acknowledgements kept at most (the set is cleared beyond: alerts come
/// back rather than memory growing without end).
const MAX_ACKS: usize = 100_000;

/// One alert: its event, and the key to acknowledge it with.
#[derive(Debug, Serialize)]
pub struct Alert {
    #[serde(flatten)]
    pub event: EventRow,
}

/// `POST /console/alerts/ack`: the event's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertKey {
    pub agent_id: String,
    pub seq: i64,
}

/// Acknowledged alerts; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Acks {
    inner: Arc<Mutex<HashSet<AlertKey>>>,
}

impl Acks {
    pub fn ack(&self, key: AlertKey) {
        let mut set = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if set.len() >= MAX_ACKS {
            set.clear();
        }
        set.insert(key);
    }

    pub fn is_acked(&self, agent_id: &str, seq: i64) -> bool {
        let set = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        set.contains(&AlertKey {
            agent_id: agent_id.to_string(),
            seq,
        })
    }
}

/// The newest alerts not yet acknowledged.
pub async fn open_alerts(m: &Manager, acks: &Acks) -> Result<Vec<Alert>, ApiError> {
    let marks = vec!["?"; ALERT_TYPES.len()].join(", ");
    let binds = ALERT_TYPES
        .iter()
        .map(|t| Value::Text((*t).to_string()))
        .collect();
    // Fetch more than shown: some of the newest may be acknowledged.
    let rows = select_events(
        m,
        format!("WHERE type_name IN ({marks})"),
        binds,
        ALERTS_SHOWN * 4,
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter(|e| !acks.is_acked(&e.agent_id, e.seq))
        .take(ALERTS_SHOWN as usize)
        .map(|event| Alert { event })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledged_alerts_are_known_by_their_key() {
        let acks = Acks::default();
        acks.ack(AlertKey {
            agent_id: "a1".into(),
            seq: 7,
        });
        assert!(acks.is_acked("a1", 7));
        assert!(!acks.is_acked("a1", 8));
        assert!(!acks.is_acked("a2", 7));
    }
}
