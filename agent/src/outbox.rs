//! Everything the agent sends that must arrive exactly once goes through
//! the outbox: it numbers the message, writes it to the spool, and wakes
//! the channel. A message that cannot be spooled is logged.
//!
//! The spool does blocking file I/O (appends, renames, reads back), so it
//! lives on a thread of its own, `usher-agent-spool`, which owns the
//! [`Spool`] and takes requests over a channel; async tasks never touch the
//! file. Messages are encoded (JSON; record batches as binary frames) on
//! that thread too, so a task that queues a message only moves it. Requests that need an answer (the
//! frames to send, the acknowledged mark) get it over a oneshot.
//!
//! Record batches are the bulk. The outbox counts the ones queued and not
//! yet written ([`Outbox::batches_waiting`]); the ring reader stops draining
//! while that count is at its limit, so what waits in memory is bounded and
//! the ring itself is the buffer.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use tokio::sync::{oneshot, Notify};
use usher_core::channel::{self, encode_records, AgentMessage, Event, FrameError, Report};

use crate::spool::{Entry, Frame, Kind, Spool};

/// A message to spool; the closure frames it once its number is known.
type Make = Box<dyn FnOnce(u64) -> Result<Frame, FrameError> + Send>;

/// A JSON frame of `msg`.
fn json_frame(msg: &AgentMessage) -> Result<Frame, FrameError> {
    Ok(Frame::Text(channel::encode(msg)))
}

/// What the spool thread is asked to do.
enum Op {
    Push {
        kind: Kind,
        what: &'static str,
        make: Make,
    },
    /// The control plane stored everything up to `seq`; answers the new
    /// acknowledged mark.
    Ack {
        seq: u64,
        reply: Option<oneshot::Sender<u64>>,
    },
    After {
        seq: u64,
        max: usize,
        reply: oneshot::Sender<Vec<Entry>>,
    },
    /// Sync the file and end the thread.
    Close { reply: oneshot::Sender<()> },
}

/// Figures the spool thread publishes for the async side.
#[derive(Debug, Default)]
struct Shared {
    /// Unacknowledged messages.
    unacked: AtomicUsize,
    /// Highest sequence number written.
    last_seq: AtomicU64,
    /// Record batches queued and not yet written.
    batches_waiting: AtomicUsize,
}

/// The outbox (shared by every task of the agent).
#[derive(Debug)]
pub struct Outbox {
    ops: std_mpsc::Sender<Op>,
    pub(crate) notify: Arc<Notify>,
    shared: Arc<Shared>,
    agent_id: String,
}

/// The spool thread; [`Outbox::close`] ends it.
#[derive(Debug)]
pub struct SpoolThread(std::thread::JoinHandle<()>);

impl SpoolThread {
    /// Waits for the thread to end (after [`Outbox::close`]).
    pub fn join(self) {
        if self.0.join().is_err() {
            tracing::error!("spool thread panicked");
        }
    }
}

impl Outbox {
    /// An outbox over an open spool, with the thread that owns the spool.
    pub fn start(spool: Spool, agent_id: String) -> std::io::Result<(Arc<Outbox>, SpoolThread)> {
        let (ops, rx) = std_mpsc::channel();
        let shared = Arc::new(Shared::default());
        shared.unacked.store(spool.len(), Ordering::Relaxed);
        shared.last_seq.store(spool.last_seq(), Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        let (s, n) = (shared.clone(), notify.clone());
        // The thread holds no sender: when every outbox is gone it ends.
        let thread = std::thread::Builder::new()
            .name("usher-agent-spool".into())
            .spawn(move || spool_thread(spool, rx, &s, &n))?;
        let outbox = Arc::new(Outbox {
            ops,
            notify,
            shared,
            agent_id,
        });
        Ok((outbox, SpoolThread(thread)))
    }

    fn send(&self, op: Op) -> bool {
        self.ops.send(op).is_ok()
    }

    fn push(&self, kind: Kind, what: &'static str, make: Make) {
        if !self.send(Op::Push { kind, what, make }) {
            tracing::error!("{what} not spooled, lost: the spool is closed");
        }
    }

    /// Queues an interval report (its `seq` is set on the spool thread).
    pub fn report(&self, mut report: Report) {
        self.push(
            Kind::Report,
            "report",
            Box::new(move |seq| {
                report.seq = seq;
                json_frame(&AgentMessage::Report(report))
            }),
        );
    }

    /// Queues a batch of raw records of one server (counted in
    /// [`Outbox::batches_waiting`] until written).
    pub fn records(&self, server: &str, batch: Vec<u8>) {
        let server = server.to_string();
        self.shared.batches_waiting.fetch_add(1, Ordering::Relaxed);
        self.push(
            Kind::Records,
            "record batch",
            Box::new(move |seq| encode_records(seq, &server, &batch).map(Frame::Binary)),
        );
    }

    /// Queues an event; `origin` is the server (or this agent).
    pub fn event(&self, origin: &str, kind: (u32, &str), text: String) {
        tracing::info!("event {}: {origin}: {text}", kind.1);
        let event = Event::new(0, origin, kind, text, crate::now_us());
        self.push(
            Kind::Event,
            "event",
            Box::new(move |seq| json_frame(&AgentMessage::Event(Event { seq, ..event }))),
        );
    }

    /// Queues an event made elsewhere (e.g. read from a watcher's events
    /// file), keeping its origin and time; its `seq` is set when spooled.
    pub fn forward_event(&self, event: Event) {
        tracing::info!(
            "event {}: {}: {}",
            event.type_name,
            event.origin_name,
            event.text
        );
        self.push(
            Kind::Event,
            "event",
            Box::new(move |seq| json_frame(&AgentMessage::Event(Event { seq, ..event }))),
        );
    }

    /// The control plane stored everything up to `seq`.
    pub fn ack(&self, seq: u64) {
        if !self.send(Op::Ack { seq, reply: None }) {
            tracing::debug!("ack {seq} after the spool closed");
        }
    }

    /// Acknowledges `seq` and answers the acknowledged mark (at least
    /// `seq`); `None` once the spool is closed.
    pub async fn ack_and_mark(&self, seq: u64) -> Option<u64> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Op::Ack {
            seq,
            reply: Some(reply),
        }) {
            return None;
        }
        rx.await.ok()
    }

    /// Up to `max` unacknowledged messages after `seq`, in order.
    pub async fn after(&self, seq: u64, max: usize) -> Vec<Entry> {
        if self.shared.last_seq.load(Ordering::Acquire) <= seq {
            return Vec::new();
        }
        let (reply, rx) = oneshot::channel();
        if !self.send(Op::After { seq, max, reply }) {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Syncs the spool to disk and ends its thread; later messages are
    /// logged as lost.
    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.send(Op::Close { reply }) && rx.await.is_err() {
            tracing::error!("spool thread ended before closing");
        }
    }

    /// This agent's id.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// Messages not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.shared.unacked.load(Ordering::Relaxed)
    }

    /// Record batches queued and not yet written to the spool.
    pub fn batches_waiting(&self) -> usize {
        self.shared.batches_waiting.load(Ordering::Relaxed)
    }
}

