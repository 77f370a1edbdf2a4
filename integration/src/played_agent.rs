//! An agent played by the test (used by `cp_live.rs` and `cp_fail_safe.rs`):
//! it dials the real control plane's agent channel with the agent token,
//! says hello for its servers, then sends a report every 100 ms with the
//! figures the test sets — mean processing time and probe result per
//! server — measured `measured_ago` before it is sent. The test can make it
//! fall silent (connection open, nothing sent) or hang up, have it send an
//! event, and read why its connection ended ([`PlayedAgent::ended`]: a
//! refusal at the upgrade, or the control plane's close frame).
//! `cp_agent_identity.rs` gives it an agent's own token.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use usher_core::channel::{
    self, AgentMessage, Event, Hello, HostFacts, Report, ServerAggregate, ServerInfo,
    PROTOCOL_VERSION,
};

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What the played agent reports about one server.
#[derive(Debug, Clone)]
pub struct Figures {
    pub mean_us: u64,
    pub probe_ok: bool,
}

/// The played agent's controls.
#[derive(Debug)]
pub struct PlayedAgent {
    pub agent_id: String,
    pub measured_ago: Duration,
    figures: Mutex<BTreeMap<String, Figures>>,
    silent: AtomicBool,
    hang_up: AtomicBool,
    /// Events to send with the next report.
    outbox: Mutex<Vec<Event>>,
    /// Why the connection ended, once it has.
    ended: Mutex<Option<String>>,
}

impl PlayedAgent {
    /// An agent for `servers`, each at `mean_us` with probes ok.
    pub fn new(
        agent_id: &str,
        servers: &[&str],
        mean_us: u64,
        measured_ago: Duration,
    ) -> Arc<Self> {
        Arc::new(PlayedAgent {
            agent_id: agent_id.into(),
            measured_ago,
            figures: Mutex::new(
                servers
                    .iter()
                    .map(|s| {
                        (
                            s.to_string(),
                            Figures {
                                mean_us,
                                probe_ok: true,
                            },
                        )
                    })
                    .collect(),
            ),
            silent: AtomicBool::new(false),
            hang_up: AtomicBool::new(false),
            outbox: Mutex::new(Vec::new()),
            ended: Mutex::new(None),
        })
    }

    pub fn set_mean_us(&self, server: &str, mean_us: u64) {
        if let Some(f) = self.figures.lock().expect("lock").get_mut(server) {
            f.mean_us = mean_us;
        }
    }

    pub fn set_probe_ok(&self, server: &str, ok: bool) {
        if let Some(f) = self.figures.lock().expect("lock").get_mut(server) {
            f.probe_ok = ok;
        }
    }

    /// Keeps the connection open but sends nothing (as under SIGSTOP).
    pub fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::Relaxed);
    }

    /// Closes the connection (as when the agent is killed).
    pub fn hang_up(&self) {
        self.hang_up.store(true, Ordering::Relaxed);
    }

    /// Sends an event of `kind` about `origin` (a server or the agent) with
    /// the next report.
    pub fn send_event(&self, origin: &str, kind: (u32, &str), text: &str) {
        let mut outbox = self.outbox.lock().expect("lock");
        let seq = 1_000_000 + outbox.len() as u64;
        outbox.push(Event::new(seq, origin, kind, text.into(), now_us()));
    }

    /// Why the connection ended (`refused: …` at the upgrade, `closed: CODE
    /// REASON` by the control plane, `hung up`, `lost: …`), or `None` while
    /// it is open.
    pub fn ended(&self) -> Option<String> {
        self.ended.lock().expect("lock").clone()
    }

    fn end(&self, why: String) {
        *self.ended.lock().expect("lock") = Some(why);
    }

    /// Dials the control plane and reports until hung up.
    pub async fn run(self: Arc<Self>, admin_port: u16, token: String) {
        let url = format!("ws://127.0.0.1:{admin_port}/api/v1/agent/channel");
        let mut req = url.as_str().into_client_request().expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let mut ws = match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => ws,
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                return self.end(format!("refused: {}", r.status().as_u16()));
            }
            Err(e) => return self.end(format!("refused: {e}")),
        };
        let servers: Vec<String> = self.figures.lock().expect("lock").keys().cloned().collect();
        let hello = AgentMessage::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            agent_id: self.agent_id.clone(),
            facts: HostFacts {
                host_id: "h1".into(),
                host_name: "host".into(),
                ..Default::default()
            },
            servers: servers
                .iter()
                .map(|name| ServerInfo {
                    name: name.clone(),
                    url: "http://127.0.0.1:1".into(),
                    pid: None,
                })
                .collect(),
        });
        ws.send(Message::Text(channel::encode(&hello)))
            .await
            .expect("hello");
        for seq in 1.. {
            if self.hang_up.load(Ordering::Relaxed) {
                let _closed = ws.close(None).await;
                return self.end("hung up".into());
            }
            if !self.silent.load(Ordering::Relaxed) {
                let stop = now_us() - self.measured_ago.as_micros() as u64;
                let aggs: Vec<ServerAggregate> = self
                    .figures
                    .lock()
                    .expect("lock")
                    .iter()
                    .map(|(name, f)| ServerAggregate {
                        server: name.clone(),
                        count: 10,
                        mean_us: f.mean_us,
                        queue_delay_us: Some(0),
                        probe_ok: Some(f.probe_ok),
                        probe_error: (!f.probe_ok).then(|| "status 500, expected 200".into()),
                        ..Default::default()
                    })
                    .collect();
                let report = AgentMessage::Report(Report {
                    seq,
                    interval_start_us: stop - 100_000,
                    interval_stop_us: stop,
                    servers: aggs,
                    ..Default::default()
                });
                let events: Vec<Event> = self.outbox.lock().expect("lock").drain(..).collect();
                let mut frames = vec![channel::encode(&report)];
                frames.extend(
                    events
                        .into_iter()
                        .map(|e| channel::encode(&AgentMessage::Event(e))),
                );
                for frame in frames {
                    if let Err(e) = ws.send(Message::Text(frame)).await {
                        return self.end(format!("lost: {e}"));
                    }
                }
            }
            // Read what the control plane sends (welcome, acks, a close
            // frame) for the 100 ms until the next report.
            let until = tokio::time::Instant::now() + Duration::from_millis(100);
            while let Ok(next) = tokio::time::timeout_at(until, ws.next()).await {
                match next {
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame
                            .map(|f| format!("closed: {} {}", u16::from(f.code), f.reason))
                            .unwrap_or_else(|| "closed".into());
                        return self.end(why);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return self.end(format!("lost: {e}")),
                    None => return self.end("lost: end of stream".into()),
                }
            }
        }
    }
}
