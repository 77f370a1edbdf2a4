//! The control channel: the agent dials the control plane's WebSocket
//! (`Authorization: Bearer <agent token>`), says hello, and keeps that one
//! connection. It sends everything in the spool not yet acknowledged, in
//! order (JSON text frames; record batches as binary frames), then new
//! messages as they come; handles acks, pings and
//! commands. When the connection fails it reconnects after 250 ms,
//! doubling up to `reconnect_max_ms`. The control plane never connects to
//! the agent. A `wss://` URL is dialled with rustls and the CAs of
//! [`crate::tls::client_config`]; a certificate the agent does not trust
//! fails the connect like any other error (logged, retried).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;
use usher_core::channel::{
    self, AgentCommand, AgentMessage, CommandResult, Hello, ManagerMessage, MAX_FRAME_BYTES,
};

use crate::outbox::Outbox;
use crate::spool::Frame;

/// The agent pings when it sent nothing for this long.
const PING_EVERY: Duration = Duration::from_secs(5);
/// Nothing heard from the control plane for this long: reconnect.
const SILENT: Duration = Duration::from_secs(15);
/// Frames sent per turn before looking at incoming messages again.
const SEND_TURN: usize = 64;

/// What the channel needs.
pub struct ChannelCtx {
    pub url: String,
    pub token: String,
    /// TLS for a `wss://` URL (unused for `ws://`).
    pub tls: Arc<rustls::ClientConfig>,
    pub reconnect_max: Duration,
    /// Builds the hello (called at every connect: PIDs change).
    pub hello: Box<dyn Fn() -> Hello + Send + Sync>,
    pub outbox: Arc<Outbox>,
    /// Commands from the control plane go here.
    pub commands: mpsc::UnboundedSender<AgentCommand>,
    /// Their results come back here.
    pub results: mpsc::UnboundedReceiver<CommandResult>,
    /// Connection state for tests and status: true while connected.
    pub connected: watch::Sender<bool>,
}

impl std::fmt::Debug for ChannelCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelCtx")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Runs until `shutdown` turns true.
pub async fn run(mut ctx: ChannelCtx, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(250);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let started = Instant::now();
        match session(&mut ctx, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(
                "control channel to {}: {e}; reconnecting in {backoff:?}",
                ctx.url
            ),
        }
        ctx.connected.send_replace(false);
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(250);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => {}
        }
        backoff = (backoff * 2).min(ctx.reconnect_max);
    }
}

async fn session(ctx: &mut ChannelCtx, shutdown: &mut watch::Receiver<bool>) -> Result<(), String> {
    let mut req = ctx
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("control_url: {e}"))?;
    let auth = HeaderValue::from_str(&format!("Bearer {}", ctx.token))
        .map_err(|_| "token: not a header value")?;
    req.headers_mut().insert("authorization", auth);
    let config = WebSocketConfig {
        max_message_size: Some(MAX_FRAME_BYTES),
        max_frame_size: Some(MAX_FRAME_BYTES),
        ..Default::default()
    };
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async_tls_with_config(
            req,
            Some(config),
            false,
            Some(Connector::Rustls(ctx.tls.clone())),
        ),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| format!("connect: {e}"))?;
    let (mut sink, mut stream) = ws.split();
    let hello = AgentMessage::Hello((ctx.hello)());
    sink.send(Message::Text(channel::encode(&hello)))
        .await
        .map_err(|e| e.to_string())?;

    // Wait for the welcome.
    let stored = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(msg) = stream.next().await {
            let msg = msg.map_err(|e| e.to_string())?;
            if let Message::Text(t) = msg {
                match channel::decode::<ManagerMessage>(&t) {
                    Ok(ManagerMessage::Welcome { stored_seq, .. }) => return Ok(stored_seq),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("control channel: bad frame skipped: {e}"),
                }
            } else if let Message::Close(c) = msg {
                return Err(format!("refused: {c:?}"));
            }
        }
        Err("closed before welcome".to_string())
    })
    .await
    .map_err(|_| "no welcome in time".to_string())??;
    let mut cursor = ctx
        .outbox
        .ack_and_mark(stored)
        .await
        .ok_or("the spool is closed")?;
    ctx.connected.send_replace(true);
    tracing::info!(
        "control channel to {} open; {} messages to send",
        ctx.url,
        ctx.outbox.unacked()
    );

    let mut last_rx = Instant::now();
    let mut last_tx = Instant::now();
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    let mut nonce = 0u64;
    loop {
        // Read back from the spool (on its thread): at most one turn.
        let batch = ctx.outbox.after(cursor, SEND_TURN).await;
        let has_more = !batch.is_empty();
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    if let Err(e) = sink.send(Message::Close(None)).await {
                        tracing::debug!("close: {e}");
                    }
                    return Ok(());
                }
            }
            msg = stream.next() => {
                let msg = msg.ok_or("closed by the control plane")?.map_err(|e| e.to_string())?;
                last_rx = Instant::now();
                match msg {
                    Message::Text(t) => match channel::decode::<ManagerMessage>(&t) {
                        Ok(ManagerMessage::Ack { seq }) => ctx.outbox.ack(seq),
                        Ok(ManagerMessage::Ping { nonce }) => {
                            sink.send(Message::Text(channel::encode(&AgentMessage::Pong { nonce }))).await.map_err(|e| e.to_string())?;
                            last_tx = Instant::now();
                        }
                        Ok(ManagerMessage::Command(c)) => {
                            if ctx.commands.send(c).is_err() {
                                tracing::warn!("command dropped: agent is stopping");
                            }
                        }
                        Ok(ManagerMessage::Pong { .. } | ManagerMessage::Welcome { .. }) => {}
                        Err(e) => tracing::warn!("control channel: bad frame skipped: {e}"),
                    },
                    Message::Close(c) => return Err(format!("closed by the control plane: {c:?}")),
                    _ => {}
                }
            }
            Some(result) = ctx.results.recv() => {
                sink.send(Message::Text(channel::encode(&AgentMessage::CommandResult(result)))).await.map_err(|e| e.to_string())?;
                last_tx = Instant::now();
            }
            _ = std::future::ready(()), if has_more => {
                for e in batch {
                    let msg = match e.frame {
                        Frame::Text(t) => Message::Text(t),
                        Frame::Binary(b) => Message::Binary(b),
                    };
                    sink.feed(msg).await.map_err(|e| e.to_string())?;
                    cursor = e.seq;
                }
                sink.flush().await.map_err(|e| e.to_string())?;
                last_tx = Instant::now();
            }
            _ = ctx.outbox.notify.notified() => {}
            _ = heartbeat.tick() => {
                if last_rx.elapsed() > SILENT {
                    return Err(format!("nothing heard for {SILENT:?}"));
                }
                if last_tx.elapsed() >= PING_EVERY {
                    nonce += 1;
                    sink.send(Message::Text(channel::encode(&AgentMessage::Ping { nonce }))).await.map_err(|e| e.to_string())?;
                    last_tx = Instant::now();
                }
            }
        }
    }
}
