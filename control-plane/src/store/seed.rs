//! Loading the config file into the database at start.
//!
//! The rule (documented in docs/configuration.md): when the config file's
//! text differs from the text applied at the last start, the config wins for
//! every object it names (all their configured properties, including
//! `enabled`; measured loads and redirect orders are kept) and objects that
//! came from an earlier config but are gone from it are removed. When the
//! file is unchanged, the database wins: changes made through the admin API
//! (including adds and removals) stand.

use rusqlite::{params, Connection, OptionalExtension};

use super::agents::upsert_agent;
use super::write::{upsert_app, upsert_server, upsert_wsi};
use super::StoreError;
use crate::config::Config;
use crate::spec::{read_field_file, MAX_SORRY_PAGE_BYTES};

const CONFIG_TEXT_KEY: &str = "config_text";

/// What seeding did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedOutcome {
    /// True when the config was applied (first start or changed file).
    pub applied: bool,
    /// Objects removed because an earlier config had them and this one not.
    pub removed: Vec<String>,
}

fn with_field(field: &str, e: StoreError) -> StoreError {
    match e {
        StoreError::Invalid { field: f, problem } => {
            StoreError::invalid(format!("{field}.{f}"), problem)
        }
        other => other,
    }
}

/// Applies `config` inside the caller's transaction if it changed.
pub fn apply_config(conn: &Connection, config: &Config) -> Result<SeedOutcome, StoreError> {
    let last: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [CONFIG_TEXT_KEY],
            |r| r.get(0),
        )
        .optional()?;
    let mut outcome = SeedOutcome {
        applied: false,
        removed: Vec::new(),
    };
    if last.as_deref() != Some(config.text.as_str()) {
        outcome.applied = true;
        // Objects of an earlier config that this one no longer names.
        for (table, kind, keep) in [
            (
                "wsis",
                "wsi",
                config
                    .wsis
                    .iter()
                    .map(|w| w.name.as_str())
                    .collect::<Vec<_>>(),
            ),
            (
                "servers",
                "server",
                config.servers.iter().map(|s| s.name.as_str()).collect(),
            ),
            (
                "apps",
                "app",
                config.apps.iter().map(|a| a.name.as_str()).collect(),
            ),
        ] {
            let mut stmt =
                conn.prepare(&format!("SELECT name FROM {table} WHERE origin = 'config'"))?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            for name in names.into_iter().filter(|n| !keep.contains(&n.as_str())) {
                remove_cascading(conn, table, &name)?;
                outcome.removed.push(format!("{kind} {name}"));
            }
        }
        // Agents of an earlier config that this one no longer names: their
        // tokens are revoked.
        let names = {
            let mut stmt = conn.prepare("SELECT id FROM agents WHERE origin = 'config'")?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            names
        };
        for id in names
            .into_iter()
            .filter(|n| !config.agents.iter().any(|a| &a.id == n))
        {
            conn.execute("DELETE FROM agents WHERE id = ?1", [&id])?;
            outcome.removed.push(format!("agent {id}"));
        }
        for (i, app) in config.apps.iter().enumerate() {
            upsert_app(conn, app).map_err(|e| with_field(&format!("apps[{i}]"), e))?;
        }
        for (i, s) in config.servers.iter().enumerate() {
            upsert_server(conn, s).map_err(|e| with_field(&format!("servers[{i}]"), e))?;
        }
        for (i, w) in config.wsis.iter().enumerate() {
            upsert_wsi(conn, w).map_err(|e| with_field(&format!("wsis[{i}]"), e))?;
        }
        // The config's bindings replace the API's: free its servers first.
        for a in &config.agents {
            conn.execute("DELETE FROM agents WHERE id = ?1", [&a.id])?;
        }
        for (i, a) in config.agents.iter().enumerate() {
            upsert_agent(conn, a).map_err(|e| with_field(&format!("agents[{i}]"), e))?;
        }
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![CONFIG_TEXT_KEY, config.text],
        )?;
    }
    refresh_files(conn);
    Ok(outcome)
}

/// Removes an object and whatever depends on it.
fn remove_cascading(conn: &Connection, table: &str, name: &str) -> Result<(), StoreError> {
    match table {
        "apps" => {
            conn.execute("DELETE FROM wsis WHERE app = ?1", [name])?;
            conn.execute(
                "UPDATE servers SET redirect_target = NULL WHERE redirect_target IN
                   (SELECT name FROM servers WHERE app = ?1)",
                [name],
            )?;
            conn.execute("DELETE FROM servers WHERE app = ?1", [name])?;
            conn.execute("DELETE FROM apps WHERE name = ?1", [name])?;
        }
        "servers" => {
            conn.execute("DELETE FROM wsis WHERE server = ?1", [name])?;
            conn.execute(
                "UPDATE servers SET redirect_target = NULL WHERE redirect_target = ?1",
                [name],
            )?;
            conn.execute("DELETE FROM servers WHERE name = ?1", [name])?;
        }
        _ => {
            conn.execute("DELETE FROM wsis WHERE name = ?1", [name])?;
        }
    }
    Ok(())
}

