//! Who may speak on the agent channel, and for which servers.
//!
//! Two kinds of credential open the channel:
//!
//! * an agent's **own token** (`usher ctl agent add`, `[[agents]]`): the
//!   connection may only say hello as that agent, and claim and report on
//!   only the servers bound to it;
//! * the **shared token** (`<data_dir>/agent.token`, the simple
//!   single-host mode): any agent id that has no entry of its own, and any
//!   server that no entry is bound to. It never speaks for an agent with
//!   an entry or for a server bound to one, so issuing own tokens locks
//!   those agents and servers away from whoever holds the shared token.
//!
//! The rules are pure ([`Identities`]); the manager holds the current set
//! in a `watch` the control plane feeds from its store, and every live
//! connection re-checks itself when the set changes (a revoked token or a
//! narrowed binding ends the connection).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use usher_core::token::token_eq;

use crate::manager::state::{lock, Manager};
use crate::model::{AgentEntry, Fleet};
use crate::token::agent_token_sha256;

/// How often at most an agent's refused reports raise an event.
pub const REFUSAL_EVENT_EVERY: Duration = Duration::from_secs(60);

/// One agent's own token (its hash) and the servers bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub token_sha256: String,
    pub servers: Vec<String>,
}

/// Every agent with its own token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identities {
    bound: BTreeMap<String, Binding>,
}

/// What opened a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The shared `agent.token`.
    Shared,
    /// An agent's own token.
    Own { id: String, token_sha256: String },
}

/// The servers of a hello that are the agent's to watch, and those that
/// are not (with why).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    pub accepted: Vec<String>,
    pub refused: Vec<(String, String)>,
}

