//! Everything the agent sends that must arrive exactly once goes through
//! the outbox: it numbers the message, writes it to the spool, and wakes
//! the channel. A message that cannot be spooled is logged.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use usher_core::channel::{self, base64_encode, AgentMessage, Event, Records, Report};

use crate::lock;
use crate::spool::{Kind, Spool};

/// The outbox (shared by every task of the agent).
#[derive(Debug)]
pub struct Outbox {
    pub(crate) spool: Mutex<Spool>,
    pub(crate) notify: Notify,
    agent_id: String,
}

impl Outbox {
    /// An outbox over an open spool.
    pub fn new(spool: Spool, agent_id: String) -> Arc<Outbox> {
        Arc::new(Outbox {
            spool: Mutex::new(spool),
            notify: Notify::new(),
            agent_id,
        })
    }

    fn push(&self, kind: Kind, what: &str, make: impl FnOnce(u64) -> AgentMessage) -> Option<u64> {
        let r = lock(&self.spool).push(kind, |seq| channel::encode(&make(seq)));
        match r {
            Ok(seq) => {
                self.notify.notify_one();
                Some(seq)
            }
            Err(e) => {
                tracing::error!("{what} not spooled, lost: {e}");
                None
            }
        }
    }

    /// Queues an interval report (its `seq` is set here).
    pub fn report(&self, mut report: Report) -> Option<u64> {
        self.push(Kind::Report, "report", |seq| {
            report.seq = seq;
            AgentMessage::Report(report)
        })
    }

    /// Queues a batch of raw records of one server.
    pub fn records(&self, server: &str, batch: &[u8]) -> Option<u64> {
        self.push(Kind::Records, "record batch", |seq| {
            AgentMessage::Records(Records {
                seq,
                server: server.to_string(),
                batch: base64_encode(batch),
            })
        })
    }

    /// Queues an event; `origin` is the server (or this agent).
    pub fn event(&self, origin: &str, (code, name): (u32, &str), text: String) -> Option<u64> {
        tracing::info!("event {name}: {origin}: {text}");
        self.push(Kind::Event, "event", |seq| {
            AgentMessage::Event(Event {
                seq,
                origin_id: origin.to_string(),
                origin_name: origin.to_string(),
                type_name: name.to_string(),
                type_code: code,
                text,
                time_occurred_us: crate::now_us(),
            })
        })
    }

    /// This agent's id.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// Messages not yet acknowledged.
    pub fn unacked(&self) -> usize {
        lock(&self.spool).len()
    }
}