/// Re-reads sorry pages and token files named in the database, so an edit
/// of those files takes effect at the next start. A file that cannot be
/// read keeps the stored copy (logged).
fn refresh_files(conn: &Connection) {
    let base = std::path::Path::new("/");
    let refresh = |select: &str, update: &str, max: u64, trim: bool| -> Result<(), StoreError> {
        let mut stmt = conn.prepare(select)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        for (name, path) in rows {
            match read_field_file("file", base, &path, max) {
                Ok((_, text)) => {
                    let text = if trim { text.trim().to_string() } else { text };
                    conn.execute(update, params![name, text])?;
                }
                Err(e) => tracing::warn!("{name}: keeping the stored copy of {path}: {e}"),
            }
        }
        Ok(())
    };
    if let Err(e) = refresh(
        "SELECT name, sorry_page_path FROM apps WHERE sorry_page_path IS NOT NULL",
        "UPDATE apps SET sorry_page_html = ?2 WHERE name = ?1",
        MAX_SORRY_PAGE_BYTES,
        false,
    ) {
        tracing::warn!("cannot refresh sorry pages: {e}");
    }
    if let Err(e) = refresh(
        "SELECT name, token_file FROM wsis WHERE token_file IS NOT NULL",
        "UPDATE wsis SET token = ?2 WHERE name = ?1",
        4096,
        true,
    ) {
        tracing::warn!("cannot refresh WSI tokens: {e}");
    }
    if let Err(e) = refresh_agent_tokens(conn) {
        tracing::warn!("cannot refresh agent tokens: {e}");
    }
}

/// Re-reads the token files of `[[agents]]` entries and stores their hash,
/// so a new token in the file takes effect at the next start.
fn refresh_agent_tokens(conn: &Connection) -> Result<(), StoreError> {
    let base = std::path::Path::new("/");
    let mut stmt =
        conn.prepare("SELECT id, token_file FROM agents WHERE token_file IS NOT NULL")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    for (id, path) in rows {
        match read_field_file("token_file", base, &path, 4096) {
            Ok((_, text)) if usher_core::token::token_is_acceptable(text.trim()) => {
                let hash = crate::token::agent_token_sha256(&text);
                if let Err(e) = conn.execute(
                    "UPDATE agents SET token_sha256 = ?2 WHERE id = ?1",
                    params![id, hash],
                ) {
                    tracing::warn!("agent {id}: keeping the stored token of {path}: {e}");
                }
            }
            Ok(_) => tracing::warn!(
                "agent {id}: keeping the stored token: {path}: {}",
                usher_core::token::TOKEN_RULE
            ),
            Err(e) => tracing::warn!("agent {id}: keeping the stored token of {path}: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{load_fleet, open, set_app_enabled, set_load};

    fn config(dir: &std::path::Path, capacity: u32, extra_server: bool) -> Config {
        let mut text = format!(
            "[[apps]]\nname = \"shop\"\nlisten = \"127.0.0.1:18080\"\n\
             [[servers]]\nname = \"a\"\napp = \"shop\"\nurl = \"http://127.0.0.1:18081\"\ncapacity = {capacity}\n"
        );
        if extra_server {
            text.push_str("[[servers]]\nname = \"b\"\napp = \"shop\"\nurl = \"http://127.0.0.1:18082\"\ncapacity = 1\n");
        }
        Config::parse(&dir.join("usher.toml"), &text).expect("valid config")
    }

    fn seed(conn: &mut rusqlite::Connection, c: &Config) -> SeedOutcome {
        let tx = conn.transaction().expect("tx");
        let o = apply_config(&tx, c).expect("seed");
        tx.commit().expect("commit");
        o
    }

    #[test]
    fn database_wins_until_the_config_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(&dir.path().join("usher.db")).expect("open");
        assert!(seed(&mut conn, &config(dir.path(), 5, true)).applied);
        set_app_enabled(&conn, "shop", false).expect("disable");
        set_load(&conn, "a", Some((1234, None))).expect("load");

        // Same file: the API's changes stand.
        let o = seed(&mut conn, &config(dir.path(), 5, true));
        assert!(!o.applied);
        let f = load_fleet(&conn, 1).expect("fleet");
        assert!(!f.apps[0].enabled);

        // Changed file: configured properties win, pinned loads stay, and
        // a server the config no longer names is removed.
        let o = seed(&mut conn, &config(dir.path(), 7, false));
        assert!(o.applied);
        assert_eq!(o.removed, vec!["server b".to_string()]);
        let f = load_fleet(&conn, 1).expect("fleet");
        assert!(f.apps[0].enabled);
        let a = f.server("a").expect("a");
        assert_eq!((a.capacity, a.pinned_load), (7, Some(1234)));
        assert!(f.server("b").is_none());
    }
}
