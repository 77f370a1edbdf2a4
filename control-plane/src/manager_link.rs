//! The control plane's side of the manager's load loop: a [`LoadListener`]
//! that puts what the manager computes into the [`LiveView`].
//!
//! * `statuses` (every interval) → measured load values, with the time the
//!   agent measured them, and failure verdicts;
//! * `server_failed` / `server_recovered` → the verdict at once;
//! * `agent_hello` → logged only: agents, hosts and their facts live in the
//!   manager's logging database (`/api/v1/agents`, `/api/v1/hosts`).
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
    }
}
