//! Wiring: opens the spool, starts the record sources, process control,
//! the control channel and the task loops ([`crate::tasks`]), and stops
//! them in order. No loop lives here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use usher_core::channel::{event_type, Hello, ServerInfo, PROTOCOL_VERSION};

use crate::batch_receiver::{self, Routing};
use crate::channel::{self, ChannelCtx};
use crate::config::{read_secret, AgentConfig};
use crate::host_facts;
use crate::outbox::{Outbox, SpoolThread};
use crate::process::Processes;
use crate::records::RecordSink;
use crate::spool::Spool;
use crate::tasks::{self, commands, probes, reports, rings};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("config: {0}")]
    Config(String),
    #[error("spool in {path}: {source}")]
    Spool {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Receiver(String),
}

/// What a running agent exposes (tests, status).
#[derive(Debug, Clone)]
pub struct AgentHandle {
    /// The agent id in use.
    pub agent_id: String,
    /// Where the batch receiver listens, if configured.
    pub receiver: Option<SocketAddr>,
    /// True while the control channel is open.
    pub connected: watch::Receiver<bool>,
    /// The outbox (messages not yet acknowledged).
    pub outbox: Arc<Outbox>,
}

fn agent_id(cfg: &AgentConfig) -> Result<String, AgentError> {
    if let Some(id) = &cfg.agent_id {
        return Ok(id.clone());
    }
    let path = cfg.data_dir.join("agent.id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return Ok(id.trim().to_string());
        }
    }
    let id = sysinfo::System::host_name().unwrap_or_else(|_| "agent".into());
    std::fs::write(&path, format!("{id}\n"))
        .map_err(|source| AgentError::Spool { path, source })?;
    Ok(id)
}

/// Runs the agent until `shutdown` resolves.
pub async fn run(
    cfg: AgentConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let (_handle, running) = start(cfg).await?;
    shutdown.await;
    running.stop().await;
    Ok(())
}

/// A started agent; [`Running::stop`] ends it.
#[derive(Debug)]
pub struct Running {
    stop_tx: watch::Sender<bool>,
    ring_stop: Arc<AtomicBool>,
    ring_thread: Option<std::thread::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    outbox: Arc<Outbox>,
    spool_thread: SpoolThread,
}

impl Running {
    /// Stops the ring reader, then every task (the report loop forwards what
    /// is left), then syncs the spool and ends its thread.
    pub async fn stop(self) {
        self.ring_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ring_thread {
            let joined = tokio::task::spawn_blocking(move || t.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::warn!("ring reader thread ended badly");
            }
        }
        self.stop_tx.send_replace(true);
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::warn!("agent task ended badly: {e}");
            }
        }
        self.outbox.close().await;
        let thread = self.spool_thread;
        if tokio::task::spawn_blocking(move || thread.join())
            .await
            .is_err()
        {
            tracing::warn!("spool thread join failed");
        }
    }
}

/// How batches from the receiver find their server: by `endpoints`, else
/// the only server without a ring.
fn routing(cfg: &AgentConfig) -> Routing {
    let mut routing = Routing::default();
    for (i, s) in cfg.servers.iter().enumerate() {
        for e in &s.endpoints {
            routing.endpoints.push((e.clone(), i));
        }
    }
    let no_ring: Vec<usize> = cfg
        .servers
        .iter()
        .enumerate()
        .filter(|(_, s)| s.ring.is_none())
        .map(|(i, _)| i)
        .collect();
    if no_ring.len() == 1 {
        routing.fallback = no_ring.first().copied();
    }
    routing
}

