//! The manager's live state: connected agents, the latest figures per
//! server, pending commands, and the hook to the rest of the control plane.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Notify};
use usher_core::channel::{
    AgentCommand, CommandKind, CommandResult, Event, Hello, ManagerMessage, ServerAggregate,
};

use crate::manager::config::ManagerConfig;
use crate::manager::logdb::{now_us, LogDb, LogDbError, Write};
use crate::manager::status::ServerStatus;
use crate::token;

/// The control plane's side of the loop: called from the manager's tasks,
/// so implementations must not block (hand work to a task or a channel).
pub trait LoadListener: Send + Sync + 'static {
    /// Every interval: the status of every server an agent reports on.
    fn statuses(&self, statuses: &[ServerStatus]);
    /// A server failed (probe failed, agent silent); it should leave rotation.
    fn server_failed(&self, _server: &str, _reason: &str) {}
    /// A failed server works again.
    fn server_recovered(&self, _server: &str) {}
    /// An agent connected and said who it is (register it and its host).
    fn agent_hello(&self, _hello: &Hello) {}
}

/// A listener that ignores everything (tests, standalone use).
#[derive(Debug, Default)]
pub struct NoListener;

impl LoadListener for NoListener {
    fn statuses(&self, _statuses: &[ServerStatus]) {}
}

/// Why a manager call failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("agent token file {path}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    LogDb(#[from] LogDbError),
    #[error("no connected agent {0}")]
    NoAgent(String),
    #[error("no connected agent watches server {0}")]
    NoServer(String),
    #[error("agent did not answer command {0} in time")]
    Timeout(u64),
}

/// One connected agent.
pub(crate) struct AgentConn {
    pub conn_id: u64,
    pub tx: mpsc::UnboundedSender<ManagerMessage>,
    pub last_heard: Instant,
    pub pinged: bool,
    pub servers: Vec<String>,
}

/// What the manager knows about one server.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerState {
    pub agent_id: String,
    pub latest: Option<(Instant, ServerAggregate)>,
    /// When the agent measured `latest` (end of its interval, unix µs, never
    /// later than when it arrived): what the data age is counted from.
    pub measured_at_us: Option<u64>,
    /// Failure reported by the agent's probe events, cleared on recovery.
    pub probe_failure: Option<String>,
    /// Failure as last announced to the listener.
    pub failed: Option<String>,
    pub load: Option<u32>,
    /// The delay `load` came from (kept through intervals with no records).
    pub last_delay: Option<u64>,
    /// The agent's host: CPU busy and memory used, percent, last report.
    pub host_cpu_pct: Option<f64>,
    pub host_mem_pct: Option<f64>,
    /// Share of users' answers that were 5xx/429 in the last report that
    /// had users' requests, and when it was measured (unix µs): kept
    /// through reports with probes only, so a server that fails fast is
    /// not read as healthy the moment its users stop arriving.
    pub error_memory: Option<(f64, u64)>,
    /// Users' requests (not probes) and their 5xx/429 answers in every
    /// report since the control plane started (`/metrics` counters).
    pub requests_total: u64,
    pub errors_total: u64,
}

pub(crate) struct Inner {
    pub cfg: ManagerConfig,
    pub data_dir: PathBuf,
    pub agent_token: String,
    pub logdb: LogDb,
    pub listener: Arc<dyn LoadListener>,
    pub agents: Mutex<HashMap<String, AgentConn>>,
    /// Agents that went away, with when they were last heard.
    pub gone: Mutex<HashMap<String, Instant>>,
    pub servers: Mutex<HashMap<String, ServerState>>,
    pub pending: Mutex<HashMap<u64, oneshot::Sender<CommandResult>>>,
    pub next_id: AtomicU64,
    pub event_seq: AtomicU64,
    pub wake: Notify,
    pub statuses: Mutex<Vec<ServerStatus>>,
    /// Agents with their own token, and refused reports per agent.
    pub identity: crate::manager::channel_server::identity::IdentityState,
}

/// The manager (cheap to clone).
#[derive(Clone)]
pub struct Manager {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("data_dir", &self.inner.data_dir)
            .finish()
    }
}

/// Locks a mutex, recovering from a poisoned one (a panicked holder left
/// plain data behind, still usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Origin id of the events the manager raises itself.
pub const MANAGER_ORIGIN: &str = "manager";

