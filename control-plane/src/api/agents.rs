//! `POST /api/v1/agents` and `DELETE /api/v1/agents/{id}`: issuing and
//! revoking agents' own tokens, and removing agents that are gone; and the
//! `state` every agent is listed with (`GET /api/v1/agents`, in
//! `api/log/handlers.rs`).
//!
//! A new token is answered once and never again: `usher.db` keeps only its
//! SHA-256 (see `crate::token::agent_token_sha256`).

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::errors::ApiError;
use super::models::parse_body;
use crate::manager::logdb::Write;
use crate::manager::state::{lock, Manager};
use crate::model::{AgentEntry, Origin};
use crate::state::AppState;
use crate::store;
use crate::token::{agent_token_sha256, random_token};

type Answer = Result<Response, ApiError>;

/// Where an agent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Connected and heard from within `silent_after_ms`.
    Connected,
    /// Connected but not heard from lately, or not connected for less than
    /// `gone_after_s`.
    Silent,
    /// Not connected for longer than `gone_after_s`: can be removed.
    Gone,
    /// Has its own token but never connected.
    Never,
}

/// The state of an agent: `heard_ago` is how long since it was last heard
/// (`None` = never heard).
pub fn state_of(
    connected: bool,
    heard_ago: Option<Duration>,
    silent_after: Duration,
    gone_after: Duration,
) -> AgentState {
    match heard_ago {
        _ if connected && heard_ago.is_some_and(|a| a < silent_after) => AgentState::Connected,
        _ if connected => AgentState::Silent,
        None => AgentState::Never,
        Some(a) if a > gone_after => AgentState::Gone,
        Some(_) => AgentState::Silent,
    }
}

/// `POST /agents` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentBody {
    /// The agent's id (its `agent_id`).
    id: String,
    /// The servers it may report on.
    servers: Vec<String>,
}

/// `POST /agents` answer: the token, shown this once.
#[derive(Debug, Serialize)]
struct Issued {
    id: String,
    servers: Vec<String>,
    token: String,
    note: &'static str,
}

/// `POST /agents`: a new agent with its own, new token.
pub async fn add_agent(st: AppState, body: Bytes) -> Answer {
    let input: AgentBody = parse_body(&body)?;
    let token = random_token();
    let entry = AgentEntry {
        id: input.id,
        origin: Origin::Api,
        servers: input.servers,
        token_sha256: agent_token_sha256(&token),
        token_file: None,
    };
    let stored = entry.clone();
    st.store
        .mutate(move |tx| store::add_agent(tx, &stored))
        .await?;
    tracing::info!(
        "agent {} added with its own token, bound to {:?}",
        entry.id,
        entry.servers
    );
    let issued = Issued {
        id: entry.id,
        servers: entry.servers,
        token,
        note: "the token is shown only now: put it in the agent's token_file (usher.db keeps only its hash)",
    };
    Ok(warp::reply::with_status(warp::reply::json(&issued), StatusCode::CREATED).into_response())
}

/// `DELETE /agents/{id}` answer.
#[derive(Debug, Serialize)]
struct Removed {
    removed: bool,
    /// Its own token was revoked (it had one).
    revoked: bool,
    /// It was connected and has been disconnected.
    disconnected: bool,
}

/// `DELETE /agents/{id}`: revokes the agent's own token (a connected agent
/// is disconnected at once) and removes it from the list. An agent on the
/// shared token that is connected cannot be removed (409): stop it first.
pub async fn remove_agent(id: String, st: AppState) -> Answer {
    let has_entry = st.store.fleet().agents.iter().any(|a| a.id == id);
    let connected = st.manager.connected_agents().contains(&id);
    if !has_entry && connected {
        return Err(ApiError::Conflict(format!(
            "agent {id:?} is connected with the shared agent token, which cannot be revoked for one agent: stop it first"
        )));
    }
    if !has_entry && !is_listed(&st.manager, &id).await? {
        return Err(ApiError::NotFound {
            kind: "agent",
            name: id,
        });
    }
    if has_entry {
        let gone = id.clone();
        st.store
            .mutate(move |tx| store::remove_agent(tx, &gone))
            .await?;
        tracing::info!("agent {id}: its own token was revoked");
    }
    forget(&st.manager, &id).await?;
    Ok(warp::reply::json(&Removed {
        removed: true,
        revoked: has_entry,
        disconnected: connected,
    })
    .into_response())
}

/// Whether the logging database lists the agent.
async fn is_listed(m: &Manager, id: &str) -> Result<bool, ApiError> {
    let id = id.to_string();
    m.logdb()
        .read(move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM agents WHERE agent_id = ?1",
                [id],
                |r| r.get::<_, i64>(0),
            )
        })
        .await
        .map(|n| n > 0)
        .map_err(|e| ApiError::Internal(format!("logging database: {e}")))
}

/// Takes the agent off the list (its logged reports stay until retention).
async fn forget(m: &Manager, id: &str) -> Result<(), ApiError> {
    lock(&m.inner.gone).remove(id);
    let w = Write::ForgetAgent {
        agent_id: id.to_string(),
    };
    m.logdb()
        .write(w, None)
        .await
        .map_err(|e| ApiError::Internal(format!("logging database: {e}")))?;
    m.logdb()
        .flush()
        .await
        .map_err(|e| ApiError::Internal(format!("logging database: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_from_connection_and_age() {
        let s = Duration::from_secs(5);
        let g = Duration::from_secs(300);
        let ago = |secs| Some(Duration::from_secs(secs));
        assert_eq!(state_of(true, ago(1), s, g), AgentState::Connected);
        assert_eq!(state_of(true, ago(6), s, g), AgentState::Silent);
        assert_eq!(state_of(true, ago(600), s, g), AgentState::Silent);
        assert_eq!(state_of(false, ago(6), s, g), AgentState::Silent);
        assert_eq!(state_of(false, ago(301), s, g), AgentState::Gone);
        assert_eq!(state_of(false, None, s, g), AgentState::Never);
    }
}
