//! `GET /api/v1/agent/channel`: the WebSocket every agent dials.
//!
//! The agent presents `Authorization: Bearer <agent token>` and starts with
//! `hello`; the manager answers `welcome` with the highest sequence number
//! it already stored for that agent. A `hello` of another protocol version
//! (or one that is not the first frame) closes the connection with code
//! 1008 and the reason, logged as a warning. Reports, events (JSON text
//! frames) and record batches (binary frames, `usher_core::channel::binary`)
//! go to the logging database and are acknowledged (cumulatively) once they
//! are committed. Pings are answered; a frame that does not decode (bad
//! JSON, another version, a cut binary header) is logged, counted per
//! connection and skipped, never fatal. Every frame, whatever it holds,
//! marks the agent as heard (in memory only; `GET /api/v1/agents` shows it).
//!
//! Handling each decoded message is in `channel_server/handle.rs`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use usher_core::channel::{
    self, event_type, AgentMessage, Hello, ManagerMessage, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
use warp::filters::ws::{Message, WebSocket, Ws};
use warp::http::StatusCode;
use warp::{filters::BoxedFilter, Filter, Reply};

use crate::manager::logdb::Write;
use crate::manager::state::{lock, AgentConn, Manager, ServerState};
use crate::token::bearer_matches;

mod handle;
#[cfg(test)]
mod tests;

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The channel route; mount it next to the control plane's routes.
pub fn channel_route(m: Manager) -> BoxedFilter<(Box<dyn Reply>,)> {
    warp::path!("api" / "v1" / "agent" / "channel")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::ws())
        .map(move |auth: Option<String>, ws: Ws| -> Box<dyn Reply> {
            if !bearer_matches(auth.as_deref(), m.agent_token()) {
                tracing::warn!("agent channel refused: missing or wrong agent token");
                let body =
                    serde_json::json!({"error": "authorization: missing or wrong agent token"});
                return Box::new(warp::reply::with_status(
                    warp::reply::json(&body),
                    StatusCode::UNAUTHORIZED,
                ));
            }
            let m = m.clone();
            Box::new(
                ws.max_message_size(MAX_FRAME_BYTES)
                    .max_frame_size(MAX_FRAME_BYTES)
                    .on_upgrade(move |socket| serve(m, socket)),
            )
        })
        .boxed()
}

fn text_of(msg: &Message) -> Option<&str> {
    if msg.is_text() {
        msg.to_str().ok()
    } else {
        None
    }
}

async fn read_hello(
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
) -> Result<Hello, String> {
    let first = tokio::time::timeout(HELLO_TIMEOUT, stream.next())
        .await
        .map_err(|_| "no hello in time".to_string())?
        .ok_or("closed before hello")?
        .map_err(|e| e.to_string())?;
    let text = text_of(&first).ok_or("first frame is not text")?;
    match channel::decode::<AgentMessage>(text).map_err(|e| e.to_string())? {
        AgentMessage::Hello(h) => {
            if h.protocol != PROTOCOL_VERSION {
                return Err(format!(
                    "hello.protocol {} is not {PROTOCOL_VERSION}",
                    h.protocol
                ));
            }
            if h.agent_id.is_empty() || h.agent_id.len() > 128 {
                return Err("hello.agent_id: must be 1..=128 characters".into());
            }
            Ok(h)
        }
        _ => Err("first message is not hello".into()),
    }
}

async fn serve(m: Manager, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let hello = match read_hello(&mut stream).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!("agent channel closed: {e}");
            if let Err(e) = sink.send(Message::close_with(1008u16, e)).await {
                tracing::debug!("close not sent: {e}");
            }
            return;
        }
    };
    let agent_id = hello.agent_id.clone();
    if is_live_agent(&m, &agent_id) {
        let why = format!("agent id {agent_id} is already connected and heard from");
        tracing::warn!("agent channel refused: {why}");
        m.raise_event(
            &agent_id,
            event_type::AGENT_REFUSED,
            format!("a second connection was refused: {why}"),
        )
        .await;
        if let Err(e) = sink.send(Message::close_with(1008u16, why)).await {
            tracing::debug!("close not sent: {e}");
        }
        return;
    }
    let conn_id = m.inner.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<ManagerMessage>();
    register(&m, &hello, conn_id, tx.clone()).await;

    match m.logdb().stored_seq(&agent_id).await {
        Ok(stored_seq) => {
            if tx
                .send(ManagerMessage::Welcome {
                    agent_id: agent_id.clone(),
                    stored_seq,
                })
                .is_err()
            {
                return;
            }
        }
        Err(e) => {
            tracing::error!("agent {agent_id}: cannot read stored sequence: {e}");
            return;
        }
    }

    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if let Err(e) = sink.send(Message::text(channel::encode(&msg))).await {
                tracing::debug!("agent channel send failed: {e}");
                break;
            }
        }
        if let Err(e) = sink.close().await {
            tracing::debug!("agent channel close: {e}");
        }
    });

    let mut skipped = 0u64;
    while let Some(item) = stream.next().await {
        let msg = match item {
            Ok(msg) => msg,
            Err(e) => {
                tracing::info!("agent {agent_id}: channel error: {e}");
                break;
            }
        };
        if msg.is_close() {
            break;
        }
        touch(&m, &agent_id, conn_id);
        let refused = if msg.is_binary() {
            match channel::decode_records(msg.as_bytes()) {
                Ok(records) => {
                    handle::records(&m, &agent_id, &tx, records).await;
                    None
                }
                Err(e) => Some(e),
            }
        } else if let Some(text) = text_of(&msg) {
            match channel::decode::<AgentMessage>(text) {
                Ok(msg) => {
                    handle::message(&m, &agent_id, &tx, msg).await;
                    None
                }
                Err(e) => Some(e),
            }
        } else {
            None // WebSocket pings and pongs
        };
        if let Some(e) = refused {
            skipped += 1;
            tracing::warn!(
                "agent {agent_id}: bad frame skipped ({skipped} on this connection): {e}"
            );
        }
    }

    // Gone: only if this connection is still the agent's current one.
    {
        let mut agents = lock(&m.inner.agents);
        if agents.get(&agent_id).map(|a| a.conn_id) == Some(conn_id) {
            if let Some(a) = agents.remove(&agent_id) {
                lock(&m.inner.gone).insert(agent_id.clone(), a.last_heard);
            }
        }
    }
    drop(tx);
    writer.abort();
    if skipped > 0 {
        tracing::warn!("agent {agent_id} disconnected; {skipped} bad frames were skipped");
    } else {
        tracing::info!("agent {agent_id} disconnected");
    }
    m.wake();
}

/// Whether `agent_id` has a connection that was heard from within the
/// silence limit: a second hello with its id is then refused (a copied
/// config or a forger must not take over a working agent's place), while an
/// agent restarting after its old connection died takes over at once.
fn is_live_agent(m: &Manager, agent_id: &str) -> bool {
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

async fn register(
    m: &Manager,
    hello: &Hello,
    conn_id: u64,
    tx: mpsc::UnboundedSender<ManagerMessage>,
) {
    let agent_id = hello.agent_id.clone();
    let claimed: Vec<String> = hello.servers.iter().map(|s| s.name.clone()).collect();
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
                failed: None,
                load: None,
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

fn touch(m: &Manager, agent_id: &str, conn_id: u64) {
    let mut agents = lock(&m.inner.agents);
    if let Some(a) = agents.get_mut(agent_id) {
        if a.conn_id == conn_id {
            a.last_heard = Instant::now();
            a.pinged = false;
        }
    }
}
