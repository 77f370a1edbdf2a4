//! Changes to the managed objects. Each function runs inside the caller's
//! transaction and checks everything first, so a refused change leaves
//! nothing behind.

use rusqlite::{params, Connection, OptionalExtension};
use usher_core::AppMode;

use super::StoreError;
use crate::model::{App, Server, Wsi, WsiRole, FRONT_DOOR_TARGET};

fn exists(conn: &Connection, table: &str, name: &str) -> Result<bool, StoreError> {
    let sql = format!("SELECT 1 FROM {table} WHERE name = ?1");
    Ok(conn
        .query_row(&sql, [name], |_| Ok(()))
        .optional()?
        .is_some())
}

fn need(conn: &Connection, table: &str, kind: &'static str, name: &str) -> Result<(), StoreError> {
    if exists(conn, table, name)? {
        Ok(())
    } else {
        Err(StoreError::NotFound {
            kind,
            name: name.to_string(),
        })
    }
}

fn mode_str(mode: AppMode) -> &'static str {
    match mode {
        AppMode::Redirect => "redirect",
        AppMode::Proxy => "proxy",
    }
}

/// Inserts or replaces every property of an app (config seeding and add).
pub fn upsert_app(conn: &Connection, app: &App) -> Result<(), StoreError> {
    let rules = serde_json::to_string(&app.rules)
        .map_err(|e| StoreError::invalid("rules", e.to_string()))?;
    let policy = serde_json::to_string(&app.policy)
        .map_err(|e| StoreError::invalid("policy", e.to_string()))?;
    let clash: Option<String> = conn
        .query_row(
            "SELECT name FROM apps WHERE listen = ?1 AND name <> ?2",
            params![app.listen.to_string(), app.name],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(other) = clash {
        return Err(StoreError::invalid(
            "listen",
            format!("{} is already the front door of app {other:?}", app.listen),
        ));
    }
    conn.execute(
        "INSERT INTO apps (name, origin, listen, public_url, mode, enabled, sorry_page_path,
            sorry_page_html, rules, epsilon, obsolescence_secs, max_concurrent,
            panic_threshold_pct, policy)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT(name) DO UPDATE SET origin = excluded.origin, listen = excluded.listen,
            public_url = excluded.public_url, mode = excluded.mode, enabled = excluded.enabled,
            sorry_page_path = excluded.sorry_page_path, sorry_page_html = excluded.sorry_page_html,
            rules = excluded.rules, epsilon = excluded.epsilon,
            obsolescence_secs = excluded.obsolescence_secs, max_concurrent = excluded.max_concurrent,
            panic_threshold_pct = excluded.panic_threshold_pct, policy = excluded.policy",
        params![
            app.name,
            app.origin.as_str(),
            app.listen.to_string(),
            app.public_url,
            mode_str(app.mode),
            app.enabled,
            app.sorry_page.as_ref().map(|s| s.path.display().to_string()),
            app.sorry_page.as_ref().map(|s| s.html.clone()),
            rules,
            app.epsilon,
            app.obsolescence_secs,
            app.max_concurrent,
            app.panic_threshold_pct,
            policy,
        ],
    )?;
    Ok(())
}

/// Adds a new app (API); refuses an existing name.
pub fn add_app(conn: &Connection, app: &App) -> Result<(), StoreError> {
    if exists(conn, "apps", &app.name)? {
        return Err(StoreError::Exists {
            kind: "app",
            name: app.name.clone(),
        });
    }
    upsert_app(conn, app)
}

/// Removes an app that has no servers and no WSIs left.
pub fn remove_app(conn: &Connection, name: &str) -> Result<(), StoreError> {
    need(conn, "apps", "app", name)?;
    let servers: i64 =
        conn.query_row("SELECT COUNT(*) FROM servers WHERE app = ?1", [name], |r| {
            r.get(0)
        })?;
    let wsis: i64 = conn.query_row("SELECT COUNT(*) FROM wsis WHERE app = ?1", [name], |r| {
        r.get(0)
    })?;
    if servers + wsis > 0 {
        return Err(StoreError::Conflict(format!(
            "app {name:?} still has {servers} server(s) and {wsis} WSI(s); remove them first"
        )));
    }
    conn.execute("DELETE FROM apps WHERE name = ?1", [name])?;
    Ok(())
}

/// Enables or disables an app's front door.
pub fn set_app_enabled(conn: &Connection, name: &str, enabled: bool) -> Result<(), StoreError> {
    need(conn, "apps", "app", name)?;
    conn.execute(
        "UPDATE apps SET enabled = ?2 WHERE name = ?1",
        params![name, enabled],
    )?;
    Ok(())
}

/// Replaces an app's policy (thresholds the manager acts on).
pub fn set_app_policy(
    conn: &Connection,
    name: &str,
    policy: &crate::acts::Policy,
) -> Result<(), StoreError> {
    need(conn, "apps", "app", name)?;
    let text =
        serde_json::to_string(policy).map_err(|e| StoreError::invalid("policy", e.to_string()))?;
    conn.execute(
        "UPDATE apps SET policy = ?2 WHERE name = ?1",
        params![name, text],
    )?;
    Ok(())
}

/// Inserts a server or updates its configured properties, keeping the
/// operator's orders (pinned load, redirect order) when it exists.
pub fn upsert_server(conn: &Connection, s: &Server) -> Result<(), StoreError> {
    need(conn, "apps", "app", &s.app)
        .map_err(|_| StoreError::invalid("app", format!("no app named {:?}", s.app)))?;
    conn.execute(
        "INSERT INTO servers (name, origin, app, url, capacity, enabled)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(name) DO UPDATE SET origin = excluded.origin, app = excluded.app,
            url = excluded.url, capacity = excluded.capacity, enabled = excluded.enabled",
        params![
            s.name,
            s.origin.as_str(),
            s.app,
            s.url,
            s.capacity,
            s.enabled
        ],
    )?;
    Ok(())
}

