//! The control plane's side of the manager's load loop: a [`LoadListener`]
//! that puts what the manager computes into the [`LiveView`].
//!
//! * `statuses` (every interval) → measured load values, with the time the
//!   agent measured them, and failure verdicts;
//! * `server_failed` / `server_recovered` → the verdict at once;
//! * `agent_hello` → the PID of each server it watches (`None`: not
//!   running); agents, hosts and their facts live in the manager's logging
//!   database (`/api/v1/agents`, `/api/v1/hosts`). The PIDs after a start,
//!   stop or restart come from the command's result (`crate::api`).
//!
//! Nothing here touches the managed-object database: the snapshots that
//! carry these figures are built from both pictures ([`crate::views`]) and
//! pushed only to the WSIs whose snapshot changed ([`crate::push`]).

use std::sync::Arc;

use crate::manager::{LoadListener, ServerStatus};
use usher_core::channel::Hello;

use crate::live::LiveView;

/// The [`LoadListener`] the control plane hands to the manager.
#[derive(Debug)]
pub struct LiveListener {
    live: LiveView,
}

impl LiveListener {
    pub fn new(live: LiveView) -> Arc<LiveListener> {
        Arc::new(LiveListener { live })
    }
}

impl LoadListener for LiveListener {
    fn statuses(&self, statuses: &[ServerStatus]) {
        self.live.apply_statuses(statuses);
    }

    fn server_failed(&self, server: &str, reason: &str) {
        tracing::warn!("{server} leaves rotation: {reason}");
        self.live.set_failed(server, Some(reason));
    }

    fn server_recovered(&self, server: &str) {
        tracing::info!("{server} is back in rotation");
        self.live.set_failed(server, None);
    }

    fn agent_hello(&self, hello: &Hello) {
        tracing::info!(
            "agent {} connected (host {}, servers {:?})",
            hello.agent_id,
            hello.facts.host_name,
            hello.servers.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        let live = self.live.get();
        for s in &hello.servers {
            // A server another agent reports on keeps that agent's PID: a
            // claim the manager refused must not overwrite it.
            let other = live
                .server(&s.name)
                .and_then(|l| l.agent_id.as_deref())
                .is_some_and(|a| a != hello.agent_id);
            if !other {
                self.live.set_pid(&s.name, s.pid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usher_core::channel::{HostFacts, ServerInfo};

    fn hello(agent: &str, servers: &[(&str, Option<u32>)]) -> Hello {
        Hello {
            protocol: usher_core::channel::PROTOCOL_VERSION,
            agent_id: agent.into(),
            facts: HostFacts::default(),
            servers: servers
                .iter()
                .map(|(name, pid)| ServerInfo {
                    name: name.to_string(),
                    url: "http://127.0.0.1:1".into(),
                    pid: *pid,
                })
                .collect(),
        }
    }

    fn status(server: &str, agent: &str) -> ServerStatus {
        ServerStatus {
            server: server.into(),
            agent_id: agent.into(),
            dynamic_load: Some(5000),
            delay_us: Some(10),
            measured_at_unix: Some(1.0),
            failed: false,
            reason: None,
            ..Default::default()
        }
    }

    #[test]
    fn hello_sets_the_pids_of_its_own_servers() {
        let live = LiveView::new();
        let l = LiveListener::new(live.clone());
        l.agent_hello(&hello("h1", &[("a", Some(41)), ("b", None)]));
        let pid = |s: &str| live.get().server(s).and_then(|x| x.pid);
        assert_eq!((pid("a"), pid("b")), (Some(41), None));
        // The load loop's statuses keep the PID.
        l.statuses(&[status("a", "h1"), status("c", "h2")]);
        assert_eq!(pid("a"), Some(41));
        // Restarted agent: a server no longer running loses its PID.
        l.agent_hello(&hello("h1", &[("a", None)]));
        assert_eq!(pid("a"), None);
        // Another agent's claim on c (which h2 reports on) changes nothing.
        live.set_pid("c", Some(7));
        l.agent_hello(&hello("h1", &[("c", Some(99))]));
        assert_eq!(pid("c"), Some(7));
    }
}
