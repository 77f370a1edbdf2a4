//! The logging database: request records, metric samples, host facts,
//! devices, network interfaces and events, in its own SQLite file
//! (`<data_dir>/usher-log.db`).
//!
//! Writes go through a bounded channel to one dedicated thread, which
//! collects them for up to `flush_ms` and commits them in one transaction;
//! the async runtime never touches the disk. Each write may carry a `done`
//! callback, called after its transaction committed (the channel server
//! acknowledges agent messages from there). Sequenced agent messages are
//! stored once: `received(agent_id, seq)` is the primary key that turns a
//! resend into a no-op, and `events` has `UNIQUE (agent_id, seq)`.
//!
//! Size: over 400 lines: the schema, the writer thread with its batching
//! and retention, and the readers of one database; about 170 lines are
//! tests. Splitting writer and readers is open work.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::mpsc;
use usher_core::channel::{Event, HostFacts, Report};
use usher_core::record::decode_batch;
use usher_core::RequestRecord;

/// File name of the logging database inside the data dir.
pub const LOG_DB_FILE: &str = "usher-log.db";
/// Writes waiting for the writer thread before senders wait.
const QUEUE: usize = 4096;

/// Now as Unix microseconds.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Why the logging database failed.
#[derive(Debug, thiserror::Error)]
pub enum LogDbError {
    #[error("logging database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("logging database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("logging database writer has stopped")]
    Stopped,
}

/// One metric sample.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sample {
    pub component: String,
    pub metric: String,
    pub interval_start_us: u64,
    pub interval_stop_us: u64,
    pub value: f64,
}

/// One write.
#[derive(Debug)]
pub enum Write {
    /// An agent connected (or said hello again).
    Agent {
        agent_id: String,
        host_id: String,
        host_name: String,
        servers: String,
    },
    /// Host facts; stored only when they differ from the last stored ones.
    Facts { agent_id: String, facts: HostFacts },
    /// An interval report: stored as metric samples.
    Report { agent_id: String, report: Report },
    /// A batch of request records (`usher_core::record` batch bytes).
    Records {
        agent_id: String,
        seq: u64,
        server: String,
        batch: Vec<u8>,
    },
    /// An event.
    Event { agent_id: String, event: Event },
    /// Samples the manager computed itself (e.g. dynamic load values).
    Samples(Vec<Sample>),
}

type Done = Box<dyn FnOnce() + Send>;

/// Handle to the logging database (cheap to clone).
#[derive(Clone)]
pub struct LogDb {
    path: PathBuf,
    tx: mpsc::Sender<(Write, Option<Done>)>,
}

