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
//! [`schema`] holds the tables, [`writer`] the thread and what each write
//! does, [`samples`] the metric samples a report makes; this file the handle.

mod samples;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};
use tokio::sync::mpsc;
use usher_core::channel::{Event, HostFacts, Report};

pub use samples::report_samples;
pub use schema::open_connection;
pub use writer::insert_records;
use writer::Writer;

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
    /// The operator removed a gone agent: its row leaves the agent list
    /// (its reports, events and records stay until retention ends).
    ForgetAgent { agent_id: String },
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
