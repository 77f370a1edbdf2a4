//! Tables of the managed-object database, created and checked at start.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// Version of the tables below; bump with a migration when they change.
pub const SCHEMA_VERSION: i64 = 2;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    listen TEXT NOT NULL,
    public_url TEXT NOT NULL,
    mode TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    sorry_page_path TEXT,
    sorry_page_html TEXT,
    rules TEXT NOT NULL,
    epsilon REAL NOT NULL,
    obsolescence_secs REAL NOT NULL,
    max_concurrent INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS servers (
    name TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    app TEXT NOT NULL REFERENCES apps(name),
    url TEXT NOT NULL,
    capacity INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    dynamic_load INTEGER,
    load_updated_unix REAL,
    redirect_target TEXT,
    failed TEXT
);
CREATE TABLE IF NOT EXISTS wsis (
    name TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    url TEXT NOT NULL,
    token TEXT NOT NULL,
    token_file TEXT,
    role TEXT NOT NULL,
    app TEXT NOT NULL REFERENCES apps(name),
    server TEXT REFERENCES servers(name)
);
";

/// Opens (creating if needed) the database and checks its schema version.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let tx = conn.transaction()?;
    tx.execute_batch(TABLES)?;
    let found: Option<i64> = tx
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .ok();
    match found {
        None => {
            tx.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                [SCHEMA_VERSION],
            )?;
        }
        Some(v) if v == SCHEMA_VERSION => {}
        Some(1) => {
            // Version 2 added `servers.failed` (the manager's verdict).
            tx.execute_batch(
                "ALTER TABLE servers ADD COLUMN failed TEXT;
                 UPDATE schema_version SET version = 2;",
            )?;
        }
        Some(v) => {
            return Err(StoreError::Schema {
                found: v,
                expected: SCHEMA_VERSION,
            })
        }
    }
    tx.commit()?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("usher.db");
        drop(open(&p).expect("create"));
        let c = open(&p).expect("reopen");
        c.execute("UPDATE schema_version SET version = 99", [])
            .expect("bump");
        drop(c);
        assert!(matches!(
            open(&p),
            Err(StoreError::Schema { found: 99, .. })
        ));
    }
}
