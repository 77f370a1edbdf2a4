//! The writer thread: collects writes for up to `flush_ms`, commits them in
//! one transaction, calls each write's `done` after the commit, prunes rows
//! past retention. Resends of sequenced agent messages are no-ops.

use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::mpsc;
use usher_core::channel::HostFacts;
use usher_core::record::decode_batch;
use usher_core::RequestRecord;

use super::schema::INSERT_REQUEST;
use super::{now_us, report_samples, Done, LogDbError, Write};

fn int(v: Option<u64>) -> Option<i64> {
    v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) flush: Duration,
    pub(super) retention_us: u64,
    pub(super) last_prune: Instant,
}

impl Writer {
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<(Write, Option<Done>)>) {
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
        Write::ForgetAgent { agent_id } => {
            tx.prepare_cached("DELETE FROM agents WHERE agent_id = ?1")?
                .execute(params![agent_id])?;
        }
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
