//! Registering a connection after its hello: which of the claimed servers
//! it watches (those its credential allows and no other live agent
//! watches; an event for each refused claim), the agent's entry in the
//! live table and in the logging database, and `touch` for every frame.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use usher_core::channel::{event_type, Hello, ManagerMessage};

use super::identity::Admission;
use crate::manager::logdb::Write;
use crate::manager::state::{lock, AgentConn, Manager, ServerState};

/// Whether `agent_id` has a connection that was heard from within the
/// silence limit: a second hello with its id is then refused (a copied
/// config or a forger must not take over a working agent's place), while an
/// agent restarting after its old connection died takes over at once.
pub(super) fn is_live_agent(m: &Manager, agent_id: &str) -> bool {
    let silent_after = Duration::from_millis(m.config().silent_after_ms);
    lock(&m.inner.agents)
        .get(agent_id)
        .is_some_and(|a| a.last_heard.elapsed() < silent_after)
}

/// The servers of `claimed` another live agent already watches.
fn owned_by_others(m: &Manager, agent_id: &str, claimed: &[String]) -> Vec<(String, String)> {
    let owners: Vec<(String, String)> = {
        let states = lock(&m.inner.servers);
        claimed
            .iter()
            .filter_map(|s| Some((s.clone(), states.get(s)?.agent_id.clone())))
            .collect()
    };
    owners
        .into_iter()
        .filter(|(_, owner)| owner != agent_id && is_live_agent(m, owner))
        .collect()
}

pub(super) async fn register(
    m: &Manager,
    hello: &Hello,
    conn_id: u64,
    tx: mpsc::UnboundedSender<ManagerMessage>,
    admission: Admission,
) {
    let agent_id = hello.agent_id.clone();
    for (_, why) in &admission.refused {
        m.raise_event(
            &agent_id,
            event_type::CLAIM_REFUSED,
            format!("agent {agent_id}: claim refused: {why}"),
        )
        .await;
    }
    let claimed = admission.accepted;
    let taken = owned_by_others(m, &agent_id, &claimed);
    for (server, owner) in &taken {
        m.raise_event(
            &agent_id,
            event_type::CLAIM_REFUSED,
            format!("agent {agent_id} claimed server {server}, which live agent {owner} watches: ignored"),
        )
        .await;
    }
    let servers: Vec<String> = claimed
        .into_iter()
        .filter(|s| !taken.iter().any(|(t, _)| t == s))
        .collect();
    lock(&m.inner.agents).insert(
        agent_id.clone(),
        AgentConn {
            conn_id,
            tx,
            last_heard: Instant::now(),
            pinged: false,
            servers: servers.clone(),
        },
    );
    lock(&m.inner.gone).remove(&agent_id);
    {
        let mut states = lock(&m.inner.servers);
        for s in &servers {
            let st = states.entry(s.clone()).or_insert_with(|| ServerState {
                agent_id: agent_id.clone(),
                latest: None,
                measured_at_us: None,
                probe_failure: None,
                ..Default::default()
            });
            st.agent_id = agent_id.clone();
        }
    }
    let writes = [
        Write::Agent {
            agent_id: agent_id.clone(),
            host_id: hello.facts.host_id.clone(),
            host_name: hello.facts.host_name.clone(),
            servers: serde_json::to_string(&hello.servers).unwrap_or_default(),
        },
        Write::Facts {
            agent_id: agent_id.clone(),
            facts: hello.facts.clone(),
        },
    ];
    for w in writes {
        if let Err(e) = m.logdb().write(w, None).await {
            tracing::error!("agent {agent_id}: registration not logged: {e}");
        }
    }
    m.inner.listener.agent_hello(hello);
    m.raise_event(
        &agent_id,
        event_type::AGENT_CONNECTED,
        format!(
            "agent {agent_id} on {} connected with servers {servers:?}",
            hello.facts.host_name
        ),
    )
    .await;
}

pub(super) fn touch(m: &Manager, agent_id: &str, conn_id: u64) {
    let mut agents = lock(&m.inner.agents);
    if let Some(a) = agents.get_mut(agent_id) {
        if a.conn_id == conn_id {
            a.last_heard = Instant::now();
            a.pinged = false;
        }
    }
}
