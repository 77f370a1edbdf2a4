//! `GET /api/v1/agent/channel`: the WebSocket every agent dials.
//!
//! The agent presents `Authorization: Bearer <token>`: its own token
//! (`usher ctl agent add`, `[[agents]]`) or the shared `agent.token`;
//! anything else is answered 401 before the upgrade. Who may say hello as
//! whom, and claim which servers, is in `channel_server/identity.rs`. The
//! agent starts with `hello`; the manager answers `welcome` with the
//! highest sequence number it already stored for that agent. A `hello` of
//! another protocol version (or one that is not the first frame), or one
//! its token may not say, closes the connection with code 1008 and the
//! reason, logged as a warning. Reports, events (JSON text frames) and
//! record batches (binary frames, `usher_core::channel::binary`) go to the
//! logging database and are acknowledged (cumulatively) once they are
//! committed; those about servers the agent does not watch are refused,
//! counted and acknowledged (`channel_server/handle.rs`). Pings are
//! answered; a frame that does not decode (bad JSON, another version, a
//! cut binary header) is logged, counted per connection and skipped, never
//! fatal. Every frame, whatever it holds, marks the agent as heard (in
//! memory only; `GET /api/v1/agents` shows it). When the operator revokes
//! the token or narrows the binding, the connection ends with 1008 and the
//! reason.
//!
//! Registering a connection is in `channel_server/register.rs`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use usher_core::channel::{
    self, event_type, AgentMessage, Hello, ManagerMessage, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
use warp::filters::ws::{Message, WebSocket, Ws};
use warp::http::StatusCode;
use warp::{filters::BoxedFilter, Filter, Reply};

use crate::manager::state::{lock, Manager};
use crate::token::bearer_token;
use identity::Credential;

mod handle;
pub mod identity;
mod register;
#[cfg(test)]
mod tests;

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection the manager ends may take to send its close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// The channel route; mount it next to the control plane's routes.
pub fn channel_route(m: Manager) -> BoxedFilter<(Box<dyn Reply>,)> {
    warp::path!("api" / "v1" / "agent" / "channel")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::ws())
        .map(move |auth: Option<String>, ws: Ws| -> Box<dyn Reply> {
            let cred = bearer_token(auth.as_deref())
                .and_then(|t| m.identities().authenticate(t, m.agent_token()));
            let Some(cred) = cred else {
                tracing::warn!("agent channel refused: missing or wrong agent token");
                let body =
                    serde_json::json!({"error": "authorization: missing or wrong agent token"});
                return Box::new(warp::reply::with_status(
                    warp::reply::json(&body),
                    StatusCode::UNAUTHORIZED,
                ));
            };
            let m = m.clone();
            Box::new(
                ws.max_message_size(MAX_FRAME_BYTES)
                    .max_frame_size(MAX_FRAME_BYTES)
                    .on_upgrade(move |socket| serve(m, socket, cred)),
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

/// Refuses a connection after its hello: an event, then close 1008.
async fn refuse(
    m: &Manager,
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    agent_id: &str,
    why: String,
) {
    tracing::warn!("agent channel refused: {why}");
    m.raise_event(
        agent_id,
        event_type::AGENT_REFUSED,
        format!("a connection was refused: {why}"),
    )
    .await;
    if let Err(e) = sink.send(Message::close_with(1008u16, why)).await {
        tracing::debug!("close not sent: {e}");
    }
}

async fn serve(m: Manager, socket: WebSocket, cred: Credential) {
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
    let claimed: Vec<String> = hello.servers.iter().map(|s| s.name.clone()).collect();
    let mut ids = m.watch_identities();
    let admitted = ids.borrow_and_update().admit(&cred, &agent_id, &claimed);
    let admission = match admitted {
        Ok(a) => a,
        Err(why) => return refuse(&m, &mut sink, &agent_id, why).await,
    };
    if register::is_live_agent(&m, &agent_id) {
        let why = format!("agent id {agent_id} is already connected and heard from");
        return refuse(&m, &mut sink, &agent_id, why).await;
    }
    let conn_id = m.inner.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel::<ManagerMessage>();
    register::register(&m, &hello, conn_id, tx.clone(), admission).await;

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

    let (close_tx, mut close_rx) = oneshot::channel::<String>();
    let mut writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    if let Err(e) = sink.send(Message::text(channel::encode(&msg))).await {
                        tracing::debug!("agent channel send failed: {e}");
                        break;
                    }
                }
                why = &mut close_rx => {
                    if let Ok(why) = why {
                        if let Err(e) = sink.send(Message::close_with(1008u16, why)).await {
                            tracing::debug!("close not sent: {e}");
                        }
                    }
                    break;
                }
            }
        }
        if let Err(e) = sink.close().await {
            tracing::debug!("agent channel close: {e}");
        }
    });

    let mut skipped = 0u64;
    let mut ended: Option<String> = None;
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            changed = ids.changed() => {
                if changed.is_err() {
                    continue;
                }
                let watching = watching(&m, &agent_id, conn_id);
                let verdict = ids.borrow_and_update().still_valid(&cred, &agent_id, &watching);
                match verdict {
                    Ok(()) => continue,
                    Err(why) => {
                        ended = Some(why);
                        break;
                    }
                }
            }
        };
        let Some(item) = item else { break };
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
        register::touch(&m, &agent_id, conn_id);
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
    match ended {
        Some(why) => {
            tracing::warn!("agent {agent_id} disconnected: {why}");
            if close_tx.send(why.clone()).is_err() {
                tracing::debug!("agent {agent_id}: writer already gone");
            }
            if tokio::time::timeout(CLOSE_TIMEOUT, &mut writer)
                .await
                .is_err()
            {
                writer.abort();
            }
            m.raise_event(
                &agent_id,
                event_type::AGENT_REFUSED,
                format!("agent {agent_id} was disconnected: {why}"),
            )
            .await;
        }
        None => {
            writer.abort();
            if skipped > 0 {
                tracing::warn!("agent {agent_id} disconnected; {skipped} bad frames were skipped");
            } else {
                tracing::info!("agent {agent_id} disconnected");
            }
        }
    }
    m.wake();
}

/// The servers connection `conn_id` of `agent_id` watches (none if it is
/// not the agent's current connection).
fn watching(m: &Manager, agent_id: &str, conn_id: u64) -> Vec<String> {
    lock(&m.inner.agents)
        .get(agent_id)
        .filter(|a| a.conn_id == conn_id)
        .map(|a| a.servers.clone())
        .unwrap_or_default()
}