impl Manager {
    /// Opens the logging database and the agent token in `data_dir`. Call
    /// inside a tokio runtime, then [`Manager::spawn`].
    pub async fn open(
        data_dir: &Path,
        cfg: ManagerConfig,
        listener: Arc<dyn LoadListener>,
    ) -> Result<Manager, ManagerError> {
        let token_path = data_dir.join(token::AGENT_TOKEN_FILE);
        let agent_token =
            token::load_or_create(&token_path).map_err(|source| ManagerError::Token {
                path: token_path.clone(),
                source,
            })?;
        let logdb = LogDb::open(data_dir, cfg.flush_ms, cfg.retention_hours)?;
        let event_seq = logdb.stored_seq(MANAGER_ORIGIN).await?;
        Ok(Manager {
            inner: Arc::new(Inner {
                cfg,
                data_dir: data_dir.to_path_buf(),
                agent_token,
                logdb,
                listener,
                agents: Mutex::new(HashMap::new()),
                gone: Mutex::new(HashMap::new()),
                servers: Mutex::new(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                event_seq: AtomicU64::new(event_seq),
                wake: Notify::new(),
                statuses: Mutex::new(Vec::new()),
                identity: Default::default(),
            }),
        })
    }

    /// Starts the load computation loop; it ends when `shutdown` resolves.
    pub fn spawn(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(crate::manager::loadcalc::run(self.clone(), shutdown))
    }

    /// The token agents must present (`<data_dir>/agent.token`).
    pub fn agent_token(&self) -> &str {
        &self.inner.agent_token
    }

    /// The logging database.
    pub fn logdb(&self) -> &LogDb {
        &self.inner.logdb
    }

    /// The settings.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.cfg
    }

    /// The statuses computed at the last interval.
    pub fn statuses(&self) -> Vec<ServerStatus> {
        lock(&self.inner.statuses).clone()
    }

    /// Per server: users' requests and 5xx/429 answers the agents reported
    /// since the control plane started.
    pub fn request_totals(&self) -> HashMap<String, (u64, u64)> {
        lock(&self.inner.servers)
            .iter()
            .map(|(name, st)| (name.clone(), (st.requests_total, st.errors_total)))
            .collect()
    }

    /// How long ago each agent was last heard (any message): connected
    /// agents from the live table, agents that went away since the manager
    /// started from when they were last heard before that.
    pub fn last_heard(&self) -> HashMap<String, Duration> {
        let now = Instant::now();
        let mut out: HashMap<String, Duration> = lock(&self.inner.gone)
            .iter()
            .map(|(k, t)| (k.clone(), now.saturating_duration_since(*t)))
            .collect();
        for (k, a) in lock(&self.inner.agents).iter() {
            out.insert(k.clone(), now.saturating_duration_since(a.last_heard));
        }
        out
    }

