//! Tables of the managed-object database, created and checked at start.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// Version of the tables below; bump with a migration when they change.
pub const SCHEMA_VERSION: i64 = 4;

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
    max_concurrent INTEGER NOT NULL,
    panic_threshold_pct REAL NOT NULL DEFAULT 50,
    policy TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS servers (
    name TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    app TEXT NOT NULL REFERENCES apps(name),
    url TEXT NOT NULL,
    capacity INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    pinned_load INTEGER,
    pinned_until_unix REAL,
    redirect_target TEXT
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
-- Agents with their own token (added without a version bump: an older
-- usher ignores the table, so agents with their own token are refused
-- there, which fails safe). `servers` is a JSON array of server names.
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    servers TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    token_file TEXT
);
";

/// Opens (creating if needed) the database and checks its schema version.
/// The file holds WSI tokens: it and its `-wal`/`-shm` files are mode 0600.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    make_private(path)?;
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
        Some(v @ 1..=3) => {
            if v < 3 {
                migrate_to_3(&tx, v)?;
            }
            // Version 4 added each app's policy (thresholds the manager
            // acts on), as JSON; `{}` is every default.
            tx.execute_batch(
                "ALTER TABLE apps ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
                 UPDATE schema_version SET version = 4;",
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
    make_private(path)?;
    Ok(conn)
}

fn migrate_to_3(tx: &rusqlite::Transaction<'_>, v: i64) -> Result<(), StoreError> {
    // Version 2 added `servers.failed`; version 3 moved measured loads and
    // failure verdicts out to the live view and keeps only the operator's
    // pinned load here.
    if v == 2 {
        tx.execute_batch("ALTER TABLE servers DROP COLUMN failed;")?;
    }
    tx.execute_batch(
        "ALTER TABLE servers DROP COLUMN load_updated_unix;
         ALTER TABLE servers RENAME COLUMN dynamic_load TO pinned_load;
         UPDATE servers SET pinned_load = NULL;
         ALTER TABLE servers ADD COLUMN pinned_until_unix REAL;
         ALTER TABLE apps ADD COLUMN panic_threshold_pct REAL NOT NULL DEFAULT 50;
         UPDATE schema_version SET version = 3;",
    )?;
    Ok(())
}

fn make_private(path: &Path) -> Result<(), StoreError> {
    crate::token::make_db_private(path).map_err(|e| {
        StoreError::invalid(
            path.display().to_string(),
            format!("cannot set mode 0600: {e}"),
        )
    })
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

    #[test]
    fn database_and_wal_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("usher.db");
        let c = open(&p).expect("create");
        c.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')", [])
            .expect("write");
        for name in ["usher.db", "usher.db-wal", "usher.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[test]
    fn migrates_version_2() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("usher.db");
        let c = Connection::open(&p).expect("create");
        c.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (2);
             CREATE TABLE apps (name TEXT PRIMARY KEY, origin TEXT NOT NULL,
                listen TEXT NOT NULL, public_url TEXT NOT NULL, mode TEXT NOT NULL,
                enabled INTEGER NOT NULL, sorry_page_path TEXT, sorry_page_html TEXT,
                rules TEXT NOT NULL, epsilon REAL NOT NULL, obsolescence_secs REAL NOT NULL,
                max_concurrent INTEGER NOT NULL);
             CREATE TABLE servers (name TEXT PRIMARY KEY, origin TEXT NOT NULL,
                app TEXT NOT NULL, url TEXT NOT NULL, capacity INTEGER NOT NULL,
                enabled INTEGER NOT NULL, dynamic_load INTEGER, load_updated_unix REAL,
                redirect_target TEXT, failed TEXT);
             INSERT INTO servers VALUES ('a','api','shop','http://x',5,1,1234,1.0,NULL,'probe');",
        )
        .expect("v2");
        drop(c);
        let c = open(&p).expect("migrate");
        let row: (Option<u32>, Option<f64>, i64) = c
            .query_row(
                "SELECT pinned_load, pinned_until_unix, (SELECT version FROM schema_version)
                 FROM servers WHERE name = 'a'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("row");
        assert_eq!(row, (None, None, 4));
    }
}
