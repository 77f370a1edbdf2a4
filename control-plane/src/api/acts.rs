//! Routes of the manager's own decisions: drain and undrain a server, and
//! an app's policy (the thresholds it acts on). Drains are live state (the
//! manager's memory, [`crate::acts`]); the policy is configuration (the
//! managed-object database).

use bytes::Bytes;
use serde::Deserialize;
use warp::reply::Response;
use warp::Reply;

use super::errors::ApiError;
use super::models::parse_body;
use crate::acts::{Policy, Then};
use crate::state::AppState;
use crate::store;

type Answer = Result<Response, ApiError>;

/// Longest quiet period a drain may ask for (one day).
const MAX_QUIET_S: f64 = 86_400.0;

/// `POST /servers/{name}/drain` body; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainBody {
    /// Seconds with no request but probes before the server counts as
    /// drained; default: its app's `policy.drain_quiet_s`.
    #[serde(default)]
    pub quiet_s: Option<f64>,
    /// `nothing` (default; also `null`), `stop` or `restart`, through its
    /// agent.
    #[serde(default)]
    pub then: Option<Then>,
}

fn server_out(st: &AppState, name: &str) -> Response {
    let live = st.live.get();
    let acts = live.acts(name);
    warp::reply::json(&serde_json::json!({
        "server": name,
        "state": acts.state(),
        "acts": acts,
    }))
    .into_response()
}

/// Waits (at most 1 s) until the live view shows `check` true for the
/// server, so an answer means "in effect".
async fn settle(st: &AppState, name: &str, check: impl Fn(&crate::acts::ServerActs) -> bool) {
    let mut rx = st.live.subscribe();
    let name = name.to_string();
    let waited = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        rx.wait_for(|l| check(&l.acts(&name))).await.is_ok()
    })
    .await;
    if !matches!(waited, Ok(true)) {
        tracing::warn!("the manager took over 1 s to publish the order on {name}");
    }
}

/// A body that must be a JSON object: serde would also read a struct
/// from an array (`[null, null]` as `{"quiet_s": null, "then": null}`).
fn parse_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad("body", "body: must be a JSON object"));
    }
    parse_body(body)
}

/// `POST /servers/{name}/drain`.
pub async fn drain(name: String, st: AppState, body: Bytes) -> Answer {
    let b: DrainBody = if body.is_empty() {
        DrainBody::default()
    } else {
        parse_object(&body)?
    };
    let fleet = st.store.fleet();
    let server = fleet.server(&name).ok_or(ApiError::NotFound {
        kind: "server",
        name: name.clone(),
    })?;
    let quiet = match b.quiet_s {
        Some(q) if !(q.is_finite() && (0.0..=MAX_QUIET_S).contains(&q)) => {
            return Err(ApiError::bad(
                "quiet_s",
                format!("quiet_s: must be 0..{MAX_QUIET_S} seconds, got {q}"),
            ))
        }
        Some(q) => q,
        None => fleet
            .app(&server.app)
            .map_or(Policy::default().drain_quiet_s, |a| a.policy.drain_quiet_s),
    };
    let then = b.then.unwrap_or_default();
    st.acts.drain(&name, quiet, then);
    // This order's drain, not one already in force (a re-drain changes
    // the quiet period or the follow-up).
    settle(&st, &name, |a| {
        a.drain
            .as_ref()
            .is_some_and(|d| d.quiet_s == quiet && d.then == then && !d.automatic)
    })
    .await;
    Ok(server_out(&st, &name))
}

/// `POST /servers/{name}/undrain` body: none, or `{}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UndrainBody {}

/// `POST /servers/{name}/undrain`.
pub async fn undrain(name: String, st: AppState, body: Bytes) -> Answer {
    if !body.is_empty() {
        parse_object::<UndrainBody>(&body)?;
    }
    if st.store.fleet().server(&name).is_none() {
        return Err(ApiError::NotFound {
            kind: "server",
            name,
        });
    }
    st.acts
        .undrain(&name)
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
    settle(&st, &name, |a| a.drain.is_none() && a.held_out.is_none()).await;
    Ok(server_out(&st, &name))
}

/// `GET /apps/{name}/policy`.
pub async fn get_policy(name: String, st: AppState) -> Answer {
    let fleet = st.store.fleet();
    let app = fleet
        .app(&name)
        .ok_or(ApiError::NotFound { kind: "app", name })?;
    Ok(warp::reply::json(&app.policy).into_response())
}

/// `PUT /apps/{name}/policy`: the whole policy; keys left out take their
/// defaults.
pub async fn set_policy(name: String, st: AppState, body: Bytes) -> Answer {
    let policy: Policy = parse_body(&body)?;
    policy.validate("")?;
    let stored = policy.clone();
    st.store
        .mutate(move |tx| store::set_app_policy(tx, &name, &stored))
        .await?;
    st.settle().await;
    Ok(warp::reply::json(&policy).into_response())
}
