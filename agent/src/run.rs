//! The agent's main loop: wires the collectors, the record sources, the
//! probes, process control and the control channel together, and runs
//! until `shutdown`.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use usher_core::channel::{
    event_type, AgentCommand, CommandKind, CommandResult, Hello, Report, ServerInfo,
    PROTOCOL_VERSION,
};
use usher_core::snapshot::Command as WsiCommand;

use crate::batch_receiver::{self, ReceiverStats, Routing};
use crate::channel::{self, ChannelCtx};
use crate::config::{read_secret, AgentConfig, ServerConfig};
use crate::outbox::Outbox;
use crate::process::Processes;
use crate::records::RecordSink;
use crate::spool::Spool;
use crate::{host_facts, host_metrics, lock, now_us, probe, RingReader};

/// Last probe outcome per server: (ok, why not).
type ProbeState = Arc<Mutex<HashMap<String, (bool, Option<String>)>>>;

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
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let (started, done) = start(cfg).await?;
    let _ = &started;
    shutdown.await;
    done.stop().await;
    Ok(())
}

/// A started agent; [`Running::stop`] ends it.
#[derive(Debug)]
pub struct Running {
    stop_tx: watch::Sender<bool>,
    ring_stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    outbox: Arc<Outbox>,
}

impl Running {
    /// Stops every task and syncs the spool.
    pub async fn stop(self) {
        self.stop_tx.send_replace(true);
        self.ring_stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::warn!("agent task ended badly: {e}");
            }
        }
        if let Err(e) = lock(&self.outbox.spool).sync() {
            tracing::error!("spool sync failed: {e}");
        }
    }
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
    let spool =
        Spool::open(&spool_dir, cfg.spool.max_bytes).map_err(|source| AgentError::Spool {
            path: spool_dir,
            source,
        })?;
    let outbox = Outbox::new(spool, agent_id.clone());
    let cfg = Arc::new(cfg);
    let (stop_tx, stop_rx) = watch::channel(false);
    let ring_stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();

    let names: Vec<String> = cfg.servers.iter().map(|s| s.name.clone()).collect();
    let sink = Arc::new(Mutex::new(RecordSink::new(names, cfg.records.clone())));

    // Record sources: rings on a thread of their own, batches on loopback.
    let ring_servers: Vec<(usize, PathBuf)> = cfg
        .servers
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.ring.clone().map(|r| (i, r)))
        .collect();
    if !ring_servers.is_empty() {
        let (sink, stop, every) = (
            sink.clone(),
            ring_stop.clone(),
            Duration::from_millis(cfg.drain_ms),
        );
        std::thread::Builder::new()
            .name("usher-agent-rings".into())
            .spawn(move || drain_rings(ring_servers, sink, stop, every))
            .map_err(|e| AgentError::Config(format!("ring thread: {e}")))?;
    }
    let mut receiver_addr = None;
    if let Some(r) = &cfg.receiver {
        let token = read_secret(
            r.token.as_deref(),
            r.token_file.as_deref(),
            "receiver.token_file",
        )
        .map_err(AgentError::Config)?;
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
        let mut rx = stop_rx.clone();
        let (addr, task) = batch_receiver::serve(
            r.listen,
            token,
            r.max_body_bytes,
            sink.clone(),
            routing,
            Arc::new(ReceiverStats::default()),
            async move {
                while !*rx.borrow() {
                    if rx.changed().await.is_err() {
                        break;
                    }
                }
            },
        )
        .map_err(AgentError::Receiver)?;
        tracing::info!("record batch receiver on {addr}");
        receiver_addr = Some(addr);
        tasks.push(task);
    }

    // Process control.
    let processes = Arc::new(tokio::sync::Mutex::new(Processes::default()));
    for s in cfg.servers.iter().filter(|s| s.start_at_boot) {
        match processes.lock().await.start(s) {
            Ok(pid) => outbox.event(
                &s.name,
                event_type::SERVER_STARTED,
                format!("server {} started, pid {pid}", s.name),
            ),
            Err(e) => outbox.event(&s.name, event_type::SERVER_EXITED, e),
        };
    }
    outbox.event(
        &agent_id,
        event_type::AGENT_STARTED,
        format!("agent {agent_id} started"),
    );

    // Control channel.
    let facts = tokio::task::spawn_blocking(host_facts::collect)
        .await
        .unwrap_or_default();
    let pids = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (res_tx, res_rx) = mpsc::unbounded_channel();
    let (conn_tx, conn_rx) = watch::channel(false);
    let hello = {
        let (cfg, pids, agent_id) = (cfg.clone(), pids.clone(), agent_id.clone());
        Box::new(move || Hello {
            protocol: PROTOCOL_VERSION,
            agent_id: agent_id.clone(),
            facts: facts.clone(),
            servers: cfg
                .servers
                .iter()
                .map(|s| ServerInfo {
                    name: s.name.clone(),
                    url: s.url.clone(),
                    pid: lock(&pids).get(&s.name).copied(),
                })
                .collect(),
        })
    };
    let ctx = ChannelCtx {
        url: cfg.control_url.clone(),
        token,
        reconnect_max: Duration::from_millis(cfg.reconnect_max_ms),
        hello,
        outbox: outbox.clone(),
        commands: cmd_tx,
        results: res_rx,
        connected: conn_tx,
    };
    tasks.push(tokio::spawn(channel::run(ctx, stop_rx.clone())));
    tasks.push(tokio::spawn(commands(
        cfg.clone(),
        processes.clone(),
        pids.clone(),
        outbox.clone(),
        cmd_rx,
        res_tx,
        stop_rx.clone(),
    )));

    // Probes and reports.
    let probe_state = Arc::new(Mutex::new(HashMap::<String, (bool, Option<String>)>::new()));
    tasks.push(tokio::spawn(probes(
        cfg.clone(),
        sink.clone(),
        probe_state.clone(),
        outbox.clone(),
        stop_rx.clone(),
    )));
    tasks.push(tokio::spawn(reports(
        cfg.clone(),
        sink,
        probe_state,
        processes,
        pids,
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
            tasks,
            outbox,
        },
    ))
}