/// The spool thread: takes every request queued, answers or applies it,
/// and publishes the figures. Acks queued together become one (the highest).
fn spool_thread(mut spool: Spool, rx: std_mpsc::Receiver<Op>, shared: &Shared, notify: &Notify) {
    while let Ok(first) = rx.recv() {
        let mut wrote = false;
        let mut ack: Option<(u64, Vec<oneshot::Sender<u64>>)> = None;
        let mut close = None;
        for op in std::iter::once(first).chain(rx.try_iter()) {
            match op {
                Op::Push { kind, what, make } => {
                    let made = |seq| {
                        make(seq)
                            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                    };
                    if let Err(e) = spool.push(kind, made) {
                        tracing::error!("{what} not spooled, lost: {e}");
                    }
                    if kind == Kind::Records {
                        shared.batches_waiting.fetch_sub(1, Ordering::Relaxed);
                    }
                    wrote = true;
                }
                Op::Ack { seq, reply } => {
                    let (high, replies) = ack.get_or_insert_with(|| (0, Vec::new()));
                    *high = (*high).max(seq);
                    replies.extend(reply);
                }
                Op::After { seq, max, reply } => {
                    if reply.send(spool.after(seq, max)).is_err() {
                        tracing::debug!("spool: frames read for a channel that is gone");
                    }
                }
                Op::Close { reply } => close = Some(reply),
            }
        }
        if let Some((seq, replies)) = ack {
            if let Err(e) = spool.ack(seq) {
                tracing::error!("spool ack failed: {e}");
            }
            for r in replies {
                if r.send(spool.acked()).is_err() {
                    tracing::debug!("spool: ack mark for a channel that is gone");
                }
            }
        }
        shared.unacked.store(spool.len(), Ordering::Relaxed);
        shared.last_seq.store(spool.last_seq(), Ordering::Release);
        if wrote {
            notify.notify_one();
        }
        if let Some(reply) = close {
            if let Err(e) = spool.sync() {
                tracing::error!("spool sync failed: {e}");
            }
            if reply.send(()).is_err() {
                tracing::debug!("spool: closed for a caller that is gone");
            }
            return;
        }
    }
    if let Err(e) = spool.sync() {
        tracing::error!("spool sync failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usher_core::channel::{decode_records, event_type, RecordsFrame};

    #[tokio::test]
    async fn numbers_spools_and_reads_back_on_its_thread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path(), 1 << 20).expect("open");
        let (outbox, thread) = Outbox::start(spool, "a1".into()).expect("start");
        outbox.event("web1", event_type::PROBE_FAILED, "down".into());
        outbox.records("web1", vec![1, 2, 3]);
        let mut got = Vec::new();
        while got.len() < 2 {
            got = outbox.after(0, 10).await;
            tokio::task::yield_now().await;
        }
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        match &got[1].frame {
            Frame::Binary(b) => assert_eq!(
                decode_records(b),
                Ok(RecordsFrame {
                    seq: 2,
                    server: "web1",
                    batch: &[1, 2, 3]
                })
            ),
            other => panic!("not binary: {other:?}"),
        }
        assert_eq!(outbox.batches_waiting(), 0);
        assert_eq!(outbox.unacked(), 2);
        assert_eq!(outbox.ack_and_mark(1).await, Some(1));
        assert_eq!(outbox.after(0, 10).await.len(), 1);
        outbox.close().await;
        thread.join();
        // Closed: later messages are lost (logged), nothing hangs.
        outbox.event("web1", event_type::PROBE_RECOVERED, "up".into());
        assert_eq!(outbox.ack_and_mark(2).await, None);
        let spool = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(spool.len(), 1);
        assert_eq!(spool.acked(), 1);
    }
}