impl std::fmt::Debug for LogDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogDb").field("path", &self.path).finish()
    }
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS received (
    agent_id TEXT NOT NULL, seq INTEGER NOT NULL, time_logged_us INTEGER NOT NULL,
    PRIMARY KEY (agent_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY, host_id TEXT NOT NULL, host_name TEXT NOT NULL,
    servers TEXT NOT NULL, first_seen_us INTEGER NOT NULL, last_seen_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS host_facts (
    id INTEGER PRIMARY KEY, host_id TEXT NOT NULL, agent_id TEXT NOT NULL,
    host_name TEXT NOT NULL, facts TEXT NOT NULL, time_logged_us INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS host_facts_host ON host_facts (host_id, id);
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY, host_id TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    mount TEXT, file_system TEXT, total_bytes INTEGER, time_logged_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS net_interfaces (
    id INTEGER PRIMARY KEY, host_id TEXT NOT NULL, name TEXT NOT NULL, mac TEXT NOT NULL,
    addresses TEXT NOT NULL, time_logged_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS metric_samples (
    component TEXT NOT NULL, metric TEXT NOT NULL, interval_start_us INTEGER NOT NULL,
    interval_stop_us INTEGER NOT NULL, value REAL NOT NULL);
CREATE INDEX IF NOT EXISTS metric_samples_key ON metric_samples (component, metric, interval_start_us);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, agent_id TEXT NOT NULL, seq INTEGER NOT NULL,
    origin_id TEXT NOT NULL, origin_name TEXT NOT NULL, type_name TEXT NOT NULL,
    type_code INTEGER NOT NULL, text TEXT NOT NULL, time_occurred_us INTEGER NOT NULL,
    time_logged_us INTEGER NOT NULL, UNIQUE (agent_id, seq));
CREATE INDEX IF NOT EXISTS events_time ON events (time_occurred_us);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY, agent_id TEXT NOT NULL, server TEXT NOT NULL,
    time_logged_us INTEGER NOT NULL,
    server_endpoint TEXT, client_endpoint TEXT, client_host TEXT, user_name TEXT,
    auth_type TEXT, auth_db_path TEXT, request_line TEXT, content_path TEXT, accept TEXT,
    method TEXT, user_agent TEXT, connection TEXT, pragma TEXT, status INTEGER,
    protocol TEXT, last_modified INTEGER, content_length INTEGER, content_type TEXT,
    start_time_us INTEGER, processing_time_us INTEGER, cookies TEXT, referer TEXT,
    redirect_location TEXT, aborted INTEGER, queue_delay_us INTEGER, logged_at_us INTEGER);
CREATE INDEX IF NOT EXISTS requests_time ON requests (server, start_time_us);
";

const INSERT_REQUEST: &str = "INSERT INTO requests (agent_id, server, time_logged_us,
    server_endpoint, client_endpoint, client_host, user_name, auth_type, auth_db_path,
    request_line, content_path, accept, method, user_agent, connection, pragma, status,
    protocol, last_modified, content_length, content_type, start_time_us, processing_time_us,
    cookies, referer, redirect_location, aborted, queue_delay_us, logged_at_us)
    VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29)";