/// Adds a new server (API); refuses an existing name or unknown app.
pub fn add_server(conn: &Connection, s: &Server) -> Result<(), StoreError> {
    if exists(conn, "servers", &s.name)? {
        return Err(StoreError::Exists {
            kind: "server",
            name: s.name.clone(),
        });
    }
    upsert_server(conn, s)
}

/// Removes a server, its WSIs' link and every redirect order pointing at it.
pub fn remove_server(conn: &Connection, name: &str) -> Result<(), StoreError> {
    need(conn, "servers", "server", name)?;
    let wsis: i64 = conn.query_row("SELECT COUNT(*) FROM wsis WHERE server = ?1", [name], |r| {
        r.get(0)
    })?;
    if wsis > 0 {
        return Err(StoreError::Conflict(format!(
            "server {name:?} still has {wsis} WSI(s); remove them first"
        )));
    }
    conn.execute(
        "UPDATE servers SET redirect_target = NULL WHERE redirect_target = ?1",
        [name],
    )?;
    conn.execute("DELETE FROM servers WHERE name = ?1", [name])?;
    Ok(())
}

/// Puts a server into or out of rotation.
pub fn set_server_enabled(conn: &Connection, name: &str, enabled: bool) -> Result<(), StoreError> {
    need(conn, "servers", "server", name)?;
    conn.execute(
        "UPDATE servers SET enabled = ?2 WHERE name = ?1",
        params![name, enabled],
    )?;
    Ok(())
}

/// Pins a server's dynamic load value `L` (checked 0..=10000 by the
/// caller) until `until_unix` (`None`: until cleared), or clears the pin
/// (`None`). An operator's order, so it lives here; measured values do not.
pub fn set_load(
    conn: &Connection,
    name: &str,
    pin: Option<(u32, Option<f64>)>,
) -> Result<(), StoreError> {
    need(conn, "servers", "server", name)?;
    let (value, until) = match pin {
        Some((v, until)) => (Some(v), until),
        None => (None, None),
    };
    conn.execute(
        "UPDATE servers SET pinned_load = ?2, pinned_until_unix = ?3 WHERE name = ?1",
        params![name, value, until],
    )?;
    Ok(())
}

/// Sets or clears a server's redirect order. `target` is another server of
/// the same app or `front-door`.
pub fn set_redirect(conn: &Connection, name: &str, target: Option<&str>) -> Result<(), StoreError> {
    need(conn, "servers", "server", name)?;
    if let Some(t) = target {
        if t == name {
            return Err(StoreError::invalid(
                "target",
                "a server cannot redirect to itself",
            ));
        }
        if t != FRONT_DOOR_TARGET {
            let app: String =
                conn.query_row("SELECT app FROM servers WHERE name = ?1", [name], |r| {
                    r.get(0)
                })?;
            let target_app: Option<String> = conn
                .query_row("SELECT app FROM servers WHERE name = ?1", [t], |r| r.get(0))
                .optional()?;
            match target_app {
                None => {
                    return Err(StoreError::invalid(
                        "target",
                        format!(
                            "no server named {t:?} (give a server name, \"front-door\" or null)"
                        ),
                    ))
                }
                Some(a) if a != app => {
                    return Err(StoreError::invalid(
                        "target",
                        format!("server {t:?} belongs to app {a:?}, not {app:?}"),
                    ))
                }
                Some(_) => {}
            }
        }
    }
    conn.execute(
        "UPDATE servers SET redirect_target = ?2 WHERE name = ?1",
        params![name, target],
    )?;
    Ok(())
}

/// Inserts or replaces a WSI after checking its app and server.
pub fn upsert_wsi(conn: &Connection, w: &Wsi) -> Result<(), StoreError> {
    need(conn, "apps", "app", &w.app)
        .map_err(|_| StoreError::invalid("app", format!("no app named {:?}", w.app)))?;
    if w.role == WsiRole::Server {
        let server = w.server.as_deref().unwrap_or_default();
        let app: Option<String> = conn
            .query_row("SELECT app FROM servers WHERE name = ?1", [server], |r| {
                r.get(0)
            })
            .optional()?;
        if app.as_deref() != Some(w.app.as_str()) {
            return Err(StoreError::invalid(
                "server",
                format!("no server named {server:?} in app {:?}", w.app),
            ));
        }
    }
    conn.execute(
        "INSERT INTO wsis (name, origin, url, token, token_file, role, app, server)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(name) DO UPDATE SET origin = excluded.origin, url = excluded.url,
            token = excluded.token, token_file = excluded.token_file, role = excluded.role,
            app = excluded.app, server = excluded.server",
        params![
            w.name,
            w.origin.as_str(),
            w.url,
            w.token,
            w.token_file.as_ref().map(|p| p.display().to_string()),
            w.role.as_str(),
            w.app,
            w.server,
        ],
    )?;
    Ok(())
}

/// Adds a new WSI (API); refuses an existing name.
pub fn add_wsi(conn: &Connection, w: &Wsi) -> Result<(), StoreError> {
    if exists(conn, "wsis", &w.name)? {
        return Err(StoreError::Exists {
            kind: "wsi",
            name: w.name.clone(),
        });
    }
    upsert_wsi(conn, w)
}

/// Removes a WSI.
pub fn remove_wsi(conn: &Connection, name: &str) -> Result<(), StoreError> {
    need(conn, "wsis", "wsi", name)?;
    conn.execute("DELETE FROM wsis WHERE name = ?1", [name])?;
    Ok(())
}