fn drain_rings(
    servers: Vec<(usize, PathBuf)>,
    sink: Arc<Mutex<RecordSink>>,
    stop: Arc<AtomicBool>,
    every: Duration,
) {
    let mut readers: Vec<Option<RingReader>> = servers.iter().map(|_| None).collect();
    let mut reported: Vec<String> = servers.iter().map(|_| String::new()).collect();
    // Records the producers dropped (full ring), as last seen per file.
    let mut dropped: Vec<Option<u64>> = servers.iter().map(|_| None).collect();
    let mut buf = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        for (k, (idx, path)) in servers.iter().enumerate() {
            if readers[k].as_ref().is_none_or(|r| r.replaced()) {
                match RingReader::open(path) {
                    Ok(r) => {
                        tracing::info!("reading records from {}", path.display());
                        readers[k] = Some(r);
                        reported[k].clear();
                        dropped[k] = None;
                    }
                    Err(e) => {
                        let text = e.to_string();
                        if reported[k] != text {
                            tracing::warn!("ring: {text}");
                            reported[k] = text;
                        }
                        readers[k] = None;
                    }
                }
            }
            if let Some(r) = readers[k].as_ref() {
                // Drain raw bytes; the sink reads the few fields it needs
                // in place and forwards the bytes unchanged.
                let Ok(area) = r.area() else { continue };
                for i in 0..area.ring_count() {
                    let Some(ring) = area.ring(i) else { continue };
                    loop {
                        let mut s = lock(&sink);
                        let n = ring.drain(4096, &mut buf, |bytes| {
                            s.push_encoded(*idx, bytes);
                        });
                        if n < 4096 {
                            break;
                        }
                    }
                }
                // Count the producers' drops as the server's dropped records.
                let now = r.stats().dropped;
                if let Some(before) = dropped[k] {
                    if now > before {
                        lock(&sink).bad(*idx, now - before);
                    }
                }
                dropped[k] = Some(now);
            }
        }
        std::thread::sleep(every);
    }
}

