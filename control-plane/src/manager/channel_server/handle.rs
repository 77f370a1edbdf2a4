//! What the channel does with each decoded message: reports update the live
//! state and go to the logging database, as do events and record batches;
//! pings are answered; command results reach their waiter. Every stored
//! message is acknowledged once committed.

use std::time::Instant;

use tokio::sync::mpsc;
use usher_core::channel::{event_type, AgentMessage, ManagerMessage, RecordsFrame, Report};

use crate::manager::logdb::{now_us, Write};
use crate::manager::state::{lock, Manager, ServerState};

/// Sends `ack seq` once the write is committed.
type Ack = Option<Box<dyn FnOnce() + Send>>;

fn ack(tx: &mpsc::UnboundedSender<ManagerMessage>, seq: u64) -> Ack {
    let tx = tx.clone();
    Some(Box::new(move || {
        if tx.send(ManagerMessage::Ack { seq }).is_err() {
            tracing::debug!("ack {seq} not sent: channel closed");
        }
    }))
}

async fn store(m: &Manager, agent_id: &str, w: Write, done: Ack) {
    if let Err(e) = m.logdb().write(w, done).await {
        tracing::error!("agent {agent_id}: not logged: {e}");
    }
}

/// A record batch (a binary frame): stored as it came, acknowledged.
pub(super) async fn records(
    m: &Manager,
    agent_id: &str,
    tx: &mpsc::UnboundedSender<ManagerMessage>,
    r: RecordsFrame<'_>,
) {
    let w = Write::Records {
        agent_id: agent_id.to_string(),
        seq: r.seq,
        server: r.server.to_string(),
        batch: r.batch.to_vec(),
    };
    store(m, agent_id, w, ack(tx, r.seq)).await;
}

/// True when a time stamp is recent enough to describe the present (not a
/// message replayed from the agent's spool after an outage).
fn is_live(m: &Manager, time_us: u64) -> bool {
    now_us().saturating_sub(time_us) <= m.config().silent_after_ms.saturating_mul(1000)
}

fn apply_report(m: &Manager, agent_id: &str, report: &Report) -> bool {
    if !is_live(m, report.interval_stop_us) {
        return false;
    }
    let mut changed = false;
    let mine: Vec<String> = lock(&m.inner.agents)
        .get(agent_id)
        .map(|a| a.servers.clone())
        .unwrap_or_default();
    let mut states = lock(&m.inner.servers);
    for agg in &report.servers {
        // Only an agent's own servers (those it registered and nobody
        // live already watched) are its to report on.
        if !mine.contains(&agg.server) {
            tracing::debug!(
                "agent {agent_id}: report on {} ignored (not its server)",
                agg.server
            );
            continue;
        }
        let st = states
            .entry(agg.server.clone())
            .or_insert_with(|| ServerState {
                agent_id: agent_id.to_string(),
                latest: None,
                measured_at_us: None,
                probe_failure: None,
                failed: None,
                load: None,
            });
        match agg.probe_ok {
            Some(false) if st.probe_failure.is_none() => {
                st.probe_failure = Some(
                    agg.probe_error
                        .clone()
                        .unwrap_or_else(|| "probe failed".into()),
                );
                changed = true;
            }
            Some(true) if st.probe_failure.is_some() => {
                st.probe_failure = None;
                changed = true;
            }
            _ => {}
        }
        st.latest = Some((Instant::now(), agg.clone()));
        st.measured_at_us = Some(report.interval_stop_us.min(now_us()));
    }
    changed
}

/// A JSON message after `hello`.
pub(super) async fn message(
    m: &Manager,
    agent_id: &str,
    tx: &mpsc::UnboundedSender<ManagerMessage>,
    msg: AgentMessage,
) {
    let ack = |seq: u64| ack(tx, seq);
    let agent = agent_id.to_string();
    let write = match msg {
        AgentMessage::Report(report) => {
            if apply_report(m, agent_id, &report) {
                m.wake();
            }
            let seq = report.seq;
            Some((
                Write::Report {
                    agent_id: agent,
                    report,
                },
                ack(seq),
            ))
        }
        AgentMessage::Event(event) => {
            if is_live(m, event.time_occurred_us) {
                let code = event.type_code;
                if code == event_type::PROBE_FAILED.0 || code == event_type::PROBE_RECOVERED.0 {
                    let mut states = lock(&m.inner.servers);
                    // Only the agent that watches the server speaks for it.
                    if let Some(st) = states
                        .get_mut(&event.origin_id)
                        .filter(|st| st.agent_id == agent_id)
                    {
                        st.probe_failure =
                            (code == event_type::PROBE_FAILED.0).then(|| event.text.clone());
                    }
                    drop(states);
                    m.wake();
                }
            }
            let seq = event.seq;
            Some((
                Write::Event {
                    agent_id: agent,
                    event,
                },
                ack(seq),
            ))
        }
        AgentMessage::Ping { nonce } => {
            if tx.send(ManagerMessage::Pong { nonce }).is_err() {
                tracing::debug!("pong not sent");
            }
            None
        }
        AgentMessage::Pong { .. } | AgentMessage::Hello(_) => None,
        AgentMessage::CommandResult(r) => {
            if let Some(waiter) = lock(&m.inner.pending).remove(&r.id) {
                if waiter.send(r).is_err() {
                    tracing::debug!("command waiter went away");
                }
            }
            None
        }
    };
    if let Some((w, done)) = write {
        store(m, agent_id, w, done).await;
    }
}
