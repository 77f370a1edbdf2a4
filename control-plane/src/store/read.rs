//! Reading the whole managed-object picture.

use std::path::PathBuf;

use rusqlite::{Connection, Row};
use usher_core::{AppMode, RedirectRules};

use super::StoreError;
use crate::model::{App, Fleet, Origin, Server, SorryPage, Wsi, WsiRole};

/// Reads every app, server, WSI and agent entry (each in name order).
pub fn load_fleet(conn: &Connection, generation: u64) -> Result<Fleet, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT name, origin, listen, public_url, mode, enabled, sorry_page_path, sorry_page_html,
                rules, epsilon, obsolescence_secs, max_concurrent, panic_threshold_pct,
                policy FROM apps ORDER BY name",
    )?;
    let apps = stmt
        .query_map([], app_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare(
        "SELECT name, origin, app, url, capacity, enabled, pinned_load, pinned_until_unix,
                redirect_target FROM servers ORDER BY name",
    )?;
    let servers = stmt
        .query_map([], |r| {
            Ok(Server {
                name: r.get(0)?,
                origin: Origin::parse(&r.get::<_, String>(1)?),
                app: r.get(2)?,
                url: r.get(3)?,
                capacity: r.get(4)?,
                enabled: r.get(5)?,
                pinned_load: r.get(6)?,
                pinned_until_unix: r.get(7)?,
                redirect: r.get(8)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare(
        "SELECT name, origin, url, token, token_file, role, app, server FROM wsis ORDER BY name",
    )?;
    let wsis = stmt
        .query_map([], |r| {
            let role: String = r.get(5)?;
            Ok(Wsi {
                name: r.get(0)?,
                origin: Origin::parse(&r.get::<_, String>(1)?),
                url: r.get(2)?,
                token: r.get(3)?,
                token_file: r.get::<_, Option<String>>(4)?.map(PathBuf::from),
                role: WsiRole::parse(&role).ok_or_else(|| bad_column(5, &role))?,
                app: r.get(6)?,
                server: r.get(7)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Fleet {
        generation,
        apps,
        servers,
        wsis,
        agents: super::load_agents(conn)?,
    })
}

fn bad_column(i: usize, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        i,
        rusqlite::types::Type::Text,
        format!("unexpected value {value:?}").into(),
    )
}

fn app_from_row(r: &Row<'_>) -> rusqlite::Result<App> {
    let listen: String = r.get(2)?;
    let mode: String = r.get(4)?;
    let rules: String = r.get(8)?;
    let sorry_path: Option<String> = r.get(6)?;
    let sorry_html: Option<String> = r.get(7)?;
    Ok(App {
        name: r.get(0)?,
        origin: Origin::parse(&r.get::<_, String>(1)?),
        listen: listen.parse().map_err(|_| bad_column(2, &listen))?,
        public_url: r.get(3)?,
        mode: match mode.as_str() {
            "redirect" => AppMode::Redirect,
            "proxy" => AppMode::Proxy,
            _ => return Err(bad_column(4, &mode)),
        },
        enabled: r.get(5)?,
        sorry_page: sorry_path.map(|p| SorryPage {
            path: PathBuf::from(p),
            html: sorry_html.unwrap_or_default(),
        }),
        rules: serde_json::from_str::<RedirectRules>(&rules).map_err(|_| bad_column(8, &rules))?,
        epsilon: r.get(9)?,
        obsolescence_secs: r.get(10)?,
        max_concurrent: r.get(11)?,
        panic_threshold_pct: r.get(12)?,
        policy: {
            let text: String = r.get(13)?;
            serde_json::from_str(&text).map_err(|_| bad_column(13, &text))?
        },
    })
}