async fn probes(
    cfg: Arc<AgentConfig>,
    sink: Arc<Mutex<RecordSink>>,
    state: ProbeState,
    outbox: Arc<Outbox>,
    mut stop: watch::Receiver<bool>,
) {
    let client = hyper::Client::builder()
        .pool_max_idle_per_host(0)
        .build_http::<hyper::Body>();
    let seq = AtomicU64::new(0);
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.probe_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => if *stop.borrow() { return },
            _ = tick.tick() => {}
        }
        let rounds = cfg
            .servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.probe)
            .map(|(i, s)| {
                let n = seq.fetch_add(1, Ordering::Relaxed) + 1;
                lock(&sink).probe_sent(i, n, now_us());
                let client = &client;
                async move { (s, probe::send(client, s, n).await) }
            });
        for (s, out) in futures_util::future::join_all(rounds).await {
            let before = lock(&state).insert(s.name.clone(), (out.ok, out.error.clone()));
            let was_ok = before.map(|(ok, _)| ok);
            if was_ok != Some(out.ok) {
                if out.ok {
                    if was_ok.is_some() {
                        outbox.event(
                            &s.name,
                            event_type::PROBE_RECOVERED,
                            format!("probe of {} answers again", s.name),
                        );
                    }
                } else {
                    let why = out.error.unwrap_or_default();
                    outbox.event(&s.name, event_type::PROBE_FAILED, why);
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn reports(
    cfg: Arc<AgentConfig>,
    sink: Arc<Mutex<RecordSink>>,
    probe_state: ProbeState,
    processes: Arc<tokio::sync::Mutex<Processes>>,
    pids: Arc<Mutex<HashMap<String, u32>>>,
    outbox: Arc<Outbox>,
    mut stop: watch::Receiver<bool>,
) {
    let collector = Arc::new(Mutex::new(host_metrics::Collector::new()));
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut start_us = now_us();
    let mut last_dropped_logged = 0u64;
    loop {
        let stopping = tokio::select! {
            _ = stop.changed() => *stop.borrow(),
            _ = tick.tick() => false,
        };
        let stop_us = now_us();
        let (mut aggs, ready, unknown) = {
            let mut s = lock(&sink);
            let ready = if stopping {
                s.take_ready(Instant::now() + Duration::from_secs(86_400))
            } else {
                s.take_ready(Instant::now())
            };
            (s.take_aggregates(), ready, s.unknown)
        };
        for b in ready {
            outbox.records(&b.server, &b.bytes);
        }
        if unknown > last_dropped_logged {
            outbox.event(
                outbox.agent_id(),
                event_type::RECORDS_DROPPED,
                format!(
                    "{} records named no known server",
                    unknown - last_dropped_logged
                ),
            );
            last_dropped_logged = unknown;
        }
        {
            let state = lock(&probe_state);
            for a in &mut aggs {
                if let Some((ok, err)) = state.get(&a.server) {
                    a.probe_ok = Some(*ok);
                    a.probe_error = err.clone();
                }
            }
        }
        let c = collector.clone();
        let host = tokio::task::spawn_blocking(move || lock(&c).sample())
            .await
            .unwrap_or_default();
        outbox.report(Report {
            seq: 0,
            interval_start_us: start_us,
            interval_stop_us: stop_us,
            servers: aggs,
            host,
        });
        start_us = stop_us;
        let mut procs = processes.lock().await;
        for (name, status) in procs.reap() {
            lock(&pids).remove(&name);
            outbox.event(
                &name,
                event_type::SERVER_EXITED,
                format!("server {name} exited: {status}"),
            );
        }
        if stopping {
            return;
        }
    }
}

fn server<'a>(cfg: &'a AgentConfig, name: &str) -> Result<&'a ServerConfig, String> {
    cfg.servers
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| format!("server: no local server named {name}"))
}