    /// Ids of the connected agents.
    pub fn connected_agents(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.inner.agents).keys().cloned().collect();
        v.sort();
        v
    }

    /// The agent that watches `server`, if connected.
    pub fn agent_of(&self, server: &str) -> Option<String> {
        let agents = lock(&self.inner.agents);
        agents
            .iter()
            .find(|(_, a)| a.servers.iter().any(|s| s == server))
            .map(|(id, _)| id.clone())
    }

    /// Sends a command to the agent that watches the named server and waits
    /// for its result.
    pub async fn command_server(
        &self,
        kind: CommandKind,
        timeout: Duration,
    ) -> Result<CommandResult, ManagerError> {
        let server = match &kind {
            CommandKind::StartServer { server }
            | CommandKind::StopServer { server, .. }
            | CommandKind::RestartServer { server }
            | CommandKind::RelaySnapshot { server, .. } => server.clone(),
        };
        let agent = self
            .agent_of(&server)
            .ok_or_else(|| ManagerError::NoServer(server.clone()))?;
        self.command(&agent, kind, timeout).await
    }

    /// Sends a command to an agent and waits for its result.
    pub async fn command(
        &self,
        agent_id: &str,
        kind: CommandKind,
        timeout: Duration,
    ) -> Result<CommandResult, ManagerError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.pending).insert(id, tx);
        let sent = {
            let agents = lock(&self.inner.agents);
            agents.get(agent_id).map(|a| {
                a.tx.send(ManagerMessage::Command(AgentCommand { id, kind }))
                    .is_ok()
            })
        };
        if sent != Some(true) {
            lock(&self.inner.pending).remove(&id);
            return Err(ManagerError::NoAgent(agent_id.to_string()));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => Ok(r),
            _ => {
                lock(&self.inner.pending).remove(&id);
                Err(ManagerError::Timeout(id))
            }
        }
    }

    /// Logs an event the manager raised itself (origin = the component).
    pub async fn raise_event(&self, origin: &str, kind: (u32, &str), text: String) {
        let seq = self.inner.event_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let event = Event::new(seq, origin, kind, text, now_us());
        tracing::info!("event {}: {origin}: {}", kind.1, event.text);
        let w = Write::Event {
            agent_id: MANAGER_ORIGIN.to_string(),
            event,
        };
        if let Err(e) = self.inner.logdb.write(w, None).await {
            tracing::error!("event not logged: {e}");
        }
    }

    /// Mean dynamic load value per server over the last `window`, from the
    /// logging database (the extended-timeframe summary a front door keeps
    /// as its static default for when the control plane is away).
    pub async fn long_term_loads(
        &self,
        window: Duration,
    ) -> Result<Vec<(String, f64)>, ManagerError> {
        let since = now_us().saturating_sub(window.as_micros() as u64) as i64;
        let rows = self
            .inner
            .logdb
            .read(move |c| {
                let mut st = c.prepare(
                    "SELECT component, AVG(value) FROM metric_samples
                     WHERE metric = 'dynamic_load' AND interval_stop_us >= ?1
                     GROUP BY component ORDER BY component",
                )?;
                let rows = st
                    .query_map([since], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(c, v)| (c.strip_prefix("server:").unwrap_or(&c).to_string(), v))
            .collect())
    }

    /// Logged samples of each `(component, metric)` in `keys` whose
    /// interval started at or after `since_us`: (interval end in unix µs,
    /// value), oldest first, one list per key in the order given. One read
    /// of the logging database, by its (component, metric, time) index.
    pub async fn series(
        &self,
        keys: Vec<(String, String)>,
        since_us: u64,
    ) -> Result<Vec<Vec<(u64, f64)>>, ManagerError> {
        let since = since_us as i64;
        Ok(self
            .inner
            .logdb
            .read(move |c| {
                let mut st = c.prepare_cached(
                    "SELECT interval_stop_us, value FROM metric_samples
                     WHERE component = ?1 AND metric = ?2 AND interval_start_us >= ?3
                     ORDER BY interval_start_us",
                )?;
                keys.iter()
                    .map(|(component, metric)| {
                        st.query_map(rusqlite::params![component, metric, since], |r| {
                            Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, f64>(1)?))
                        })?
                        .collect::<Result<Vec<_>, _>>()
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?)
    }

    /// Every agent in the logging database's agent list (connected once
    /// and not removed), in id order.
    pub async fn logged_agents(&self) -> Result<Vec<String>, ManagerError> {
        Ok(self
            .inner
            .logdb
            .read(|c| texts(c, "SELECT agent_id FROM agents ORDER BY agent_id", []))
            .await?)
    }

    /// Names of the metrics logged for `component` since `since_us` that
    /// start with `prefix` (e.g. a host's `disk:` figures).
    pub async fn metric_names(
        &self,
        component: String,
        prefix: String,
        since_us: u64,
    ) -> Result<Vec<String>, ManagerError> {
        let since = since_us as i64;
        Ok(self
            .inner
            .logdb
            .read(move |c| {
                texts(
                    c,
                    "SELECT DISTINCT metric FROM metric_samples
                     WHERE component = ?1 AND substr(metric, 1, length(?2)) = ?2
                       AND interval_start_us >= ?3",
                    rusqlite::params![component, prefix, since],
                )
            })
            .await?)
    }

    /// Forgets a server's remembered error share (it was just restarted:
    /// the errors were the old process's).
    pub fn forget_errors(&self, server: &str) {
        if let Some(st) = lock(&self.inner.servers).get_mut(server) {
            st.error_memory = None;
        }
    }

    /// Asks the load loop to run now (a failure was reported).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }
}

/// The first column of every row `sql` returns, as text.
fn texts(
    c: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<String>> {
    let mut st = c.prepare(sql)?;
    let rows = st.query_map(params, |r| r.get(0))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::logdb::Sample;

    #[tokio::test]
    async fn long_term_loads_average_the_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = Manager::open(dir.path(), ManagerConfig::default(), Arc::new(NoListener))
            .await
            .expect("open");
        let now = now_us();
        let sample = |server: &str, age_s: u64, value: f64| Sample {
            component: format!("server:{server}"),
            metric: "dynamic_load".into(),
            interval_start_us: now - age_s * 1_000_000 - 1_000_000,
            interval_stop_us: now - age_s * 1_000_000,
            value,
        };
        let samples = vec![
            sample("a", 10, 1000.0),
            sample("a", 20, 3000.0),
            sample("a", 7200, 9000.0), // outside the hour
            sample("b", 5, 500.0),
        ];
        m.logdb()
            .write(Write::Samples(samples), None)
            .await
            .expect("write");
        m.logdb().flush().await.expect("flush");
        let got = m
            .long_term_loads(Duration::from_secs(3600))
            .await
            .expect("loads");
        assert_eq!(
            got,
            vec![("a".to_string(), 2000.0), ("b".to_string(), 500.0)]
        );
    }
}
