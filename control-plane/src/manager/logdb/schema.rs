//! The logging database's tables, and opening a connection to it.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::LogDbError;

pub(super) const SCHEMA: &str = "
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

pub(super) const INSERT_REQUEST: &str = "INSERT INTO requests (agent_id, server, time_logged_us,
    server_endpoint, client_endpoint, client_host, user_name, auth_type, auth_db_path,
    request_line, content_path, accept, method, user_agent, connection, pragma, status,
    protocol, last_modified, content_length, content_type, start_time_us, processing_time_us,
    cookies, referer, redirect_location, aborted, queue_delay_us, logged_at_us)
    VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29)";

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