/// Starts the agent's tasks and returns at once.
pub async fn start(cfg: AgentConfig) -> Result<(AgentHandle, Running), AgentError> {
    let token = cfg.read_token().map_err(AgentError::Config)?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| AgentError::Spool {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let agent_id = agent_id(&cfg)?;
    let spool_dir = cfg.data_dir.join("spool");
    let spool_err = |source| AgentError::Spool {
        path: spool_dir.clone(),
        source,
    };
    let spool = Spool::open(&spool_dir, cfg.spool.max_bytes).map_err(spool_err)?;
    let (outbox, spool_thread) = Outbox::start(spool, agent_id.clone()).map_err(spool_err)?;
    let cfg = Arc::new(cfg);
    let (stop_tx, stop_rx) = watch::channel(false);
    let ring_stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();

    let names: Vec<String> = cfg.servers.iter().map(|s| s.name.clone()).collect();
    let sink = Arc::new(Mutex::new(RecordSink::new(names, cfg.records.clone())));

    // Record sources: batches on loopback, rings on a thread of their own.
    let mut receiver_addr = None;
    if let Some(r) = &cfg.receiver {
        let token = read_secret(
            r.token.as_deref(),
            r.token_file.as_deref(),
            "receiver.token_file",
        )
        .map_err(AgentError::Config)?;
        let (addr, task) = batch_receiver::serve(
            r.listen,
            token,
            r.max_body_bytes,
            sink.clone(),
            routing(&cfg),
            tasks::stopped(stop_rx.clone()),
        )
        .map_err(AgentError::Receiver)?;
        tracing::info!("record batch receiver on {addr}");
        receiver_addr = Some(addr);
        tasks.push(task);
    }

    // The ring reader last: nothing after it can fail, and it would not
    // stop on its own.
    let sources: Vec<rings::RingSource> = cfg
        .servers
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.ring
                .clone()
                .map(|r| rings::RingSource::new(i, &s.name, r))
        })
        .collect();
    let mut ring_thread = None;
    if !sources.is_empty() {
        let (sink, outbox, stop) = (sink.clone(), outbox.clone(), ring_stop.clone());
        let every = Duration::from_millis(cfg.drain_ms);
        let state = spool_dir.join(tasks::ring_state::FILE);
        ring_thread = Some(
            std::thread::Builder::new()
                .name("usher-agent-rings".into())
                .spawn(move || rings::run(sources, sink, outbox, stop, every, state))
                .map_err(|e| AgentError::Config(format!("ring thread: {e}")))?,
        );
    }

    // Process control.
    let processes = Arc::new(Processes::default());
    for s in cfg.servers.iter().filter(|s| s.start_at_boot) {
        match processes.start(s) {
            Ok(pid) => outbox.event(
                &s.name,
                event_type::SERVER_STARTED,
                format!("server {} started, pid {pid}", s.name),
            ),
            Err(e) => outbox.event(&s.name, event_type::SERVER_EXITED, e),
        }
    }
    outbox.event(
        &agent_id,
        event_type::AGENT_STARTED,
        format!("agent {agent_id} started"),
    );
    if !cfg.watch_events.is_empty() {
        tasks.push(tokio::spawn(tasks::watch_events::run(
            cfg.watch_events.clone(),
            spool_dir.clone(),
            outbox.clone(),
            agent_id.clone(),
            tasks::stopped(stop_rx.clone()),
        )));
    }

    // Control channel.
    let facts = tokio::task::spawn_blocking(host_facts::collect)
        .await
        .unwrap_or_default();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (res_tx, res_rx) = mpsc::unbounded_channel();
    let (conn_tx, conn_rx) = watch::channel(false);
    let hello = {
        let (cfg, processes, agent_id) = (cfg.clone(), processes.clone(), agent_id.clone());
        Box::new(move || {
            let pids = processes.pids();
            Hello {
                protocol: PROTOCOL_VERSION,
                agent_id: agent_id.clone(),
                facts: facts.clone(),
                servers: cfg
                    .servers
                    .iter()
                    .map(|s| ServerInfo {
                        name: s.name.clone(),
                        url: s.url.clone(),
                        pid: pids.get(&s.name).copied(),
                    })
                    .collect(),
            }
        })
    };
    let ctx = ChannelCtx {
        url: cfg.control_url.clone(),
        token,
        tls: crate::tls::client_config(cfg.ca_file.as_deref())
            .map_err(|e| AgentError::Config(format!("ca_file: {e}")))?,
        reconnect_max: Duration::from_millis(cfg.reconnect_max_ms),
        hello,
        outbox: outbox.clone(),
        commands: cmd_tx,
        results: res_rx,
        connected: conn_tx,
    };
    tasks.push(tokio::spawn(channel::run(ctx, stop_rx.clone())));
    tasks.push(tokio::spawn(commands::run(
        cfg.clone(),
        processes.clone(),
        outbox.clone(),
        cmd_rx,
        res_tx,
        stop_rx.clone(),
    )));

    // Probes and reports.
    let probe_states = Arc::new(probes::ProbeStates::default());
    tasks.push(tokio::spawn(probes::run(
        cfg.clone(),
        sink.clone(),
        probe_states.clone(),
        outbox.clone(),
        stop_rx.clone(),
    )));
    tasks.push(tokio::spawn(reports::run(
        cfg.clone(),
        sink,
        probe_states,
        processes,
        outbox.clone(),
        stop_rx,
    )));

    let handle = AgentHandle {
        agent_id,
        receiver: receiver_addr,
        connected: conn_rx,
        outbox: outbox.clone(),
    };
    Ok((
        handle,
        Running {
            stop_tx,
            ring_stop,
            ring_thread,
            tasks,
            outbox,
            spool_thread,
        },
    ))
}