async fn relay(server: &ServerConfig, cmd: &WsiCommand) -> Result<String, String> {
    let url = server
        .command_url
        .as_deref()
        .ok_or_else(|| format!("server {}: no command_url configured", server.name))?;
    let body = serde_json::to_vec(cmd).map_err(|e| e.to_string())?;
    let mut req = hyper::Request::post(url).header("content-type", "application/json");
    if let Some(t) = &server.command_token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(hyper::Body::from(body))
        .map_err(|e| format!("command_url {url}: {e}"))?;
    let res = tokio::time::timeout(Duration::from_secs(5), hyper::Client::new().request(req))
        .await
        .map_err(|_| format!("{url}: no answer within 5 s"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let status = res.status();
    let bytes = hyper::body::to_bytes(res.into_body())
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned();
    if status.is_success() {
        Ok(text)
    } else {
        Err(format!("{url}: {status} {text}"))
    }
}

async fn commands(
    cfg: Arc<AgentConfig>,
    processes: Arc<tokio::sync::Mutex<Processes>>,
    pids: Arc<Mutex<HashMap<String, u32>>>,
    outbox: Arc<Outbox>,
    mut rx: mpsc::UnboundedReceiver<AgentCommand>,
    results: mpsc::UnboundedSender<CommandResult>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let cmd = tokio::select! {
            _ = stop.changed() => if *stop.borrow() { break } else { continue },
            c = rx.recv() => match c { Some(c) => c, None => break },
        };
        let outcome: Result<(String, Option<u32>), String> = async {
            match &cmd.kind {
                CommandKind::StartServer { server: name } => {
                    let s = server(&cfg, name)?;
                    let pid = processes.lock().await.start(s)?;
                    lock(&pids).insert(name.clone(), pid);
                    outbox.event(
                        name,
                        event_type::SERVER_STARTED,
                        format!("server {name} started, pid {pid}"),
                    );
                    Ok((format!("started {name}"), Some(pid)))
                }
                CommandKind::StopServer {
                    server: name,
                    signal,
                } => {
                    let s = server(&cfg, name)?;
                    let pid = processes.lock().await.stop(s, signal.as_deref()).await?;
                    lock(&pids).remove(name);
                    outbox.event(
                        name,
                        event_type::SERVER_STOPPED,
                        format!("server {name} (pid {pid}) stopped"),
                    );
                    Ok((format!("stopped {name}"), Some(pid)))
                }
                CommandKind::RestartServer { server: name } => {
                    let s = server(&cfg, name)?;
                    let pid = processes.lock().await.restart(s).await?;
                    lock(&pids).insert(name.clone(), pid);
                    outbox.event(
                        name,
                        event_type::SERVER_STARTED,
                        format!("server {name} restarted, pid {pid}"),
                    );
                    Ok((format!("restarted {name}"), Some(pid)))
                }
                CommandKind::RelaySnapshot {
                    server: name,
                    snapshot,
                } => {
                    let s = server(&cfg, name)?;
                    let text = relay(
                        s,
                        &WsiCommand::Snapshot {
                            snapshot: snapshot.clone(),
                        },
                    )
                    .await?;
                    Ok((text, None))
                }
            }
        }
        .await;
        let result = match outcome {
            Ok((text, pid)) => CommandResult {
                id: cmd.id,
                ok: true,
                text,
                pid,
            },
            Err(text) => {
                tracing::warn!("command {} failed: {text}", cmd.id);
                CommandResult {
                    id: cmd.id,
                    ok: false,
                    text,
                    pid: None,
                }
            }
        };
        if results.send(result).is_err() {
            tracing::debug!("command result dropped: channel gone");
        }
    }
    processes.lock().await.stop_all(&cfg.servers).await;
}