fn int(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// Opens (creating) the database file and its tables.
pub fn open_connection(path: &Path) -> Result<Connection, LogDbError> {
    let open = |source| LogDbError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(open)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(open)?;
    conn.execute_batch(SCHEMA).map_err(open)?;
    Ok(conn)
}

impl LogDb {
    /// Opens `<data_dir>/usher-log.db` and starts the writer thread. Must be
    /// called inside a tokio runtime only for the async methods; the thread
    /// itself is plain std.
    pub fn open(data_dir: &Path, flush_ms: u64, retention_hours: u64) -> Result<LogDb, LogDbError> {
        let path = data_dir.join(LOG_DB_FILE);
        // It holds request lines and cookies: owner only (0600), and the
        // `-wal`/`-shm` files SQLite creates take the same mode.
        let private = |path: &Path| {
            crate::token::make_db_private(path).map_err(|e| LogDbError::Open {
                path: path.to_path_buf(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })
        };
        private(&path)?;
        let conn = open_connection(&path)?;
        private(&path)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer {
            conn,
            flush: Duration::from_millis(flush_ms.max(1)),
            retention_us: retention_hours.saturating_mul(3_600_000_000),
            last_prune: Instant::now(),
        };
        std::thread::Builder::new()
            .name("usher-logdb".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| LogDbError::Open {
                path: path.clone(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        Ok(LogDb { path, tx })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a write; `done` runs after it is committed (or found to be a
    /// duplicate). Waits only when the queue is full.
    pub async fn write(&self, w: Write, done: Option<Done>) -> Result<(), LogDbError> {
        self.tx
            .send((w, done))
            .await
            .map_err(|_| LogDbError::Stopped)
    }

    /// Blocking variant for threads outside the runtime (benches, tools).
    pub fn write_blocking(&self, w: Write, done: Option<Done>) -> Result<(), LogDbError> {
        self.tx
            .blocking_send((w, done))
            .map_err(|_| LogDbError::Stopped)
    }

    /// Waits until everything queued so far is committed.
    pub async fn flush(&self) -> Result<(), LogDbError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done: Done = Box::new(move || {
            if tx.send(()).is_err() {
                tracing::debug!("flush waiter went away");
            }
        });
        self.write(Write::Samples(Vec::new()), Some(done)).await?;
        rx.await.map_err(|_| LogDbError::Stopped)
    }

    /// Runs `f` on a fresh connection on a blocking thread (reads).
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, LogDbError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open_connection(&path)?;
            Ok(f(&conn)?)
        })
        .await
        .map_err(|_| LogDbError::Stopped)?
    }

    /// The highest sequence number stored for an agent (0 = none).
    pub async fn stored_seq(&self, agent_id: &str) -> Result<u64, LogDbError> {
        let agent = agent_id.to_string();
        self.read(move |c| {
            let v: Option<i64> = c.query_row(
                "SELECT MAX(seq) FROM received WHERE agent_id = ?1",
                params![agent],
                |r| r.get(0),
            )?;
            Ok(v.unwrap_or(0).max(0) as u64)
        })
        .await
    }
}

struct Writer {
    conn: Connection,
    flush: Duration,
    retention_us: u64,
    last_prune: Instant,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<(Write, Option<Done>)>) {
        let mut batch: Vec<(Write, Option<Done>)> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            let deadline = Instant::now() + self.flush;
            loop {
                match rx.try_recv() {
                    Ok(w) => {
                        batch.push(w);
                        if batch.len() >= 20_000 {
                            break;
                        }
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {
                        if Instant::now() >= deadline {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            }
            let dones = match self.commit(&mut batch) {
                Ok(d) => d,
                Err(e) => {
                    // Nothing is acknowledged: the agents resend.
                    tracing::error!("logging database write failed: {e}");
                    batch.clear();
                    Vec::new()
                }
            };
            for d in dones {
                d();
            }
            if self.last_prune.elapsed() > Duration::from_secs(60) {
                self.last_prune = Instant::now();
                if let Err(e) = self.prune() {
                    tracing::warn!("logging database retention failed: {e}");
                }
            }
        }
    }

    fn commit(&mut self, batch: &mut Vec<(Write, Option<Done>)>) -> Result<Vec<Done>, LogDbError> {
        let tx = self.conn.transaction()?;
        let now = now_us() as i64;
        let mut dones = Vec::new();
        for (w, done) in batch.drain(..) {
            apply(&tx, w, now)?;
            if let Some(d) = done {
                dones.push(d);
            }
        }
        tx.commit()?;
        Ok(dones)
    }

    fn prune(&self) -> Result<(), LogDbError> {
        let cut = now_us().saturating_sub(self.retention_us) as i64;
        self.conn.execute(
            "DELETE FROM requests WHERE time_logged_us < ?1",
            params![cut],
        )?;
        self.conn.execute(
            "DELETE FROM metric_samples WHERE interval_stop_us < ?1",
            params![cut],
        )?;
        self.conn
            .execute("DELETE FROM events WHERE time_logged_us < ?1", params![cut])?;
        // Keep the newest mark per agent so resends stay recognised.
        self.conn.execute(
            "DELETE FROM received WHERE time_logged_us < ?1 AND seq < \
             (SELECT MAX(seq) FROM received r WHERE r.agent_id = received.agent_id)",
            params![cut],
        )?;
        Ok(())
    }
}

/// True when (agent, seq) was not stored before (and marks it stored).
fn first_time(tx: &Connection, agent: &str, seq: u64, now: i64) -> Result<bool, rusqlite::Error> {
    let n = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO received (agent_id, seq, time_logged_us) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![agent, int(Some(seq)), now])?;
    Ok(n == 1)
}

fn apply(tx: &Connection, w: Write, now: i64) -> Result<(), rusqlite::Error> {
    match w {
        Write::Agent {
            agent_id,
            host_id,
            host_name,
            servers,
        } => {
            tx.prepare_cached(
                "INSERT INTO agents (agent_id, host_id, host_name, servers, first_seen_us, last_seen_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (agent_id) DO UPDATE SET host_id = ?2, host_name = ?3, servers = ?4, last_seen_us = ?5",
            )?
            .execute(params![agent_id, host_id, host_name, servers, now])?;
        }
        Write::Facts { agent_id, facts } => store_facts(tx, &agent_id, &facts, now)?,
        Write::Report { agent_id, report } => {
            if first_time(tx, &agent_id, report.seq, now)? {
                let mut ins = tx.prepare_cached(
                    "INSERT INTO metric_samples (component, metric, interval_start_us, interval_stop_us, value)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                let (a, b) = (
                    int(Some(report.interval_start_us)),
                    int(Some(report.interval_stop_us)),
                );
                for s in report_samples(&agent_id, &report) {
                    ins.execute(params![s.component, s.metric, a, b, s.value])?;
                }
            }
        }
        Write::Records {
            agent_id,
            seq,
            server,
            batch,
        } => {
            if first_time(tx, &agent_id, seq, now)? {
                match decode_batch(&batch) {
                    Ok(decoded) => {
                        if decoded.bad > 0 {
                            tracing::warn!(
                                "agent {agent_id}: {} bad records in batch {seq} skipped",
                                decoded.bad
                            );
                        }
                        insert_records(tx, &agent_id, &server, now, &decoded.records)?;
                    }
                    Err(e) => tracing::warn!("agent {agent_id}: batch {seq} refused: {e}"),
                }
            }
        }
        Write::Event { agent_id, event } => {
            if first_time(tx, &agent_id, event.seq, now)? {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO events (agent_id, seq, origin_id, origin_name, type_name,
                     type_code, text, time_occurred_us, time_logged_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    agent_id,
                    int(Some(event.seq)),
                    event.origin_id,
                    event.origin_name,
                    event.type_name,
                    event.type_code,
                    event.text,
                    int(Some(event.time_occurred_us)),
                    now
                ])?;
            }
        }
        Write::Samples(samples) => {
            let mut ins = tx.prepare_cached(
                "INSERT INTO metric_samples (component, metric, interval_start_us, interval_stop_us, value)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for s in samples {
                ins.execute(params![
                    s.component,
                    s.metric,
                    int(Some(s.interval_start_us)),
                    int(Some(s.interval_stop_us)),
                    s.value
                ])?;
            }
        }
    }
    Ok(())
}

/// Inserts decoded request records (also used by the bench).
pub fn insert_records(
    tx: &Connection,
    agent_id: &str,
    server: &str,
    now: i64,
    records: &[RequestRecord],
) -> Result<(), rusqlite::Error> {
    let mut ins = tx.prepare_cached(INSERT_REQUEST)?;
    for r in records {
        ins.execute(params![
            agent_id,
            server,
            now,
            r.server_endpoint,
            r.client_endpoint,
            r.client_host,
            r.user_name,
            r.auth_type,
            r.auth_db_path,
            r.request_line,
            r.content_path,
            r.accept,
            r.method,
            r.user_agent,
            r.connection,
            r.pragma,
            int(r.status),
            r.protocol,
            int(r.last_modified),
            int(r.content_length),
            r.content_type,
            int(r.start_time_us),
            int(r.processing_time_us),
            r.cookies,
            r.referer,
            r.redirect_location,
            r.aborted,
            int(r.queue_delay_us),
            int(r.logged_at_us)
        ])?;
    }
    Ok(())
}

/// The metric samples one report makes: per server `server:<name>` and per
/// host `host:<host>` (the agent id stands for its host).
pub fn report_samples(agent_id: &str, report: &Report) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut put = |component: &str, metric: &str, value: f64| {
        out.push(Sample {
            component: component.to_string(),
            metric: metric.to_string(),
            interval_start_us: report.interval_start_us,
            interval_stop_us: report.interval_stop_us,
            value,
        });
    };
    for s in &report.servers {
        let c = format!("server:{}", s.server);
        put(&c, "requests", s.count as f64);
        put(&c, "mean_us", s.mean_us as f64);
        put(&c, "p50_us", s.p50_us as f64);
        put(&c, "p95_us", s.p95_us as f64);
        put(&c, "p99_us", s.p99_us as f64);
        put(&c, "errors_4xx", s.errors_4xx as f64);
        put(&c, "errors_5xx", s.errors_5xx as f64);
        put(&c, "dropped", s.dropped as f64);
        if let Some(q) = s.queue_length {
            put(&c, "queue_length", f64::from(q));
        }
        if let Some(d) = s.queue_delay_us {
            put(&c, "queue_delay_us", d as f64);
        }
        if let Some(ok) = s.probe_ok {
            put(&c, "probe_ok", if ok { 1.0 } else { 0.0 });
        }
    }
    let h = &report.host;
    let c = format!("host:{agent_id}");
    put(&c, "cpu.user", h.cpu.user);
    put(&c, "cpu.system", h.cpu.system);
    put(&c, "cpu.idle", h.cpu.idle);
    for (i, cpu) in h.per_cpu.iter().enumerate() {
        put(&c, &format!("cpu{i}.user"), cpu.user);
        put(&c, &format!("cpu{i}.system"), cpu.system);
        put(&c, &format!("cpu{i}.idle"), cpu.idle);
    }
    put(&c, "load1", h.load1);
    put(&c, "load5", h.load5);
    put(&c, "load15", h.load15);
    if let Some(r) = h.run_queue {
        put(&c, "run_queue", r as f64);
    }
    put(&c, "memory.total", h.memory_total as f64);
    put(&c, "memory.used", h.memory_used as f64);
    put(&c, "swap.total", h.swap_total as f64);
    put(&c, "swap.used", h.swap_used as f64);
    for d in &h.disks {
        let k = format!("disk:{}", d.mount);
        put(&c, &format!("{k}.total_bytes"), d.total_bytes as f64);
        put(
            &c,
            &format!("{k}.available_bytes"),
            d.available_bytes as f64,
        );
        put(&c, &format!("{k}.read_bytes"), d.read_bytes as f64);
        put(&c, &format!("{k}.written_bytes"), d.written_bytes as f64);
    }
    for n in &h.nets {
        let k = format!("net:{}", n.name);
        put(&c, &format!("{k}.rx_bytes"), n.rx_bytes as f64);
        put(&c, &format!("{k}.tx_bytes"), n.tx_bytes as f64);
        put(&c, &format!("{k}.rx_packets"), n.rx_packets as f64);
        put(&c, &format!("{k}.tx_packets"), n.tx_packets as f64);
        put(&c, &format!("{k}.rx_errors"), n.rx_errors as f64);
        put(&c, &format!("{k}.tx_errors"), n.tx_errors as f64);
    }
    out
}

fn store_facts(
    tx: &Connection,
    agent_id: &str,
    facts: &HostFacts,
    now: i64,
) -> Result<(), rusqlite::Error> {
    let json = serde_json::to_string(facts).unwrap_or_default();
    let last: Option<String> = tx
        .prepare_cached("SELECT facts FROM host_facts WHERE host_id = ?1 ORDER BY id DESC LIMIT 1")?
        .query_row(params![facts.host_id], |r| r.get(0))
        .optional()?;
    if last.as_deref() == Some(json.as_str()) {
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT INTO host_facts (host_id, agent_id, host_name, facts, time_logged_us) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![facts.host_id, agent_id, facts.host_name, json, now])?;
    for d in &facts.disks {
        tx.prepare_cached(
            "INSERT INTO devices (host_id, kind, name, mount, file_system, total_bytes, time_logged_us)
             VALUES (?1, 'disk', ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![facts.host_id, d.name, d.mount, d.file_system, int(Some(d.total_bytes)), now])?;
    }
    tx.prepare_cached(
        "INSERT INTO devices (host_id, kind, name, mount, file_system, total_bytes, time_logged_us)
         VALUES (?1, 'cpu', ?2, NULL, NULL, ?3, ?4)",
    )?
    .execute(params![
        facts.host_id,
        facts.cpu_brand,
        facts.cpu_logical,
        now
    ])?;
    for n in &facts.interfaces {
        tx.prepare_cached(
            "INSERT INTO net_interfaces (host_id, name, mac, addresses, time_logged_us) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![facts.host_id, n.name, n.mac, n.addresses.join(","), now])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use usher_core::record::encode_batch;
    use usher_core::FieldMask;

    fn event(seq: u64) -> Event {
        Event {
            seq,
            origin_id: "web1".into(),
            origin_name: "web1".into(),
            type_name: "probe_failed".into(),
            type_code: 110,
            text: format!("event {seq}"),
            time_occurred_us: 1_000 + seq,
        }
    }

    #[tokio::test]
    async fn sequenced_writes_are_stored_exactly_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = LogDb::open(dir.path(), 5, 24).expect("open");
        let acked = Arc::new(AtomicUsize::new(0));
        for round in 0..2 {
            for seq in 1..=5 {
                let a = acked.clone();
                let done: Done = Box::new(move || {
                    a.fetch_add(1, Ordering::SeqCst);
                });
                let w = Write::Event {
                    agent_id: "a1".into(),
                    event: event(seq),
                };
                db.write(w, Some(done)).await.expect("write");
            }
            let recs = vec![
                RequestRecord {
                    status: Some(200 + round),
                    method: Some("GET".into()),
                    ..Default::default()
                };
                3
            ];
            let w = Write::Records {
                agent_id: "a1".into(),
                seq: 6,
                server: "s".into(),
                batch: encode_batch(&recs, FieldMask::ALL),
            };
            db.write(w, None).await.expect("records");
        }
        db.flush().await.expect("flush");
        assert_eq!(
            acked.load(Ordering::SeqCst),
            10,
            "duplicates are acknowledged too"
        );
        let (events, requests, status): (i64, i64, i64) = db
            .read(|c| {
                let e = c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
                let n = c.query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0))?;
                let s = c.query_row("SELECT MAX(status) FROM requests", [], |r| r.get(0))?;
                Ok((e, n, s))
            })
            .await
            .expect("read");
        assert_eq!((events, requests, status), (5, 3, 200));
        assert_eq!(db.stored_seq("a1").await.expect("seq"), 6);
        assert_eq!(db.stored_seq("other").await.expect("seq"), 0);
    }

    #[tokio::test]
    async fn facts_are_logged_again_only_on_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = LogDb::open(dir.path(), 5, 24).expect("open");
        let mut facts = HostFacts {
            host_id: "h1".into(),
            host_name: "web".into(),
            ..Default::default()
        };
        facts.interfaces.push(usher_core::channel::NetInterface {
            name: "lo".into(),
            mac: "00".into(),
            addresses: vec!["127.0.0.1".into()],
        });
        for _ in 0..3 {
            db.write(
                Write::Facts {
                    agent_id: "a1".into(),
                    facts: facts.clone(),
                },
                None,
            )
            .await
            .expect("w");
        }
        facts.memory_bytes = 42;
        db.write(
            Write::Facts {
                agent_id: "a1".into(),
                facts,
            },
            None,
        )
        .await
        .expect("w");
        db.flush().await.expect("flush");
        let (f, n): (i64, i64) = db
            .read(|c| {
                Ok((
                    c.query_row("SELECT COUNT(*) FROM host_facts", [], |r| r.get(0))?,
                    c.query_row("SELECT COUNT(*) FROM net_interfaces", [], |r| r.get(0))?,
                ))
            })
            .await
            .expect("read");
        assert_eq!((f, n), (2, 2));
    }

    #[tokio::test]
    async fn reports_become_samples() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = LogDb::open(dir.path(), 5, 24).expect("open");
        let mut report = Report {
            seq: 1,
            interval_start_us: 10,
            interval_stop_us: 20,
            ..Default::default()
        };
        report.servers.push(usher_core::channel::ServerAggregate {
            server: "s1".into(),
            count: 7,
            queue_delay_us: Some(900),
            ..Default::default()
        });
        report.host.cpu.idle = 55.0;
        db.write(
            Write::Report {
                agent_id: "a1".into(),
                report: report.clone(),
            },
            None,
        )
        .await
        .expect("w");
        db.write(
            Write::Report {
                agent_id: "a1".into(),
                report,
            },
            None,
        )
        .await
        .expect("w");
        db.flush().await.expect("flush");
        let (count, idle, n): (f64, f64, i64) = db
            .read(|c| Ok((
                c.query_row("SELECT value FROM metric_samples WHERE component='server:s1' AND metric='requests'", [], |r| r.get(0))?,
                c.query_row("SELECT value FROM metric_samples WHERE component='host:a1' AND metric='cpu.idle'", [], |r| r.get(0))?,
                c.query_row("SELECT COUNT(*) FROM metric_samples WHERE metric='queue_delay_us'", [], |r| r.get(0))?,
            )))
            .await
            .expect("read");
        assert_eq!((count, idle, n), (7.0, 55.0, 1));
    }
}