impl Identities {
    /// The set described by the store's agent entries.
    pub fn from_entries(entries: &[AgentEntry]) -> Identities {
        Identities {
            bound: entries
                .iter()
                .map(|a| {
                    (
                        a.id.clone(),
                        Binding {
                            token_sha256: a.token_sha256.clone(),
                            servers: a.servers.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// The servers bound to `id`, if it has its own token.
    pub fn bound_servers(&self, id: &str) -> Option<&[String]> {
        self.bound.get(id).map(|b| b.servers.as_slice())
    }

    /// Ids of the agents with their own token.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.bound.keys().map(String::as_str)
    }

    fn owner_of(&self, server: &str) -> Option<&str> {
        self.bound
            .iter()
            .find(|(_, b)| b.servers.iter().any(|s| s == server))
            .map(|(id, _)| id.as_str())
    }

    /// Which credential `token` is, if any. Every own token is compared
    /// (by hash, in constant time), whichever matches.
    pub fn authenticate(&self, token: &str, shared: &str) -> Option<Credential> {
        let hash = agent_token_sha256(token);
        let mut own = None;
        for (id, b) in &self.bound {
            if token_eq(hash.as_bytes(), b.token_sha256.as_bytes()) && own.is_none() {
                own = Some(Credential::Own {
                    id: id.clone(),
                    token_sha256: hash.clone(),
                });
            }
        }
        let shared_ok = !shared.is_empty() && token_eq(token.trim().as_bytes(), shared.as_bytes());
        own.or(shared_ok.then_some(Credential::Shared))
    }

    /// Checks a hello's agent id and claimed servers against `cred`. An
    /// error refuses the whole connection (says why); otherwise the claims
    /// outside the agent's rights are listed as refused.
    pub fn admit(
        &self,
        cred: &Credential,
        agent_id: &str,
        claimed: &[String],
    ) -> Result<Admission, String> {
        let mut adm = Admission::default();
        match cred {
            Credential::Own { id, token_sha256 } => {
                if id != agent_id {
                    return Err(format!(
                        "the token is agent {id}'s, but hello says agent_id {agent_id}"
                    ));
                }
                let binding = self
                    .bound
                    .get(id)
                    .filter(|b| b.token_sha256 == *token_sha256)
                    .ok_or_else(|| format!("agent {id}'s token was revoked"))?;
                for s in claimed {
                    if binding.servers.contains(s) {
                        adm.accepted.push(s.clone());
                    } else {
                        adm.refused
                            .push((s.clone(), format!("server {s} is not bound to agent {id}")));
                    }
                }
            }
            Credential::Shared => {
                if self.bound.contains_key(agent_id) {
                    return Err(format!(
                        "agent {agent_id} has its own token: the shared agent token cannot speak for it"
                    ));
                }
                for s in claimed {
                    match self.owner_of(s) {
                        Some(owner) => adm.refused.push((
                            s.clone(),
                            format!(
                                "server {s} is bound to agent {owner}, not to the shared token"
                            ),
                        )),
                        None => adm.accepted.push(s.clone()),
                    }
                }
            }
        }
        Ok(adm)
    }

    /// Whether a live connection may go on after the set changed: its
    /// credential still holds and every server it watches is still its.
    pub fn still_valid(
        &self,
        cred: &Credential,
        agent_id: &str,
        watching: &[String],
    ) -> Result<(), String> {
        let adm = self.admit(cred, agent_id, watching)?;
        match adm.refused.first() {
            None => Ok(()),
            Some((_, why)) => Err(format!("binding changed: {why}")),
        }
    }
}

/// Refused reports of one agent: how many, and when the last event was.
#[derive(Debug, Clone, Default)]
pub struct Refusals {
    pub count: u64,
    last_event: Option<Instant>,
}

impl Refusals {
    /// Counts `n` more; true when an event is due (the first, then at most
    /// one per [`REFUSAL_EVENT_EVERY`]).
    pub fn note(&mut self, n: u64, now: Instant) -> bool {
        self.count += n;
        let due = self
            .last_event
            .is_none_or(|t| now.saturating_duration_since(t) >= REFUSAL_EVENT_EVERY);
        if due {
            self.last_event = Some(now);
        }
        due
    }
}

/// The manager's current identities and refusal counts.
pub(crate) struct IdentityState {
    pub current: watch::Sender<Arc<Identities>>,
    pub refusals: std::sync::Mutex<HashMap<String, Refusals>>,
}

impl Default for IdentityState {
    fn default() -> Self {
        IdentityState {
            current: watch::channel(Arc::new(Identities::default())).0,
            refusals: Default::default(),
        }
    }
}

impl Manager {
    /// Replaces the set of agents with their own token; live connections
    /// that lost their right end within moments.
    pub fn set_identities(&self, ids: Identities) {
        self.inner.identity.current.send_if_modified(|cur| {
            if **cur == ids {
                false
            } else {
                *cur = Arc::new(ids);
                true
            }
        });
    }

    /// The current set.
    pub fn identities(&self) -> Arc<Identities> {
        self.inner.identity.current.borrow().clone()
    }

    pub(crate) fn watch_identities(&self) -> watch::Receiver<Arc<Identities>> {
        self.inner.identity.current.subscribe()
    }

    /// Reports refused from `agent_id` so far.
    pub fn refused_count(&self, agent_id: &str) -> u64 {
        lock(&self.inner.identity.refusals)
            .get(agent_id)
            .map_or(0, |r| r.count)
    }

    /// Counts `n` refused items; true when an event is due.
    pub(crate) fn note_refused(&self, agent_id: &str, n: u64) -> bool {
        lock(&self.inner.identity.refusals)
            .entry(agent_id.to_string())
            .or_default()
            .note(n, Instant::now())
    }

    /// Keeps the identities in step with the store's agent entries: set now
    /// (so own tokens work from the first connection), then after every
    /// change of the managed objects.
    pub fn follow_fleet(&self, mut fleet: watch::Receiver<Arc<Fleet>>) {
        let first = fleet.borrow_and_update().clone();
        self.set_identities(Identities::from_entries(&first.agents));
        let m = self.clone();
        tokio::spawn(async move {
            while fleet.changed().await.is_ok() {
                let f = fleet.borrow_and_update().clone();
                m.set_identities(Identities::from_entries(&f.agents));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Origin;

    fn ids() -> Identities {
        Identities::from_entries(&[AgentEntry {
            id: "host-1".into(),
            origin: Origin::Api,
            servers: vec!["a".into(), "b".into()],
            token_sha256: agent_token_sha256("own-token-1"),
            token_file: None,
        }])
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tokens_tell_the_credential() {
        let i = ids();
        let own = i.authenticate("own-token-1", "shared-token").expect("own");
        assert!(matches!(&own, Credential::Own { id, .. } if id == "host-1"));
        assert_eq!(
            i.authenticate("shared-token", "shared-token"),
            Some(Credential::Shared)
        );
        assert_eq!(i.authenticate("wrong-token", "shared-token"), None);
        assert_eq!(i.authenticate("", ""), None);
    }

    #[test]
    fn own_tokens_claim_only_bound_servers() {
        let i = ids();
        let own = i.authenticate("own-token-1", "s").expect("own");
        let adm = i.admit(&own, "host-1", &names(&["a", "c"])).expect("admit");
        assert_eq!(adm.accepted, ["a"]);
        assert_eq!(adm.refused.len(), 1);
        assert!(adm.refused[0].1.contains("not bound to agent host-1"));
        let e = i.admit(&own, "host-2", &names(&["a"])).unwrap_err();
        assert!(e.contains("agent host-1's"), "{e}");
    }

    #[test]
    fn the_shared_token_keeps_off_bound_agents_and_servers() {
        let i = ids();
        let e = i
            .admit(&Credential::Shared, "host-1", &names(&["a"]))
            .unwrap_err();
        assert!(e.contains("has its own token"), "{e}");
        let adm = i
            .admit(&Credential::Shared, "other", &names(&["b", "c"]))
            .expect("admit");
        assert_eq!(adm.accepted, ["c"]);
        assert!(adm.refused[0].1.contains("bound to agent host-1"));
    }

    #[test]
    fn revocation_and_narrowing_end_live_connections() {
        let i = ids();
        let own = i.authenticate("own-token-1", "s").expect("own");
        assert!(i.still_valid(&own, "host-1", &names(&["a", "b"])).is_ok());
        let narrowed = Identities::from_entries(&[AgentEntry {
            id: "host-1".into(),
            origin: Origin::Api,
            servers: vec!["a".into()],
            token_sha256: agent_token_sha256("own-token-1"),
            token_file: None,
        }]);
        let e = narrowed
            .still_valid(&own, "host-1", &names(&["a", "b"]))
            .unwrap_err();
        assert!(e.starts_with("binding changed"), "{e}");
        let e = Identities::default()
            .still_valid(&own, "host-1", &names(&["a"]))
            .unwrap_err();
        assert!(e.contains("revoked"), "{e}");
        // A shared-token agent whose id gets its own entry must reconnect.
        assert!(Identities::default()
            .still_valid(&Credential::Shared, "host-1", &names(&["a"]))
            .is_ok());
        assert!(i
            .still_valid(&Credential::Shared, "host-1", &names(&["c"]))
            .is_err());
    }

    #[test]
    fn refusal_events_at_most_once_a_minute() {
        let mut r = Refusals::default();
        let t0 = Instant::now();
        assert!(r.note(2, t0));
        assert!(!r.note(1, t0 + Duration::from_secs(59)));
        assert!(r.note(1, t0 + Duration::from_secs(60)));
        assert!(!r.note(5, t0 + Duration::from_secs(61)));
        assert_eq!(r.count, 9);
    }
}
