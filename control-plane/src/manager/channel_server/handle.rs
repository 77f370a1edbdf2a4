//! What the channel does with each decoded message: reports update the live
//! state and go to the logging database, as do events and record batches;
//! pings are answered; command results reach their waiter. Every stored
//! message is acknowledged once committed.
//!
//! An agent speaks only for the servers it watches (those of its hello its
//! token allows and no other live agent had): a record batch, an event or a
//! report's figures about any other server are refused, counted
//! (`refused_reports` in `GET /api/v1/agents`) and raise a
//! `report_refused` event at most once a minute per agent. A refused
//! message is still acknowledged, after everything before it is committed,
//! so the agent's spool does not resend it forever.

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

/// The servers `agent_id` watches.
fn mine(m: &Manager, agent_id: &str) -> Vec<String> {
    lock(&m.inner.agents)
        .get(agent_id)
        .map(|a| a.servers.clone())
        .unwrap_or_default()
}

/// Counts `n` refused items about `servers`, raises the event when due, and
/// acknowledges `seq` (if any) once everything before it is committed.
async fn refuse(
    m: &Manager,
    agent_id: &str,
    tx: &mpsc::UnboundedSender<ManagerMessage>,
    seq: Option<u64>,
    n: u64,
    what: String,
) {
    tracing::debug!("agent {agent_id}: refused {what}");
    if m.note_refused(agent_id, n) {
        let total = m.refused_count(agent_id);
        m.raise_event(
            agent_id,
            event_type::REPORT_REFUSED,
            format!(
                "agent {agent_id}: refused {what}: not a server it watches ({total} refused so far)"
            ),
        )
        .await;
    }
    if let Some(seq) = seq {
        store(m, agent_id, Write::Samples(Vec::new()), ack(tx, seq)).await;
    }
}

/// A record batch (a binary frame): stored as it came, acknowledged.
pub(super) async fn records(
    m: &Manager,
    agent_id: &str,
    tx: &mpsc::UnboundedSender<ManagerMessage>,
    r: RecordsFrame<'_>,
) {
    if !mine(m, agent_id).iter().any(|s| s == r.server) {
        let what = format!("a record batch about server {}", r.server);
        return refuse(m, agent_id, tx, Some(r.seq), 1, what).await;
    }
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
    let mut states = lock(&m.inner.servers);
    for agg in &report.servers {
        let st = states
            .entry(agg.server.clone())
            .or_insert_with(|| ServerState {
                agent_id: agent_id.to_string(),
                ..Default::default()
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
        st.requests_total += agg.count.saturating_sub(agg.probes);
        st.errors_total += agg.errors_5xx + agg.errors_429;
        st.latest = Some((Instant::now(), agg.clone()));
        let cpu = report.host.cpu;
        // All zero: the agent had no CPU figures (first interval, or a
        // host that does not give them) — unknown, not 100 % busy.
        st.host_cpu_pct =
            (cpu.user + cpu.system + cpu.idle > 0.0).then(|| (100.0 - cpu.idle).clamp(0.0, 100.0));
        st.host_mem_pct = (report.host.memory_total > 0)
            .then(|| report.host.memory_used as f64 * 100.0 / report.host.memory_total as f64);
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
        AgentMessage::Report(mut report) => {
            // Only an agent's own servers (those it registered and nobody
            // live already watched) are its to report on.
            let own = mine(m, agent_id);
            let before = report.servers.len();
            let mut others: Vec<String> = Vec::new();
            report.servers.retain(|agg| {
                let keep = own.contains(&agg.server);
                if !keep {
                    others.push(agg.server.clone());
                }
                keep
            });
            if !others.is_empty() {
                let n = (before - report.servers.len()) as u64;
                let what = format!("figures about {}", others.join(", "));
                refuse(m, agent_id, tx, None, n, what).await;
            }
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
        AgentMessage::Event(event)
            if event.origin_id != agent_id && !mine(m, agent_id).contains(&event.origin_id) =>
        {
            let what = format!("a {} event about {}", event.type_name, event.origin_id);
            refuse(m, agent_id, tx, Some(event.seq), 1, what).await;
            None
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
