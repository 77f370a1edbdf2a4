//! Agents with their own token: add, upsert (config seeding), remove, read.
//!
//! Each server may be bound to one agent at most (two owners would make
//! "who speaks for server a" a race again), and a token may belong to one
//! agent only (its hash is unique).

use std::path::PathBuf;

use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;
use crate::model::{AgentEntry, Origin};

/// Longest agent id (the agent channel's `hello.agent_id` rule).
pub const MAX_AGENT_ID: usize = 128;

/// Checks an entry's own fields (id, servers); the error names the field.
pub fn check_agent(a: &AgentEntry) -> Result<(), StoreError> {
    if a.id.is_empty() || a.id.len() > MAX_AGENT_ID {
        return Err(StoreError::invalid("id", "must be 1..=128 characters"));
    }
    if a.id.chars().any(|c| c.is_control() || c == '/') {
        return Err(StoreError::invalid(
            "id",
            "must not hold '/' or control characters",
        ));
    }
    if a.servers.is_empty() {
        return Err(StoreError::invalid("servers", "name at least one server"));
    }
    for (i, s) in a.servers.iter().enumerate() {
        if s.is_empty() || s.len() > 128 {
            return Err(StoreError::invalid(
                format!("servers[{i}]"),
                "must be 1..=128 characters",
            ));
        }
        if a.servers[..i].contains(s) {
            return Err(StoreError::invalid(
                format!("servers[{i}]"),
                format!("{s:?} is named twice"),
            ));
        }
    }
    if a.token_sha256.len() != 64 {
        return Err(StoreError::invalid("token", "no token hash"));
    }
    Ok(())
}

/// Inserts or replaces an agent (config seeding); refuses a server bound to
/// another agent or a token another agent has.
pub fn upsert_agent(conn: &Connection, a: &AgentEntry) -> Result<(), StoreError> {
    check_agent(a)?;
    for (id, servers) in all_bindings(conn)? {
        if id == a.id {
            continue;
        }
        if let Some(s) = a.servers.iter().find(|s| servers.contains(s)) {
            return Err(StoreError::invalid(
                "servers",
                format!("server {s:?} is already bound to agent {id:?}"),
            ));
        }
    }
    let clash: Option<String> = conn
        .query_row(
            "SELECT id FROM agents WHERE token_sha256 = ?1 AND id <> ?2",
            params![a.token_sha256, a.id],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(other) = clash {
        return Err(StoreError::invalid(
            "token",
            format!("agent {other:?} has the same token"),
        ));
    }
    let servers = serde_json::to_string(&a.servers)
        .map_err(|e| StoreError::invalid("servers", e.to_string()))?;
    conn.execute(
        "INSERT INTO agents (id, origin, servers, token_sha256, token_file)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(id) DO UPDATE SET origin = excluded.origin, servers = excluded.servers,
            token_sha256 = excluded.token_sha256, token_file = excluded.token_file",
        params![
            a.id,
            a.origin.as_str(),
            servers,
            a.token_sha256,
            a.token_file.as_ref().map(|p| p.display().to_string()),
        ],
    )?;
    Ok(())
}

/// Adds a new agent (API); refuses an existing id.
pub fn add_agent(conn: &Connection, a: &AgentEntry) -> Result<(), StoreError> {
    let found: Option<i64> = conn
        .query_row("SELECT 1 FROM agents WHERE id = ?1", [&a.id], |r| r.get(0))
        .optional()?;
    if found.is_some() {
        return Err(StoreError::Exists {
            kind: "agent",
            name: a.id.clone(),
        });
    }
    upsert_agent(conn, a)
}

/// Removes an agent's entry (and so revokes its token).
pub fn remove_agent(conn: &Connection, id: &str) -> Result<(), StoreError> {
    if conn.execute("DELETE FROM agents WHERE id = ?1", [id])? == 0 {
        return Err(StoreError::NotFound {
            kind: "agent",
            name: id.to_string(),
        });
    }
    Ok(())
}

fn all_bindings(conn: &Connection) -> Result<Vec<(String, Vec<String>)>, StoreError> {
    Ok(load_agents(conn)?
        .into_iter()
        .map(|a| (a.id, a.servers))
        .collect())
}

/// Every agent entry, in id order.
pub fn load_agents(conn: &Connection) -> Result<Vec<AgentEntry>, StoreError> {
    let mut stmt = conn
        .prepare("SELECT id, origin, servers, token_sha256, token_file FROM agents ORDER BY id")?;
    let rows = stmt
        .query_map([], |r| {
            let servers: String = r.get(2)?;
            Ok(AgentEntry {
                id: r.get(0)?,
                origin: Origin::parse(&r.get::<_, String>(1)?),
                servers: serde_json::from_str(&servers).map_err(|_| {
                    rusqlite::Error::FromSqlConversionFailure(
                        2,
                        rusqlite::types::Type::Text,
                        format!("unexpected value {servers:?}").into(),
                    )
                })?,
                token_sha256: r.get(3)?,
                token_file: r.get::<_, Option<String>>(4)?.map(PathBuf::from),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::open;
    use crate::token::agent_token_sha256;

    fn entry(id: &str, servers: &[&str], token: &str) -> AgentEntry {
        AgentEntry {
            id: id.into(),
            origin: Origin::Api,
            servers: servers.iter().map(|s| s.to_string()).collect(),
            token_sha256: agent_token_sha256(token),
            token_file: None,
        }
    }

    #[test]
    fn add_list_remove_and_exclusive_bindings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open(&dir.path().join("usher.db")).expect("open");
        add_agent(&conn, &entry("ag1", &["a", "b"], "t1")).expect("add");
        assert!(matches!(
            add_agent(&conn, &entry("ag1", &["c"], "t9")),
            Err(StoreError::Exists { .. })
        ));
        let e = add_agent(&conn, &entry("ag2", &["c", "b"], "t2")).unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid { field, problem }
                if field == "servers" && problem.contains("\"b\" is already bound to agent \"ag1\"")),
            "{e}"
        );
        let e = add_agent(&conn, &entry("ag2", &["c"], "t1")).unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid { field, .. } if field == "token"),
            "{e}"
        );
        for (bad, field) in [
            (entry("", &["c"], "t3"), "id"),
            (entry("x/y", &["c"], "t3"), "id"),
            (entry("ag3", &[], "t3"), "servers"),
            (entry("ag3", &["c", "c"], "t3"), "servers[1]"),
            (entry("ag3", &[""], "t3"), "servers[0]"),
        ] {
            let e = add_agent(&conn, &bad).unwrap_err();
            assert!(
                matches!(&e, StoreError::Invalid { field: f, .. } if f == field),
                "{e}"
            );
        }
        add_agent(&conn, &entry("ag2", &["c"], "t2")).expect("add 2");
        let all = load_agents(&conn).expect("load");
        assert_eq!(
            all.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["ag1", "ag2"]
        );
        assert_eq!(all[0].servers, ["a", "b"]);
        assert_eq!(all[0].token_sha256, agent_token_sha256("t1"));
        remove_agent(&conn, "ag1").expect("remove");
        assert!(matches!(
            remove_agent(&conn, "ag1"),
            Err(StoreError::NotFound { kind: "agent", .. })
        ));
        // Its servers are free again.
        add_agent(&conn, &entry("ag4", &["a"], "t4")).expect("a is free");
    }
}
